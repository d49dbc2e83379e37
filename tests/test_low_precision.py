"""bfloat16 and float16: the storage conversions, bit for bit, on every target; the element-wise
losses read 16-bit inputs in place, compute in float32 (sums in double) and return values and
gradients in the input's dtype.

The reference is torch computing in float32 on the upcast inputs, rounded once to the 16-bit dtype:
losskit computes the same float32 formulas, so the two differ only where float32 rounding inside
the formula or the sum differs, by at most one unit in the last place of the 16-bit result.
torch's own bfloat16/float16 results round every intermediate operation to 16 bits; they are
compared with the tolerance explained at TORCH_HALF_ULPS.
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
from losskit import _convert, _core

ml_dtypes = pytest.importorskip("ml_dtypes")
# kl_div's 'mean' warns (as torch's does); that warning is tested in the pointwise suite.
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALVES = {"bfloat16": BF16, "float16": F16}
TORCH_DTYPE = {"bfloat16": torch.bfloat16, "float16": torch.float16}
TARGETS = _core.available_cpu_targets().split(",")


@pytest.fixture(params=TARGETS)
def target(request):
    before = _core.cpu_target()
    _core.set_cpu_target(request.param)
    yield request.param
    _core.set_cpu_target(before)


# ---- the conversions ---------------------------------------------------------------------------
ALL_BITS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _f32_bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _reference_widen(kind: str) -> np.ndarray:
    return ALL_BITS.view(HALVES[kind]).astype(np.float32)


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_widening_is_exact_for_every_bit_pattern(kind, target):
    ours = _core._convert16(kind, True, ALL_BITS)
    ref = _reference_widen(kind)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(ours), nan)
    np.testing.assert_array_equal(_f32_bits(ours)[~nan], _f32_bits(ref)[~nan])
    # A NaN keeps its sign and payload; float16 NaNs come out quiet (the F16C instruction's rule,
    # which the portable code follows so every target agrees), bfloat16 ones as they are.
    quiet = np.uint32(0x00400000) if kind == "float16" else np.uint32(0)
    np.testing.assert_array_equal(_f32_bits(ours)[nan], _f32_bits(ref)[nan] | quiet)


def _narrowing_cases(kind: str) -> np.ndarray:
    """Every 16-bit value, every midpoint between neighbours (the ties), the floats just either side
    of each midpoint, values around the overflow threshold, and random float32 bit patterns."""
    values = _reference_widen(kind)
    finite = np.sort(values[np.isfinite(values)].astype(np.float64))
    finite = np.unique(finite)
    mids = ((finite[:-1] + finite[1:]) / 2).astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), (finite[:-1] + finite[1:]) / 2)  # exact ties
    top = np.float32(np.finfo(HALVES[kind]).max if kind == "float16" else ml_dtypes.finfo(BF16).max)
    rng = np.random.default_rng(0)
    random = rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    cases = [
        values,
        mids,
        np.nextafter(mids, np.float32(np.inf)),
        np.nextafter(mids, np.float32(-np.inf)),
        np.array(
            [
                top,
                np.nextafter(top, np.float32(np.inf)),
                np.float32(65520.0),
                np.float32(65519.996),
                np.float32(np.inf),
                np.float32(-np.inf),
                np.float32(1e-45),
                np.float32(-1e-45),
                np.float32(2.0**-25),
                np.float32(2.0**-24),
            ],
            np.float32,
        ),
        random,
    ]
    return np.concatenate([np.asarray(c, np.float32) for c in cases])


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_narrowing_rounds_to_nearest_even(kind, target):
    x = _narrowing_cases(kind)
    ours = _core._convert16(kind, False, x)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and overflow are expected here
        ref = x.astype(HALVES[kind]).view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(ours[~nan], ref[~nan])
    # NaN stays NaN of the same sign.
    back = _core._convert16(kind, True, ours[nan])
    assert np.isnan(back).all()
    np.testing.assert_array_equal(np.signbit(back), np.signbit(x[nan]))


def test_conversions_agree_across_targets():
    """Same bits on every target (vector instructions, portable code, tails)."""
    results = {}
    x = _narrowing_cases("float16")
    before = _core.cpu_target()
    try:
        for t in TARGETS:
            _core.set_cpu_target(t)
            results[t] = [_core._convert16(k, False, x) for k in HALVES] + [
                _f32_bits(_core._convert16(k, True, ALL_BITS)) for k in HALVES
            ]
    finally:
        _core.set_cpu_target(before)
    for t in TARGETS[1:]:
        for a, b in zip(results[TARGETS[0]], results[t]):
            np.testing.assert_array_equal(a, b)


# ---- the losses --------------------------------------------------------------------------------
# name -> (make(rng, shape) -> (args, kwargs) as float64 arrays, torch function, differentiable
# argument positions, whether torch differentiates the target too)
def _pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


Spec = Tuple[Callable[[Any, Tuple[int, ...]], Tuple[List[np.ndarray], Dict[str, Any]]], Callable, Tuple[int, ...]]
SPECS: Dict[str, Spec] = {
    "l1_loss": (lambda r, s: ([r.standard_normal(s), r.standard_normal(s)], {}), TF.l1_loss, (0, 1)),
    "mse_loss": (lambda r, s: ([r.standard_normal(s), r.standard_normal(s)], {}), TF.mse_loss, (0, 1)),
    "huber_loss": (
        lambda r, s: ([r.standard_normal(s) * 2, r.standard_normal(s)], {"delta": 0.7}),
        TF.huber_loss,
        (0, 1),
    ),
    "smooth_l1_loss": (
        lambda r, s: ([r.standard_normal(s) * 2, r.standard_normal(s)], {"beta": 0.5}),
        TF.smooth_l1_loss,
        (0, 1),
    ),
    "soft_margin_loss": (lambda r, s: ([r.standard_normal(s), _pm1(r, s)], {}), TF.soft_margin_loss, (0,)),
    "binary_cross_entropy": (
        lambda r, s: ([r.uniform(0.02, 0.98, s), r.random(s)], {}),
        TF.binary_cross_entropy,
        (0, 1),
    ),
    "binary_cross_entropy_with_logits": (
        lambda r, s: ([r.standard_normal(s) * 3, r.random(s)], {}),
        TF.binary_cross_entropy_with_logits,
        (0, 1),
    ),
    "poisson_nll_loss": (
        lambda r, s: ([r.standard_normal(s), r.poisson(2.0, s).astype(float)], {}),
        TF.poisson_nll_loss,
        (0, 1),
    ),
    "gaussian_nll_loss": (
        lambda r, s: ([r.standard_normal(s), r.standard_normal(s), r.uniform(0.2, 2.0, s)], {}),
        TF.gaussian_nll_loss,
        (0, 1, 2),
    ),
    "kl_div": (lambda r, s: ([np.log(r.uniform(0.05, 1.0, s)), r.uniform(0.0, 1.0, s)], {}), TF.kl_div, (0, 1)),
    "margin_ranking_loss": (
        lambda r, s: ([r.standard_normal(s), r.standard_normal(s), _pm1(r, s)], {"margin": 0.2}),
        TF.margin_ranking_loss,
        (0, 1),
    ),
    "hinge_embedding_loss": (
        lambda r, s: ([r.standard_normal(s) * 2, _pm1(r, s)], {"margin": 1.0}),
        TF.hinge_embedding_loss,
        (0,),
    ),
}
# losskit's gradient order where it differs from argument order (gaussian: input, var, target).
GRAD_ORDER = {"gaussian_nll_loss": (0, 2, 1)}
TARGET_GRAD = {
    "l1_loss",
    "mse_loss",
    "huber_loss",
    "smooth_l1_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "kl_div",
}


def _ordered_ints(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """16-bit values as integers in the order of the values (neighbours differ by 1)."""
    bits = np.ascontiguousarray(a, dtype).view(np.uint16).astype(np.int32)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def _ulp(x32: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The spacing of the 16-bit dtype at each value (the gap to the next value away from 0)."""
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the 16-bit range: inf, no bound
        x = np.abs(np.asarray(x32, np.float32)).astype(dtype)
        bits = np.ascontiguousarray(x).view(np.uint16)
        nxt = (bits + np.uint16(1)).view(dtype).astype(np.float64)
        return np.where(np.isfinite(nxt), nxt - x.astype(np.float64), np.inf)


