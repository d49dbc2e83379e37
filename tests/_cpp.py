"""Builds and runs losskit's C++ programs for the tests: the checks in tests/cpp_checks/ and the
CMake consumer examples/cpp. Natively they link the static core next to the extension in a
development build, or the one the wheel installs (losskit/lib/liblosskit.a), so CI on an installed
package runs them too; tests/test_aarch64.py builds the same programs with a cross compiler against
a cross-built core and runs them under qemu-user.

Under the sanitizer job (.ci/sanitize sets LOSSKIT_SANITIZE=1) the core is built with
-fsanitize=address,undefined, so the checks are compiled and linked with the same flags and run
under LeakSanitizer too (detect_leaks=1, which the Python process itself cannot use: CPython and
torch leak by design); examples/cpp gets the flags from the sanitized losskit::losskit target."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import pytest

from _tools import run

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "tests" / "cpp_checks"
SANITIZE = os.environ.get("LOSSKIT_SANITIZE") == "1"
# CMakeLists.txt's LOSSKIT_SANITIZE_FLAGS, and -g for the reports' line numbers.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]


def child_env() -> dict[str, str]:
    """The environment of the compilers, CMake and C++ programs run here: under the sanitizer job,
    without the runtimes that the job preloads into Python (our programs link them) and with
    LeakSanitizer on."""
    env = dict(os.environ)
    if SANITIZE:
        env.pop("LD_PRELOAD", None)
        options = [o for o in env.get("ASAN_OPTIONS", "").split(":") if o and not o.startswith("detect_leaks=")]
        env["ASAN_OPTIONS"] = ":".join([*options, "detect_leaks=1"])
    return env


def check_names() -> list[str]:
    """Every C++ check, tests/cpp_checks/<name>.cpp."""
    return sorted(p.stem for p in CHECKS.glob("*.cpp"))


def uses_internal_headers(source: Path) -> bool:
    """Whether a check includes one of the core's internal headers (cpp/src), not only the public
    ones (cpp/include) that an installed package has."""
    included = re.findall(r'^\s*#\s*include\s+"([^"]+)"', source.read_text(), re.MULTILINE)
    return any((ROOT / "cpp" / "src" / header).is_file() for header in included)


# The checks are compiled with -O1, except alignment.cpp: it instantiates every entry point of every
# family for its pairs of arrays and spends its run time in the (optimised) core, so its own code
# gains nothing from optimisation, which cost most of its compile: 119 s at -O1 and 52 s at -O0
# alone, 700 s and 183 s under the sanitizers (the sanitizer job's longest test).
OPTIMISATION = {"alignment": "-O0"}


def build_check(name: str, out_dir: Path, cxx: str, lib: Path, flags: Sequence[str] = ()) -> Path:
    """Compiles tests/cpp_checks/<name>.cpp with `cxx` (and `flags`) against the static core library
    `lib` (with the source tree's internal headers where the check includes them) and returns the
    program."""
    source = CHECKS / f"{name}.cpp"
    includes = [f"-I{ROOT / 'cpp/include'}"]
    if uses_internal_headers(source):
        includes.append(f"-I{ROOT / 'cpp/src'}")
    exe = out_dir / name
    run(
        [
            cxx,
            OPTIMISATION.get(name, "-O1"),
            "-std=c++17",
            "-fopenmp",
            *flags,
            *includes,
            str(source),
            str(lib),
            "-o",
            str(exe),
        ],
        env=child_env(),
    )
    return exe


def static_library() -> Optional[Path]:
    import losskit

    here = Path(losskit._core.__file__).resolve().parent
    for candidate in (here / "liblosskit.a", here / "lib" / "liblosskit.a"):
        if candidate.exists():
            return candidate
    return None


def run_check(name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Builds tests/cpp_checks/<name>.cpp against the core the imported losskit was built with, runs
    it here, and returns the finished process."""
    lib = static_library()
    cxx = shutil.which("c++") or shutil.which("g++")
    if lib is None or cxx is None:
        pytest.skip("needs a C++ compiler and losskit's liblosskit.a (a dev build or an installed wheel)")
    exe = build_check(name, tmp_path, cxx, lib, SANITIZE_FLAGS if SANITIZE else ())
    return subprocess.run([str(exe)], capture_output=True, text=True, env=child_env())


def cmake_generator() -> list[str]:
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def install_core(build: Path, prefix: Path, *cmake_args: str) -> None:
    """Configures, builds (Release, C++ core only, -j2) and `cmake --install`s the core into
    `prefix`."""
    run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            *cmake_generator(),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLOSSKIT_BUILD_PYTHON=OFF",
            *cmake_args,
        ],
        env=child_env(),
    )
    run(["cmake", "--build", str(build), "-j2"], env=child_env())
    run(["cmake", "--install", str(build), "--prefix", str(prefix)], env=child_env())


def build_and_run_example(build: Path, *cmake_args: str, emulator: Sequence[str] = ()) -> str:
    """Configures and builds examples/cpp (a find_package(losskit) consumer), runs it (through
    `emulator`, e.g. qemu-user, when given), checks that it passed and returns its output."""
    run(
        ["cmake", "-S", str(ROOT / "examples" / "cpp"), "-B", str(build), *cmake_generator(), *cmake_args],
        env=child_env(),
    )
    run(["cmake", "--build", str(build), "-j2"], env=child_env())
    out = run([*emulator, str(build / "losskit_example")], env=child_env()).stdout
    assert "all checks passed" in out, out
    return out
