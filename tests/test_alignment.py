"""Misaligned arrays: C-contiguous data that does not start on a multiple of its element size
(``np.frombuffer(buf, dtype, offset=1)``, a field of a packed record, a memory map at an odd
offset).

* The C++ core refuses a misaligned pointer (undefined behaviour to read in C++) with ValueError
  naming the argument, before writing anything: tests/cpp_checks/alignment.cpp misaligns every
  array argument of every public entry point in turn.
* The Python layer accepts such arrays for every argument of every loss, copying each once
  (python/losskit/_convert.py): the results are bitwise those of the aligned arrays, for float32
  and float64, forward, backward and forward_backward, and the core only ever sees aligned arrays
  (a spy on losskit._core checks every array it receives). Aligned arrays still reach the core
  uncopied.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import losskit
import losskit.functional as F
from losskit import _core

FLOATS = (np.float32, np.float64)


def unaligned(a: Any) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts one byte past an aligned address."""
    a = np.ascontiguousarray(a)
    buf = np.zeros(a.nbytes + 16, np.uint8)  # NumPy allocates it aligned to 16 bytes at least
    offset = 1 if (buf.ctypes.data + 1) % a.dtype.alignment else 2
    out = np.frombuffer(buf, a.dtype, count=a.size, offset=offset).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def _arrays(value: Any) -> List[np.ndarray]:
    """The ndarrays in an argument (arrays inside tuples and lists too)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays(v)]
    return []


@pytest.fixture
def core_spy(monkeypatch):
    """Wraps every function of losskit._core: each array it receives must be aligned; returns the
    list of the arrays received."""
    seen: List[np.ndarray] = []

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def spy(*args: Any, **kwargs: Any) -> Any:
            for a in _arrays(list(args) + list(kwargs.values())):
                assert a.flags.aligned, f"_core.{name} received a misaligned {a.dtype} array {a.shape}"
                seen.append(a)
            return fn(*args, **kwargs)

        return spy

    for name in dir(_core):
        fn = getattr(_core, name)
        if type(fn).__name__ == "builtin_function_or_method":
            monkeypatch.setattr(_core, name, wrap(name, fn))
    return seen


def assert_bitwise(got: Any, want: Any, where: str = "result") -> None:
    """Same structure, and arrays of the same dtype, shape and bytes (NaN payloads included)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for k in want:
            assert_bitwise(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_bitwise(g, w, f"{where}[{i}]")
    elif want is None:
        assert got is None, where
    else:
        g, w = np.asarray(got), np.asarray(want)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), (where, g.dtype, g.shape, w.dtype, w.shape)
        assert g.tobytes() == w.tobytes(), (where, g, w)


# ---- the cases: every loss, with every array argument ----------------------------------------
# Each case is (name, family, make(rng, dtype) -> (positional arrays, keyword arrays, options,
# shape of the unreduced loss)). Everything runs with reduction='none' so that grad_output is an
# array too, and with target_grad where the loss has a target gradient.
N, C, D = 5, 4, 6


def _pointwise(name: str, **extra: Any):
    def make(rng: np.random.Generator, dt: Any):
        x = rng.standard_normal((3, C)).astype(dt)
        y = rng.standard_normal((3, C)).astype(dt)
        sign = np.where(rng.random((3, C)) < 0.5, -1.0, 1.0).astype(dt)
        w = rng.random((3, C)).astype(dt) + dt(0.5)
        pos, kw, opts = {"input": x, "target": y}, {}, {"target_grad": True}
        if name in ("l1_loss", "mse_loss", "huber_loss"):
            kw["weight"] = w
        if name in ("soft_margin_loss", "hinge_embedding_loss"):
            pos["target"], opts = sign, {}
        if name == "binary_cross_entropy":
            pos = {"input": rng.uniform(0.05, 0.95, (3, C)).astype(dt), "target": rng.random((3, C)).astype(dt)}
            kw["weight"] = w
        if name == "binary_cross_entropy_with_logits":
            kw = {"weight": w, "pos_weight": rng.random(C).astype(dt) + dt(0.5)}
        if name == "gaussian_nll_loss":
            pos["var"] = rng.random((3, C)).astype(dt) + dt(0.1)
        if name == "kl_div":
            pos = {
                "input": np.log(rng.dirichlet(np.ones(C), 3)).astype(dt),
                "target": rng.dirichlet(np.ones(C), 3).astype(dt),
            }
        if name == "margin_ranking_loss":
            pos, opts = {"input1": x, "input2": y, "target": sign}, {}
        return pos, kw, {**opts, **extra}, (3, C)

    return (name, "pointwise", make)


