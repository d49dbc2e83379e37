"""Builds and runs the C++ checks in tests/cpp_checks/ against losskit's static core library: the
one next to the extension in a development build, or the one the wheel installs
(losskit/lib/liblosskit.a), so CI on an installed package runs them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest

import losskit

ROOT = Path(__file__).resolve().parent.parent


def static_library() -> Optional[Path]:
    here = Path(losskit._core.__file__).resolve().parent
    for candidate in (here / "liblosskit.a", here / "lib" / "liblosskit.a"):
        if candidate.exists():
            return candidate
    return None


def run_check(name: str, tmp_path: Path, internal: bool = False) -> subprocess.CompletedProcess:
    """Compiles tests/cpp_checks/<name>.cpp (with the source tree's internal headers when
    `internal`), links the core, runs it, and returns the finished process."""
    lib = static_library()
    cxx = shutil.which("c++") or shutil.which("g++")
    if lib is None or cxx is None:
        pytest.skip("needs a C++ compiler and losskit's liblosskit.a (a dev build or an installed wheel)")
    includes = [f"-I{ROOT / 'cpp/include'}"] + ([f"-I{ROOT / 'cpp/src'}"] if internal else [])
    exe = tmp_path / name
    subprocess.run([cxx, "-O1", "-std=c++17", "-fopenmp", *includes, str(ROOT / "tests/cpp_checks" / f"{name}.cpp"),
                    str(lib), "-o", str(exe)], check=True, capture_output=True)
    return subprocess.run([str(exe)], capture_output=True, text=True)
