"""Fuzz: cosine_embedding_loss, triplet_margin_loss and triplet_margin_with_distance_loss (every
distance name, Python callables, misbehaving callables) against torch 2.13: 0-d, unbatched,
batched and (*, D) inputs, broadcasting rows, D = 0, labels other than +-1, p (valid, 0, negative,
inf, NaN), eps, margin, swap, special values, layouts and converted dtypes, on 1-8 threads.
See _fuzz.py for the oracle."""

from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy as np
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import (
    either,
    rarely,
    reduction_kwargs,
    CONVERTED_DTYPES,
    FLOAT_DTYPES,
    LAYOUTS,
    PROFILES,
    Case,
    compute_dtype,
    convert_values,
    fuzz,
    grad_output_for,
    present,
    ref_array,
    run_case,
    thread_count,
    values,
)
from test_embedding import _np_cubed_cosine, _np_manhattan, _torch_cubed_cosine, _torch_manhattan, _torch_with_distance

# documented: the vector dimension D must agree (torch broadcasts a size-1 D); p > 0; a
# non-empty D for p = inf (docs/embedding.md, the triplet_margin_loss docstring)
VECTOR_D = r"(last dimension|vector dimension)"


def _dtype(draw: Any) -> Any:
    return draw(st.sampled_from(FLOAT_DTYPES * 4 + CONVERTED_DTYPES))


def _array(draw: Any, rng: np.random.Generator, shape: Tuple[int, ...], dtype: Any, profile: Any = None) -> Any:
    profile = profile or draw(st.sampled_from(PROFILES))
    return present(convert_values(values(rng, shape, np.float64, profile), dtype), draw(st.sampled_from(LAYOUTS)))


@st.composite
def row_shapes(draw: Any, k: int, zero_d: bool) -> Tuple[Tuple[int, ...], ...]:
    """k shapes of rows of D values: mostly equal, sometimes broadcasting or mismatched."""
    D = draw(st.sampled_from([1, 2, 3, 5, 8, 0, 33]))
    form = draw(st.sampled_from(["batched", "batched", "unbatched", "multi", "zero-d" if zero_d else "batched"]))
    if form == "zero-d":
        base: Tuple[int, ...] = ()
    elif form == "unbatched":
        base = (D,)
    elif form == "multi":
        base = (draw(st.integers(0, 3)), draw(st.integers(1, 3)), D)
    else:
        base = (draw(st.sampled_from([0, 1, 2, 4, 7, 300])), D)
    shapes = [base] * k
    kind = draw(st.sampled_from(["same"] * 5 + ["row1", "badD", "ndim", "rows"]))
    if kind != "same" and base:
        i = draw(st.integers(0, k - 1))
        if kind == "row1" and len(base) >= 2:
            shapes[i] = (1,) + base[1:]
        elif kind == "badD":
            shapes[i] = base[:-1] + (draw(st.sampled_from([1, base[-1] + 1])),)
        elif kind == "ndim":
            shapes[i] = base[1:] if len(base) > 1 else (1,) + base
        elif kind == "rows" and len(base) >= 2:
            shapes[i] = (base[0] + 2,) + base[1:]
    return tuple(shapes)


def _common(draw: Any, rng: np.random.Generator, shapes: Any) -> Tuple[Tuple[Any, ...], np.dtype, Dict[str, Any]]:
    dtype = _dtype(draw)
    other = dtype if not rarely(draw, 5) else _dtype(draw)
    arrays = tuple(_array(draw, rng, s, dtype if k == 0 else other) for k, s in enumerate(shapes))
    kwargs: Dict[str, Any] = {}
    return arrays, compute_dtype(np.asarray(arrays[0]).dtype), kwargs


def _loss_shape(shapes: Any) -> Tuple[int, ...]:
    try:
        rows = np.broadcast_shapes(*[s[:-1] for s in shapes])
    except ValueError:
        rows = shapes[0][:-1]
    return rows


