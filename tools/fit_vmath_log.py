"""Fits the polynomial of vmath's float32 log and log1p (cpp/src/common/vmath.hpp) and prints it as
C++ coefficients, so that they are reproducible:

    python tools/fit_vmath_log.py [--degree 8]

Both functions reduce their argument to log1p(f) + k ln2 with f in [2/3, 4/3) - 1 = [-1/3, 1/3)
and evaluate log1p(f) = f - f^2/2 + f^3 p(f), i.e. f + f^2 q(f) with q(f) = -1/2 + f p(f). q is the
polynomial of the given degree that minimises the
largest RELATIVE error of f + f^2 q(f) against log1p(f) over that interval (a weighted minimax
fit, by Lawson's iteratively reweighted least squares on a dense Chebyshev grid, with the
reference in mpmath at 40 digits), with its constant term held at -1/2 (exact) and its other
coefficients rounded to float32 one at a time from the lowest up, each rounding compensated by
refitting the higher coefficients. The
script reports the fit's relative error in units of 2^-24 (the float32 ulp of a number just
below a power of two); the accuracy that counts, of the float code as compiled for each CPU
target, is measured over every float32 input by tests/cpp_checks/vmath_exhaustive.cpp."""

from __future__ import annotations

import argparse

import mpmath as mp
import numpy as np

mp.mp.dps = 40
LO, HI = -1 / 3 - 1e-6, 1 / 3 + 1e-6  # the reduced interval, with a margin for f's rounding


def grid(n: int = 6000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.cos(np.linspace(0, np.pi, n)) * (HI - LO) / 2 + (HI + LO) / 2
    f = f[np.abs(f) > 1e-4]
    exact = [mp.log1p(mp.mpf(float(v))) for v in f]
    target = np.array([float((e - mp.mpf(float(v))) / mp.mpf(float(v)) ** 2) for e, v in zip(exact, f)])
    weight = f * f / np.abs(np.array([float(e) for e in exact]))  # error of q -> relative error of log1p
    return f, target, weight


def lawson(f, target, weight, degree: int, fixed: list[float], iterations: int = 60) -> np.ndarray:
    """The free coefficients (above the `fixed` low ones) of the weighted minimax fit."""
    scale = max(abs(LO), abs(HI))
    known = sum(c * f**i for i, c in enumerate(fixed)) if fixed else np.zeros_like(f)
    powers = np.arange(len(fixed), degree + 1)
    basis = (f[:, None] / scale) ** powers[None, :]
    rhs = target - known
    w = np.ones_like(f)
    for _ in range(iterations):
        sw = weight * np.sqrt(w)
        c = np.linalg.lstsq(basis * sw[:, None], rhs * sw, rcond=None)[0]
        err = np.abs((basis @ c - rhs) * weight)
        w = w * err
        w /= w.sum()
    return c / scale**powers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--degree", type=int, default=8)
    degree = ap.parse_args().degree
    f, target, weight = grid()
    fixed: list[float] = [-0.5]
    while len(fixed) <= degree:
        free = lawson(f, target, weight, degree, fixed)
        fixed.append(float(np.float32(free[0])))
    q = sum(c * f**i for i, c in enumerate(fixed))
    rel = np.abs((q - target) * weight)
    print(
        f"// q of degree {degree}: largest relative error of the fit {rel.max():.3e} = "
        f"{rel.max() / 2**-24:.4f} x 2^-24; p(f) = (q(f) + 1/2) / f by Horner's rule:"
    )
    for i in range(degree, 0, -1):
        mantissa, exponent = float(fixed[i]).hex().split("p")
        literal = f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"
        if i == degree:
            print(f"  float p = {literal};")
        else:
            sign, literal = ("-", literal[1:]) if literal.startswith("-") else ("+", literal)
            print(f"  p = p * f {sign} {literal};")


if __name__ == "__main__":
    main()
