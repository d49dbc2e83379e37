"""The cross-target check: every public loss computed on the host, then again on emulated CPUs
that lack the host's instruction sets (qemu-user), and compared.

Lowering LOSSKIT_CPU_TARGET on this CPU cannot prove a lower target safe: an AVX-512 instruction
that leaks into code the baseline target runs (a table built by the AVX-512 kernels, a static
initialiser, an inline helper) executes fine here. Under `qemu-x86_64 -cpu Nehalem-v2` (x86-64-v2,
NumPy's own minimum: no AVX at all) and `-cpu Haswell` (AVX2 and FMA, no AVX-512) it dies with
SIGILL instead. The run must also pick the right target there, and give the very numbers the host
gives when lowered to that target (bitwise, except where NumPy's BLAS, which has its own per-CPU
kernels, computes the logits), and the host's own numbers to torch's test tolerances.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import losskit
from _tools import require_tool

EVERY_LOSS = Path(__file__).resolve().parent / "data" / "every_loss.py"
CPUS = {"Nehalem-v2": "baseline", "Haswell": "avx2"}
# Outputs that pass through NumPy's matrix products: OpenBLAS picks its kernels per CPU.
BLAS_KEYS = ("linear_ce", "LinearCrossEntropyLoss", "AdaptiveLogSoftmaxWithLoss", "info_nce")
# torch.testing.assert_close's defaults
# float16: results rounded once from float32 ones that differ in their last bits between targets
# (vector exp, sum order) land at most one float16 unit apart: torch's float16 tolerances.
TOLERANCES = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7), "float16": (1e-3, 1e-5)}

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 CPUs are emulated for an x86-64 host"
)


def _run(out: Path, inputs: Path, qemu: list, **env: str) -> dict:
    environ = {**os.environ, **env}
    package_root = str(
        Path(os.path.abspath(losskit.__file__)).parents[1]
    )  # not resolved: a package of symlinks (the sanitizer job) stays itself
    environ["PYTHONPATH"] = os.pathsep.join([package_root, environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [*qemu, sys.executable, str(EVERY_LOSS), "run", str(inputs), str(out)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"every_loss.py under {qemu or 'the host'} exited with {proc.returncode}"
        f"{' (SIGILL: an instruction this CPU lacks)' if proc.returncode in (-4, 132) else ''}:\n"
        + "\n".join(line for line in proc.stderr.splitlines() if "TCG doesn't support" not in line)[-3000:]
    )
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("every_loss") / "inputs.npz"
    subprocess.run([sys.executable, str(EVERY_LOSS), "make", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def host_best(inputs) -> dict:
    return _run(inputs.parent / "host.npz", inputs, [])


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_every_loss_on_an_emulated_cpu(cpu, inputs, host_best):
    qemu = require_tool("qemu-x86_64", "qemu-user")
    target = CPUS[cpu]
    lowered = _run(inputs.parent / f"host_{target}.npz", inputs, [], LOSSKIT_CPU_TARGET=target)
    emulated = _run(inputs.parent / f"{cpu}.npz", inputs, [qemu, "-cpu", cpu])

    assert str(emulated.pop("cpu_target")) == target, f"{cpu} should run the {target} kernels"
    assert str(emulated.pop("available_cpu_targets")).split(",")[0] == target
    assert str(lowered.pop("cpu_target")) == target
    for extra in ("available_cpu_targets",):
        lowered.pop(extra)
    best = {k: v for k, v in host_best.items() if k not in ("cpu_target", "available_cpu_targets")}
    assert set(emulated) == set(lowered) == set(best) and len(emulated) > 400

    not_bitwise = []
    for key, got in emulated.items():
        rtol, atol = TOLERANCES[key.split(".")[0]]
        np.testing.assert_allclose(
            got,
            best[key],
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            err_msg=f"{key}: {cpu} ({target}) against the host's best target",
        )
        if any(k in key for k in BLAS_KEYS):
            np.testing.assert_allclose(got, lowered[key], rtol=rtol, atol=atol, equal_nan=True, err_msg=key)
        elif not np.array_equal(got, lowered[key], equal_nan=True):
            not_bitwise.append(key)
    assert not not_bitwise, f"{cpu} differs from the host lowered to {target} in {not_bitwise}"