def assert_within_one_ulp(
    actual: Any, expected32: np.ndarray, dtype: np.dtype, what: str, float32_gap: Any = 0.0
) -> None:
    """actual == expected32 (torch in float32) rounded to dtype, within one unit in its last place
    of dtype, plus `float32_gap`: how far losskit's own float32 result on the same upcast inputs
    lies from torch's. The float32 suites hold that gap to torch's float32 tolerance; it is below a
    16-bit ulp except where float32 itself cancels (bce's sigmoid(x) - y near y, gaussian's
    1/v - (x-y)^2/v^2 near 0), where both float32 answers are rounding noise."""
    actual = np.asarray(actual)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
    with np.errstate(over="ignore"):  # float32 values past the 16-bit range round to inf
        expected = np.asarray(expected32, np.float32).astype(dtype)
    assert actual.shape == expected.shape, what
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    nan = np.isnan(e)
    np.testing.assert_array_equal(np.isnan(a), nan, err_msg=what)
    np.testing.assert_array_equal(np.isinf(a), np.isinf(e), err_msg=what)
    # One ulp at the larger of the two values: rounding losskit's float32 result to 16 bits moves
    # it by up to half an ulp at its own magnitude.
    bound = np.maximum(_ulp(expected32, dtype), _ulp(a, dtype)) + np.asarray(float32_gap, np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf (checked above)
        gap = np.abs(a - e)
    bad = np.isfinite(e) & (gap > bound)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} values off, e.g. {a[bad][0]} vs {e[bad][0]} "
        f"(bound {np.broadcast_to(bound, a.shape)[bad][0]})"
    )


