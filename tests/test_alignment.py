"""Misaligned arrays: C-contiguous data that does not start on a multiple of its element size
(``np.frombuffer(buf, dtype, offset=1)``, a field of a packed record, a memory map at an odd
offset). The C++ core refuses a misaligned pointer (undefined behaviour to read in C++) with
ValueError naming the argument, before writing anything: tests/cpp_checks/alignment.cpp misaligns
every array argument of every public entry point in turn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from losskit import _core


def unaligned(a: Any) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts one byte past an aligned address."""
    a = np.ascontiguousarray(a)
    buf = np.zeros(a.nbytes + 16, np.uint8)  # NumPy allocates it aligned to 16 bytes at least
    offset = 1 if (buf.ctypes.data + 1) % a.dtype.alignment else 2
    out = np.frombuffer(buf, a.dtype, count=a.size, offset=offset).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def test_the_core_refuses_a_misaligned_array_from_python():
    """Bypassing the conversion layer, the extension module still refuses misaligned data (no
    undefined behaviour): ValueError naming the argument."""
    x = np.ones(8)
    with pytest.raises(ValueError, match=r"mse_loss: input expected an array aligned to 8 bytes, got address"):
        _core.mse_loss((unaligned(x), x, None), "mean")
    t = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match=r"nll_loss: target expected an array aligned to 8 bytes"):
        _core.nll_loss(0, np.ones((2, 3)), unaligned(t), None, None, "mean", -100)


def test_cpp_core_refuses_misaligned_pointers(tmp_path):
    """Builds and runs tests/cpp_checks/alignment.cpp: every array argument of every public entry
    point of every family, misaligned in turn, raises losskit::ValueError naming it before anything
    is written."""
    from _cpp import run_check

    run = run_check("alignment", tmp_path)
    assert run.returncode == 0, (run.stdout[-4000:], run.stderr[-2000:])
    for family in ("pointwise", "classification", "embedding", "ctc", "large_vocab"):
        assert f"{family}: " in run.stdout, run.stdout
    assert " 0 misaligned arguments refused" not in run.stdout, run.stdout
