"""The vectorised exp, log, log1p, tanh and atan (cpp/src/common/vmath.hpp) against NumPy, on every CPU target
this machine has: the maximum error in ulps stated in vmath.hpp, across each function's whole
range and at its edges (zero, subnormals, the overflow and underflow limits, inf, NaN); their
special values exactly, for NaNs of either sign and payload too; and the losses whose valid input
brings such values to exp, against torch.

The NaN with its sign bit set (x86's answer to inf - inf, 0 * inf, ...) once took exp(double)
through signed integer overflow, undefined behaviour that only the sanitizer job (.ci/sanitize)
sees: these tests are the ones that catch it there."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF

import losskit.functional as F
from _reference import compare
from losskit import _core

TARGETS = _core.available_cpu_targets().split(",")
DTYPES = [np.float32, np.float64]
BOUND = {"exp": 1, "log": 1, "log1p": 2, "tanh": 3, "atan": 2}  # ulps, as stated in vmath.hpp
BOUND_F32 = {**BOUND, "log1p": 1, "atan": 1}  # float log1p: faithful (the division-free one, since issue 12)
# The largest error in float ulps of the float32 log and log1p over every input, on every target,
# as stated in vmath.hpp and docs/performance.md (tests/cpp_checks/vmath_exhaustive.cpp measures it).
EXACT_BOUND_F32 = {"log": 0.84, "log1p": 0.88}  # all 2^32 inputs: 0.8374, 0.8762
FN = {"exp": 0, "log": 1, "log1p": 2, "tanh": 4, "atan": 5}  # atan: double (float rounds it)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exp_nonpositive(dtype, target):
    """The softmax exp: <= 1 ulp down to its cut-off (-87 / -708), 0 below it and at -inf."""
    cut = -87.0 if dtype == np.float32 else -708.0
    lo = cut
    x = np.concatenate(
        [
            -np.exp(np.random.default_rng(5).uniform(-20, np.log(-lo), 200_000)),
            [0.0, -0.0, lo + 1e-3, lo - 1e-3, 2 * lo, -np.inf],
        ]
    ).astype(dtype)
    x = np.concatenate([x, nans(dtype)])
    got = _core._vmath(3, x)
    ref = reference("exp", x)
    normal = x >= cut
    assert ulps(got[normal], ref[normal]).max() <= 1
    assert np.all(got[~normal & ~np.isnan(x)] == 0)
    assert np.isnan(got[np.isnan(x)]).all()


def nans(dtype) -> np.ndarray:
    """NaNs of both signs, quiet and signalling, with small and full payloads."""
    if dtype == np.float32:
        bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF], np.uint32)
    else:
        bits = np.array(
            [
                0x7FF8000000000000,
                0xFFF8000000000000,
                0x7FF0000000000001,
                0xFFF0000000000001,
                0x7FFFFFFFFFFFFFFF,
                0xFFFFFFFFFFFFFFFF,
            ],
            np.uint64,
        )
    return bits.view(dtype)


@pytest.fixture(params=TARGETS)
def target(request):
    before = _core.cpu_target()
    _core.set_cpu_target(request.param)
    yield request.param
    _core.set_cpu_target(before)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place (0 where both are equal, both NaN, or same inf)."""
    it = np.int32 if a.dtype == np.float32 else np.int64
    ai, bi = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    lo = np.iinfo(it).min
    ai = np.where(ai < 0, lo - ai, ai)
    bi = np.where(bi < 0, lo - bi, bi)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0, np.abs(ai - bi))


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """NumPy in float64 (rounded to float32 for float32 input: nearly correctly rounded)."""
    with np.errstate(all="ignore"):
        return getattr(np, name)(x.astype(np.float64)).astype(x.dtype)


