"""Smoke test for an installed losskit wheel, run by tests/test_packaging.py inside a fresh virtual
environment holding only numpy and the repaired wheel, with PATH reduced to that environment's
bin/ (no compiler reachable) and LOSSKIT_CPU_TARGET naming the target under test.

Values are analytic (no torch in that environment):
  mse_loss(x=(0.5, -1, 2, 3), y=(0, 1, 2, 1)) = (0.25 + 4 + 0 + 4) / 4 = 2.0625,
      d/dx = 2 (x - y) / 4 = (0.25, -1, 0, 1);
  binary_cross_entropy_with_logits(x=(0, ln 3), y=(1, 0)) = (ln 2 + 2 ln 2) / 2 = 1.5 ln 2,
      d/dx = (sigmoid(x) - y) / 2 = (-0.25, 0.375).
A large input (several blocks, odd tail) runs the vector kernels and their threads.
"""

import os
import shutil
import subprocess
import sys

import numpy as np

import losskit
import losskit.functional as F

here = os.path.dirname(os.path.abspath(losskit.__file__))
assert "site-packages" in here, f"losskit imported from {here}, not from the virtual environment"
if os.environ.get("LOSSKIT_SMOKE_NO_COMPILER") == "1":  # set by tests/test_packaging.py
    for compiler in ("gcc", "g++", "cc", "c++", "clang"):
        assert shutil.which(compiler) is None, f"a compiler is on PATH: {shutil.which(compiler)}"

want = os.environ.get("LOSSKIT_CPU_TARGET")
available = losskit._core.available_cpu_targets().split(",")
if want:
    assert losskit.cpu_target() == want, (losskit.cpu_target(), want)
else:  # the run-time choice picks the best target this CPU has
    assert losskit.cpu_target() == available[0], (losskit.cpu_target(), available)

for dtype in (np.float32, np.float64):
    x = np.array([0.5, -1.0, 2.0, 3.0], dtype)
    y = np.array([0.0, 1.0, 2.0, 1.0], dtype)
    loss, grad = losskit.MSELoss().forward_backward(x, y)
    np.testing.assert_allclose(float(loss), 2.0625, rtol=1e-6)
    np.testing.assert_allclose(grad, [0.25, -1.0, 0.0, 1.0], rtol=1e-6)
    assert grad.dtype == dtype

    x = np.array([0.0, np.log(3.0)], dtype)
    y = np.array([1.0, 0.0], dtype)
    np.testing.assert_allclose(float(F.binary_cross_entropy_with_logits(x, y)), 1.5 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits_backward(1.0, x, y), [-0.25, 0.375], rtol=1e-6)

    big = np.linspace(-3, 3, 1_000_003).astype(dtype)
    zeros = np.zeros_like(big)
    expected = float(np.mean(big.astype(np.float64) ** 2))
    np.testing.assert_allclose(float(F.mse_loss(big, zeros)), expected, rtol=1e-5)

try:
    F.mse_loss(np.zeros(3), np.zeros(2))
except ValueError as error:
    assert "mse_loss" in str(error)
else:
    raise AssertionError("no ValueError for mismatched shapes")

# The C++ package travels in the wheel.
cmake_dir = subprocess.run(
    [sys.executable, "-m", "losskit", "--cmake-dir"], check=True, capture_output=True, text=True
).stdout.strip()
assert os.path.isfile(os.path.join(cmake_dir, "losskitConfig.cmake")), cmake_dir
assert os.path.isfile(os.path.join(losskit.get_include(), "losskit", "losskit.hpp"))

print(
    f"wheel smoke ok: losskit {losskit.__version__}, target {losskit.cpu_target()}, "
    f"{losskit.get_num_threads()} threads, from {here}"
)