def _torch_reference(
    name: str, args: List[np.ndarray], kwargs: Dict[str, Any], reduction: str, tdtype: torch.dtype, grad_out: np.ndarray
) -> Tuple[np.ndarray, List[np.ndarray]]:
    """torch's value and gradients (of every differentiable argument, in argument order) in tdtype."""
    make, fn, diff = SPECS[name]
    ts = [torch.tensor(a).to(tdtype).requires_grad_(i in diff) for i, a in enumerate(args)]
    out = fn(*ts, reduction=reduction, **kwargs)
    grads = torch.autograd.grad(out, [ts[i] for i in diff], torch.tensor(grad_out).to(tdtype))
    return out.detach().float().numpy(), [g.float().numpy() for g in grads]


def _losskit(
    name: str, args: List[np.ndarray], kwargs: Dict[str, Any], reduction: str, grad_out: Any
) -> Tuple[Any, List[np.ndarray]]:
    fb = getattr(F, name + "_forward_backward")
    bw = getattr(F, name + "_backward")
    value = getattr(F, name)(*args, reduction=reduction, **kwargs)
    fused_value, _ = fb(*args, reduction=reduction, grad_output=grad_out, **kwargs)
    extra = {"target_grad": True} if name in TARGET_GRAD else {}
    grads = bw(grad_out, *args, reduction=reduction, **kwargs, **extra)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    dtype = np.asarray(value).dtype
    if _convert.is_half(dtype):
        # The fused pass is another compiled loop (its float32 value may differ from the forward
        # loop's by a float32 rounding, e.g. kl_div's): within one 16-bit ulp.
        assert_within_one_ulp(fused_value, np.asarray(value).astype(np.float32), dtype, name + " fused")
    return value, grads


