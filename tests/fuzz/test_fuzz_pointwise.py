"""Fuzz: the twelve element-wise losses (forward, _backward, _forward_backward) against torch 2.13
over drawn shapes (0-d, empty, broadcasting, mismatched), dtypes (float32/64 and the converted
float16, integer and boolean inputs), layouts (Fortran, strided, negative strides, read-only,
stride-0), adversarial values and every keyword, on 1-8 threads. See _fuzz.py for the oracle."""

from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import (
    rarely,
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
    reductions,
    run_case,
    thread_count,
    values,
)
from test_pointwise import SPEC  # the family's builders of valid data (make, diff, target)

FLOAT_TARGET_GRAD = {
    "l1_loss",
    "mse_loss",
    "huber_loss",
    "smooth_l1_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "kl_div",
}
NAMES = sorted(SPEC)

# Keyword values: ordinary ones, edges, and ones torch refuses (non-positive delta, negative beta).
NUMBERS = (0.0, 1e-30, 0.3, 1.0, 2.5, 1e38, -1.0, math.inf, -math.inf, math.nan)


@st.composite
def shapes(draw: Any) -> Tuple[int, ...]:
    kind = draw(st.sampled_from(["small", "small", "small", "scalar", "empty", "large"]))
    if kind == "scalar":
        return ()
    if kind == "large":  # past the element-wise driver's threading grain
        return draw(st.sampled_from([(70_001,), (130, 517), (3, 40_000)]))
    dims = draw(st.lists(st.integers(0 if kind == "empty" else 1, 5), min_size=1, max_size=3))
    if kind == "empty" and 0 not in dims:
        dims[draw(st.integers(0, len(dims) - 1))] = 0
    return tuple(dims)