def samples(name: str, dt, rng) -> np.ndarray:
    f = np.finfo(dt)
    if name == "exp":
        lo, hi = (-104.0, 89.0) if dt == np.float32 else (-746.0, 710.0)
        x = np.concatenate([rng.uniform(lo, hi, 200_000), rng.uniform(-1, 1, 50_000), rng.uniform(-1e-6, 1e-6, 1000)])
        edges = [0.0, -0.0, lo, hi, lo - 1, hi + 1, 88.72, -87.3, -103.9, 709.78, -708.4, -745.1]
        for t in EXP_LIMITS[np.dtype(dt)]:  # the overflow and underflow thresholds, and beside them
            t = dt(t)
            edges += [t, np.nextafter(t, dt(np.inf)), np.nextafter(t, dt(-np.inf))]
    elif name == "log":
        e = 87.0 if dt == np.float32 else 707.0
        x = np.concatenate([np.exp(rng.uniform(-e, e, 200_000)), rng.uniform(0.5, 2.0, 50_000)])
        edges = [1.0, f.tiny, f.tiny / 8, f.smallest_subnormal, f.max, 0.0, -0.0, -1.0]
    elif name in ("tanh", "atan"):  # odd: both signs, every scale, and the reductions' switch points
        x = rng.uniform(-3, 3, 100_000)
        x = np.concatenate([x, np.exp(rng.uniform(-40, 40, 100_000)) * rng.choice([-1, 1], 100_000)])
        switch = [0.25, 2.414213562373095, 0.41421356237309503]  # tanh's series, atan's reductions
        near = np.concatenate([t * (1 + rng.uniform(-1e-6, 1e-6, 2000)) for t in switch])
        x = np.concatenate([x, near, -near])
        edges = [0.0, -0.0, 1.0, -1.0, f.tiny, -f.tiny, f.smallest_subnormal, f.eps, f.max, -f.max, 9.0, 20.0]
    else:
        x = np.concatenate(
            [
                rng.uniform(-1, 1, 100_000),
                -1 + np.exp(rng.uniform(-30, 0, 50_000)),
                np.exp(rng.uniform(-60, 60, 100_000)),
                -np.exp(rng.uniform(-60, -1, 10_000)),
            ]
        )
        edges = [0.0, -0.0, -1.0, -2.0, f.tiny, -f.tiny, f.eps, -f.eps / 2, f.max]
    edges += [np.inf, -np.inf, np.nan]
    return np.concatenate([x, np.array(edges)]).astype(dt)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(FN))
def test_accuracy_in_ulps(name, dtype, target):
    x = samples(name, dtype, np.random.default_rng(7))
    got = _core._vmath(FN[name], x)
    ref = reference(name, x)
    err = ulps(got, ref)
    worst = int(np.argmax(err))
    bound = (BOUND_F32 if dtype == np.float32 else BOUND)[name]
    assert err.max() <= bound, f"{name}({x[worst]!r}) = {got[worst]!r}, NumPy {ref[worst]!r}: {err.max()} ulp"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_log1p_unit_is_log1p(dtype, target):
    """log1p_unit, the sigmoid losses' log1p of e = exp(-|x|), skips log1p's reduction and selects
    for inputs outside [0, 1]; on [0, 1] it must give log1p's bits: random e, e = exp(-|x|) of
    logits, the neighbours of 1/3 (where 1 + e crosses 4/3 and log1p's reduction changes), 0, 1,
    subnormals and NaNs (any NaN for a NaN)."""
    rng = np.random.default_rng(11)
    third = dtype(1) / dtype(3)
    steps = np.arange(-300, 301)
    near_third = third + steps * np.spacing(third)
    x = np.concatenate(
        [
            rng.uniform(0, 1, 100_000),
            np.exp(-np.abs(rng.standard_normal(100_000) * 30)),
            near_third,
            [0.0, 1.0, np.finfo(dtype).smallest_subnormal, np.finfo(dtype).tiny, np.nextafter(dtype(1), dtype(0))],
        ]
    ).astype(dtype)
    x = np.concatenate([x, nans(dtype)])
    got, want = _core._vmath(6, x), _core._vmath(FN["log1p"], x)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    same = (got.view(bits) == want.view(bits)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), f"log1p_unit({x[~same][0]!r}) = {got[~same][0]!r}, log1p {want[~same][0]!r}"


