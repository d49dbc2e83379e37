"""Where the wheel put losskit's C++ package: headers, ``liblosskit.a`` and its CMake config.

The wheel installs them inside the Python package (``losskit/include``, ``losskit/lib``,
``losskit/share/cmake/losskit``), as pybind11 does, so a C++ build finds them with
``-Dlosskit_DIR=$(python -m losskit --cmake-dir)`` or, under scikit-build-core, through the
``cmake.root`` entry point with no flag at all.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def _existing(path: Path, what: str) -> str:
    if not path.is_dir():
        raise FileNotFoundError(
            f"losskit: no {what} at {path}; this losskit was not installed from a wheel "
            "(pip install .), so it carries no C++ package. Build one with "
            "`cmake -S . -B build && cmake --install build --prefix PREFIX`."
        )
    return str(path)


def get_cmake_dir() -> str:
    """The directory holding ``losskitConfig.cmake``: give it to CMake as ``losskit_DIR``."""
    return _existing(_ROOT / "share" / "cmake" / "losskit", "CMake package")


def get_include() -> str:
    """The directory holding the ``losskit/*.hpp`` public C++ headers."""
    return _existing(_ROOT / "include", "C++ headers")
