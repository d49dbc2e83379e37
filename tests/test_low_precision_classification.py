"""bfloat16 and float16 through the classification family: nll_loss, K-dimensional and
probability-target cross_entropy, cross_entropy with z_loss / softcap / return_stats, the three
margin losses, softmax_focal_loss and poly1_cross_entropy read 16-bit inputs in place (staged
blocks through the float kernels, cpp/src/common/staging.hpp) and return values, gradients and
statistics in the input's dtype.

References, as in test_low_precision.py: losskit's own float32 path on the upcast inputs (the same
float kernels, so element-wise results are those rounded once to 16 bits, and reduced ones within
one 16-bit ulp), torch computing in float32 on the upcast inputs (within one 16-bit ulp plus the
float32 gap between the two float32 answers), and torch's own 16-bit results where torch 2.13 CPU
computes them.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit
import losskit.functional as F
from losskit import _convert

from test_focal_poly import torch_focal, torch_poly1
from test_low_precision import BF16, F16, HALVES, TORCH_DTYPE, TORCH_HALF_ROUNDINGS, assert_within_one_ulp

ml_dtypes = pytest.importorskip("ml_dtypes")


# A case: (losskit name, make(rng) -> (float args as float64 arrays, int args, kwargs), torch
# function on tensors, whether the float target (args[1]) is differentiated too).
Case = Tuple[str, Callable[[Any], Tuple[List[Any], Dict[str, Any]]], Callable, bool]


def _logits(rng, shape, scale=3.0):
    return rng.standard_normal(shape) * scale


def _probs(rng, shape):
    p = rng.random(shape)
    return p / p.sum(axis=1, keepdims=True)


def _ce_index(shape, **kw):
    def make(rng):
        C = shape[1] if len(shape) > 1 else shape[0]
        t_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        t = rng.integers(0, C, t_shape)
        if "ignore_index" in kw and t.size:
            t.flat[::3] = kw["ignore_index"]
        args = [_logits(rng, shape), t]
        k = dict(kw)
        if k.pop("weight", False):
            k["weight"] = rng.uniform(0.5, 2.0, C)
        return args, k

    return make


def _ce_prob(shape, **kw):
    def make(rng):
        C = shape[1] if len(shape) > 1 else shape[0]
        k = dict(kw)
        if k.pop("weight", False):
            k["weight"] = rng.uniform(0.5, 2.0, C)
        y = _probs(rng, shape) if len(shape) > 1 else _probs(rng, (1,) + shape)[0]
        return [_logits(rng, shape), y], k

    return make


def _nll(shape, **kw):
    inner = _ce_index(shape, **kw)

    def make(rng):
        args, k = inner(rng)
        x = torch.tensor(args[0]).log_softmax(1 if len(shape) > 1 else 0).numpy()
        return [x, args[1]], k

    return make


def _multi_margin(shape, **kw):
    def make(rng):
        C = shape[-1]
        k = dict(kw)
        if k.pop("weight", False):
            k["weight"] = rng.uniform(0.5, 2.0, C)
        return [rng.standard_normal(shape), rng.integers(0, C, shape[:-1])], k

    return make


def _multilabel_margin(shape):
    def make(rng):
        C = shape[-1]
        t = np.full(shape, -1)
        for row in t.reshape(-1, C):
            k = rng.integers(0, C + 1)
            row[:k] = rng.permutation(C)[:k]
        return [rng.standard_normal(shape), t], {}

    return make


def _multilabel_soft(shape, weight=None):
    def make(rng):
        C = shape[-1]
        k = {}
        if weight == "class":
            k["weight"] = rng.uniform(0.5, 2.0, C)
        elif weight == "full":
            k["weight"] = rng.uniform(0.5, 2.0, shape)
        return [rng.standard_normal(shape) * 2, (rng.random(shape) < 0.4).astype(float)], k

    return make


def _alpha(make):
    """make's cross_entropy weights as softmax_focal_loss's per-class alpha."""

    def with_alpha(rng):
        args, k = make(rng)
        if "weight" in k:
            k["alpha"] = k.pop("weight")
        return args, k

    return with_alpha


def _torch_focal(x, t, reduction, gamma=2.0, alpha=None, ignore_index=-100):
    return torch_focal(x, t, gamma, alpha, ignore_index, reduction)


def _torch_poly1(x, t, reduction, epsilon=1.0, weight=None, ignore_index=-100, label_smoothing=0.0):
    return torch_poly1(x, t, epsilon, weight, ignore_index, reduction, label_smoothing)


CASES: Dict[str, Case] = {
    "ce_kdim": ("cross_entropy", _ce_index((3, 7, 5, 40)), TF.cross_entropy, False),
    "ce_kdim_weight_ignore_smooth": (
        "cross_entropy",
        _ce_index((2, 11, 130), weight=True, ignore_index=4, label_smoothing=0.1),
        TF.cross_entropy,
        False,
    ),
    "ce_kdim_empty": ("cross_entropy", _ce_index((0, 5, 3)), TF.cross_entropy, False),
    # The 16-bit rows kernel (several chunks of 2048 classes per row), plain and with smoothing.
    "ce_rows": ("cross_entropy", _ce_index((30, 5000)), TF.cross_entropy, False),
    "ce_rows_weight_ignore_smooth": (
        "cross_entropy",
        _ce_index((40, 3000), weight=True, ignore_index=4, label_smoothing=0.1),
        TF.cross_entropy,
        False,
    ),
    "ce_prob": ("cross_entropy", _ce_prob((40, 33)), TF.cross_entropy, True),
    "ce_prob_weight_smooth": (
        "cross_entropy",
        _ce_prob((9, 1500), weight=True, label_smoothing=0.2),
        TF.cross_entropy,
        True,
    ),
    "ce_prob_unbatched": ("cross_entropy", _ce_prob((17,)), TF.cross_entropy, True),
    "ce_prob_kdim": ("cross_entropy", _ce_prob((2, 6, 4, 70), weight=True), TF.cross_entropy, True),
    "nll": ("nll_loss", _nll((50, 13)), TF.nll_loss, False),
    "nll_unbatched": ("nll_loss", _nll((13,)), TF.nll_loss, False),
    "nll_weight_ignore": ("nll_loss", _nll((300, 70), weight=True, ignore_index=2), TF.nll_loss, False),
    "nll_kdim": ("nll_loss", _nll((3, 6, 300), weight=True, ignore_index=1), TF.nll_loss, False),
    "nll_empty": ("nll_loss", _nll((0, 4)), TF.nll_loss, False),
    "multi_margin_p1": ("multi_margin_loss", _multi_margin((60, 9)), TF.multi_margin_loss, False),
    "multi_margin_p2_weight": (
        "multi_margin_loss",
        _multi_margin((2000, 12), p=2, margin=0.7, weight=True),
        TF.multi_margin_loss,
        False,
    ),
    "multi_margin_unbatched": ("multi_margin_loss", _multi_margin((9,)), TF.multi_margin_loss, False),
    "multilabel_margin": ("multilabel_margin_loss", _multilabel_margin((70, 10)), TF.multilabel_margin_loss, False),
    "multilabel_soft": ("multilabel_soft_margin_loss", _multilabel_soft((80, 7)), TF.multilabel_soft_margin_loss, True),
    "multilabel_soft_class_weight": (
        "multilabel_soft_margin_loss",
        _multilabel_soft((1200, 31), "class"),
        TF.multilabel_soft_margin_loss,
        True,
    ),
    "multilabel_soft_full_weight": (
        "multilabel_soft_margin_loss",
        _multilabel_soft((30, 5), "full"),
        TF.multilabel_soft_margin_loss,
        True,
    ),
    # Beyond torch.nn, on cross_entropy's kernels: the 16-bit rows kernel (class indices, no
    # smoothing), staged tiles (K-dimensional) and the staged poly1 kernel (smoothing, probabilities).
    "focal": ("softmax_focal_loss", _ce_index((60, 9)), _torch_focal, False),
    "focal_alpha_ignore_gamma": (
        "softmax_focal_loss",
        _alpha(_ce_index((300, 70), weight=True, ignore_index=2, gamma=0.5)),
        _torch_focal,
        False,
    ),
    "focal_kdim": ("softmax_focal_loss", _alpha(_ce_index((3, 7, 5, 40), weight=True)), _torch_focal, False),
    "focal_unbatched": ("softmax_focal_loss", _ce_index((13,)), _torch_focal, False),
    "focal_empty": ("softmax_focal_loss", _ce_index((0, 5)), _torch_focal, False),
    "poly1": ("poly1_cross_entropy", _ce_index((50, 13), epsilon=2.0), _torch_poly1, False),
    "poly1_kdim_weight_ignore": (
        "poly1_cross_entropy",
        _ce_index((2, 11, 130), weight=True, ignore_index=4),
        _torch_poly1,
        False,
    ),
    "poly1_smooth": ("poly1_cross_entropy", _ce_index((40, 1500), label_smoothing=0.1), _torch_poly1, False),
    "poly1_kdim_smooth": (
        "poly1_cross_entropy",
        _ce_index((2, 6, 4, 70), weight=True, label_smoothing=0.2, epsilon=-0.5),
        _torch_poly1,
        False,
    ),
    "poly1_prob": ("poly1_cross_entropy", _ce_prob((40, 33), weight=True), _torch_poly1, True),
    "poly1_prob_kdim": ("poly1_cross_entropy", _ce_prob((2, 6, 4, 70)), _torch_poly1, True),
}


def _cast(v: Any, dtype) -> Any:
    if isinstance(v, np.ndarray) and (v.dtype.kind == "f" or _convert.is_half(v.dtype)):
        return v.astype(dtype)
    return v


def _losskit(
    name: str, args: List[Any], kw: Dict[str, Any], reduction: str, go: np.ndarray, target_grad: bool
) -> Tuple[Any, List[np.ndarray]]:
    value = getattr(F, name)(*args, reduction=reduction, **kw)
    fused, fused_grad = getattr(F, name + "_forward_backward")(*args, reduction=reduction, grad_output=go, **kw)
    extra = {"target_grad": True} if target_grad else {}
    grads = getattr(F, name + "_backward")(go, *args, reduction=reduction, **kw, **extra)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    assert np.asarray(fused).tobytes() == np.asarray(value).tobytes(), name
    np.testing.assert_array_equal(fused_grad, grads[0])
    return value, grads


def _torch(
    fn: Callable, args: List[Any], kw: Dict[str, Any], reduction: str, go: np.ndarray, target_grad: bool, tdtype
) -> Tuple[np.ndarray, List[np.ndarray]]:
    ts = [torch.tensor(a).to(tdtype) if a.dtype == np.float32 else torch.tensor(a) for a in args]
    diff = [ts[0]] + ([ts[1]] if target_grad else [])
    for t in diff:
        t.requires_grad_(True)
    tkw = {k: (torch.tensor(v).to(tdtype) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    out = fn(*ts, reduction=reduction, **tkw)
    grads = torch.autograd.grad(out, diff, torch.tensor(go).to(tdtype))
    return out.detach().float().numpy(), [g.float().numpy() for g in grads]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_float32_rounded(case, kind, reduction):
    name, make, fn, target_grad = CASES[case]
    dtype = HALVES[kind]
    rng = np.random.default_rng(31)
    args64, kw64 = make(rng)
    args = [_cast(a, dtype) for a in args64]
    kw = {k: _cast(v, dtype) for k, v in kw64.items()}
    up = [_cast(a, np.float32) for a in args]
    kw32 = {k: _cast(v, np.float32) for k, v in kw.items()}
    go_shape = np.shape(getattr(F, name)(*up, reduction="none", **kw32)) if reduction == "none" else ()
    go = np.asarray(rng.standard_normal(go_shape)).astype(dtype)
    what = f"{case} {kind} {reduction}"

    value, grads = _losskit(name, args, kw, reduction, go, target_grad)
    assert np.asarray(value).dtype == dtype, what
    for g, a in zip(grads, args):
        assert g.dtype == dtype and g.shape == a.shape, what

    # losskit's float32 kernels on the upcast inputs, rounded once.
    value32, grads32 = _losskit(name, up, kw32, reduction, go.astype(np.float32), target_grad)
    if reduction == "none":
        np.testing.assert_array_equal(value, np.asarray(value32).astype(dtype), err_msg=what)
    else:
        assert_within_one_ulp(value, value32, dtype, what + " value (losskit float32)")
    for g, g32 in zip(grads, grads32):
        np.testing.assert_array_equal(g, g32.astype(dtype), err_msg=what + " grad")

    # torch in float32 on the upcast inputs.
    ref, ref_grads = _torch(fn, up, kw32, reduction, go.astype(np.float32), target_grad, torch.float32)
    gap = lambda a, b: np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    assert_within_one_ulp(value, ref, dtype, what + " value", gap(value32, ref))
    for j, (g, rg) in enumerate(zip(grads, ref_grads)):
        assert_within_one_ulp(g, rg, dtype, f"{what} grad {j}", gap(grads32[j], rg))


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", [c for c in CASES if not c.endswith("empty")])
def test_close_to_torch_own_half_results(case, kind):
    """torch's own 16-bit loss, element by element ('none'), within TORCH_HALF_ROUNDINGS roundings
    of magnitude max(1, |inputs|, |loss|) (see test_low_precision.py), where torch 2.13 CPU
    implements the op for the dtype."""
    name, make, fn, target_grad = CASES[case]
    dtype = HALVES[kind]
    args64, kw64 = make(np.random.default_rng(37))
    args = [_cast(a, dtype) for a in args64]
    kw = {k: _cast(v, dtype) for k, v in kw64.items()}
    value = np.asarray(getattr(F, name)(*args, reduction="none", **kw)).astype(np.float64)
    up = [_cast(a, np.float32) for a in args]
    try:
        ref, _ = _torch(
            fn,
            up,
            {k: _cast(v, np.float32) for k, v in kw.items()},
            "none",
            np.ones(value.shape, np.float32),
            target_grad,
            TORCH_DTYPE[kind],
        )
    except RuntimeError as exc:  # an op torch 2.13 CPU does not implement for this dtype
        pytest.skip(f"torch: {exc}")
    eps = float(ml_dtypes.finfo(dtype).eps)
    # The loss of a position reads a whole row (softmax, margins): its magnitude bound is the row's.
    mag = max(1.0, float(np.abs(up[0]).max(initial=0.0)), float(np.abs(value).max(initial=0.0)))
    err = np.abs(value - ref) / (eps * mag)
    assert err.max(initial=0.0) <= TORCH_HALF_ROUNDINGS, (case, kind, float(err.max()))


# ---- cross_entropy extras -------------------------------------------------------------------------
EXTRAS = [
    {"z_loss": 1e-2},
    {"softcap": 2.5},
    {"return_stats": True},
    {"z_loss": 3e-3, "softcap": 4.0, "return_stats": True, "label_smoothing": 0.1},
]


def _torch_extras(
    x32: np.ndarray,
    t: np.ndarray,
    w32,
    reduction: str,
    go32: np.ndarray,
    z_loss=0.0,
    softcap=None,
    label_smoothing=0.0,
    ignore_index=-100,
):
    tx = torch.tensor(x32, requires_grad=True)
    xs = softcap * torch.tanh(tx / softcap) if softcap else tx
    tt = torch.tensor(t)
    tw = None if w32 is None else torch.tensor(w32)
    loss = TF.cross_entropy(
        xs, tt, weight=tw, reduction="none", label_smoothing=label_smoothing, ignore_index=ignore_index
    )
    lse = torch.logsumexp(xs, dim=-1)
    counted = (tt != ignore_index).to(xs.dtype)
    loss = loss + z_loss * lse**2 * counted
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        wt = (tw[tt.clamp(min=0)] if tw is not None else torch.ones_like(counted)) * counted
        loss = loss.sum() / wt.sum()
    (g,) = torch.autograd.grad(loss, [tx], torch.tensor(go32))
    p = xs.softmax(-1)
    entropy = -(p * xs.log_softmax(-1)).sum(-1)
    correct = (tx.argmax(-1) == tt) & (tt != ignore_index)
    return loss.detach().numpy(), g.numpy(), lse.detach().numpy(), entropy.detach().numpy(), correct.numpy()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("extras", EXTRAS, ids=[",".join(e) for e in EXTRAS])
@pytest.mark.parametrize("shape", [(0, 9), (11,), (64, 257), (3, 40000)])
def test_cross_entropy_extras_in_input_dtype(shape, extras, kind, reduction):
    dtype = HALVES[kind]
    rng = np.random.default_rng(41)
    C = shape[-1]
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.integers(0, C, shape[:-1])
    if t.ndim and t.size:
        t[::5] = -100
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    go = np.asarray(rng.standard_normal(shape[:-1] if reduction == "none" else ())).astype(dtype)
    kw = dict(extras, weight=w, reduction=reduction)
    stats_on = kw.get("return_stats", False)
    what = f"{shape} {extras} {kind} {reduction}"

    res = F.cross_entropy_forward_backward(x, t, grad_output=go, **kw)
    value, g = res[0], res[1]
    ref32 = F.cross_entropy_forward_backward(
        x.astype(np.float32), t, grad_output=go.astype(np.float32), **dict(kw, weight=w.astype(np.float32))
    )
    assert np.asarray(value).dtype == dtype and g.dtype == dtype and g.shape == x.shape, what
    np.testing.assert_array_equal(g, ref32[1].astype(dtype), err_msg=what)
    if reduction == "none":
        np.testing.assert_array_equal(value, np.asarray(ref32[0]).astype(dtype), err_msg=what)
    else:
        assert_within_one_ulp(value, ref32[0], dtype, what)
    if stats_on:
        stats, stats32 = res[2], ref32[2]
        for key in ("lse", "entropy"):
            assert stats[key].dtype == dtype and stats[key].shape == shape[:-1], what
            np.testing.assert_array_equal(stats[key], stats32[key].astype(dtype), err_msg=what + key)
        assert stats["correct"].dtype == np.bool_
        np.testing.assert_array_equal(stats["correct"], stats32["correct"])
        only = F.cross_entropy(x, t, **kw)
        np.testing.assert_array_equal(only[1]["lse"], stats["lse"])

    torch_kw = {k: v for k, v in extras.items() if k != "return_stats"}
    rv, rg, rlse, rent, rcor = _torch_extras(
        x.astype(np.float32), t, w.astype(np.float32), reduction, go.astype(np.float32), **torch_kw
    )
    gap = lambda a, b: np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    assert_within_one_ulp(value, rv, dtype, what + " torch value", gap(ref32[0], rv))
    assert_within_one_ulp(g, rg, dtype, what + " torch grad", gap(ref32[1], rg))
    if stats_on:
        assert_within_one_ulp(res[2]["lse"], rlse, dtype, what + " lse", gap(ref32[2]["lse"], rlse))
        assert_within_one_ulp(res[2]["entropy"], rent, dtype, what + " entropy", gap(ref32[2]["entropy"], rent))
        np.testing.assert_array_equal(res[2]["correct"], rcor)


# ---- normalizer, threads, no copies -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_mean_normalizer_of_half_inputs(dtype):
    rng = np.random.default_rng(43)
    x = rng.standard_normal((20, 6, 3)).astype(dtype)
    t = rng.integers(0, 6, (20, 3))
    t[0] = -100
    w = rng.uniform(0.5, 2.0, 6).astype(dtype)
    for name in ("cross_entropy", "nll_loss"):
        ours = F.mean_normalizer(name, x, t, weight=w)
        assert ours == F.mean_normalizer(name, x.astype(np.float32), t, weight=w.astype(np.float32))
    # With a normalizer, two halves of a batch sum to the full batch's mean (gradients too).
    D = F.mean_normalizer("cross_entropy", x, t, weight=w, z_loss=1e-2)
    full, gfull = F.cross_entropy_forward_backward(x.astype(np.float32), t, weight=w.astype(np.float32), z_loss=1e-2)
    parts = [
        F.cross_entropy_forward_backward(x[s], t[s], weight=w, z_loss=1e-2, normalizer=D)
        for s in (slice(0, 7), slice(7, 20))
    ]
    assert all(np.asarray(p[0]).dtype == dtype for p in parts)
    assert_within_one_ulp(np.asarray(sum(float(p[0]) for p in parts)).astype(dtype), full, dtype, "parts")
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), gfull.astype(dtype))


def test_staged_paths_give_the_same_bits_on_any_thread_count():
    rng = np.random.default_rng(47)
    x = rng.standard_normal((4, 50, 900)).astype(BF16)
    t = rng.integers(0, 50, (4, 900))
    y = rng.standard_normal((300, 2000)).astype(F16)
    yt = rng.integers(0, 2000, 300)
    n = losskit.get_num_threads()
    seen = set()
    try:
        for threads in (1, 2, 8):
            losskit.set_num_threads(threads)
            a = F.cross_entropy_forward_backward(x, t, label_smoothing=0.1)
            b = F.nll_loss_forward_backward(x, t)
            c = F.cross_entropy_forward_backward(y, yt, z_loss=1e-3, softcap=5.0)
            d = F.multi_margin_loss_forward_backward(y, yt)
            e = F.softmax_focal_loss_forward_backward(x, t)
            f = F.poly1_cross_entropy_forward_backward(y, yt, label_smoothing=0.1)
            seen.add(b"".join(np.asarray(v).tobytes() for r in (a, b, c, d, e, f) for v in r))
    finally:
        losskit.set_num_threads(n)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t, y: F.cross_entropy(x, t),
        lambda x, t, y: F.cross_entropy_forward_backward(x, t),
        lambda x, t, y: F.nll_loss_forward_backward(x, t),
        lambda x, t, y: F.cross_entropy(x, y),
        lambda x, t, y: F.cross_entropy_forward_backward(x[:, :, 0, 0], t[:, 0, 0], z_loss=1e-3, return_stats=True),
        lambda x, t, y: F.softmax_focal_loss_forward_backward(x, t),
        lambda x, t, y: F.poly1_cross_entropy_forward_backward(x, t, label_smoothing=0.1),
        lambda x, t, y: F.poly1_cross_entropy(x, y),
    ],
    ids=[
        "ce_kdim",
        "ce_kdim_fb",
        "nll_kdim_fb",
        "ce_prob",
        "ce_extras_fb",
        "focal_fb",
        "poly1_smooth_fb",
        "poly1_prob",
    ],
)
def test_half_inputs_are_not_copied(call):
    """A 16 MB bfloat16 input (a float32 copy would be 32 MB): the Python side allocates nothing
    input-sized but the 16-bit results (tracemalloc sees NumPy's allocations; the core's staging is
    a few blocks per thread)."""
    rng = np.random.default_rng(53)
    x = rng.standard_normal((8, 64, 128, 128), dtype=np.float32).astype(BF16)
    t = rng.integers(0, 64, (8, 128, 128))
    y = np.full_like(x, 1.0 / 64)
    call(x, t, y)
    tracemalloc.start()
    result = call(x, t, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    leaves = [result] if not isinstance(result, tuple) else list(result)
    grads = [np.asarray(r) for r in leaves if isinstance(r, np.ndarray) and r.size > 1 << 16]
    allowed = sum(g.nbytes for g in grads) + 1_000_000
    assert peak < allowed, (peak, allowed)
    for r in leaves:
        if isinstance(r, np.ndarray) and r.dtype.kind != "b":
            assert r.dtype == BF16
