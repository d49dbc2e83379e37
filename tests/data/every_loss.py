"""Every public loss of losskit computed once, for the cross-target check
(tests/test_emulated_cpus.py), which runs this file on the host and again under qemu-user on
emulated CPUs that lack AVX-512 or AVX2, then compares the outputs.

    python every_loss.py make INPUTS.npz          # the inputs (written on the host only)
    python every_loss.py run INPUTS.npz OUT.npz   # every loss on them; OUT.npz also holds
                                                  # cpu_target, the target that was used

Inputs are made once and read by every run, so no run depends on how its CPU draws random
numbers. Every family is here, in float32 and float64 (the functional calls in float16 too): the
functional forward ('none' and
'mean'), the backward (with the target's gradient where there is one), the fused
forward_backward, a class, linear_cross_entropy in chunks and the adaptive softmax; the sizes pass
each family's threading threshold and the run uses 4 threads, so the threaded and vector paths
(and their tails) all run. Needs only numpy and losskit.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

DTYPES = ("float32", "float64")
# The functional cases run at float16 too: the losses reading it in place convert with F16C on
# the avx2/avx512 targets and with portable code on baseline (qemu's Nehalem has no F16C).
FUNCTIONAL_DTYPES = DTYPES + ("float16",)


def make_inputs(path: str) -> None:
    rng = np.random.default_rng(2024)
    n, c = 300, 300  # 90000 elements: past the element-wise driver's 2 x 32768 threading grain
    a: Dict[str, np.ndarray] = {
        "x": rng.standard_normal((n, c)),
        "y": rng.standard_normal((n, c)),
        "p": rng.uniform(0.02, 0.98, (n, c)),
        "q": rng.uniform(0.0, 1.0, (n, c)),
        "sign": rng.choice([-1.0, 1.0], (n, c)),
        "pos": rng.uniform(0.1, 3.0, (n, c)),
        "w_row": rng.uniform(0.5, 2.0, (c,)),
        "flat1": rng.standard_normal(n * c),
        "flat2": rng.standard_normal(n * c),
        "flat_sign": rng.choice([-1.0, 1.0], n * c),
        # classification: (256, 300) rows, a K-dimensional (8, 20, 30, 30) input and two long rows
        # that are split across threads
        "logits": 3 * rng.standard_normal((256, 300)),
        "labels": rng.integers(0, 300, 256),
        "class_w": rng.uniform(0.2, 2.0, 300),
        "logits_k": rng.standard_normal((8, 20, 30, 30)),
        "labels_k": rng.integers(0, 20, (8, 30, 30)),
        "long_rows": 4 * rng.standard_normal((2, 60000)),
        "long_labels": rng.integers(0, 60000, 2),
        "multilabel": np.where(rng.uniform(size=(256, 300)) < 0.05, rng.integers(0, 300, (256, 300)), -1),
        # embedding: 2000 rows of 64 (the row kernels' grain is 512 rows of 64)
        "e1": rng.standard_normal((2000, 64)),
        "e2": rng.standard_normal((2000, 64)),
        "e3": rng.standard_normal((2000, 64)),
        "e_sign": rng.choice([-1.0, 1.0], 2000),
        # CTC: T=60, N=8, C=20, padded targets of up to 15 labels (60 x 8 x 31 cells > 16384)
        "ctc_logits": rng.standard_normal((60, 8, 20)),
        "ctc_targets": rng.integers(1, 20, (8, 15)),
        "ctc_input_lengths": rng.integers(40, 61, 8),
        "ctc_target_lengths": rng.integers(5, 16, 8),
        # linear_cross_entropy: 600 rows of 64 features, 500 classes, in 256-row chunks
        "h": rng.standard_normal((600, 64)),
        "W": 0.2 * rng.standard_normal((500, 64)),
        "b": 0.1 * rng.standard_normal(500),
        "h_labels": rng.integers(0, 500, 600),
        # adaptive softmax: 64 features, 1000 classes, cutoffs (100, 400)
        "asm_x": rng.standard_normal((400, 64)),
        "asm_labels": rng.integers(0, 1000, 400),
        # segmentation: (6, 4, 50, 61), 3050 positions per channel (three 1024-position tiles, the
        # last one short), 18 tiles: past the 2 x 8-tile threading grain
        "seg_logits": 2 * rng.standard_normal((6, 4, 50, 61)),
        "seg_labels": rng.integers(0, 4, (6, 50, 61)),
        "seg_soft": rng.uniform(0.0, 1.0, (6, 4, 50, 61)),
    }
    a["multilabel"][:, 0] = rng.integers(0, 300, 256)  # at least one label per row
    a["labels"][::17] = -100  # ignored rows
    a["ctc_input_lengths"][0] = 60
    # derived inputs too: NumPy's own exp and log differ in the last bit between CPUs
    a["probs"] = np.exp(_log_softmax(a["logits"], 1))
    a["ctc_log_probs"] = _log_softmax(a["ctc_logits"], 2)
    np.savez(path, **a)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def cases(a: Dict[str, np.ndarray], dt: str) -> List[Tuple[str, str, tuple, dict, bool]]:
    """(label, functional name, positional inputs, keywords, target_grad) for one dtype."""
    f = {k: v.astype(dt) for k, v in a.items() if v.dtype.kind == "f"}
    x, y, p, q, s, pos = f["x"], f["y"], f["p"], f["q"], f["sign"], f["pos"]
    ctc_lp, probs = f["ctc_log_probs"], f["probs"]
    return [
        ("l1", "l1_loss", (x, y), {}, True),
        ("mse_weighted", "mse_loss", (x, y), {"weight": pos}, True),
        ("huber", "huber_loss", (x, y), {"delta": 0.5}, True),
        ("smooth_l1", "smooth_l1_loss", (x, y), {"beta": 0.5}, True),
        ("soft_margin", "soft_margin_loss", (x, s), {}, False),
        ("bce", "binary_cross_entropy", (p, q), {"weight": f["w_row"]}, True),
        ("bce_logits", "binary_cross_entropy_with_logits", (x, q), {"pos_weight": f["w_row"]}, True),
        ("poisson_log", "poisson_nll_loss", (x, pos), {"full": True}, True),
        ("poisson", "poisson_nll_loss", (pos, pos), {"log_input": False}, True),
        ("gaussian", "gaussian_nll_loss", (x, y, pos), {"full": True}, True),
        ("kl", "kl_div", (x, p), {}, True),
        ("kl_log", "kl_div", (x, y), {"log_target": True}, True),
        ("margin_ranking", "margin_ranking_loss", (f["flat1"], f["flat2"], f["flat_sign"]), {"margin": 0.3}, False),
        ("hinge", "hinge_embedding_loss", (x, s), {"margin": 0.5}, False),
        ("ce", "cross_entropy", (f["logits"], a["labels"]), {"weight": f["class_w"], "label_smoothing": 0.1}, False),
        ("ce_probs", "cross_entropy", (f["logits"], probs), {"weight": f["class_w"]}, True),
        ("ce_kdim", "cross_entropy", (f["logits_k"], a["labels_k"]), {}, False),
        ("ce_long_rows", "cross_entropy", (f["long_rows"], a["long_labels"]), {"label_smoothing": 0.2}, False),
        ("nll", "nll_loss", (f["logits"], a["labels"]), {"weight": f["class_w"]}, False),
        ("nll_kdim", "nll_loss", (f["logits_k"], a["labels_k"]), {}, False),
        (
            "multi_margin",
            "multi_margin_loss",
            (f["logits"], np.maximum(a["labels"], 0)),
            {"weight": f["class_w"]},
            False,
        ),
        (
            "multi_margin_p2",
            "multi_margin_loss",
            (f["logits"], np.maximum(a["labels"], 0)),
            {"p": 2, "margin": 0.7},
            False,
        ),
        ("multilabel_margin", "multilabel_margin_loss", (f["logits"], a["multilabel"]), {}, False),
        ("multilabel_soft", "multilabel_soft_margin_loss", (f["logits"], q[:256]), {"weight": f["class_w"]}, True),
        ("cosine", "cosine_embedding_loss", (f["e1"], f["e2"], f["e_sign"]), {"margin": 0.2}, False),
        ("triplet", "triplet_margin_loss", (f["e1"], f["e2"], f["e3"]), {"swap": True}, False),
        ("triplet_p1", "triplet_margin_loss", (f["e1"], f["e2"], f["e3"]), {"p": 1, "margin": 2.0}, False),
        (
            "triplet_cosine",
            "triplet_margin_with_distance_loss",
            (f["e1"], f["e2"], f["e3"]),
            {"distance_function": "cosine"},
            False,
        ),
        (
            "triplet_sq",
            "triplet_margin_with_distance_loss",
            (f["e1"], f["e2"], f["e3"]),
            {"distance_function": "squared_euclidean", "swap": True},
            False,
        ),
        ("ctc", "ctc_loss", (ctc_lp, a["ctc_targets"], a["ctc_input_lengths"], a["ctc_target_lengths"]), {}, False),
        (
            "ctc_zero_inf",
            "ctc_loss",
            (ctc_lp, a["ctc_targets"], a["ctc_input_lengths"], a["ctc_target_lengths"]),
            {"zero_infinity": True, "blank": 0},
            False,
        ),
        (
            "linear_ce",
            "linear_cross_entropy",
            (f["h"], f["W"], a["h_labels"]),
            {"linear_bias": f["b"], "label_smoothing": 0.1, "chunk_size": 256},
            False,
        ),
        # info_nce_loss: 500 pairs of 64 in blocks of 128 rows (the column statistics merged over
        # four blocks, the symmetric gradient's second pass)
        ("info_nce", "info_nce_loss", (f["e1"][:500], f["e2"][:500]), {"block_size": 128}, False),
        (
            "dice_softmax",
            "dice_loss",
            (f["seg_logits"], a["seg_labels"]),
            {"to_onehot_y": True, "softmax": True, "include_background": False, "squared_pred": True},
            False,
        ),
        (
            "tversky_sigmoid",
            "tversky_loss",
            (f["seg_logits"], f["seg_soft"]),
            {"sigmoid": True, "alpha": 0.3, "beta": 0.7, "batch": True, "soft_label": True},
            False,
        ),
        # beyond torch.nn: classification
        ("focal", "softmax_focal_loss", (f["logits"], a["labels"]), {"gamma": 0.5, "alpha": f["class_w"]}, False),
        ("focal_kdim", "softmax_focal_loss", (f["logits_k"], a["labels_k"]), {}, False),
        ("poly1", "poly1_cross_entropy", (f["logits"], a["labels"]), {"weight": f["class_w"]}, False),
        ("poly1_smooth", "poly1_cross_entropy", (f["logits"], a["labels"]), {"label_smoothing": 0.1}, False),
        ("poly1_probs", "poly1_cross_entropy", (f["logits"], probs), {"weight": f["class_w"]}, True),
        # registered element-wise losses
        ("log_cosh", "log_cosh_loss", (x, y), {}, True),
        ("pseudo_huber", "pseudo_huber_loss", (x, y), {"delta": 0.7}, True),
        ("msle", "msle_loss", (pos, q), {}, True),
        ("sigmoid_focal", "sigmoid_focal_loss", (x, p), {"alpha": 0.3, "gamma": 1.5}, True),
    ]


def _flatten(prefix: str, value: Any, out: Dict[str, np.ndarray]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for k in sorted(value):
            _flatten(f"{prefix}.{k}", value[k], out)
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    elif hasattr(value, "_fields"):  # named tuples
        _flatten(prefix, tuple(value), out)
    else:
        out[prefix] = np.asarray(value)


def run(inputs_path: str, out_path: str) -> None:
    import losskit
    import losskit.functional as F

    warnings.simplefilter("ignore", UserWarning)  # kl_div's 'mean' warns, as torch's does
    losskit.set_num_threads(4)
    a = dict(np.load(inputs_path))
    out: Dict[str, np.ndarray] = {
        "cpu_target": np.array(losskit.cpu_target()),
        "available_cpu_targets": np.array(losskit._core.available_cpu_targets()),
    }
    for dt in FUNCTIONAL_DTYPES:
        for label, name, args, kw, target_grad in cases(a, dt):
            key = f"{dt}.{label}"
            fn: Callable[..., Any] = getattr(F, name)
            _flatten(f"{key}.none", fn(*args, reduction="none", **kw), out)
            _flatten(f"{key}.mean", fn(*args, reduction="mean", **kw), out)
            backward = getattr(F, name + "_backward")
            grads = backward(
                np.asarray(0.75, dt), *args, reduction="sum", **kw, **({"target_grad": True} if target_grad else {})
            )
            _flatten(f"{key}.backward", grads, out)
            fused = getattr(F, name + "_forward_backward")
            _flatten(f"{key}.fused", fused(*args, reduction="mean", **kw), out)
    for dt in DTYPES:
        # the classes: keywords in the constructor, the fused pass through forward_backward
        f = {k: v.astype(dt) for k, v in a.items() if v.dtype.kind == "f"}
        crit = losskit.CrossEntropyLoss(weight=f["class_w"], label_smoothing=0.05, reduction="sum")
        _flatten(f"{dt}.class.CrossEntropyLoss", crit.forward_backward(f["logits"], a["labels"]), out)
        crit2 = losskit.HuberLoss(delta=0.3)
        _flatten(f"{dt}.class.HuberLoss", crit2.forward_backward(f["x"], f["y"]), out)
        crit3 = losskit.TripletMarginLoss(margin=0.5, swap=True)
        _flatten(f"{dt}.class.TripletMarginLoss", crit3.forward_backward(f["e1"], f["e2"], f["e3"]), out)
        crit4 = losskit.CTCLoss(zero_infinity=True)
        ctc_lp = f["ctc_log_probs"]
        _flatten(
            f"{dt}.class.CTCLoss",
            crit4.forward_backward(ctc_lp, a["ctc_targets"], a["ctc_input_lengths"], a["ctc_target_lengths"]),
            out,
        )
        lce = losskit.LinearCrossEntropyLoss(64, 500, bias=True, dtype=dt, chunk_size=128)
        lce.load_state_dict({"linear.weight": f["W"], "linear.bias": f["b"]})
        _flatten(f"{dt}.class.LinearCrossEntropyLoss", lce.forward_backward(f["h"], a["h_labels"]), out)
        asm = losskit.AdaptiveLogSoftmaxWithLoss(
            64, 1000, [100, 400], div_value=2.0, head_bias=True, dtype=dt, rng=np.random.default_rng(0)
        )
        # weights from integer arithmetic alone, so they do not depend on the CPU
        state = {
            k: ((np.arange(v.size) * 7919 % 1000 / 1000 - 0.5) * 0.3).astype(dt).reshape(v.shape)
            for k, v in asm.state_dict().items()
        }
        asm.load_state_dict(state)
        _flatten(f"{dt}.class.AdaptiveLogSoftmaxWithLoss", asm.forward_backward(f["asm_x"], a["asm_labels"]), out)
        _flatten(f"{dt}.class.AdaptiveLogSoftmaxWithLoss.log_prob", asm.log_prob(f["asm_x"][:50]), out)
    np.savez(out_path, **out)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make_inputs(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3])
