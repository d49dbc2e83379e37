"""The version of losskit, written here only: scikit-build-core reads it into the package metadata
and CMake (``SKBUILD_PROJECT_VERSION``; a plain CMake build reads this file), and
``losskit.__version__`` imports it, so a source tree reports the same version as a wheel."""

__version__ = "0.1.0"
