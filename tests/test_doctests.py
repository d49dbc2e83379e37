"""The Examples in the docstrings run, so a formula or a sign slip in them fails CI (STYLE.md)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["losskit", "losskit.functional", "losskit.modules", "losskit._reduction"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    globs = {"np": importlib.import_module("numpy"), "losskit": importlib.import_module("losskit")}
    result = doctest.testmod(module, extraglobs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
