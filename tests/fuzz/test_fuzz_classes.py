"""Fuzz: every loss class of losskit. The classes store their constructor keywords and call the
functional forms, so each drawn class call (forward, backward with grad_output and target_grad,
forward_backward, backward before any forward) must give exactly what the functional form gives
for the same keywords, bitwise, or raise what it raises; a constructor given bad keywords raises a
clean error or defers it to the call. AdaptiveLogSoftmaxWithLoss is compared with torch 2.13's
module holding the same weights, over drawn sizes, cutoffs, div_value, head_bias and targets."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any, Dict, Tuple

import numpy as np
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from _fuzz import BAD_REDUCTIONS, REDUCTIONS, assert_clean_error, attempt, fuzz, rarely, thread_count
from _reference import assert_close
from _calls import BASE, manhattan
from test_large_vocab import _asm_pair

# class name -> functional name (LinearCrossEntropyLoss and AdaptiveLogSoftmaxWithLoss own
# parameters and have tests of their own below)
CLASSES: Dict[str, str] = {
    n: getattr(losskit, n)._function
    for n in (
        "L1Loss",
        "MSELoss",
        "HuberLoss",
        "SmoothL1Loss",
        "SoftMarginLoss",
        "BCELoss",
        "BCEWithLogitsLoss",
        "PoissonNLLLoss",
        "GaussianNLLLoss",
        "KLDivLoss",
        "MarginRankingLoss",
        "HingeEmbeddingLoss",
        "CrossEntropyLoss",
        "NLLLoss",
        "MultiMarginLoss",
        "MultiLabelMarginLoss",
        "MultiLabelSoftMarginLoss",
        "CosineEmbeddingLoss",
        "TripletMarginLoss",
        "TripletMarginWithDistanceLoss",
        "CTCLoss",
        # detection
        "GeneralizedBoxIoULoss",
        "DistanceBoxIoULoss",
        "CompleteBoxIoULoss",
    )
}
CLASSES["LinearCrossEntropyLoss"] = "linear_cross_entropy"
CLASSES["AdaptiveLogSoftmaxWithLoss"] = "-"
CLASSES["InfoNCELoss"] = "info_nce_loss"
# segmentation
CLASSES.update({n: getattr(losskit, n)._function for n in ("DiceLoss", "TverskyLoss")})
# beyond torch.nn: classification
CLASSES["SoftmaxFocalLoss"] = "softmax_focal_loss"
CLASSES["Poly1CrossEntropyLoss"] = "poly1_cross_entropy"
# registered element-wise losses
CLASSES.update(
    {n: getattr(losskit, n)._function for n in ("LogCoshLoss", "PseudoHuberLoss", "MSLELoss", "SigmoidFocalLoss")}
)

# Values for each constructor keyword: ordinary ones first, then ones that must fail cleanly.
VALUES: Dict[str, Tuple[Any, ...]] = {
    "reduction": REDUCTIONS + ("batchmean",) + BAD_REDUCTIONS,
    "size_average": (None, True, False, "x", np.ones(2)),
    "reduce": (None, True, False, 2.5),
    "margin": (0.0, 0.5, 1.0, -1.0, math.nan, "1", None),
    "delta": (1.0, 0.5, 0.0, -1.0, None),
    "beta": (1.0, 0.0, 0.3, -1.0, "x"),
    "eps": (1e-6, 1e-8, 0.0, 0.1, -1.0, None),
    "p": (1, 2, 2.0, 1.5, 3, 0, "2", math.inf),
    "swap": (False, True, np.ones(2)),
    "full": (False, True, "yes"),
    "log_input": (True, False, None),
    "log_target": (False, True, [1]),
    "zero_infinity": (False, True, 1j),
    "blank": (0, 3, 4, -1, 1.5, 2**70),
    "ignore_index": (-100, 1, 0, -1, 2**70, 1.5),
    "label_smoothing": (0.0, 0.1, 1.0, -0.1, 1.5, None),
    "distance_function": (None, "euclidean", "cosine", "squared_euclidean", manhattan, "manhattan", 3),
    "temperature": (0.07, 1.0, 0.0, -1.0, math.inf, "hot"),
    "symmetric": (True, False, "yes"),
    "normalize": (True, False, 0.5),
    "block_size": (None, 1, 2, 0, 1.5, "all"),
    # beyond torch.nn: classification
    "gamma": (2.0, 0.0, 0.5, -1.0, math.nan, "2"),
    "epsilon": (1.0, 0.0, -1.0, math.inf, "1"),
}


def _weight_values(name: str) -> Tuple[Any, ...]:
    kw = BASE[CLASSES[name]][1]
    return tuple(v for v in (kw.get("weight"), kw.get("pos_weight"), None, np.ones(7), "w") if v is not None) + (None,)


@st.composite
def class_calls(draw: Any) -> Tuple[str, Dict[str, Any]]:
    name = draw(st.sampled_from(sorted(n for n in CLASSES if CLASSES[n] in BASE and n != "LinearCrossEntropyLoss")))
    cls = getattr(losskit, name)
    kwargs: Dict[str, Any] = {}
    for p in list(inspect.signature(cls.__init__).parameters)[1:]:
        if not draw(st.booleans()):
            continue
        if p in ("weight", "pos_weight"):
            kwargs[p] = draw(st.sampled_from(_weight_values(name)))
        elif p in VALUES:
            pool = VALUES[p]
            kwargs[p] = draw(st.sampled_from(pool)) if rarely(draw, 4) else pool[0]
    return name, kwargs


def _same(a: Any, b: Any) -> bool:
    """Bitwise equality of results (NaN included), through tuples and None."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _agree(what: str, got: Tuple[bool, Any], expected: Tuple[bool, Any], fn: Any) -> None:
    ok, res = got
    eok, eres = expected
    if eok:
        assert ok, f"{what}: the class raised {type(res).__name__}: {res}; the functional form returns"
        assert _same(res, eres), f"{what}: the class's result differs from the functional form's"
    else:
        assert not ok, f"{what}: the class returned where the functional form raises {eres!r}"
        assert type(res) is type(eres), (
            f"{what}: {type(res).__name__} where the functional form raises {type(eres).__name__}"
        )
        assert_clean_error(res, fn, what)


