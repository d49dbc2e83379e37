"""Fuzz: cross_entropy (class indices and probabilities), nll_loss, multi_margin_loss,
multilabel_margin_loss and multilabel_soft_margin_loss against torch 2.13: unbatched, batched,
K-dimensional and empty inputs, C = 1 and C = 100000 with few rows, every integer target dtype,
out-of-range and ignored indices, weights, label smoothing, p and margin (valid and not), special
values, layouts and converted dtypes, on 1-8 threads. See _fuzz.py for the oracle."""

from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy as np
import pytest
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
from test_classification import index_target  # the family's builder of class-index targets

INT_DTYPES = (np.int64, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint32)
IGNORE_INDICES = (-100, -100, 0, 1, -1, 5, 2**40)
SMOOTHING = (0.0, 0.0, 0.05, 0.5, 1.0, -0.1, 1.5, math.nan)


def _dtype(draw: Any) -> Any:
    return draw(st.sampled_from(FLOAT_DTYPES * 4 + CONVERTED_DTYPES))


@st.composite
def input_shapes(draw: Any, kdim: bool = True, zero_d: bool = False, large: bool = True) -> Tuple[Tuple[int, ...], int]:
    """(shape, C): unbatched (C,), (N, C), (N, C, d1[, d2]); rarely C = 100000 with N <= 2."""
    if large and rarely(draw, 15):
        C = 100_000
        return (draw(st.sampled_from([(C,), (1, C), (2, C)])), C)
    if zero_d and rarely(draw, 11):
        return (), 1
    C = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 7, 0]))
    form = draw(st.sampled_from(["unbatched", "batched", "batched", "kdim" if kdim else "batched"]))
    if form == "unbatched":
        return (C,), C
    N = draw(st.sampled_from([0, 1, 2, 3, 5]))
    if form == "kdim":
        return (N, C) + tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=2))), C
    return (N, C), C


def _logits(draw: Any, rng: np.random.Generator, shape: Tuple[int, ...], dtype: Any) -> Any:
    x = values(rng, shape, np.float64, draw(st.sampled_from(PROFILES)), scale=draw(st.sampled_from([0.1, 1.0, 10.0])))
    return present(convert_values(x, dtype), draw(st.sampled_from(LAYOUTS)))


def _weight(draw: Any, rng: np.random.Generator, C: int, other_dtype: Any, shape: Tuple[int, ...] = ()) -> Any:
    kind = draw(st.sampled_from(["none", "none", "class", "class", "special", "wrong"] + (["input"] if shape else [])))
    if kind == "none":
        return None
    shp = {"class": (C,), "special": (C,), "wrong": (C + 1,), "input": shape}[kind]
    w = rng.uniform(0.0, 2.0, shp) if kind != "special" else values(rng, shp, np.float64, "extreme")
    return present(convert_values(w, other_dtype), draw(st.sampled_from(LAYOUTS)))


def _target_indices(draw: Any, rng: np.random.Generator, tshape: Tuple[int, ...], C: int, ignore_index: int) -> Any:
    t = index_target(rng, tshape, max(C, 1), ignore_index if -(2**31) < ignore_index < 2**31 else None, 0.3)
    if rarely(draw, 9) and t.size:  # out of range: IndexError in both
        t.flat[int(rng.integers(0, t.size))] = draw(st.sampled_from([C, C + 3, -1, -7, 2**31]))
    tdtype = draw(st.sampled_from(INT_DTYPES))
    if t.size and (t.min() < np.iinfo(tdtype).min or t.max() > np.iinfo(tdtype).max):
        tdtype = np.int64
    return present(np.asarray(t.astype(tdtype)), draw(st.sampled_from(LAYOUTS)))


def _case(
    draw: Any,
    rng: np.random.Generator,
    name: str,
    x: Any,
    target: Any,
    ref_target: Any,
    kwargs: Dict[str, Any],
    reduction_eff: str,
    loss_shape: Tuple[int, ...],
    slots: Tuple[Any, ...] = (0,),
    target_grad: bool = False,
    stricter: Any = None,
    loose_empty_mean: bool = False,
    what: str = "",
) -> Case:
    cd = compute_dtype(np.asarray(x).dtype)
    torch_kwargs = {k: (ref_array(v, cd) if k == "weight" else v) for k, v in kwargs.items()}
    go, bad_go = grad_output_for(rng, draw, loss_shape, reduction_eff, cd)
    if kwargs.get("reduction") == "elementwise_mean":
        stricter = either(stricter, r"reduction expected one of")
    return Case(
        name=name,
        args=(x, target),
        kwargs=kwargs,
        ref_args=(ref_array(x, cd), ref_target),
        torch_fn=getattr(TF, name),
        torch_kwargs=torch_kwargs,
        slots=slots,
        target_grad=target_grad,
        grad_output=go,
        bad_grad_output=bad_go,
        stricter=stricter,
        loose_empty_mean=loose_empty_mean,
        what=what,
    )


