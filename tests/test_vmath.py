"""The vectorised exp, log and log1p (cpp/src/common/vmath.hpp) against NumPy, on every CPU target
this machine has: the maximum error in ulps stated in vmath.hpp, across each function's whole
range and at its edges (zero, subnormals, the overflow and underflow limits, inf, NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from losskit import _core

TARGETS = _core.available_cpu_targets().split(",")
DTYPES = [np.float32, np.float64]
BOUND = {"exp": 1, "log": 1, "log1p": 2}  # ulps, as stated in vmath.hpp
FN = {"exp": 0, "log": 1, "log1p": 2}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exp_nonpositive(dtype, target):
    """The softmax exp: <= 1 ulp down to its cut-off (-87 / -708), 0 below it and at -inf."""
    cut = -87.0 if dtype == np.float32 else -708.0
    lo = cut
    x = np.concatenate([-np.exp(np.random.default_rng(5).uniform(-20, np.log(-lo), 200_000)),
                        [0.0, -0.0, lo + 1e-3, lo - 1e-3, 2 * lo, -np.inf, np.nan]]).astype(dtype)
    got = _core._vmath(3, x)
    ref = reference("exp", x)
    normal = x >= cut
    assert ulps(got[normal], ref[normal]).max() <= 1
    assert np.all(got[~normal & ~np.isnan(x)] == 0)
    assert np.isnan(got[np.isnan(x)]).all()


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
    elif name == "log":
        e = 87.0 if dt == np.float32 else 707.0
        x = np.concatenate([np.exp(rng.uniform(-e, e, 200_000)), rng.uniform(0.5, 2.0, 50_000)])
        edges = [1.0, f.tiny, f.tiny / 8, f.smallest_subnormal, f.max, 0.0, -0.0, -1.0]
    else:
        x = np.concatenate([rng.uniform(-1, 1, 100_000), -1 + np.exp(rng.uniform(-30, 0, 50_000)),
                            np.exp(rng.uniform(-60, 60, 100_000)), -np.exp(rng.uniform(-60, -1, 10_000))])
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
    assert err.max() <= BOUND[name], f"{name}({x[worst]!r}) = {got[worst]!r}, NumPy {ref[worst]!r}: {err.max()} ulp"


SPECIAL = {
    "exp": [0.0, -0.0, np.inf, -np.inf, np.nan],
    "log": [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0],
    "log1p": [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -2.0],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(FN))
def test_special_values_exactly(name, dtype, target):
    x = np.array(SPECIAL[name], dtype=dtype)
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x)
    got = _core._vmath(FN[name], x)
    np.testing.assert_array_equal(got, expected)
    finite_or_inf = ~np.isnan(expected)  # the sign of a NaN carries no meaning
    np.testing.assert_array_equal(np.signbit(got)[finite_or_inf], np.signbit(expected)[finite_or_inf])
