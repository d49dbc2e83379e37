"""Fuzz: linear_cross_entropy (forward, _backward, _forward_backward) against torch 2.13's
linear_cross_entropy: unbatched and batched input, N = 0, H = 0, V = 1 and V = 20000 with few rows,
bias or not, class weights (special values too), ignore_index (None, -100, a class, out of range),
label smoothing, out-of-range targets, every integer target dtype, special values, layouts and
converted dtypes, chunk sizes 1, odd, N, > N, and the invalid 0, negative, fractional, bool and
string ones, on 1-8 threads. See _fuzz.py for the oracle."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import (
    either,
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
from test_large_vocab import _torch_lce


@st.composite
def lce_cases(draw: Any) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    big = rarely(draw, 10)
    N = draw(st.sampled_from([1, 2])) if big else draw(st.sampled_from([0, 1, 2, 5, 13, 40]))
    H = draw(st.sampled_from([1, 4])) if big else draw(st.sampled_from([0, 1, 3, 8]))
    V = 20_000 if big else draw(st.sampled_from([1, 2, 5, 17]))
    batched = N != 1 or draw(st.booleans())
    dtype = draw(st.sampled_from(FLOAT_DTYPES * 4 + CONVERTED_DTYPES))
    other = dtype if not rarely(draw, 5) else draw(st.sampled_from(FLOAT_DTYPES + CONVERTED_DTYPES))

    def arr(shape: Any, scale: float = 1.0, profile: Optional[str] = None, dt: Any = None) -> Any:
        v = values(rng, shape, np.float64, profile or draw(st.sampled_from(PROFILES)), scale)
        return present(convert_values(v, dt if dt is not None else other), draw(st.sampled_from(LAYOUTS)))

    x = arr((N, H) if batched else (H,), dt=dtype)
    W = arr((V, H), 1 / math.sqrt(max(H, 1)))
    invalid = None
    stricter = None
    shape_kind = draw(st.sampled_from(["ok"] * 12 + ["bad_h", "kdim", "bad_bias", "bad_weight", "bad_target"]))
    if shape_kind == "bad_h":
        W = arr((V, H + 1))
    elif shape_kind == "kdim":  # (C, d1, H): torch's K-dimensional form, which losskit does not take
        W = arr((V, 1, H))
        stricter = r"linear_weight"
    kwargs: Dict[str, Any] = {}
    bias = draw(st.booleans())
    if bias:
        kwargs["linear_bias"] = arr((V + 1,) if shape_kind == "bad_bias" else (V,))
    if draw(st.booleans()) or shape_kind == "bad_weight":
        kind = "wrong" if shape_kind == "bad_weight" else draw(st.sampled_from(["ok", "ok", "special"]))
        kwargs["weight"] = (
            arr((V + 2,))
            if kind == "wrong"
            else present(convert_values(rng.uniform(0, 2, V), other), "c")
            if kind == "ok"
            else arr((V,), profile="extreme")
        )
    ignore = -100
    if draw(st.booleans()):
        ignore = draw(st.sampled_from([None, -100, 0, 1, V - 1, -1, 2**40]))
        kwargs["ignore_index"] = ignore
    ignore_value = -100 if ignore is None else ignore
    if draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, -0.1, 1.5, math.nan]))
    if not kwargs.get("label_smoothing", 0.0) >= 0.0:
        stricter = either(stricter, r"label_smoothing expected a value between 0.0 and 1.0")  # torch: only <= 1
    red = draw(reductions())
    kwargs["reduction"] = red
    if red == "elementwise_mean":
        stricter = either(stricter, r"reduction expected one of")

    tshape = (N,) if batched else ()
    t = rng.integers(0, V, tshape)
    if t.size and draw(st.booleans()):
        t = np.where(rng.random(tshape) < 0.3, ignore_value if -(2**62) < ignore_value < 2**62 else -100, t)
    if t.size and rarely(draw, 9):  # out of range: IndexError in both
        t.flat[0] = draw(st.sampled_from([V, V + 4, -3]))
    if shape_kind == "bad_target":
        t = rng.integers(0, V, (N + 1,))
    tkind = draw(st.sampled_from(["int64"] * 6 + ["int32", "int16", "uint8", "probabilities"]))
    if tkind == "probabilities":  # torch takes class probabilities; losskit's chunked path does not
        target: Any = rng.random((N, V) if batched else (V,))
        stricter = either(stricter, r"class-probability targets are not supported")
        ref_t: Any = np.asarray(target, dtype=compute_dtype(np.asarray(x).dtype))
    else:
        tdt = np.dtype(tkind)
        if t.size and (t.min() < np.iinfo(tdt).min or t.max() > np.iinfo(tdt).max):
            tdt = np.dtype(np.int64)
        target = present(np.asarray(t.astype(tdt)), draw(st.sampled_from([lay for lay in LAYOUTS if lay != "stride0"])))
        ref_t = np.asarray(target, np.int64)

    chunk = draw(st.sampled_from([None, None, 1, 2, 3, 7, N, N + 5, 10**9, 3.0]))
    if rarely(draw, 6):
        chunk = draw(st.sampled_from([0, -1, 1.5, True, "4", math.inf]))
    if chunk is not None:
        kwargs["chunk_size"] = chunk
        if isinstance(chunk, (bool, str)) or not (chunk >= 1 and float(chunk).is_integer()):
            invalid = r"chunk_size|reduction|label_smoothing|ignore_index|target|input|linear"

    cd = compute_dtype(np.asarray(x).dtype)
    b = kwargs.get("linear_bias")
    torch_kwargs = {
        k: (ref_array(v, cd) if k == "weight" else v)
        for k, v in kwargs.items()
        if k not in ("chunk_size", "linear_bias")
    }
    go, bad_go = grad_output_for(rng, draw, tshape, red, cd)
    return Case(
        name="linear_cross_entropy",
        args=(x, W, target),
        kwargs=kwargs,
        ref_args=(ref_array(x, cd), ref_array(W, cd), ref_t, None if b is None else ref_array(b, cd)),
        torch_fn=_torch_lce,
        torch_kwargs=torch_kwargs,
        slots=(0, 1, 3) if bias else (0, 1, None),
        grad_output=go,
        bad_grad_output=bad_go,
        stricter=stricter,
        invalid=invalid,
        what=f"N={N} H={H} V={V} batched={batched} shape_kind={shape_kind} chunk={chunk!r}",
    )


@fuzz(scale=1.5)
@given(st.data())
def test_fuzz_linear_cross_entropy(data: Any) -> None:
    run_case(data.draw(lce_cases()))
