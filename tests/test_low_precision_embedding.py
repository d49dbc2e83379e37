"""bfloat16 and float16 through the embedding family: cosine_embedding_loss, triplet_margin_loss
and triplet_margin_with_distance_loss (built-in distances) read 16-bit rows in place (staged blocks
through the float row kernel, cpp/src/common/staging.hpp) and return values and gradients in the
input's dtype. A broadcast input of a single row is read in place too, its gradient summed in
double and rounded once; a broadcast over some of several row dimensions computes from one float32
copy and rounds the results once to the input's dtype, as linear_cross_entropy does; a Python
distance callable gets the 16-bit inputs themselves and the loss runs in float32 on its distances;
ctc_loss reads 16-bit log_probs in place. References as in test_low_precision.py.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit.functional as F

from test_low_precision import HALVES, TORCH_DTYPE, TORCH_HALF_ROUNDINGS, assert_within_one_ulp

ml_dtypes = pytest.importorskip("ml_dtypes")


def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


_TORCH_DISTANCES = {
    None: None,
    "cosine": lambda x, y: 1.0 - TF.cosine_similarity(x, y, dim=-1),
    "squared_euclidean": lambda x, y: ((x - y) ** 2).sum(-1),
}

# name -> (losskit name, make(rng) -> (float64 args, kwargs), torch function, number of
# differentiable leading arguments)
Case = Tuple[str, Callable[[Any], Tuple[List[np.ndarray], Dict[str, Any]]], Callable, int]


def _cosine(shape, margin=0.0, shape2=None, target_shape=None):
    def make(rng):
        t = _pm1(rng, shape[:-1] if target_shape is None else target_shape)
        return [rng.standard_normal(shape), rng.standard_normal(shape2 or shape), t], {"margin": margin}

    return make


def _triplet(shape, other=None, anchor=None, **kw):
    def make(rng):
        o = other or shape
        a = anchor or shape
        return [rng.standard_normal(a), rng.standard_normal(o) + 0.3, rng.standard_normal(shape) * 1.5], dict(kw)

    return make


def _torch_triplet_with_distance(a, p, n, distance_function=None, **kw):
    return TF.triplet_margin_with_distance_loss(a, p, n, distance_function=_TORCH_DISTANCES[distance_function], **kw)


CASES: Dict[str, Case] = {
    "cosine": ("cosine_embedding_loss", _cosine((60, 33)), TF.cosine_embedding_loss, 2),
    "cosine_margin_long_rows": ("cosine_embedding_loss", _cosine((5, 3000), margin=0.2), TF.cosine_embedding_loss, 2),
    "cosine_unbatched": ("cosine_embedding_loss", _cosine((17,)), TF.cosine_embedding_loss, 2),
    "cosine_empty": ("cosine_embedding_loss", _cosine((0, 8)), TF.cosine_embedding_loss, 2),
    "triplet_l2": ("triplet_margin_loss", _triplet((70, 24)), TF.triplet_margin_loss, 3),
    "triplet_l1_swap": (
        "triplet_margin_loss",
        _triplet((40, 100), p=1.0, swap=True, margin=0.5),
        TF.triplet_margin_loss,
        3,
    ),
    "triplet_many_rows": ("triplet_margin_loss", _triplet((5000, 9)), TF.triplet_margin_loss, 3),
    "triplet_broadcast": ("triplet_margin_loss", _triplet((30, 16), other=(1, 16)), TF.triplet_margin_loss, 3),
    # a single anchor row for 3000 rows: its gradient sums 12 blocks of rows, on both threads
    "triplet_broadcast_anchor_swap": (
        "triplet_margin_loss",
        _triplet((3000, 24), anchor=(1, 24), p=1.0, swap=True),
        TF.triplet_margin_loss,
        3,
    ),
    # (1, 3, D) beside (2, 1, D): the float32 copy
    "triplet_broadcast_partial": (
        "triplet_margin_loss",
        _triplet((2, 3, 8), other=(1, 3, 8), anchor=(2, 1, 8)),
        TF.triplet_margin_loss,
        3,
    ),
    "cosine_broadcast": (
        "cosine_embedding_loss",
        _cosine((700, 40), margin=0.1, shape2=(1, 40)),
        TF.cosine_embedding_loss,
        2,
    ),
    "cosine_broadcast_target": (
        "cosine_embedding_loss",
        _cosine((1, 40), shape2=(1, 40), target_shape=(50,)),
        TF.cosine_embedding_loss,
        2,
    ),
    "distance_cosine_broadcast": (
        "triplet_margin_with_distance_loss",
        _triplet((600, 20), other=(1, 20), distance_function="cosine", swap=True),
        _torch_triplet_with_distance,
        3,
    ),
    "distance_cosine": (
        "triplet_margin_with_distance_loss",
        _triplet((50, 20), distance_function="cosine"),
        _torch_triplet_with_distance,
        3,
    ),
    "distance_squared_swap": (
        "triplet_margin_with_distance_loss",
        _triplet((50, 20), distance_function="squared_euclidean", swap=True, margin=3.0),
        _torch_triplet_with_distance,
        3,
    ),
    "distance_default": ("triplet_margin_with_distance_loss", _triplet((9, 7)), _torch_triplet_with_distance, 3),
}


def _losskit(name, args, kw, reduction, go):
    value = getattr(F, name)(*args, reduction=reduction, **kw)
    fused, fused_grads = getattr(F, name + "_forward_backward")(*args, reduction=reduction, grad_output=go, **kw)
    grads = getattr(F, name + "_backward")(go, *args, reduction=reduction, **kw)
    assert np.asarray(fused).tobytes() == np.asarray(value).tobytes(), name
    for a, b in zip(fused_grads, grads):
        np.testing.assert_array_equal(a, b)
    return value, list(grads)


def _torch(fn, args, kw, reduction, go, ndiff, tdtype):
    ts = [torch.tensor(a).to(tdtype).requires_grad_(i < ndiff) for i, a in enumerate(args)]
    out = fn(*ts, reduction=reduction, **kw)
    grads = torch.autograd.grad(out, ts[:ndiff], torch.tensor(go).to(tdtype))
    return out.detach().float().numpy(), [g.float().numpy() for g in grads]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_float32_rounded(case, kind, reduction):
    name, make, fn, ndiff = CASES[case]
    dtype = HALVES[kind]
    rng = np.random.default_rng(59)
    args64, kw = make(rng)
    args = [a.astype(dtype) for a in args64]
    up = [a.astype(np.float32) for a in args]
    go_shape = np.shape(getattr(F, name)(*up, reduction="none", **kw)) if reduction == "none" else ()
    go = np.asarray(rng.standard_normal(go_shape)).astype(dtype)
    what = f"{case} {kind} {reduction}"

    value, grads = _losskit(name, args, kw, reduction, go)
    assert np.asarray(value).dtype == dtype, what
    assert len(grads) == ndiff
    for g, a in zip(grads, args):
        assert g.dtype == dtype and g.shape == a.shape, what
    value32, grads32 = _losskit(name, up, kw, reduction, go.astype(np.float32))
    if reduction == "none":
        np.testing.assert_array_equal(value, np.asarray(value32).astype(dtype), err_msg=what)
    else:
        assert_within_one_ulp(value, value32, dtype, what + " value (losskit float32)")
    for g, g32 in zip(grads, grads32):
        np.testing.assert_array_equal(g, g32.astype(dtype), err_msg=what + " grad")

    ref, ref_grads = _torch(fn, up, kw, reduction, go.astype(np.float32), ndiff, torch.float32)
    gap = lambda a, b: np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    assert_within_one_ulp(value, ref, dtype, what + " value", gap(value32, ref))
    for j, (g, rg) in enumerate(zip(grads, ref_grads)):
        assert_within_one_ulp(g, rg, dtype, f"{what} grad {j}", gap(grads32[j], rg))


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", [c for c in CASES if not c.endswith("empty")])
def test_close_to_torch_own_half_results(case, kind):
    name, make, fn, ndiff = CASES[case]
    dtype = HALVES[kind]
    args64, kw = make(np.random.default_rng(61))
    args = [a.astype(dtype) for a in args64]
    value = np.asarray(getattr(F, name)(*args, reduction="none", **kw)).astype(np.float64)
    up = [a.astype(np.float32) for a in args]
    try:
        ref, _ = _torch(fn, up, kw, "none", np.ones(value.shape, np.float32), ndiff, TORCH_DTYPE[kind])
    except RuntimeError as exc:  # an op torch 2.13 CPU does not implement for this dtype
        pytest.skip(f"torch: {exc}")
    eps = float(ml_dtypes.finfo(dtype).eps)
    # A row's loss sums D products: its magnitude bound is that of the row's distance terms.
    mag = max(
        1.0,
        float(np.abs(value).max(initial=0.0)),
        max(float(np.square(a.astype(np.float64)).sum(-1).max(initial=0.0)) for a in up),
    )
    err = np.abs(value - ref) / (eps * mag)
    assert err.max(initial=0.0) <= TORCH_HALF_ROUNDINGS, (case, kind, float(err.max()))


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("swap", [False, True])
def test_callable_distance_gets_the_16bit_inputs_in_place(kind, swap):
    """A Python distance is called with the 16-bit inputs themselves (no float32 copy; torch hands
    it the 16-bit tensors); the loss, the distances' gradients and the sums over the vjps run in
    float32, and the loss and gradients come back rounded once to the input's dtype: the float32
    call on the upcast inputs, rounded."""
    dtype = HALVES[kind]
    rng = np.random.default_rng(67)
    a, p, n = (rng.standard_normal((12, 5)).astype(dtype) for _ in range(3))
    seen = []

    def manhattan(x1, x2):
        seen.append((x1, x2))
        diff = x1.astype(np.float32) - x2.astype(np.float32)
        return np.abs(diff).sum(-1), lambda g: (np.sign(diff) * g[:, None], -np.sign(diff) * g[:, None])

    loss, grads = F.triplet_margin_with_distance_loss_forward_backward(a, p, n, distance_function=manhattan, swap=swap)
    pairs = [(a, p), (a, n)] + ([(p, n)] if swap else [])
    assert len(seen) == len(pairs)
    for (x1, x2), (y1, y2) in zip(seen, pairs):
        assert x1.dtype == dtype and x2.dtype == dtype
        assert np.shares_memory(x1, y1) and np.shares_memory(x2, y2)
    loss32, grads32 = F.triplet_margin_with_distance_loss_forward_backward(
        *(x.astype(np.float32) for x in (a, p, n)), distance_function=manhattan, swap=swap
    )
    assert np.asarray(loss).dtype == dtype
    assert np.asarray(loss).tobytes() == np.asarray(loss32).astype(dtype).tobytes()
    for g, g32 in zip(grads, grads32):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, g32.astype(dtype))


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_ctc_and_linear_cross_entropy_return_the_input_dtype(kind):
    """ctc_loss reads 16-bit log_probs in place (double recursions, float32 gradient rounded on
    store); linear_cross_entropy computes from one float32 copy (docs/api.md). Either way every
    result equals the float32 one rounded once to the input's dtype."""
    dtype = HALVES[kind]
    rng = np.random.default_rng(71)
    lp = torch.tensor(rng.standard_normal((20, 3, 6))).log_softmax(-1).numpy().astype(dtype)
    targets, il, tl = rng.integers(1, 6, (3, 5)), [20, 18, 15], [5, 3, 4]
    loss, g = F.ctc_loss_forward_backward(lp, targets, il, tl)
    loss32, g32 = F.ctc_loss_forward_backward(lp.astype(np.float32), targets, il, tl)
    assert np.asarray(loss).dtype == dtype and g.dtype == dtype
    assert np.asarray(loss).tobytes() == np.asarray(loss32).astype(dtype).tobytes()
    np.testing.assert_array_equal(g, g32.astype(dtype))
    assert F.ctc_loss(lp, targets, il, tl, reduction="none").dtype == dtype

    x, W, b = (rng.standard_normal(s).astype(dtype) for s in ((8, 16), (50, 16), (50,)))
    t = rng.integers(0, 50, 8)
    loss, (gx, gW, gb), stats = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, return_stats=True)
    up = [a.astype(np.float32) for a in (x, W, b)]
    loss32, grads32, stats32 = F.linear_cross_entropy_forward_backward(
        up[0], up[1], t, linear_bias=up[2], return_stats=True
    )
    assert np.asarray(loss).dtype == dtype
    assert np.asarray(loss).tobytes() == np.asarray(loss32).astype(dtype).tobytes()
    for g, g32 in zip((gx, gW, gb), grads32):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, g32.astype(dtype))
    assert stats["lse"].dtype == dtype and stats["correct"].dtype == np.bool_
    np.testing.assert_array_equal(stats["entropy"], stats32["entropy"].astype(dtype))


