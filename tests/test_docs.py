"""Docstring examples run as doctests (a formula slip shows up as a wrong example), and every
public loss has a docstring stating its formula."""

from __future__ import annotations

import doctest
import inspect

import losskit
import losskit.functional as F
import losskit.modules as M


def test_doctests_pass():
    for module in (losskit, F, M):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, f"{module.__name__}: {result.failed} doctest failures"
    assert doctest.testmod(F).attempted >= 12


def test_every_loss_documents_its_formula():
    for name, fn in inspect.getmembers(F, inspect.isfunction):
        if name.startswith("_") or fn.__module__ != F.__name__:
            continue
        assert fn.__doc__, f"{name} has no docstring"
        if not name.endswith(("_backward", "_forward_backward")):
            assert ".. math::" in fn.__doc__ and ">>>" in fn.__doc__, f"{name}: formula or example missing"