def _classification(name: str, probabilities: bool = False):
    def make(rng: np.random.Generator, dt: Any):
        x = rng.standard_normal((N, C)).astype(dt)
        t = rng.integers(0, C, N).astype(np.int64)
        w = (rng.random(C) + 0.5).astype(dt)
        if name == "cross_entropy":
            if probabilities:
                return (
                    {"input": x, "target": rng.dirichlet(np.ones(C), N).astype(dt)},
                    {"weight": w},
                    {"target_grad": True, "label_smoothing": 0.1},
                    (N,),
                )
            return {"input": x, "target": t}, {"weight": w}, {"label_smoothing": 0.1, "ignore_index": 1}, (N,)
        if name in ("nll_loss", "multi_margin_loss"):
            return {"input": x, "target": t}, {"weight": w}, {}, (N,)
        if name == "multilabel_margin_loss":
            tm = np.array([[3, 0, -1, 2], [1, -1, 0, 0], [0, 1, 2, 3], [-1, 0, 0, 0], [2, 2, -1, 1]], np.int64)
            return {"input": x, "target": tm}, {}, {}, (N,)
        # multilabel_soft_margin_loss
        y = (rng.random((N, C)) < 0.5).astype(dt)
        return {"input": x, "target": y}, {"weight": w}, {"target_grad": True}, (N,)

    return (name + ("[probabilities]" if probabilities else ""), "classification", make)


def _embedding(name: str, **extra: Any):
    def make(rng: np.random.Generator, dt: Any):
        a, b, c = (rng.standard_normal((N, D)).astype(dt) for _ in range(3))
        if name == "cosine_embedding_loss":
            y = np.where(rng.random(N) < 0.5, -1.0, 1.0).astype(dt)
            return {"input1": a, "input2": b, "target": y}, {}, {"margin": 0.1}, (N,)
        if name == "triplet_margin_with_distance_loss":  # keyword-only options
            return {"anchor": a, "positive": b, "negative": c}, {}, {"swap": True, **extra}, (N,)
        return {"anchor": a, "positive": b, "negative": c}, {}, {"swap": True, "p": 1.5}, (N,)

    return (name + (f"[{extra['distance_function']}]" if extra else ""), "embedding", make)


def _detection(name: str):
    def make(rng: np.random.Generator, dt: Any):
        xy = rng.uniform(0, 4, (N, 2))
        b1 = np.concatenate([xy, xy + rng.uniform(0.5, 3, (N, 2))], 1).astype(dt)
        b2 = np.concatenate([xy + 0.5, xy + rng.uniform(1, 3, (N, 2))], 1).astype(dt)
        return {"boxes1": b1, "boxes2": b2}, {}, {"eps": 1e-7}, (N,)

    return (name, "detection", make)


