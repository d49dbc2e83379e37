"""Fuzz: every public function of losskit.functional (each loss, its _backward and
_forward_backward) with one argument replaced by a value of the wrong kind (None, strings, bytes,
lists, ragged lists, dicts, complex numbers, arrays where a number is expected, object and string
arrays, integers past int64, NaN). Each call returns or raises a clean error: ValueError,
TypeError or IndexError naming an argument; never another exception and never a crash.
test_every_public_function_is_fuzzed keeps the campaign complete as losses are added."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from _calls import BASE, entry_points, public_functions
from _fuzz import assert_clean_error, attempt, fuzz, thread_count

BAD_VALUES: Tuple[Any, ...] = (
    None,
    "x",
    "1.5",
    "",
    b"mean",
    [1.0],
    [[1.0, 2.0], [3.0]],
    (),
    {},
    {"a": 1},
    1j,
    np.ones(2),
    np.ones((2, 2)),
    np.array(["a", "b"]),
    np.array([object()]),
    np.zeros(3, complex),
    np.array(1.5),
    np.float32("nan"),
    2**70,
    -(2**70),
    -1,
    0,
    1.5,
    True,
    float("nan"),
    float("inf"),
    object(),
    np.int64(3),
    np.uint64(2**63 + 1),
    slice(1),
)


def test_every_public_function_is_fuzzed() -> None:
    """Every public loss function (and its backward/fused forms) has a base call here, and every
    loss class of losskit is fuzzed by test_fuzz_classes.py: a new loss fails this until it is."""
    from test_fuzz_classes import CLASSES

    covered = {f for name in BASE for f in entry_points(name)}
    assert set(public_functions()) == covered, set(public_functions()) ^ covered
    classes = {n for n in losskit.__all__ if isinstance(getattr(losskit, n), type) and n != "IndexError"}
    assert classes == set(CLASSES), classes ^ set(CLASSES)


def _call(fname: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[bool, Any]:
    return attempt(getattr(F, fname), *args, **kwargs)


@st.composite
def mutated_calls(draw: Any) -> Tuple[str, str, Tuple[Any, ...], Dict[str, Any], str]:
    name = draw(st.sampled_from(sorted(BASE)))
    fname = draw(st.sampled_from(entry_points(name)))
    fn = getattr(F, fname)
    args, kwargs = BASE[name]
    args, kwargs = list(args), dict(kwargs)
    go_first = fname.endswith("_backward") and not fname.endswith("forward_backward")
    params = [p for p in inspect.signature(fn).parameters.values()]
    positional = [p.name for p in params if p.default is inspect.Parameter.empty]
    if go_first:
        args = [None] + args
    target = draw(st.sampled_from([p.name for p in params]))
    bad = draw(st.sampled_from(BAD_VALUES))
    if target in positional:
        args[positional.index(target)] = bad
    else:
        kwargs[target] = bad
    return name, fname, tuple(args), kwargs, target


@fuzz(scale=4)
@given(mutated_calls(), st.data())
def test_fuzz_wrong_kinds_of_arguments(call: Any, data: Any) -> None:
    name, fname, args, kwargs, target = call
    thread_count(data.draw)
    ok, res = _call(fname, args, kwargs)
    if not ok:
        assert_clean_error(res, getattr(F, fname), f"{fname} with {target}={kwargs.get(target, '(positional)')!r}")


@pytest.mark.parametrize("name", sorted(BASE))
def test_base_calls_are_valid(name: str) -> None:
    for fname in entry_points(name):
        args, kwargs = BASE[name]
        if fname.endswith("_backward") and not fname.endswith("forward_backward"):
            args = (None,) + args
        ok, res = _call(fname, args, kwargs)
        assert ok, f"{fname}: {res!r}"
