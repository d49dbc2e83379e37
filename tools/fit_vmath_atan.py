"""Fits the polynomial of vmath's double atan (cpp/src/common/vmath.hpp) and prints it as C++
coefficients, so that they are reproducible:

    python tools/fit_vmath_atan.py [--degree 10]

atan reduces |x| to r in [-tan(pi/8), tan(pi/8)] and evaluates atan(r) = r + r z p(z), z = r^2. p is
mpmath's Chebyshev fit (near-minimax) of (atan(r) - r) / (r z) over z in [0, tan(pi/8)^2] at 50
digits; the script prints the fit's largest absolute error of p and what it contributes to
atan(r) relative to r (z times it), against 2^-53. What counts, the double code as compiled for
each CPU target, is measured against NumPy by tests/test_vmath.py."""

from __future__ import annotations

import argparse

import mpmath as mp

mp.mp.dps = 50


def quotient(z):
    if z == 0:
        return mp.mpf(-1) / 3
    r = mp.sqrt(z)
    return (mp.atan(r) - r) / (r * z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degree", type=int, default=10)
    degree = parser.parse_args().degree
    top = mp.tan(mp.pi / 8) ** 2
    coefficients, error = mp.chebyfit(quotient, [0, top], degree + 1, error=True)
    print(f"degree {degree}: |p error| {mp.nstr(error, 3)}, relative to r {mp.nstr(error * top / 2**-53, 3)} x 2^-53")
    for c in coefficients:  # highest degree first, for Horner's rule
        print(f"  {float(c).hex()}")


if __name__ == "__main__":
    main()