def _check(name: str, kind: str, shape: Tuple[int, ...], reduction: str, rng) -> None:
    dtype = HALVES[kind]
    args64, kwargs = SPECS[name][0](rng, shape)
    args = [a.astype(dtype) for a in args64]
    up = [a.astype(np.float32) for a in args]  # the values losskit reads
    go_shape = () if reduction != "none" else np.broadcast_shapes(*(a.shape for a in args))
    go = (rng.standard_normal(go_shape) if go_shape else np.asarray(rng.standard_normal())).astype(dtype)
    value, grads = _losskit(name, args, kwargs, reduction, go)
    ref_value, ref_grads = _torch_reference(name, up, kwargs, reduction, torch.float32, go.astype(np.float32))
    what = f"{name} {kind} {shape} {reduction}"
    # losskit's float32 path on the same upcast inputs: the 16-bit path runs the same float
    # kernels, so it must give exactly those results rounded (reduced values: the sums are cut
    # into other blocks, within one ulp).
    value32, grads32 = _losskit(name, up, kwargs, reduction, go.astype(np.float32))
    if reduction == "none":
        np.testing.assert_array_equal(value, np.asarray(value32).astype(dtype), err_msg=what)
    else:
        assert_within_one_ulp(value, value32, dtype, what + " value (losskit float32)")
    for g, g32 in zip(grads, grads32):
        np.testing.assert_array_equal(g, g32.astype(dtype), err_msg=what + " grad")
    order = GRAD_ORDER.get(name, tuple(range(len(ref_grads))))
    assert len(grads) == len(ref_grads), what
    gap = lambda ours32, ref32: np.abs(np.asarray(ours32, np.float64) - np.asarray(ref32, np.float64))
    assert_within_one_ulp(value, ref_value, dtype, what + " value", gap(value32, ref_value))
    for j, g in enumerate(grads):
        ref = ref_grads[order[j]]
        np.testing.assert_allclose(grads32[j], ref, rtol=1.3e-6, atol=1e-5, err_msg=what)  # float32 suites'
        assert_within_one_ulp(g, ref, dtype, f"{what} grad {j}", gap(grads32[j], ref))


SHAPES = [(0,), (7,), (33, 65), (3, 200_003)]  # empty, tail-only, several blocks, threads


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", list(SPECS))
def test_matches_torch_float32_rounded(name, kind, reduction):
    rng = np.random.default_rng(7)
    for shape in SHAPES:
        _check(name, kind, shape, reduction, rng)


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy_with_logits", "gaussian_nll_loss", "kl_div"])
def test_every_target(name, kind, target):
    rng = np.random.default_rng(11)
    for reduction in ("none", "mean"):
        _check(name, kind, (70, 301), reduction, rng)


def test_targets_and_threads_give_the_same_bits():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 1001)).astype(BF16)
    y = rng.standard_normal((300, 1001)).astype(BF16)
    before, n = _core.cpu_target(), losskit.get_num_threads()
    seen = set()
    try:
        for t in TARGETS:
            _core.set_cpu_target(t)
            for threads in (1, 2, 8):
                losskit.set_num_threads(threads)
                loss = F.mse_loss(x, y)
                gx, gy = F.mse_loss_backward(1.0, x, y, target_grad=True)
                seen.add((np.asarray(loss).tobytes(), gx.tobytes(), gy.tobytes()))
    finally:
        _core.set_cpu_target(before)
        losskit.set_num_threads(n)
    assert len(seen) == 1


