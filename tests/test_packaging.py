"""Packaging: the typed Python surface, the C++ package and the portable wheel.

Fast tests (always run):
* the committed stubs ``python/losskit/_core.pyi`` agree with the compiled module (mypy's stubtest);
* ``mypy --strict examples/`` passes;
* ``examples/cpp`` configures, builds and runs against the C++ package of the installed wheel
  (``python -m losskit --cmake-dir``); skipped when losskit runs from a source tree (no wheel).

* the version is written once (``python/losskit/_version.py``), and the compiled module, the
  package metadata and CMake agree with it.

Slow tests (``LOSSKIT_PACKAGING_TESTS=1``, which ``.ci/run`` sets; 4-9 minutes each on CI's 2 cores):
* ``cmake --install`` of a fresh core build into a prefix, then ``examples/cpp`` against it. The
  core is built for the baseline target only (``-DLOSSKIT_CPU_TARGETS=baseline``): this checks the
  install rules and a plain CMake consumer, and a third of the compile is its cost; the install of
  every target is the wheel's (the test above, and the repaired wheel below) and the sanitizer job's
  (``.ci/sanitize`` installs its build and runs ``examples/cpp`` against it on every target);
* ``python -m build --sdist``: the sdist holds the sources, LICENSE and CHANGELOG.md and no build
  output, and its metadata declares the license and the version;
* the wheel is built from that sdist (``pip wheel <sdist>``, so a broken sdist fails here: the one
  compile of the package serves both checks), ``auditwheel repair`` (libgomp bundled), a fresh
  virtual environment holding only numpy and the repaired wheel, and ``tests/data/wheel_smoke.py``
  run there with no compiler on PATH, once per instruction-set target (``LOSSKIT_CPU_TARGET``) and
  once with the run-time choice.

The stubs must be regenerated whenever a binding changes (e.g. after a loss family is merged)::

    pip install pybind11-stubgen
    pybind11-stubgen losskit._core --exit-code -o python   # writes python/losskit/_core.pyi
    python -m mypy.stubtest losskit._core --allowlist tests/data/stubtest_allowlist.txt
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import losskit
from _cpp import build_and_run_example, install_core
from _tools import run, unavailable

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SLOW = os.environ.get("LOSSKIT_PACKAGING_TESTS") == "1"
slow = pytest.mark.skipif(not SLOW, reason="set LOSSKIT_PACKAGING_TESTS=1 (as .ci/run does)")
INSTALLED = "site-packages" in Path(losskit.__file__).parts


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not found")
    return path


# ---- typed Python ------------------------------------------------------------------------------
def test_stubs_match_the_compiled_module():
    pytest.importorskip("mypy")
    run(
        [sys.executable, "-m", "mypy.stubtest", "losskit._core", "--allowlist", str(DATA / "stubtest_allowlist.txt")],
        cwd=REPO,
    )


def test_examples_pass_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    cmd = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "examples/"]
    env = dict(os.environ)
    if not INSTALLED:
        # A source tree on PYTHONPATH: mypy would check losskit itself as user code. Treat it as the
        # installed, typed package it stands for (mypy does not report errors inside those).
        config = tmp_path / "mypy.ini"
        config.write_text("[mypy]\n[mypy-losskit.*]\nignore_errors = True\n")
        env["MYPYPATH"] = str(Path(losskit.__file__).resolve().parents[1])
        cmd[3:3] = ["--config-file", str(config)]
    run(cmd, cwd=REPO, env=env)


# ---- one version ---------------------------------------------------------------------------------
def test_version_is_written_once():
    written = re.findall(r'^__version__ = "([0-9.]+)"$', (REPO / "python/losskit/_version.py").read_text(), re.M)
    assert written == [losskit.__version__]
    # The module was compiled with the version CMake got (SKBUILD_PROJECT_VERSION, or read from
    # _version.py by a plain CMake build).
    assert losskit._core.__version__ == losskit.__version__
    if INSTALLED:
        assert importlib.metadata.version("losskit") == losskit.__version__
    # No second copy: pyproject.toml's version is dynamic, CMakeLists.txt's comes from the file.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and not re.search(r"^version\s*=", pyproject, re.M)
    assert not re.search(r"project\(losskit VERSION [0-9]", (REPO / "CMakeLists.txt").read_text())


# ---- the C++ package -----------------------------------------------------------------------------
def test_cpp_example_against_the_installed_wheel(tmp_path):
    if not INSTALLED:
        pytest.skip("losskit runs from a source tree: no wheel-installed C++ package")
    needs("cmake")
    cmake_dir = run([sys.executable, "-m", "losskit", "--cmake-dir"]).stdout.strip()
    assert Path(cmake_dir, "losskitConfig.cmake").is_file()
    build_and_run_example(tmp_path / "build", f"-Dlosskit_DIR={cmake_dir}")


@slow
def test_cpp_example_against_cmake_install(tmp_path):
    needs("cmake")
    prefix = tmp_path / "prefix"
    install_core(tmp_path / "core", prefix, "-DLOSSKIT_CPU_TARGETS=baseline")
    # Every public header is installed (a directory install: new family headers come along).
    headers = sorted(p.name for p in (REPO / "cpp" / "include" / "losskit").glob("*.hpp"))
    assert sorted(p.name for p in (prefix / "include" / "losskit").glob("*.hpp")) == headers
    out = build_and_run_example(tmp_path / "example", f"-DCMAKE_PREFIX_PATH={prefix}")
    # A build of fewer targets never runs above its highest one, whatever the CPU.
    assert "cpu_target=baseline," in out, out


@pytest.mark.parametrize("targets", ["baseline", "avx2", "baseline;avx512", ""])
def test_cmake_takes_only_a_leading_part_of_the_target_list(tmp_path, targets):
    """LOSSKIT_CPU_TARGETS: the dispatch selects a kernel by the target's index, so a list with a gap
    or without baseline would pick another target's kernels; CMake refuses it at configure time."""
    needs("cmake")
    configure = subprocess.run(
        [
            "cmake",
            "-S",
            str(REPO),
            "-B",
            str(tmp_path),
            "-DLOSSKIT_BUILD_PYTHON=OFF",
            f"-DLOSSKIT_CPU_TARGETS={targets}",
        ],
        capture_output=True,
        text=True,
    )
    if targets == "baseline":
        assert configure.returncode == 0, configure.stderr
    else:
        assert configure.returncode != 0
        assert "LOSSKIT_CPU_TARGETS expected a leading part of" in configure.stderr, configure.stderr


