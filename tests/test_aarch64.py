"""The C++ core off x86-64: cross-compiled for 64-bit Arm Linux with Debian's cross toolchain
(cmake/toolchains/aarch64-linux-gnu.cmake), `cmake --install`ed into a prefix, and then every C++
check of tests/cpp_checks/ and examples/cpp (a find_package(losskit) consumer of that prefix) built
with the cross compiler and run under qemu-user. There only the baseline kernels are compiled, and
any x86 assumption outside the x86 dispatch (an intrinsic, __builtin_cpu_*, an x86 flag or header)
fails this build.

Needs `apt-get install g++-aarch64-linux-gnu qemu-user` and cmake. About a minute on 2 cores,
nearly all of it compiling the core (Release, core only, -j2).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from _cpp import ROOT, build_and_run_example, build_check, check_names, install_core
from _tools import require_tool

TRIPLE = "aarch64-linux-gnu"
TOOLCHAIN = ROOT / "cmake" / "toolchains" / f"{TRIPLE}.cmake"
SYSROOT = Path("/usr") / TRIPLE  # the aarch64 loader and libraries (libgomp) for qemu-user's -L


@pytest.fixture(scope="module")
def cross(tmp_path_factory) -> tuple[str, list[str], Path]:
    """(the cross g++, the qemu-user command line, the prefix the cross-built core is installed in)."""
    cxx = require_tool(f"{TRIPLE}-g++", f"g++-{TRIPLE}")
    qemu = require_tool("qemu-aarch64", "qemu-user")
    require_tool("cmake", "cmake")
    tmp = tmp_path_factory.mktemp("aarch64")
    install_core(tmp / "core", tmp / "prefix", f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}")
    return cxx, [qemu, "-L", str(SYSROOT)], tmp / "prefix"


def installed(prefix: Path, name: str) -> Path:
    """One installed file; GNUInstallDirs decides lib/ or lib/<multiarch>/."""
    (path,) = prefix.rglob(name)
    return path


@pytest.mark.parametrize("name", check_names())
def test_cpp_check_under_qemu(name, cross, tmp_path):
    cxx, qemu, prefix = cross
    exe = build_check(name, tmp_path, cxx, installed(prefix, "liblosskit.a"))
    # The emulated vmath check runs its strided subset even under LOSSKIT_EXHAUSTIVE=1: the full
    # 2^32 sweep is for the native targets (test_vmath.py); under qemu it would take hours.
    env = {k: v for k, v in os.environ.items() if k != "LOSSKIT_EXHAUSTIVE"}
    proc = subprocess.run([*qemu, str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{name} exited {proc.returncode} under qemu-aarch64:\n{proc.stdout}\n{proc.stderr}"


def test_cpp_example_under_qemu(cross, tmp_path):
    _, qemu, prefix = cross
    out = build_and_run_example(
        tmp_path / "example",
        f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
        f"-Dlosskit_DIR={installed(prefix, 'losskitConfig.cmake').parent}",
        emulator=qemu,
    )
    assert "cpu_target=baseline" in out, out  # the only target compiled off x86-64