@st.composite
def cross_entropy_cases(draw: Any, name: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    shape, C = draw(input_shapes())
    dtype = _dtype(draw)
    other = dtype if not rarely(draw, 5) else _dtype(draw)
    x = _logits(draw, rng, shape, dtype)
    cd = compute_dtype(np.asarray(x).dtype)
    kwargs: Dict[str, Any] = {}
    red = reduction_kwargs(draw, kwargs)
    w = _weight(draw, rng, C, other)
    if w is not None:
        kwargs["weight"] = w
    probabilities = name == "cross_entropy" and rarely(draw, 4)
    if draw(st.booleans()) or probabilities:
        kwargs["ignore_index"] = draw(st.sampled_from(IGNORE_INDICES))
    ignore = kwargs.get("ignore_index", -100)
    if name == "cross_entropy" and draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.sampled_from(SMOOTHING))
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    stricter = None
    ls = kwargs.get("label_smoothing", 0.0)
    if not ls >= 0.0:  # torch 2.13 checks only ls <= 1 and takes a negative or NaN one as 0
        stricter = r"label_smoothing expected a value between 0.0 and 1.0"
    target_grad = False
    if probabilities:
        kind = draw(st.sampled_from(["rows", "rows", "raw", "wrong_shape", "integer_shape"]))
        if kind == "integer_shape":  # an integer target of the input's shape: ValueError (documented)
            target = rng.integers(0, max(C, 1), shape)
            ref_target = target
            stricter = either(stricter, r"target")
        else:
            p = rng.random(shape if kind != "wrong_shape" else shape[:-1] + (C + 1,) if shape else (2,))
            if kind == "rows" and len(shape) >= 1 and C > 0:
                axis = 0 if len(shape) == 1 else 1
                p = p / np.maximum(p.sum(axis=axis, keepdims=True), 1e-9)
            if kind == "raw":
                p = values(rng, p.shape, np.float64, draw(st.sampled_from(PROFILES)))
            target = present(
                convert_values(p, other if np.dtype(other).kind == "f" else np.float64), draw(st.sampled_from(LAYOUTS))
            )
            ref_target = ref_array(target, cd)
            target_grad = draw(st.booleans())
    else:
        target = _target_indices(draw, rng, tshape, C, ignore)
        ref_target = np.asarray(target).astype(np.int64)
    slots = (0, 1) if target_grad else (0,)
    loss_shape = tshape
    return _case(
        draw,
        rng,
        name,
        x,
        target,
        ref_target,
        kwargs,
        red,
        loss_shape,
        slots,
        target_grad,
        stricter,
        what=f"shape={shape} {np.dtype(dtype).name} probabilities={probabilities}",
    )


@st.composite
def margin_cases(draw: Any, name: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    # multilabel_margin_loss is O(C^2) per row in torch: no C = 100000 there
    shape, C = draw(input_shapes(kdim=False, zero_d=True, large=name != "multilabel_margin_loss"))
    dtype = _dtype(draw)
    other = dtype if not rarely(draw, 5) else _dtype(draw)
    x = _logits(draw, rng, shape, dtype)
    cd = compute_dtype(np.asarray(x).dtype)
    kwargs: Dict[str, Any] = {}
    red = reduction_kwargs(draw, kwargs)
    stricter = None
    batch = shape[:1] if len(shape) == 2 else ()
    if name == "multi_margin_loss":
        if draw(st.booleans()):
            kwargs["p"] = draw(st.sampled_from([1, 2, 2.0, 1, 3, 0]))
        if draw(st.booleans()):
            kwargs["margin"] = draw(st.sampled_from([1.0, 0.3, 0.0, -1.0, 1e38, math.inf, math.nan]))
        w = _weight(draw, rng, C, other)
        if w is not None:
            kwargs["weight"] = w
        tshape = batch if not rarely(draw, 7) else draw(st.sampled_from([(1,), (2,), batch + (1,)]))
        target = _target_indices(draw, rng, tshape, C, -100)
        ref_target = np.asarray(target).astype(np.int64)
        loss_shape = batch
    elif name == "multilabel_margin_loss":
        tshape = shape if not rarely(draw, 7) else draw(st.sampled_from([shape[:-1] + (C + 1,), (2,) + shape]))
        t = rng.integers(-1, max(C, 1), tshape)
        if rarely(draw, 7) and t.size:
            t.flat[int(rng.integers(0, t.size))] = draw(st.sampled_from([C, -2, 2**31]))
        tdtype = draw(st.sampled_from([np.int64, np.int32, np.int8, np.int16]))
        if (t > np.iinfo(tdtype).max).any():
            tdtype = np.int64
        target = present(np.asarray(t.astype(tdtype)), draw(st.sampled_from(LAYOUTS)))
        ref_target = np.asarray(target).astype(np.int64)
        loss_shape = batch
    else:  # multilabel_soft_margin_loss
        tshape = shape if not rarely(draw, 7) else draw(st.sampled_from([shape[-1:], (1,) + shape[1:]]))
        y = (rng.random(tshape) < 0.4).astype(np.float64)
        if rarely(draw, 5):
            y = values(rng, tshape, np.float64, draw(st.sampled_from(PROFILES)))
        target = present(convert_values(y, other), draw(st.sampled_from(LAYOUTS)))
        ref_target = ref_array(target, cd)
        # torch broadcasts a smaller target, and any weight that broadcasts (a (2,) weight against
        # one class); losskit needs the target of the input's shape and a weight of (C,) or the
        # input's shape (docs/api.md, docs/classification.md)
        stricter = either(stricter, r"(target|weight) expected")
        w = _weight(draw, rng, C, other, shape)
        if w is not None:
            kwargs["weight"] = w
        loss_shape = shape[:-1]
    target_grad = name == "multilabel_soft_margin_loss" and draw(st.booleans())
    return _case(
        draw,
        rng,
        name,
        x,
        target,
        ref_target,
        kwargs,
        red,
        loss_shape,
        (0, 1) if target_grad else (0,),
        target_grad,
        stricter,
        loose_empty_mean=name != "multilabel_soft_margin_loss" and red == "mean",
        what=f"shape={shape} {np.dtype(dtype).name}",
    )


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@fuzz()
@given(st.data())
def test_fuzz_cross_entropy_nll(name: str, data: Any) -> None:
    run_case(data.draw(cross_entropy_cases(name)))


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"])
@fuzz(scale=0.7)
@given(st.data())
def test_fuzz_margin_losses(name: str, data: Any) -> None:
    run_case(data.draw(margin_cases(name)))