def _ctc(padded: bool):
    def make(rng: np.random.Generator, dt: Any):
        T, B, K = 7, 3, 5
        z = rng.standard_normal((T, B, K))
        lp = (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(dt)
        tl = np.array([3, 1, 2], np.int64)
        il = np.array([7, 5, 6], np.int64)
        tg = (
            rng.integers(1, K, (B, 3)).astype(np.int64)
            if padded
            else rng.integers(1, K, int(tl.sum())).astype(np.int64)
        )
        return {"log_probs": lp, "targets": tg, "input_lengths": il, "target_lengths": tl}, {}, {}, (B,)

    return ("ctc_loss" + ("[padded]" if padded else "[concatenated]"), "ctc", make)


def _linear_cross_entropy():
    def make(rng: np.random.Generator, dt: Any):
        V = 7
        pos = {
            "input": rng.standard_normal((N, D)).astype(dt),
            "linear_weight": rng.standard_normal((V, D)).astype(dt),
            "target": rng.integers(0, V, N).astype(np.int64),
        }
        kw = {"linear_bias": rng.standard_normal(V).astype(dt), "weight": (rng.random(V) + 0.5).astype(dt)}
        return pos, kw, {"chunk_size": 2, "label_smoothing": 0.1}, (N,)

    return ("linear_cross_entropy", "large_vocab", make)


def _segmentation(name: str, labels: bool):
    def make(rng: np.random.Generator, dt: Any):
        x = rng.standard_normal((N, C, 3, 2)).astype(dt)
        if labels:
            y: Any = rng.integers(0, C, (N, 3, 2)).astype(np.int64)
            opts: Dict[str, Any] = {"to_onehot_y": True, "softmax": True}
        else:
            y, opts = rng.random((N, C, 3, 2)).astype(dt), {"sigmoid": True}
        kw = {"weight": (rng.random(C) + 0.5).astype(dt)} if name == "dice_loss" else {}
        return {"input": x, "target": y}, kw, opts, (N, C)

    return (name + ("[labels]" if labels else "[dense]"), "segmentation", make)


CASES = [
    *(
        _pointwise(n)
        for n in (
            "l1_loss",
            "mse_loss",
            "smooth_l1_loss",
            "soft_margin_loss",
            "binary_cross_entropy",
            "binary_cross_entropy_with_logits",
            "poisson_nll_loss",
            "gaussian_nll_loss",
            "kl_div",
            "margin_ranking_loss",
            "hinge_embedding_loss",
        )
    ),
    _pointwise("huber_loss", delta=0.5),
    *(
        _classification(n)
        for n in (
            "cross_entropy",
            "nll_loss",
            "multi_margin_loss",
            "multilabel_margin_loss",
            "multilabel_soft_margin_loss",
        )
    ),
    _classification("cross_entropy", probabilities=True),
    _embedding("cosine_embedding_loss"),
    _embedding("triplet_margin_loss"),
    _embedding("triplet_margin_with_distance_loss", distance_function="cosine"),
    _ctc(padded=True),
    _ctc(padded=False),
    _linear_cross_entropy(),
    # segmentation
    _segmentation("dice_loss", labels=True),
    _segmentation("tversky_loss", labels=False),
    *(_detection(n) for n in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss")),
]


def _call(name: str, mode: str, pos: Dict[str, Any], kw: Dict[str, Any], opts: Dict[str, Any], go: Any) -> Any:
    fn = name.split("[")[0]
    options = {**kw, **opts, "reduction": "none"}
    if mode == "forward":
        options.pop("target_grad", None)
        return getattr(F, fn)(*pos.values(), **options)
    if mode == "backward":
        return getattr(F, fn + "_backward")(go, *pos.values(), **options)
    return getattr(F, fn + "_forward_backward")(*pos.values(), grad_output=go, **options)


@pytest.mark.parametrize("mode", ["forward", "backward", "forward_backward"])
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[0]}")
def test_misaligned_arguments_give_the_aligned_answer(case, dtype, mode, core_spy):
    """Each array argument made misaligned in turn (float inputs and weights, int64 targets and
    lengths, grad_output), then all at once: bitwise the aligned call's result."""
    name, _, make = case
    pos, kw, opts, loss_shape = make(np.random.default_rng(7), dtype)
    go = np.random.default_rng(8).standard_normal(loss_shape).astype(dtype)
    want = _call(name, mode, pos, kw, opts, go)
    names = list(pos) + list(kw) + ([] if mode == "forward" else ["grad_output"])
    for moved in names + ["all"]:

        def arg(key: str, value: Any) -> Any:
            return unaligned(value) if moved in (key, "all") else value

        got = _call(
            name,
            mode,
            {k: arg(k, v) for k, v in pos.items()},
            {k: arg(k, v) for k, v in kw.items()},
            opts,
            arg("grad_output", go),
        )
        assert_bitwise(got, want, f"{name} {mode} with {moved} misaligned")
    assert core_spy, "the spy saw no call into the core"


FAMILIES = {"pointwise", "classification", "embedding", "ctc", "large_vocab", "segmentation", "detection"}


def test_every_family_is_covered():
    assert {family for _, family, _ in CASES} == FAMILIES


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_misaligned_custom_distances(dtype, core_spy):
    """A distance_function whose distances and vjp gradients come back misaligned."""
    rng = np.random.default_rng(3)
    a, p, n = (rng.standard_normal((N, D)).astype(dtype) for _ in range(3))

    def distance(misalign: bool) -> Callable[..., Any]:
        def fn(x1: np.ndarray, x2: np.ndarray) -> Any:
            d = x1 - x2
            dist = np.sum(d * d, axis=-1)
            vjp = lambda g: (
                unaligned(2 * g[:, None] * d) if misalign else 2 * g[:, None] * d,  # noqa: E731
                unaligned(-2 * g[:, None] * d) if misalign else -2 * g[:, None] * d,
            )
            return (unaligned(dist) if misalign else dist), vjp

        return fn

    for mode in ("forward", "backward", "forward_backward"):
        go = rng.standard_normal(N).astype(dtype)
        call = lambda f, x: _call(
            "triplet_margin_with_distance_loss",
            mode,
            x,
            {},  # noqa: E731
            {"distance_function": f, "swap": True},
            go,
        )
        want = call(distance(False), {"anchor": a, "positive": p, "negative": n})
        got = call(distance(True), {"anchor": unaligned(a), "positive": p, "negative": unaligned(n)})
        assert_bitwise(got, want, mode)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_linear_cross_entropy_loss_class_with_misaligned_parameters(dtype, core_spy):
    """LinearCrossEntropyLoss: misaligned input, target and parameters (linear.weight,
    linear.bias, weight), for forward, backward and forward_backward."""
    rng = np.random.default_rng(5)
    V = 9
    x = rng.standard_normal((N, D)).astype(dtype)
    t = rng.integers(0, V, N).astype(np.int64)
    go = rng.standard_normal(N).astype(dtype)

    def run(misalign: bool) -> Any:
        m = unaligned if misalign else (lambda v: v)
        crit = losskit.LinearCrossEntropyLoss(
            D,
            V,
            bias=True,
            weight=m((np.arange(V) % 3 + 1).astype(dtype)),
            reduction="none",
            dtype=dtype,
            chunk_size=2,
            rng=np.random.default_rng(1),
        )
        crit.linear.weight = m(crit.linear.weight)
        crit.linear.bias = m(crit.linear.bias)
        loss = crit(m(x), m(t))
        grads = crit.backward(m(go))
        return loss, grads, crit.forward_backward(m(x), m(t), grad_output=m(go))

    assert_bitwise(run(True), run(False))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_adaptive_log_softmax_with_misaligned_arrays(dtype, core_spy):
    """AdaptiveLogSoftmaxWithLoss: misaligned input, target and parameters."""
    rng = np.random.default_rng(6)
    n_classes, cutoffs = 20, [5, 12]
    x = rng.standard_normal((8, 16)).astype(dtype)
    t = rng.integers(0, n_classes, 8).astype(np.int64)

    def run(misalign: bool) -> Any:
        m = unaligned if misalign else (lambda v: v)
        asm = losskit.AdaptiveLogSoftmaxWithLoss(
            16, n_classes, cutoffs, head_bias=True, dtype=dtype, rng=np.random.default_rng(2)
        )
        asm.head.weight, asm.head.bias = m(asm.head.weight), m(asm.head.bias)
        for a, b in asm.tail:
            a.weight, b.weight = m(a.weight), m(b.weight)
        out = asm(m(x), m(t))
        grads = asm.backward(0.5)
        return tuple(out), grads, asm.forward_backward(m(x), m(t)), asm.log_prob(m(x)), asm.predict(m(x))

    assert_bitwise(run(True), run(False))


def test_aligned_arrays_reach_the_core_uncopied(core_spy):
    """The copy is for misaligned arrays only: aligned float inputs, weights and int64 targets
    arrive in the core as the very same arrays."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C))
    t = rng.integers(0, C, N).astype(np.int64)
    w = rng.random(C)
    F.cross_entropy_forward_backward(x, t, weight=w)
    lp = np.log(np.full((6, 2, 3), 1 / 3))
    tg, il, tl = np.array([[1, 2], [2, 1]], np.int64), np.array([6, 5], np.int64), np.array([2, 1], np.int64)
    F.ctc_loss(lp, tg, il, tl)
    received = {id(a) for a in core_spy}
    for a in (x, t, w, lp, tg, il, tl):
        assert id(a) in received


def test_the_core_refuses_a_misaligned_array_from_python():
    """Bypassing the conversion layer, the extension module still refuses misaligned data (no
    undefined behaviour): ValueError naming the argument."""
    x = np.ones(8)
    with pytest.raises(ValueError, match=r"mse_loss: input expected an array aligned to 8 bytes, got address"):
        _core.mse_loss((unaligned(x), x, None), "mean")
    t = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match=r"nll_loss: target expected an array aligned to 8 bytes"):
        _core.nll_loss(0, np.ones((2, 3)), unaligned(t), None, None, "mean", -100)


def test_cpp_core_refuses_misaligned_pointers(tmp_path):
    """Builds and runs tests/cpp_checks/alignment.cpp: every array argument of every public entry
    point of every family, misaligned in turn, raises losskit::ValueError naming it before anything
    is written; so does every written array (output, gradient, workspace) placed in the memory of
    each other array of the call."""
    from _cpp import run_check

    run = run_check("alignment", tmp_path)
    assert run.returncode == 0, (run.stdout[-4000:], run.stderr[-2000:])
    for family in sorted(FAMILIES | {"contrastive"}):  # contrastive: info_nce_loss_forward_backward
        assert f"{family}: " in run.stdout, run.stdout
    assert " 0 misaligned arguments refused" not in run.stdout, run.stdout
    assert " 0 overlapping pairs refused" not in run.stdout, run.stdout