@fuzz(scale=3)
@given(class_calls(), st.data())
def test_fuzz_loss_classes(call: Tuple[str, Dict[str, Any]], data: Any) -> None:
    name, kwargs = call
    thread_count(data.draw)
    cls = getattr(losskit, name)
    fname = CLASSES[name]
    inputs, _ = BASE[fname]
    ok, crit = attempt(cls, **kwargs)
    if not ok:  # a keyword refused at construction: a clean error naming it
        assert_clean_error(crit, cls.__init__, f"{name}({kwargs})")
        return
    note(f"{name}({kwargs})")
    before = attempt(crit.backward)
    assert not before[0] and isinstance(before[1], RuntimeError), f"{name}.backward() before forward: {before}"
    fkw = {k: v for k, v in kwargs.items()}
    fwd, bwd, fb = getattr(F, fname), getattr(F, fname + "_backward"), getattr(F, fname + "_forward_backward")
    _agree(f"{name} forward", attempt(crit, *inputs), attempt(fwd, *inputs, **fkw), fwd)
    go = data.draw(st.sampled_from([None, None, 0.5, np.float64(2.0)]))
    target_grad = data.draw(st.sampled_from([False, False, True]))
    if attempt(crit.forward, *inputs)[0]:
        _agree(
            f"{name} backward",
            attempt(crit.backward, go, target_grad),
            attempt(bwd, go, *inputs, target_grad=target_grad, **fkw),
            bwd,
        )
    _agree(
        f"{name} forward_backward",
        attempt(crit.forward_backward, *inputs, grad_output=go, target_grad=target_grad),
        attempt(fb, *inputs, grad_output=go, target_grad=target_grad, **fkw),
        fb,
    )
    assert isinstance(repr(crit), str) and name in repr(crit)


