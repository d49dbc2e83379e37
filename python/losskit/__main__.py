"""``python -m losskit``: where the C++ package is, for build systems (as ``python -m pybind11``).

cmake -S . -B build -Dlosskit_DIR="$(python -m losskit --cmake-dir)"
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from ._paths import get_cmake_dir, get_include


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m losskit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--cmake-dir", action="store_true", help="print the directory of losskitConfig.cmake")
    parser.add_argument("--include-dir", action="store_true", help="print the C++ include directory")
    args = parser.parse_args(argv)
    if not (args.cmake_dir or args.include_dir):
        parser.print_help()
        return 0
    try:
        if args.cmake_dir:
            print(get_cmake_dir())
        if args.include_dir:
            print(get_include())
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