def test_float_log_exhaustive(tmp_path):
    """tests/cpp_checks/vmath_exhaustive.cpp: the float32 log and log1p on every CPU target this
    machine has, against glibc's double-precision log, on a strided subset of all float32 bit
    patterns (and windows around the points where the reduction changes), or, with
    LOSSKIT_EXHAUSTIVE=1 (.ci/run), on every one: special results bit for bit as std::log and
    std::log1p, and the largest error within the stated bound; and log1p_unit equal to log1p in
    bits on [0, 1] (every float there under LOSSKIT_EXHAUSTIVE=1)."""
    import re

    from _cpp import run_check

    out = run_check("vmath_exhaustive", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = re.findall(
        r"^(log1p|log) +(\w+) +max ([0-9.]+) ulp .* differing (\d+), evaluated (\d+)$", out.stdout, re.MULTILINE
    )
    assert sorted((fn, t) for fn, t, *_ in rows) == sorted((fn, t) for fn in EXACT_BOUND_F32 for t in TARGETS), (
        out.stdout
    )
    for fn, t, worst, differing, evaluated in rows:
        assert float(worst) < EXACT_BOUND_F32[fn], f"{fn} on {t}: {worst} ulp"
        assert int(differing) == 0 and int(evaluated) > 8_000_000, out.stdout
    unit = re.findall(
        r"^log1p_unit +(\w+) +equal to log1p in bits: evaluated (\d+), differing (\d+)$", out.stdout, re.M
    )
    assert sorted(t for t, *_ in unit) == sorted(TARGETS), out.stdout
    assert all(int(evaluated) > 17_000_000 and int(differing) == 0 for _, evaluated, differing in unit), out.stdout


# e^x overflows above the first limit and rounds to 0 below the second (the largest x with a finite
# e^x, the smallest with a non-zero one), as vmath.hpp selects them.
EXP_LIMITS = {
    np.dtype(np.float32): (float.fromhex("0x1.62e42ep+6"), float.fromhex("-0x1.9fe368p+6")),
    np.dtype(np.float64): (float.fromhex("0x1.62e42fefa39efp+9"), float.fromhex("-0x1.74910d52d3051p+9")),
}


def special(name: str, dt) -> np.ndarray:
    """Arguments whose results are exact: 0, +-1, inf, NaN."""
    f = np.finfo(dt)
    values = {
        "exp": [0.0, -0.0, np.inf, -np.inf, f.max, -f.max, 1e4, -1e4],
        "log": [0.0, -0.0, np.inf, -np.inf, -1.0, 1.0, -f.max, -f.tiny, -f.smallest_subnormal],
        "log1p": [0.0, -0.0, np.inf, -np.inf, -1.0, -2.0, -f.max],
        "exp_nonpositive": [0.0, -0.0, -np.inf, -f.max, -1e4],
        "tanh": [0.0, -0.0, np.inf, -np.inf, f.max, -f.max, 1e4, -1e4],
        "atan": [0.0, -0.0, np.inf, -np.inf, f.max, -f.max, f.smallest_subnormal, -f.smallest_subnormal],
    }[name]
    if name == "exp":  # the clamps of the exponent arithmetic and the first values past the limits
        hi, lo = EXP_LIMITS[np.dtype(dt)]
        values += [np.nextafter(dt(hi), dt(np.inf)), np.nextafter(dt(lo), dt(-np.inf))]
        values += [89.0, 90.0, -104.0, -105.0] if dt == np.float32 else [710.0, 711.0, -746.0, -747.0]
    if name == "exp_nonpositive":  # below the cut-off (flushed to 0)
        values += [-88.0, -104.0, -105.0] if dt == np.float32 else [-709.0, -746.0, -747.0]
    return np.concatenate([np.array(values, dtype=dt), nans(dt)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", [*FN, "exp_nonpositive"])
def test_special_values_exactly(name, dtype, target):
    x = special(name, dtype)
    with np.errstate(all="ignore"):
        expected = reference(name.replace("_nonpositive", ""), x)
    if name == "exp_nonpositive":
        expected[x < (-87.0 if dtype == np.float32 else -708.0)] = 0  # its stated cut-off
    got = _core._vmath({**FN, "exp_nonpositive": 3}[name], x)
    np.testing.assert_array_equal(got, expected, err_msg=f"{name} of {x!r}")
    finite_or_inf = ~np.isnan(expected)  # the sign of a NaN carries no meaning
    np.testing.assert_array_equal(np.signbit(got)[finite_or_inf], np.signbit(expected)[finite_or_inf])


# ---- losses whose valid input brings NaN or inf to exp, against torch -------------------------------
NEG_NAN = float(np.copysign(np.nan, -1.0))  # what x86 gives for inf - inf


def check_loss(name, torch_fn, args, diff, target_grad, what, reductions=("none", "mean"), **kwargs):
    """losskit's forward and fused forward-backward against torch's values and autograd gradients."""
    for reduction in reductions:
        kw = dict(kwargs, reduction=reduction)
        loss = getattr(F, name)(*args, **kw)
        if target_grad:
            kw["target_grad"] = True
        fused, grads = getattr(F, f"{name}_forward_backward")(*args, **kw)
        grads = grads if isinstance(grads, tuple) else (grads,)
        np.testing.assert_array_equal(np.asarray(loss), np.asarray(fused), err_msg=f"{what}: forward vs fused")
        compare(torch_fn, args, dict(kwargs, reduction=reduction), diff, loss, grads, what=f"{what} {reduction}")


def ctc_all_minus_inf_sums(dtype, zero_infinity):
    lp = np.log(np.full((3, 1, 3), 1 / 3)).astype(dtype)
    # One alignment fits in 3 steps ([1, blank, 1]); in 2 none does: the loss is inf (or 0).
    for input_length in (3, 2):
        args = (lp, np.array([[1, 1]]), np.array([input_length]), np.array([2]))
        check_loss(
            "ctc_loss",
            TF.ctc_loss,
            args,
            (0,),
            False,
            f"ctc T={input_length}",
            ("none", "mean", "sum"),
            zero_infinity=zero_infinity,
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_log_sum_exp_of_minus_infs(dtype, zero_infinity, target):
    """Unreachable CTC states hold log(0) = -inf: their log-sum-exp takes exp(-inf - -inf)."""
    ctc_all_minus_inf_sums(dtype, zero_infinity)


X_SPECIAL = [np.nan, NEG_NAN, np.inf, -np.inf, 0.0, 1.5, -1.5, 90.0, -90.0, 800.0, -800.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_soft_margin_at_nan_and_inf(dtype, target):
    """log1p(exp(-y x)): inf loss and NaN gradient exactly where exp overflows, finite just below."""
    ln_max = np.log(np.float64(np.finfo(dtype).max))
    largest_finite_exp = dtype(ln_max) if dtype(ln_max) <= ln_max else np.nextafter(dtype(ln_max), -np.inf)
    edge = [largest_finite_exp, np.nextafter(largest_finite_exp, dtype(np.inf))]
    x = np.array(X_SPECIAL + edge + [-e for e in edge], dtype=dtype)
    y = np.concatenate([np.resize([1.0, -1.0], len(X_SPECIAL)), [-1.0, -1.0, 1.0, 1.0]]).astype(dtype)
    check_loss("soft_margin_loss", TF.soft_margin_loss, (x, y), (0,), False, "soft_margin")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_log_input_at_nan_and_inf(dtype, full, target):
    """e^x - y x: +inf input gives inf - inf = NaN in torch (exp(+inf) must be +inf)."""
    x = np.array(X_SPECIAL + [88.8, 709.9, 710.5], dtype=dtype)
    y = np.resize([2.0, 0.0, 1.0, 3.0, 0.5], x.size).astype(dtype)
    check_loss("poisson_nll_loss", TF.poisson_nll_loss, (x, y), (0, 1), True, "poisson", log_input=True, full=full)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_kl_div_log_target_at_nan_and_inf(dtype, target):
    """e^t (t - x) with a log-probability target t."""
    t = np.array(X_SPECIAL, dtype=dtype)
    x = np.resize([0.0, -1.0, -np.inf, np.inf, np.nan], t.size).astype(dtype)
    check_loss("kl_div", TF.kl_div, (x, t), (0, 1), True, "kl_div", ("none", "sum"), log_target=True)
    check_loss("kl_div", TF.kl_div, (t, x), (0, 1), True, "kl_div swapped", ("none", "sum"), log_target=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_bce_with_logits_at_nan_and_inf(dtype, pos_weight, target):
    """The sigmoid of a NaN logit takes exp(-|NaN|), a NaN with its sign bit set."""
    x = np.array(X_SPECIAL, dtype=dtype)
    y = np.resize([0.5, 1.0, 0.0, 0.25], x.size).astype(dtype)
    kwargs = {"pos_weight": np.full(x.size, 2.5, dtype)} if pos_weight else {}
    check_loss(
        "binary_cross_entropy_with_logits",
        TF.binary_cross_entropy_with_logits,
        (x, y),
        (0, 1),
        True,
        "bce_with_logits",
        **kwargs,
    )