@fuzz()
@given(st.data())
def test_fuzz_linear_cross_entropy_loss_class(data: Any) -> None:
    thread_count(data.draw)
    H = data.draw(st.sampled_from([1, 3, 8]))
    V = data.draw(st.sampled_from([1, 2, 9]))
    kwargs: Dict[str, Any] = {
        "bias": data.draw(st.booleans()),
        "dtype": data.draw(st.sampled_from([None, np.float32, np.float64])),
    }
    for key, pool in (
        ("reduction", VALUES["reduction"]),
        ("ignore_index", (None,) + VALUES["ignore_index"]),
        ("label_smoothing", VALUES["label_smoothing"]),
        ("chunk_size", (None, 1, 2, 5, 0, -1, "x")),
        ("weight", (None, np.ones(V), np.ones(V + 1))),
    ):
        if data.draw(st.booleans()):
            kwargs[key] = data.draw(st.sampled_from(pool))
    ok, crit = attempt(losskit.LinearCrossEntropyLoss, H, V, rng=np.random.default_rng(0), **kwargs)
    if not ok:
        assert_clean_error(crit, losskit.LinearCrossEntropyLoss.__init__, f"LinearCrossEntropyLoss({kwargs})")
        return
    note(repr(crit))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    N = data.draw(st.sampled_from([0, 1, 4]))
    x = rng.standard_normal((N, H)).astype(crit.linear.weight.dtype)
    t = rng.integers(0, V, N)
    fkw = dict(
        linear_bias=crit.linear.bias,
        weight=crit.weight,
        reduction=crit.reduction,
        ignore_index=crit.ignore_index,
        label_smoothing=crit.label_smoothing,
        chunk_size=crit.chunk_size,
    )
    fn = F.linear_cross_entropy
    _agree("LinearCrossEntropyLoss forward", attempt(crit, x, t), attempt(fn, x, crit.linear.weight, t, **fkw), fn)
    _agree(
        "LinearCrossEntropyLoss forward_backward",
        attempt(crit.forward_backward, x, t),
        attempt(F.linear_cross_entropy_forward_backward, x, crit.linear.weight, t, **fkw),
        F.linear_cross_entropy_forward_backward,
    )


@st.composite
def asm_configs(draw: Any) -> Tuple[Any, ...]:
    in_features = draw(st.integers(1, 8))
    n_classes = draw(st.integers(2, 30))
    k = draw(st.integers(1, min(3, n_classes - 1)))
    cutoffs = sorted(draw(st.sets(st.integers(1, n_classes - 1), min_size=k, max_size=k)))
    if rarely(draw, 8):  # torch refuses these: so must losskit
        cutoffs = draw(st.sampled_from([[], [0], [n_classes], cutoffs[::-1] + cutoffs[:1], [1.5]]))
    div_value = draw(st.sampled_from([1.0, 2.0, 4.0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return in_features, n_classes, cutoffs, div_value, draw(st.booleans()), dtype


@fuzz()
@given(asm_configs(), st.data())
def test_fuzz_adaptive_log_softmax(config: Tuple[Any, ...], data: Any) -> None:
    in_features, n_classes, cutoffs, div_value, head_bias, dtype = config
    thread_count(data.draw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=div_value)
    except (ValueError, TypeError) as exc:
        ok, res = attempt(losskit.AdaptiveLogSoftmaxWithLoss, in_features, n_classes, cutoffs, div_value=div_value)
        assert not ok, f"AdaptiveLogSoftmaxWithLoss{(in_features, n_classes, cutoffs)}: torch raises {exc!r}"
        assert isinstance(res, (ValueError, TypeError)), res
        return
    tm, lk = _asm_pair(dtype, head_bias, in_features, n_classes, tuple(cutoffs), div_value)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    unbatched = rarely(data.draw, 4)
    N = data.draw(st.sampled_from([1, 2, 7]))
    x = rng.standard_normal(in_features if unbatched else (N, in_features)).astype(dtype)
    t = rng.integers(0, n_classes, () if unbatched else N)
    if rarely(data.draw, 6):
        t = np.asarray(t + n_classes)  # out of range: both raise
    xt = torch.from_numpy(x).requires_grad_(True)
    try:
        ref = tm(xt, torch.from_numpy(np.asarray(t)))
    except (RuntimeError, ValueError, IndexError) as exc:
        ok, res = attempt(lk, x, t)
        assert not ok, f"torch raises {exc!r}, losskit returned"
        assert isinstance(res, (ValueError, IndexError)), res
        return
    params = dict(tm.named_parameters())
    ref_grads = torch.autograd.grad(ref.loss, [xt] + list(params.values()), allow_unused=True)
    out, loss = lk(x, t)
    assert_close(out, ref.output.detach().numpy(), what="output")
    assert_close(loss, ref.loss.detach().numpy(), what="loss")
    gx, grads = lk.backward()
    assert_close(gx, ref_grads[0].numpy(), what="grad input")
    for (pname, _), r in zip(params.items(), ref_grads[1:]):
        assert_close(grads[pname], np.zeros_like(grads[pname]) if r is None else r.numpy(), what=f"grad {pname}")