@pytest.mark.parametrize("name", ["cosine_embedding_loss", "triplet_margin_loss"])
def test_half_rows_are_not_copied(name):
    """Two or three 8 MB bfloat16 inputs (a float32 copy of each would be 16 MB): the reduced
    forward allocates nothing input-sized on the Python side (tracemalloc sees NumPy's
    allocations), the fused call only its 16-bit gradients."""
    dtype = HALVES["bfloat16"]
    rng = np.random.default_rng(73)
    xs = [rng.standard_normal((4096, 1024), dtype=np.float32).astype(dtype) for _ in range(3)]
    args = xs[:2] + [np.ones(4096, dtype)] if name == "cosine_embedding_loss" else xs
    getattr(F, name)(*args)
    tracemalloc.start()
    value = getattr(F, name)(*args)
    peak_forward = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    _, grads = getattr(F, name + "_forward_backward")(*args)
    peak_fused = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.asarray(value).dtype == dtype
    assert peak_forward < 1_000_000, peak_forward
    assert peak_fused < sum(g.nbytes for g in grads) + 1_000_000, peak_fused


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_half_ctc_log_probs_are_not_copied(kind):
    """An 8 MB 16-bit log_probs (a float32 copy would be 16 MB): the reduced forward allocates
    nothing input-sized on the Python side, the fused call only its 16-bit gradient; the C++ core
    reads the 16-bit values themselves (the values equal the float32 computation's, rounded)."""
    dtype = HALVES[kind]
    rng = np.random.default_rng(74)
    T, N, C = 256, 16, 1024
    lp32 = torch.tensor(rng.standard_normal((T, N, C), dtype=np.float32)).log_softmax(-1).numpy()
    lp = lp32.astype(dtype)
    targets, il, tl = rng.integers(1, C, (N, 40)), np.full(N, T), rng.integers(10, 40, N)
    F.ctc_loss(lp, targets, il, tl)
    tracemalloc.start()
    value = F.ctc_loss(lp, targets, il, tl)
    peak_forward = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    loss, grad = F.ctc_loss_forward_backward(lp, targets, il, tl)
    peak_fused = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype
    assert peak_forward < 1_000_000, peak_forward
    assert peak_fused < grad.nbytes + 1_000_000, peak_fused
    loss32, grad32 = F.ctc_loss_forward_backward(lp.astype(np.float32), targets, il, tl)
    assert np.asarray(loss).tobytes() == np.asarray(loss32).astype(dtype).tobytes()
    np.testing.assert_array_equal(grad, grad32.astype(dtype))


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_linear_cross_entropy_reads_16bit_weight_in_blocks(kind, monkeypatch):
    """A 16-bit linear_weight is widened one vocabulary block at a time (here blocks of 7 rows of
    W, forced small), never as a whole float32 copy: the products equal the float32 computation's
    up to float32 rounding of the blocked sums, so every result is within one 16-bit ulp of the
    float32 results rounded once."""
    import losskit._large_vocab as large_vocab

    dtype = HALVES[kind]
    rng = np.random.default_rng(75)
    N, H, V = 37, 24, 53
    x, W = (rng.standard_normal(s).astype(np.float32).astype(dtype) for s in ((N, H), (V, H)))
    b = rng.standard_normal(V).astype(np.float32).astype(dtype)
    t = rng.integers(0, V, N)
    widened = []
    real_block = large_vocab._Weight._blocks

    def spy(self):
        for v0, v1, block in real_block(self):
            widened.append(v1 - v0)
            yield v0, v1, block

    monkeypatch.setattr(large_vocab, "HALF_WEIGHT_BLOCK_BYTES", 7 * H * 4)
    monkeypatch.setattr(large_vocab._Weight, "_blocks", spy)
    loss, (gx, gW, gb) = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=16)
    assert widened and max(widened) == 7  # blocks, never all of W at once
    up = [a.astype(np.float32) for a in (x, W, b)]
    loss32, grads32 = F.linear_cross_entropy_forward_backward(up[0], up[1], t, linear_bias=up[2], chunk_size=16)
    assert np.asarray(loss).dtype == dtype
    assert_within_one_ulp(np.asarray(loss), np.asarray(loss32), dtype, f"{kind} loss")
    for name, g, g32 in zip(("grad_input", "grad_weight", "grad_bias"), (gx, gW, gb), grads32):
        assert_within_one_ulp(g, g32, dtype, f"{kind} {name}")


def test_linear_cross_entropy_16bit_forward_allocates_no_weight_copy(monkeypatch):
    """An 8 MB bfloat16 linear_weight with 1 MB blocks: the forward's peak allocation stays below
    the 16-bit weight's own size (a float32 copy of it would be 16 MB)."""
    import losskit._large_vocab as large_vocab

    monkeypatch.setattr(large_vocab, "HALF_WEIGHT_BLOCK_BYTES", 1 << 20)
    dtype = HALVES["bfloat16"]
    rng = np.random.default_rng(76)
    x = rng.standard_normal((64, 1024), dtype=np.float32).astype(dtype)
    W = (rng.standard_normal((4096, 1024), dtype=np.float32) * 0.05).astype(dtype)
    t = rng.integers(0, 4096, 64)
    F.linear_cross_entropy(x, W, t)
    tracemalloc.start()
    value = F.linear_cross_entropy(x, W, t)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.asarray(value).dtype == dtype
    assert peak < W.nbytes, peak