def other_shape(draw: Any, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """A target/weight shape: mostly the input's, sometimes a broadcastable or a wrong one."""
    kind = draw(st.sampled_from(["same"] * 6 + ["last", "ones", "wrong", "extra"]))
    if kind == "same" or not shape:
        return shape
    if kind == "last":
        return shape[-1:]
    if kind == "ones":
        return tuple(1 if draw(st.booleans()) else d for d in shape)
    if kind == "extra":
        return (2,) + shape
    return shape[:-1] + (shape[-1] + 1,)


def dtype_of(draw: Any) -> Any:
    return draw(st.sampled_from(FLOAT_DTYPES * 4 + CONVERTED_DTYPES))


def data(draw: Any, rng: np.random.Generator, name: str, role: str, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """Values for one argument: the family's valid builder, then adversarial values."""
    profile = draw(st.sampled_from(PROFILES))
    spec = SPEC[name]
    if role == "input" and name == "binary_cross_entropy":
        x = rng.uniform(0, 1, shape)
        if profile != "plain" and x.size:
            x = np.where(rng.random(shape) < 0.3, rng.choice([0.0, 1.0, 1e-30, 1 - 1e-7, -0.1, 1.1, np.nan], shape), x)
        return x.astype(np.float64)
    if role == "var":
        v = rng.uniform(0.0, 2.0, shape)
        if profile != "plain" and v.size:
            v = np.where(rng.random(shape) < 0.3, rng.choice([0.0, 1e-30, 1e38, np.inf, np.nan, -1.0], shape), v)
        return v
    if role in ("weight", "pos_weight"):
        return values(rng, shape, np.float64, profile) if profile == "extreme" else rng.uniform(0, 2, shape)
    base = spec.make(rng, shape, np.float64)
    arr = base[{"input": 0, "input1": 0, "input2": 1, "target": 1 if name != "margin_ranking_loss" else 2}[role]]
    if profile != "plain" and role != "target" or profile == "extreme":
        arr = values(rng, shape, np.float64, profile, scale=3.0)
    return np.asarray(arr, np.float64)


def finish(draw: Any, arr: np.ndarray, dtype: Any) -> Any:
    """Converts to the drawn dtype and memory layout; 'stride0' changes values and is applied
    first, so the reference sees what losskit sees."""
    arr = convert_values(arr, dtype)
    return present(arr, draw(st.sampled_from(LAYOUTS)))


@st.composite
def pointwise_cases(draw: Any, name: str) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    thread_count(draw)
    shape = draw(shapes())
    dtype = dtype_of(draw)
    other_dtype = dtype if not rarely(draw, 5) else dtype_of(draw)
    cd = compute_dtype(dtype)

    roles = ("input1", "input2", "target") if name == "margin_ranking_loss" else ("input", "target")
    arrays = []
    for k, role in enumerate(roles):
        shp = shape if k == 0 else other_shape(draw, shape)
        arrays.append(finish(draw, data(draw, rng, name, role, shp, np.float64), dtype if k == 0 else other_dtype))

    kwargs: Dict[str, Any] = {}
    extra = ("batchmean",) if name == "kl_div" else ()
    reduction = draw(reductions(extra))
    legacy = rarely(draw, 13) and name not in ("gaussian_nll_loss", "huber_loss")
    if legacy:
        kwargs["size_average"] = draw(st.sampled_from([None, True, False]))
        kwargs["reduce"] = draw(st.sampled_from([True, False]))
        reduction_eff = "none" if not kwargs["reduce"] else ("sum" if kwargs["size_average"] is False else "mean")
    else:
        kwargs["reduction"] = reduction
        reduction_eff = reduction
    torch_kwargs: Dict[str, Any] = {}
    ref_kw: Dict[str, Any] = {}
    stricter = None
    if reduction == "elementwise_mean" and not legacy:
        stricter = r"reduction expected one of"

    def weight_kw(key: str, allow_last: bool = True) -> None:
        choice = draw(st.sampled_from(["no", "no", "input", "last" if allow_last else "input", "wrong"]))
        if choice == "no":
            return
        shp = {"input": shape, "last": shape[-1:], "wrong": other_shape(draw, shape) + (1,)}[choice]
        w = finish(draw, data(draw, rng, name, key, shp, np.float64), other_dtype)
        kwargs[key] = w
        ref_kw[key] = ref_array(w, cd)

    if name in ("l1_loss", "mse_loss", "huber_loss"):
        weight_kw("weight", allow_last=False)
    if name == "huber_loss" and draw(st.booleans()):
        kwargs["delta"] = ref_kw["delta"] = draw(st.sampled_from(NUMBERS))
    if name == "smooth_l1_loss" and draw(st.booleans()):
        kwargs["beta"] = ref_kw["beta"] = draw(st.sampled_from(NUMBERS))
    if name == "binary_cross_entropy":
        weight_kw("weight")
    if name == "binary_cross_entropy_with_logits":
        weight_kw("weight")
        weight_kw("pos_weight")
    if name == "poisson_nll_loss":
        for key in ("log_input", "full"):
            if draw(st.booleans()):
                kwargs[key] = ref_kw[key] = draw(st.booleans())
        if draw(st.booleans()):
            kwargs["eps"] = ref_kw["eps"] = draw(st.sampled_from([1e-8, 1e-6, 0.0, 1.0, -1.0, math.nan]))
    if name == "kl_div" and draw(st.booleans()):
        kwargs["log_target"] = ref_kw["log_target"] = draw(st.booleans())
    if name in ("margin_ranking_loss", "hinge_embedding_loss") and draw(st.booleans()):
        kwargs["margin"] = ref_kw["margin"] = draw(st.sampled_from(NUMBERS))

    slots: Tuple[Any, ...] = (0, 1) if name == "margin_ranking_loss" else (0,)
    args = list(arrays)
    ref_args = [ref_array(a, cd) for a in arrays]
    if name == "gaussian_nll_loss":
        vkind = draw(st.sampled_from(["input", "input", "nolast", "one", "python", "numpy", "wrong", "zero-d"]))
        if vkind in ("python", "numpy"):
            v = float(rng.uniform(0, 2))
            if rarely(draw, 5):
                v = draw(st.sampled_from([0.0, -1.0, math.nan, math.inf]))
            scalar_type = np.dtype(other_dtype if np.dtype(other_dtype).kind == "f" else np.float64).type
            var: Any = v if vkind == "python" else scalar_type(v)
            ref_var: Any = float(var)
            slots = (0, None)
        else:
            vshape = {
                "input": shape,
                "nolast": shape[:-1],
                "one": shape[:-1] + (1,) if shape else (1,),
                "wrong": other_shape(draw, shape) + (2,),
                "zero-d": (),
            }[vkind]
            var = finish(draw, data(draw, rng, name, "var", vshape, np.float64), other_dtype)
            ref_var = ref_array(var, cd)
            slots = (0, 2)
        args.append(var)
        ref_args.append(ref_var)
        for key in ("full",):
            if draw(st.booleans()):
                kwargs[key] = ref_kw[key] = draw(st.booleans())
        if draw(st.booleans()):
            kwargs["eps"] = ref_kw["eps"] = draw(st.sampled_from([1e-6, 0.5, 0.0, -1.0, 1e-30]))
    target_grad = name in FLOAT_TARGET_GRAD and draw(st.booleans())
    if target_grad:
        slots = slots + (1,)
    torch_kwargs = {k: v for k, v in kwargs.items() if k not in ref_kw}
    torch_kwargs.update(ref_kw)

    loss_shape = np.broadcast_shapes(*[np.shape(a) for a in arrays]) if _broadcastable(arrays) else shape
    go, bad_go = grad_output_for(rng, draw, loss_shape, reduction_eff, cd)
    return Case(
        name=name,
        args=tuple(args),
        kwargs=kwargs,
        ref_args=tuple(ref_args),
        torch_fn=getattr(TF, name),
        torch_kwargs=torch_kwargs,
        slots=slots,
        target_grad=target_grad,
        grad_output=go,
        bad_grad_output=bad_go,
        stricter=stricter,
        what=f"shape={shape} dtype={np.dtype(dtype).name}/{np.dtype(other_dtype).name}",
    )


def _broadcastable(arrays: Any) -> bool:
    try:
        np.broadcast_shapes(*[np.shape(a) for a in arrays])
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("name", NAMES)
@fuzz(scale=0.5)
@given(st.data())
def test_fuzz_pointwise(name: str, data: Any) -> None:
    run_case(data.draw(pointwise_cases(name)))
