"""Fuzz: ctc_loss (forward, _backward, _forward_backward) against torch 2.13 over batched and
unbatched log_probs, padded and concatenated targets, every blank, zero_infinity, reductions,
special values (-inf, NaN, +inf log-probabilities), layouts and converted dtypes, and adversarial
lengths: input_lengths past T, target_lengths past S, zero, negative, counts that do not match the
batch, concatenated targets whose length is not the sum, labels equal to blank or outside [0, C),
lengths given as lists, tuples, Python ints, floats and bools.

Calls that are valid by ctc_loss's contract go to torch (value and gradient compared); invalid
ones are never given to torch (it reads out of bounds for some) and must raise a clean error
naming one of ctc_loss's arguments. See _fuzz.py for the oracle."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import (
    rarely,
    CONVERTED_DTYPES,
    FLOAT_DTYPES,
    LAYOUTS,
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
)
from test_ctc import torch_ctc

VALUE_LAYOUTS = tuple(lay for lay in LAYOUTS if lay != "stride0")  # for labels and lengths: same values


def _log_softmax(rng: np.random.Generator, shape: Tuple[int, ...], special: str) -> np.ndarray:
    logits = rng.standard_normal(shape) * 2.0
    if logits.size == 0 or shape[-1] == 0:
        return logits
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    if special != "plain":
        mask = rng.random(shape) < (0.15 if special == "special" else 0.5)
        # Finite log-probabilities stay within -1e8: the recursion adds them along a path, and at
        # -1e38 (float64 spacing 2e22) every alpha and beta of a path through such a cell is exact
        # only to 1e22, so exp(alpha + beta + nll - lp) is rounding noise in torch and losskit
        # alike (torch's logaddexp of two equal such terms absorbs the log 2 that losskit's
        # linear sum keeps: a 2x gradient). At -1e8 the O(1) differences between paths survive.
        lp = np.where(mask, rng.choice([-np.inf, np.nan, np.inf, -1e4, 0.0, -1e8], shape), lp)
    return lp


ADVERSARIAL = (
    "il>T",
    "tl>S",
    "negative_il",
    "negative_tl",
    "il_count",
    "tl_count",
    "T=0",
    "N=0",
    "C=0",
    "blank_out_of_range",
    "label_is_blank",
    "label_out_of_range",
    "concat_length",
    "rank",
    "float_targets",
    "float_lengths",
    "bool_lengths",
)


def _lengths(draw: Any, values: List[int], batched: bool, kind: Optional[str] = None) -> Any:
    """The lengths as the caller gives them: an array of some integer dtype, a list, a tuple or
    (unbatched) a Python int or 0-d array; `kind` 'float' or 'bool' makes the TypeError cases."""
    kind = kind or draw(st.sampled_from(["int64", "int64", "int32", "uint8", "int16", "list", "tuple", "scalar"]))
    arr = np.array(values, dtype=np.int64)
    if kind == "float":
        return arr.astype(np.float64)
    if kind == "bool":
        return arr.astype(bool)
    if kind == "list":
        return values
    if kind == "tuple":
        return tuple(values)
    if kind == "scalar" and not batched and len(values) == 1:
        return int(values[0]) if draw(st.booleans()) else np.array(values[0])
    dtype = np.dtype(kind if kind in ("int32", "uint8", "int16") else np.int64)
    if arr.size and (arr.min() < np.iinfo(dtype).min or arr.max() > np.iinfo(dtype).max):
        dtype = np.dtype(np.int64)
    return present(arr.astype(dtype), draw(st.sampled_from(VALUE_LAYOUTS)))


@st.composite
def ctc_cases(draw: Any) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    thread_count(draw)
    # one adversarial feature at a time (about a third of the draws), else a valid call
    adv = draw(st.sampled_from(("none",) * 34 + ADVERSARIAL))
    big = rarely(draw, 10)  # past the serial threshold (16384 cells): threaded
    T = draw(st.integers(40, 90)) if big else draw(st.sampled_from([1, 2, 3, 5, 8, 12]))
    N = draw(st.integers(4, 8)) if big else draw(st.sampled_from([1, 1, 2, 3, 4]))
    C = draw(st.integers(3, 30)) if big else draw(st.sampled_from([1, 2, 3, 4, 5, 7]))
    S = draw(st.integers(2, 30)) if big else draw(st.integers(0, 6))
    T, N, C = (0 if adv == "T=0" else T), (0 if adv == "N=0" else N), (0 if adv == "C=0" else C)
    batched = N != 1 or draw(st.booleans())
    blank = draw(st.integers(0, C - 1)) if C > 0 else 0
    if adv == "blank_out_of_range":
        blank = draw(st.sampled_from([-1, C, C + 3, 2**40]))
    labels = [c for c in range(C) if c != blank]

    il = [int(v) for v in rng.integers(0, T + 1, N)]
    tl = [int(v) for v in rng.integers(0, S + 1, N)] if labels else [0] * N  # C = 1: only blank, no target
    if N and draw(st.booleans()):
        il[0] = T
    if rarely(draw, 7):  # valid edge: every length zero
        il = [0] * N if draw(st.booleans()) else il
        tl = [0] * N
    if adv == "il>T" and N:
        il[int(rng.integers(0, N))] = T + draw(st.sampled_from([1, 5, 2**40]))
    elif adv == "tl>S" and N:
        tl[int(rng.integers(0, N))] = S + draw(st.sampled_from([1, 3, 2**40]))
    elif adv == "negative_il" and N:
        il[int(rng.integers(0, N))] = draw(st.sampled_from([-1, -(2**40)]))
    elif adv == "negative_tl" and N:
        tl[int(rng.integers(0, N))] = draw(st.sampled_from([-1, -5]))
    elif adv == "il_count":
        il = il + [T] if draw(st.booleans()) or not il else il[:-1]
    elif adv == "tl_count":
        tl = tl + [0] if draw(st.booleans()) or not tl else tl[:-1]
    lengths_ok = len(il) == N and len(tl) == N and all(0 <= v <= T for v in il) and all(0 <= v <= S for v in tl)

    padded = rng.choice(labels or [0], size=(N, S)) if S > 0 and N > 0 else np.zeros((N, S), np.int64)
    label_error = False
    if adv in ("label_is_blank", "label_out_of_range") and lengths_ok and max(tl, default=0) > 0:
        n = int(np.argmax(tl))
        bad = blank if adv == "label_is_blank" else draw(st.sampled_from([C, C + 5, -1, -3]))
        padded[n, int(rng.integers(0, tl[n]))] = bad
        label_error = True
    for n in range(min(N, len(tl))):  # padding past the length is never read: garbage there
        if 0 <= tl[n] < S:
            padded[n, tl[n] :] = draw(st.sampled_from([-1, 99, blank]))
    concatenated = lengths_ok and draw(st.booleans())
    concat_error = False
    if concatenated:
        targets = np.concatenate([padded[n, : tl[n]] for n in range(N)] + [np.zeros(0, np.int64)])
        if adv == "concat_length":  # not exactly sum(target_lengths) labels
            grow = draw(st.booleans()) or not targets.size
            targets = np.append(targets, labels[0] if labels else 0) if grow else targets[:-1]
            concat_error = True
    else:
        targets = padded
    if not batched:
        shape: Tuple[int, ...] = (T, C)
        if not concatenated:
            targets = targets.reshape(1, S) if N == 1 else targets
    else:
        shape = (T, N, C)
    if adv == "rank":
        shape = draw(st.sampled_from([(T,), (T, N, C, 1), (T, N + 1, C)]))
    tdtype = draw(st.sampled_from([np.int64, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint64]))
    if targets.size and (targets.min() < np.iinfo(tdtype).min or targets.max() > np.iinfo(tdtype).max):
        tdtype = np.int64
    t_given: Any = present(np.asarray(targets.astype(tdtype)), draw(st.sampled_from(VALUE_LAYOUTS)))
    if adv == "float_targets":
        t_given = np.asarray(targets, dtype=np.float64)
    il_given = _lengths(
        draw,
        il,
        batched,
        "float" if adv == "float_lengths" else "bool" if adv == "bool_lengths" and draw(st.booleans()) else None,
    )
    tl_given = _lengths(
        draw,
        tl,
        batched,
        "bool"
        if adv == "bool_lengths"
        and not isinstance(il_given, np.ndarray)
        or adv == "bool_lengths"
        and il_given.dtype != bool
        else None,
    )
    # valid by ctc_loss's contract (docs/ctc.md; labels equal to blank or outside [0, C) are
    # losskit's documented errors, where torch reads them or reads out of bounds)
    valid = (
        T > 0
        and N > 0
        and C > 0
        and 0 <= blank < C
        and lengths_ok
        and not label_error
        and not concat_error
        and adv not in ("rank", "float_targets", "float_lengths", "bool_lengths")
        and (batched or (len(il) == 1 and len(tl) == 1))
    )

    dtype = draw(st.sampled_from(FLOAT_DTYPES * 4 + CONVERTED_DTYPES))
    special = draw(st.sampled_from(["plain"] * 4 + ["special", "extreme"]))
    lp = _log_softmax(rng, shape, special)
    lp = present(convert_values(lp, dtype), draw(st.sampled_from(LAYOUTS)))
    cd = compute_dtype(np.asarray(lp).dtype)

    kwargs: dict = {}
    if draw(st.booleans()) or blank != 0:
        kwargs["blank"] = blank
    red = draw(reductions())
    kwargs["reduction"] = red
    if draw(st.booleans()):
        kwargs["zero_infinity"] = draw(st.booleans())
    stricter: Optional[str] = r"reduction expected one of" if red == "elementwise_mean" else None
    out_shape = (N,) if batched else ()
    go, bad_go = grad_output_for(rng, draw, out_shape, red, cd)
    args = (lp, t_given, il_given, tl_given)
    what = f"T={T} N={N} C={C} S={S} blank={blank} adv={adv} concat={concatenated} batched={batched}"
    if not valid:  # never asked of torch: it reads out of bounds for some of these
        return Case(name="ctc_loss", args=args, kwargs=kwargs, grad_output=go, invalid=r".", what=what)
    ref = (ref_array(lp, cd), np.asarray(targets, np.int64), np.asarray(il, np.int64), np.asarray(tl, np.int64))
    if not batched:
        ref = (ref[0], ref[1], np.asarray(il[0]), np.asarray(tl[0]))
    return Case(
        name="ctc_loss",
        args=args,
        kwargs=kwargs,
        ref_args=ref,
        torch_fn=torch_ctc,
        torch_kwargs=dict(kwargs),
        slots=(0,),
        grad_output=go,
        bad_grad_output=bad_go,
        stricter=stricter,
        what=what,
    )


@fuzz(scale=2)
@given(st.data())
def test_fuzz_ctc(data: Any) -> None:
    run_case(data.draw(ctc_cases()))