@st.composite
def cosine_cases(draw: Any) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    s1, s2 = draw(row_shapes(2, zero_d=False))
    (x1, x2), cd, kwargs = _common(draw, rng, (s1, s2))
    rows = _loss_shape((s1, s2))
    tshape = rows if not rarely(draw, 7) else draw(st.sampled_from([(), (1,), (3,), rows + (1,)]))
    labels = rng.choice([-1.0, 1.0], size=tshape)
    if rarely(draw, 5):
        labels = rng.choice([-1.0, 1.0, 0.0, 2.0, 0.5, np.nan], size=tshape)
    t = present(
        convert_values(labels, draw(st.sampled_from([np.float64, np.float32, np.int64, np.int8]))),
        draw(st.sampled_from(LAYOUTS)),
    )
    red = reduction_kwargs(draw, kwargs)
    if draw(st.booleans()):
        kwargs["margin"] = draw(st.sampled_from([0.0, 0.3, -0.5, 1.0, 2.0, math.nan]))
    go, bad = grad_output_for(rng, draw, rows, red, cd)
    return Case(
        name="cosine_embedding_loss",
        args=(x1, x2, t),
        kwargs=kwargs,
        ref_args=(ref_array(x1, cd), ref_array(x2, cd), ref_array(t, cd)),
        torch_fn=TF.cosine_embedding_loss,
        torch_kwargs=dict(kwargs),
        slots=(0, 1),
        grad_output=go,
        bad_grad_output=bad,
        stricter=_stricter(kwargs, (s1, s2)),
        what=f"shapes={(s1, s2, tshape)}",
    )


def _stricter(kwargs: Dict[str, Any], shapes: Any, vector_d: bool = True) -> Any:
    return either(
        r"reduction expected one of" if kwargs.get("reduction") == "elementwise_mean" else None,
        VECTOR_D if vector_d and len({s[-1:] for s in shapes}) > 1 else None,
    )


P_VALUES = (2, 2.0, 1.0, 1.5, 3.0, 0.5, math.inf, 0, -1.0, math.nan)


@st.composite
def triplet_cases(draw: Any) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    shapes = draw(row_shapes(3, zero_d=True))
    args, cd, kwargs = _common(draw, rng, shapes)
    if rarely(draw, 4):  # identical vectors: the eps path and swap ties
        args = (args[0], np.array(args[0], copy=True), args[2]) if shapes[0] == shapes[1] else args
    red = reduction_kwargs(draw, kwargs)
    for key, choices in (
        ("margin", [1.0, 0.5, 0.0, -1.0, 1e38, math.nan]),
        ("p", P_VALUES),
        ("eps", [1e-6, 0.0, 0.1, -1e-6, math.nan]),
        ("swap", [True, False]),
    ):
        if draw(st.booleans()):
            kwargs[key] = draw(st.sampled_from(choices))
    stricter = _stricter(kwargs, shapes)
    p = kwargs.get("p", 2)
    if not p > 0:
        stricter = either(stricter, r"p expected a number greater than 0")
    if p == math.inf and shapes[0] and shapes[0][-1] == 0:
        stricter = either(stricter, r"non-empty last dimension")
    rows = _loss_shape(shapes)
    go, bad = grad_output_for(rng, draw, rows, red, cd)
    return Case(
        name="triplet_margin_loss",
        args=args,
        kwargs=kwargs,
        ref_args=tuple(ref_array(a, cd) for a in args),
        torch_fn=TF.triplet_margin_loss,
        torch_kwargs=dict(kwargs),
        slots=(0, 1, 2),
        grad_output=go,
        bad_grad_output=bad,
        stricter=stricter,
        what=f"shapes={shapes}",
    )


def _bad_callable(kind: str) -> Any:
    if kind == "not_a_tuple":
        return lambda x1, x2: np.abs(x1 - x2).sum(-1)
    if kind == "raises":

        def fn(x1: Any, x2: Any) -> Any:
            raise ValueError("distance_function: user error")

        return fn
    if kind == "bad_vjp":
        return lambda x1, x2: (np.abs(x1 - x2).sum(-1), lambda g: (np.zeros(3), x2))
    if kind == "strings":
        return lambda x1, x2: (np.array(["a"] * max(1, len(np.atleast_1d(x1)))), lambda g: (x1, x2))
    raise AssertionError(kind)