def test_broadcast_weight_and_non_contiguous():
    """Broadcast operands (their gradients summed), weights, pos_weight and a non-contiguous input
    (made contiguous once, in its own dtype)."""
    rng = np.random.default_rng(3)
    for dtype in (BF16, F16):
        x = rng.standard_normal((64, 40)).astype(dtype)[:, ::2]
        assert not x.flags.c_contiguous
        y = rng.random((1, 20)).astype(dtype)
        w = rng.random((20,)).astype(dtype)
        pw = rng.random((20,)).astype(dtype)
        yfull = np.broadcast_to(y, x.shape).copy()
        value = F.binary_cross_entropy_with_logits(x, yfull, weight=w, pos_weight=pw)
        gx, gy = F.binary_cross_entropy_with_logits_backward(1.0, x, yfull, weight=w, pos_weight=pw, target_grad=True)
        t = [torch.tensor(a.astype(np.float32)) for a in (x, np.broadcast_to(y, x.shape), w, pw)]
        t[0].requires_grad_(True)
        t[1].requires_grad_(True)
        ref = TF.binary_cross_entropy_with_logits(t[0], t[1], weight=t[2], pos_weight=t[3])
        rgx, rgy = torch.autograd.grad(ref, [t[0], t[1]])
        assert_within_one_ulp(value, ref.detach().numpy(), dtype, "bce_with_logits value")
        assert_within_one_ulp(gx, rgx.numpy(), dtype, "bce_with_logits grad_input")
        assert_within_one_ulp(gy, rgy.numpy(), dtype, "bce_with_logits grad_target")
        # mse with a broadcast target: its gradient sums over the broadcast dimension.
        yb = rng.standard_normal((1, 20)).astype(dtype)
        gx2, gy2 = F.mse_loss_backward(np.asarray(1.0), x, yb, target_grad=True)
        tx, ty = (
            torch.tensor(x.astype(np.float32), requires_grad=True),
            torch.tensor(yb.astype(np.float32), requires_grad=True),
        )
        rx, ry = torch.autograd.grad(TF.mse_loss(tx, ty.expand_as(tx)), [tx, ty])
        assert_within_one_ulp(gx2, rx.numpy(), dtype, "mse grad_input")
        assert_within_one_ulp(gy2, ry.numpy(), dtype, "mse broadcast grad_target")


# torch's own 16-bit results round each intermediate operation (the difference, the square, the
# log, the exp, ...) to 16 bits; its reductions accumulate in float32. Each rounding errs by at most
# half a unit (eps/2 relative) of that intermediate, and these formulas chain at most four such
# operations whose magnitudes stay below mag = max(1, |arguments|, |loss|) for the data below
# (cancellation moves the error to the small result but not beyond eps * mag per rounding): torch's
# 16-bit loss lies within 4 eps * mag of the exactly computed one, element by element. (torch's
# default assert_close tolerances for these dtypes are relative, and fail right at those
# cancellations: e.g. kl_div's y (log y - x) near log y = x.)
TORCH_HALF_ROUNDINGS = 4


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", list(SPECS))
def test_close_to_torch_own_half_results(name, kind):
    dtype = HALVES[kind]
    rng = np.random.default_rng(17)
    args64, kwargs = SPECS[name][0](rng, (50, 40))
    args = [a.astype(dtype) for a in args64]
    value = getattr(F, name)(*args, reduction="none", **kwargs).astype(np.float64)
    try:
        ref, _ = _torch_reference(
            name, [a.astype(np.float32) for a in args], kwargs, "none", TORCH_DTYPE[kind], np.ones((50, 40), np.float32)
        )
    except RuntimeError as exc:  # an op torch 2.13 CPU does not implement for this dtype
        pytest.skip(f"torch: {exc}")
    eps = float(ml_dtypes.finfo(dtype).eps)
    mag = np.maximum.reduce([np.abs(a.astype(np.float64)) for a in args] + [np.abs(value), np.ones_like(value)])
    err = np.abs(value - ref) / (eps * mag)
    assert err.max() <= TORCH_HALF_ROUNDINGS, (name, kind, float(err.max()))


