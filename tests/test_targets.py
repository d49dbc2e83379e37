"""Every compiled instruction-set target gives torch's answers: the pointwise comparisons run once
per target this CPU supports (the full suite runs on the best one)."""

from __future__ import annotations

import numpy as np
import pytest

import losskit
from losskit import _core
from test_pointwise import SPECS, check, resolve

TARGETS = _core.available_cpu_targets().split(",")


def test_cpu_target_reported():
    assert losskit.cpu_target() in TARGETS
    with pytest.raises(ValueError, match="set_cpu_target"):
        _core.set_cpu_target("sse9")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_loss_on_every_target(spec, target):
    before = _core.cpu_target()
    _core.set_cpu_target(target)
    try:
        rng = np.random.default_rng(3)
        for dtype in (np.float32, np.float64):
            shape = (70, 300)  # several blocks, and an odd tail for the vector loops
            args = spec.make(rng, shape, dtype)
            for kw in spec.variants:
                for reduction in ("none", "mean"):
                    check(spec, args, resolve(kw, rng, shape, dtype), reduction, rng, what=target)
    finally:
        _core.set_cpu_target(before)


def _in_subprocess(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("target", TARGETS)
def test_environment_forces_a_lower_target(target):
    assert _in_subprocess("import losskit; print(losskit.cpu_target())", LOSSKIT_CPU_TARGET=target) == target


def test_environment_cannot_raise_the_target():
    best = TARGETS[0]
    got = _in_subprocess("import losskit; print(losskit.cpu_target())", LOSSKIT_CPU_TARGET="avx512")
    assert got == best  # never above what the CPU supports


def test_omp_num_threads_is_honoured():
    assert _in_subprocess("import losskit; print(losskit.get_num_threads())", OMP_NUM_THREADS="3") == "3"