@st.composite
def triplet_distance_cases(draw: Any) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    shapes = draw(row_shapes(3, zero_d=False))
    args, cd, kwargs = _common(draw, rng, shapes)
    red = reduction_kwargs(draw, kwargs, legacy=False)
    for key, choices in (("margin", [1.0, 0.5, 0.0, -1.0, 1e38, math.nan]), ("swap", [True, False])):
        if draw(st.booleans()):
            kwargs[key] = draw(st.sampled_from(choices))
    kind = draw(
        st.sampled_from(
            ["euclidean", "cosine", "squared_euclidean", None, "manhattan", "cubed_cosine", "bad_name", "bad_callable"]
        )
    )
    stricter = _stricter(kwargs, shapes)
    invalid = None
    torch_kwargs = {k: v for k, v in kwargs.items()}
    if kind in ("euclidean", "cosine", "squared_euclidean"):
        kwargs["distance_function"] = kind
        torch_fn: Any = _torch_with_distance(kind)
    elif kind is None:
        if draw(st.booleans()):
            kwargs["distance_function"] = None
        torch_fn = TF.triplet_margin_with_distance_loss
    elif kind in ("manhattan", "cubed_cosine") and len(set(shapes)) == 1:  # their vjps do not un-broadcast
        np_fn, t_fn = {
            "manhattan": (_np_manhattan, _torch_manhattan),
            "cubed_cosine": (_np_cubed_cosine, _torch_cubed_cosine),
        }[kind]
        kwargs["distance_function"] = np_fn
        torch_kwargs["distance_function"] = t_fn
        torch_fn = TF.triplet_margin_with_distance_loss
        stricter = _stricter(kwargs, shapes, vector_d=False)  # a callable sees the arrays as they are
    elif kind == "bad_name":
        kwargs["distance_function"] = draw(st.sampled_from(["manhattan", "", "EUCLIDEAN", 3, 1.5, b"cosine"]))
        invalid = r"distance_function"
        torch_fn = TF.triplet_margin_with_distance_loss
    elif kind == "bad_callable":
        bad_kind = draw(st.sampled_from(["not_a_tuple", "raises", "bad_vjp", "strings"]))
        kwargs["distance_function"] = _bad_callable(bad_kind)
        invalid = r"distance_function|distances|vjp"
        torch_fn = TF.triplet_margin_with_distance_loss
    else:  # a callable with rows that broadcast: the built-in euclidean distance instead
        kwargs["distance_function"] = "euclidean"
        torch_fn = _torch_with_distance("euclidean")
        kind = "euclidean"
    if invalid is not None and (
        stricter is not None or len(set(shapes)) > 1 or kwargs["reduction"] not in ("none", "mean", "sum")
    ):
        invalid = r"."  # something else is wrong too: any clean error
    # A bad callable meeting bad shapes may itself fail first (NumPy's own broadcasting error in
    # the user's function or vjp), and losskit passes such an error on unchanged.
    foreign = kind == "bad_callable" and invalid == r"."
    rows = _loss_shape(shapes)
    go, bad = grad_output_for(rng, draw, rows, red, cd)
    case = Case(
        name="triplet_margin_with_distance_loss",
        args=args,
        kwargs=kwargs,
        ref_args=tuple(ref_array(a, cd) for a in args),
        torch_fn=torch_fn,
        torch_kwargs=torch_kwargs,
        slots=(0, 1, 2),
        grad_output=go,
        bad_grad_output=bad,
        stricter=stricter,
        invalid=invalid,
        foreign_errors=foreign,
        what=f"shapes={shapes} distance={kind}",
    )
    if kind == "bad_callable" and bad_kind == "bad_vjp":  # its vjp runs in the backward only
        case.extra["raising_modes"] = ("backward", "forward_backward")
    return case


@fuzz()
@given(st.data())
def test_fuzz_cosine_embedding(data: Any) -> None:
    run_case(data.draw(cosine_cases()))


@fuzz()
@given(st.data())
def test_fuzz_triplet_margin(data: Any) -> None:
    run_case(data.draw(triplet_cases()))


@fuzz()
@given(st.data())
def test_fuzz_triplet_margin_with_distance(data: Any) -> None:
    run_case(data.draw(triplet_distance_cases()))