# ---- in place ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_contiguous_half_inputs_are_the_same_objects(dtype):
    x = np.ones((1000, 100), dtype)
    y = np.zeros((1000, 100), dtype)
    got, (x2, y2) = _convert.float_inputs("mse_loss", ("input", "target"), (x, y), half=True)
    assert got == dtype and x2 is x and y2 is y


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_half_loss_allocates_nothing_input_sized(dtype):
    """A 32 MB bfloat16/float16 pair: the reduced forward allocates no copy (tracemalloc sees
    NumPy's allocations; a float32 conversion would be 64 MB), and the fused call allocates only
    its 16-bit gradient, in the core."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8_000_000).astype(dtype)
    y = np.zeros_like(x)
    F.mse_loss(x, y)
    F.mse_loss_forward_backward(x, y)
    tracemalloc.start()
    value = F.mse_loss(x, y)
    _, g = F.mse_loss_forward_backward(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert np.asarray(value).dtype == dtype and g.dtype == dtype and g.shape == x.shape


def test_mixed_dtypes_follow_the_input():
    """The input sets the dtype: a float32 target beside a bfloat16 input is rounded to bfloat16
    (one copy of the target), as before for float16 beside float32."""
    x = np.linspace(-2, 2, 11).astype(BF16)
    y = np.linspace(0, 1, 11).astype(np.float32)
    out = F.mse_loss(x, y, reduction="none")
    assert out.dtype == BF16
    np.testing.assert_array_equal(out, F.mse_loss(x, y.astype(BF16), reduction="none"))


# ---- cross_entropy with class indices ------------------------------------------------------------
CE_CASES = [
    ((0, 7), {}),
    ((7,), {}),
    ((5, 13), {}),
    ((300, 129), {"label_smoothing": 0.1}),
    ((40, 1000), {"weight": True, "ignore_index": 3}),
    ((3, 20000), {"label_smoothing": 0.2, "weight": True}),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("shape,kw", CE_CASES, ids=[str(c[0]) for c in CE_CASES])
def test_cross_entropy_matches_torch_float32_rounded(shape, kw, kind, reduction):
    dtype = HALVES[kind]
    rng = np.random.default_rng(23)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    C = shape[-1]
    t = rng.integers(0, C, shape[:-1])
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.5, 2.0, C).astype(dtype)
    go_shape = shape[:-1] if reduction == "none" else ()
    go = np.asarray(rng.standard_normal(go_shape)).astype(dtype)
    value = F.cross_entropy(x, t, reduction=reduction, **kw)
    fused, g_fused = F.cross_entropy_forward_backward(x, t, reduction=reduction, grad_output=go, **kw)
    g = F.cross_entropy_backward(go, x, t, reduction=reduction, **kw)
    assert g.dtype == dtype and g.shape == x.shape and np.asarray(value).dtype == dtype
    np.testing.assert_array_equal(g_fused, g)
    assert np.asarray(fused).tobytes() == np.asarray(value).tobytes()
    # The same float32 kernels on the upcast inputs, rounded once.
    up = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    x32, go32 = x.astype(np.float32), go.astype(np.float32)
    value32 = F.cross_entropy(x32, t, reduction=reduction, **up)
    g32 = F.cross_entropy_backward(go32, x32, t, reduction=reduction, **up)
    np.testing.assert_array_equal(g, g32.astype(dtype))
    what = f"cross_entropy {shape} {kw.keys()} {kind} {reduction}"
    if reduction == "none":
        np.testing.assert_array_equal(value, np.asarray(value32).astype(dtype))
    else:
        assert_within_one_ulp(value, value32, dtype, what + " (losskit float32)")
    # torch in float32 on the upcast inputs.
    tx = torch.tensor(x32, requires_grad=True)
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in up.items()}
    ref = TF.cross_entropy(tx, torch.tensor(t), reduction=reduction, **tkw)
    (rg,) = torch.autograd.grad(ref, [tx], torch.tensor(go32))
    gap = lambda a, b: np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    assert_within_one_ulp(value, ref.detach().numpy(), dtype, what + " value", gap(value32, ref.detach().numpy()))
    assert_within_one_ulp(g, rg.numpy(), dtype, what + " grad", gap(g32, rg.numpy()))


def test_cross_entropy_in_place_every_target_and_thread_count():
    """On each target: the same bits at 1, 2 and 8 threads, equal to that target's float32 result
    rounded (the float32 kernels' vector exp differs in its last bits between targets)."""
    rng = np.random.default_rng(29)
    x = rng.standard_normal((64, 3000)).astype(BF16)
    t = rng.integers(0, 3000, 64)
    before, n = _core.cpu_target(), losskit.get_num_threads()
    try:
        for tgt in TARGETS:
            _core.set_cpu_target(tgt)
            seen = set()
            for threads in (1, 2, 8):
                losskit.set_num_threads(threads)
                loss, g = F.cross_entropy_forward_backward(x, t)
                seen.add((np.asarray(loss).tobytes(), g.tobytes()))
            loss32, g32 = F.cross_entropy_forward_backward(x.astype(np.float32), t)
            assert len(seen) == 1, tgt
            np.testing.assert_array_equal(g, g32.astype(BF16), err_msg=tgt)
            assert_within_one_ulp(loss, loss32, BF16, tgt)
    finally:
        _core.set_cpu_target(before)
        losskit.set_num_threads(n)


def test_cross_entropy_half_allocates_no_copy():
    """2048 x 4096 bfloat16 logits (16 MB; a float32 copy would be 32 MB): the fused call allocates
    only its 16-bit gradient (in the core), the forward nothing input-sized."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 4096), dtype=np.float32).astype(BF16)
    t = rng.integers(0, 4096, 2048)
    F.cross_entropy_forward_backward(x, t)
    tracemalloc.start()
    F.cross_entropy(x, t)
    _, g = F.cross_entropy_forward_backward(x, t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert g.dtype == BF16


def test_cpp_embedding_program(tmp_path):
    """tests/cpp_checks/half_storage.cpp: raw 16-bit buffers through the public C++ API."""
    from _cpp import run_check

    run = run_check("half_storage", tmp_path)
    assert run.returncode == 0 and "ok" in run.stdout, run.stdout + run.stderr


# ---- in-register conversions inside the element-wise kernels ------------------------------------
# The kernels widen each 16-bit operand and round each result in register, in vector bodies and
# scalar tails alike. Against losskit's float32 path on the upcast inputs, rounded once by
# ml_dtypes / NumPy, every per-element value and gradient must agree bit for bit, at the values a
# wrong conversion gets wrong: NaN and inf of both signs, zeros, subnormals, the largest finite
# values, and results exactly halfway between two 16-bit values (ties round to even).
IN_REGISTER_LOSSES = ["mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy_with_logits", "soft_margin_loss"]
ODD_LENGTHS = [1, 15, 17, 31, 33, 8191, 8193, 3 * 8192 + 5]  # vector tails, block ends


def _special_pairs(dtype: np.dtype, n: int, rng) -> Tuple[np.ndarray, np.ndarray]:
    """x and y of n elements: random bit patterns (every class of value, NaN payloads included),
    the special values at random positions, and pairs whose difference x - y is an exact tie of
    dtype (y half a unit of x), so that |x - y| and 2 (x - y) must round to even."""
    x = rng.integers(0, 1 << 16, n).astype(np.uint16).view(dtype)
    y = rng.integers(0, 1 << 16, n).astype(np.uint16).view(dtype)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], np.float32).astype(dtype)
    tiny = ALL_BITS[1:4].view(dtype)  # the smallest subnormals
    top = np.array([np.finfo(np.float16).max if dtype == F16 else ml_dtypes.finfo(BF16).max], np.float32)
    specials = np.concatenate([specials, tiny, -tiny, top.astype(dtype), (-top).astype(dtype)])
    pos = rng.permutation(n)
    k = min(n, len(specials))
    x[pos[:k]] = specials[:k]
    y[pos[k : 2 * k]] = specials[: max(0, min(k, n - k))]
    # Ties: x normal in [1, 2) (so x - ulp/2 is exact in float32), y = +-ulp(x) / 2.
    ties = pos[2 * k :][: n // 3]
    xt = (1.0 + rng.integers(0, 64, len(ties)) / 64.0).astype(np.float32).astype(dtype)
    half_ulp = (_ulp(xt.astype(np.float32), dtype) / 2).astype(np.float32)
    x[ties] = xt
    y[ties] = (half_ulp * np.where(rng.random(len(ties)) < 0.5, -1.0, 1.0)).astype(np.float32).astype(dtype)
    assert np.isnan(x.astype(np.float32)).any() or n < 8
    return x, y


def _assert_same_bits(actual: Any, expected32: Any, dtype: np.dtype, what: str) -> None:
    actual = np.asarray(actual)
    assert actual.dtype == dtype, what
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.asarray(expected32, np.float32).astype(dtype)
    nan = np.isnan(expected.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(actual.astype(np.float32)), nan, err_msg=what)
    np.testing.assert_array_equal(actual.view(np.uint16)[~nan], expected.view(np.uint16)[~nan], err_msg=what)


def _forward_and_grads(name: str, x: np.ndarray, y: np.ndarray, reduction: str, go: Any):
    fn = getattr(F, name)
    extra = {"target_grad": True} if name in TARGET_GRAD else {}
    value = fn(x, y, reduction=reduction)
    fused, fused_grads = getattr(F, name + "_forward_backward")(x, y, reduction=reduction, grad_output=go)
    grads = getattr(F, name + "_backward")(go, x, y, reduction=reduction, **extra)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    return value, fused, grads


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", IN_REGISTER_LOSSES)
def test_in_register_conversions_special_values(name, kind, target):
    dtype = HALVES[kind]
    rng = np.random.default_rng(23)
    with np.errstate(all="ignore"):
        for n in ODD_LENGTHS:
            x, y = _special_pairs(dtype, n, rng)
            if name == "soft_margin_loss":  # its target is +-1
                y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype)
            go = rng.standard_normal(n).astype(dtype)
            value, fused, grads = _forward_and_grads(name, x, y, "none", go)
            value32, _, grads32 = _forward_and_grads(
                name, x.astype(np.float32), y.astype(np.float32), "none", go.astype(np.float32)
            )
            what = f"{name} {kind} n={n} {target}"
            _assert_same_bits(value, value32, dtype, what + " value")
            _assert_same_bits(fused, value32, dtype, what + " fused value")
            assert len(grads) == len(grads32)
            for j, (g, g32) in enumerate(zip(grads, grads32)):
                _assert_same_bits(g, g32, dtype, f"{what} grad {j}")


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")  # torch's broadcast warning
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_in_register_conversions_reduced_and_broadcast(kind, reduction, target):
    """Reduced losses (the sums in double over in-register widened values, within one 16-bit ulp of
    the float32 path's rounded value, gradients bit for bit) and broadcast operands: expanded rows,
    and gradients summed in double over broadcast dimensions from the float values (as the float32
    path sums them), not from values already rounded to 16 bits."""
    dtype = HALVES[kind]
    rng = np.random.default_rng(29)
    for xs, ys in [((8193,), (8193,)), ((33,), (1,)), ((5, 37), (37,)), ((37, 1), (1, 17)), ((3, 8195), (3, 1))]:
        # Finite values with subnormals among them: a sum over NaN could not fail.
        x = np.concatenate([rng.standard_normal(int(np.prod(xs)) - 3), ALL_BITS[1:4].view(dtype)]).astype(dtype)
        x = rng.permutation(x).reshape(xs)
        y = rng.standard_normal(ys).astype(dtype)
        for name in ("mse_loss", "l1_loss", "huber_loss"):
            go = np.asarray(rng.standard_normal()).astype(dtype)
            value, fused, grads = _forward_and_grads(name, x, y, reduction, go)
            value32, _, grads32 = _forward_and_grads(
                name, x.astype(np.float32), y.astype(np.float32), reduction, go.astype(np.float32)
            )
            what = f"{name} {kind} {xs} {ys} {reduction} {target}"
            assert_within_one_ulp(value, np.asarray(value32), dtype, what + " value")
            assert_within_one_ulp(fused, np.asarray(value32), dtype, what + " fused value")
            for j, (g, g32) in enumerate(zip(grads, grads32)):
                assert g.shape == g32.shape, what
                _assert_same_bits(g, g32, dtype, f"{what} grad {j}")