# ---- the sdist, and the portable wheel built from it --------------------------------------------
@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    if importlib.util.find_spec("build") is None:
        unavailable("needs the build package (pip install \".[test]\")")
    dist = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(REPO)])
    (archive,) = dist.glob("losskit-*.tar.gz")
    return archive


@slow
def test_sdist_holds_the_sources_and_the_license(sdist):
    top = f"losskit-{losskit.__version__}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
        pkg_info = archive.extractfile(f"{top}/PKG-INFO").read().decode()  # type: ignore[union-attr]
    for required in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "CMakeLists.txt",
        "python/losskit/_version.py",
        "cpp/include/losskit/losskit.hpp",
        "tests/data/wheel_smoke.py",
    ):
        assert f"{top}/{required}" in names, f"{required} missing from {sdist.name}"
    built = [n for n in names if n.startswith((f"{top}/build/", f"{top}/dist/")) or n.endswith(".so")]
    assert not built, f"build output in the sdist: {built[:5]}"
    assert "License-Expression: BSD-3-Clause" in pkg_info and "License-File: LICENSE" in pkg_info
    assert f"Version: {losskit.__version__}" in pkg_info


@slow
def test_repaired_wheel_from_the_sdist_in_a_fresh_venv_without_compilers(tmp_path, sdist):
    needs("auditwheel")
    dist, wheelhouse, venv = tmp_path / "dist", tmp_path / "wheelhouse", tmp_path / "venv"
    # Built from the sdist, not the work tree: what pip does for a user without a matching wheel.
    run([sys.executable, "-m", "pip", "wheel", str(sdist), "--no-deps", "-w", str(dist)])
    (built,) = dist.glob("losskit-*.whl")
    run(["auditwheel", "repair", str(built), "-w", str(wheelhouse)])
    (wheel,) = wheelhouse.glob("losskit-*manylinux*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("losskit.libs/libgomp") for n in names), "libgomp is not bundled"
    for required in (
        "losskit/py.typed",
        "losskit/_core.pyi",
        "losskit/lib/liblosskit.a",
        "losskit/include/losskit/losskit.hpp",
        "losskit/share/cmake/losskit/losskitConfig.cmake",
        "losskit/share/cmake/losskit/losskitConfigVersion.cmake",
        "losskit/share/cmake/losskit/losskitTargets.cmake",
        f"losskit-{losskit.__version__}.dist-info/licenses/LICENSE",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    headers = {p.name for p in (REPO / "cpp" / "include" / "losskit").glob("*.hpp")}
    assert headers <= {Path(n).name for n in names if n.startswith("losskit/include/losskit/")}

    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "numpy", str(wheel)])
    # Only the venv on PATH: no compiler, no build tree, no PYTHONPATH.
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "OMP_NUM_THREADS": "2", "LOSSKIT_SMOKE_NO_COMPILER": "1"}
    targets = (
        run([str(python), "-c", "import losskit; print(losskit._core.available_cpu_targets())"], env=env, cwd=tmp_path)
        .stdout.strip()
        .split(",")
    )
    assert "baseline" in targets
    smoke = str(DATA / "wheel_smoke.py")
    print(run([str(python), smoke], env=env, cwd=tmp_path).stdout)  # the run-time choice
    for target in targets:
        print(run([str(python), smoke], env={**env, "LOSSKIT_CPU_TARGET": target}, cwd=tmp_path).stdout)
