"""The fuzz campaign's shared machinery: budget and seed, the call counter, array layouts and
dtypes, adversarial values, and the one oracle every drawn call goes through.

The oracle (`run_case`) calls a loss's three entry points (forward, `_backward`,
`_forward_backward`) and asks torch 2.13 (through tests/_reference.py) about the same call:

* torch returns a value: losskit must return it too (value and torch.autograd gradients, with
  `_reference.compare`'s tolerances, NaN-aware), unless the case carries `stricter`: a regex of
  the error losskit documents where it is stricter than torch (docs/api.md "losskit's
  decisions", the family pages), which it may raise instead;
* torch raises: all three entry points must raise a clean error;
* the case is `invalid` by losskit's contract where torch must not be asked (it would read out of
  bounds, e.g. CTC labels outside [0, C)): all three must raise a clean error matching `invalid`.

A clean error is a ValueError, TypeError or IndexError (losskit.IndexError is both) whose message
names an argument of the function; anything else (another exception type, pybind11's
"incompatible function arguments", a crash) fails the example.

Values are compared by _reference.compare (torch's float32 result, or for float32 data its float64
result to float32 tolerances). One rule is added, for float32 data only: where torch's formula
itself loses float32 digits to cancellation, an element no further from torch's float64 result
than torch's own float32 result is accepted (see _within_float32_conditioning). grad_output is
finite and at most 1e4 in magnitude, or NaN (see grad_output_for).

Every drawn call sets a losskit thread count of 1 to 8 first. Budget and seed: LOSSKIT_FUZZ_EXAMPLES
(hypothesis examples per test, times a per-test scale) and LOSSKIT_FUZZ_SEED (an integer, or
'random'); both are printed in the terminal summary with the number of losskit calls made.
LOSSKIT_FUZZ_SHRINK=0 reports a failure without shrinking it first.
"""

from __future__ import annotations

import inspect
import os
import random
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, event, note, settings
from hypothesis import seed as _hypothesis_seed
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from _reference import compare, torch_call

# ---- budget, seed, counter -------------------------------------------------------------------
EXAMPLES = int(os.environ.get("LOSSKIT_FUZZ_EXAMPLES", "30"))
_seed_env = os.environ.get("LOSSKIT_FUZZ_SEED", "0")
SEED = random.SystemRandom().randrange(2**32) if _seed_env == "random" else int(_seed_env)
# Shrinking a failure to a minimal example can take minutes; LOSSKIT_FUZZ_SHRINK=0 skips it (the
# failing example and its @reproduce_failure blob are reported either way).
SHRINK = os.environ.get("LOSSKIT_FUZZ_SHRINK", "1") != "0"

_calls = 0
_calls_lock = threading.Lock()


def calls_made() -> int:
    return _calls


def count(n: int = 1) -> None:
    global _calls
    with _calls_lock:
        _calls += n


def fuzz(max_examples: Optional[int] = None, scale: float = 1.0) -> Callable[[Callable[..., Any]], Any]:
    """The campaign's hypothesis settings and seed for one test: `scale` times the budget
    (LOSSKIT_FUZZ_EXAMPLES) examples, seeded with LOSSKIT_FUZZ_SEED (printed in the summary)."""
    n = max_examples if max_examples is not None else max(1, int(round(EXAMPLES * scale)))

    def wrap(test: Callable[..., Any]) -> Any:
        test = settings(
            max_examples=n,
            deadline=None,
            print_blob=True,
            phases=tuple(p for p in Phase if SHRINK or p is not Phase.shrink),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        )(test)
        return _hypothesis_seed(SEED)(test)

    return wrap


# ---- errors ------------------------------------------------------------------------------------
CLEAN_ERRORS = (ValueError, TypeError, IndexError)
_UNCLEAR = (
    "incompatible function arguments",
    "invalid literal for int()",
    "could not convert string to float",
    "argument must be a string or a",
    "setting an array element with a sequence",
)
EXTRA_ARGUMENT_WORDS = ("grad_output", "target_grad", "distances", "vjp", "distance_function")


def argument_names(fn: Callable[..., Any]) -> Tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters) + EXTRA_ARGUMENT_WORDS
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return EXTRA_ARGUMENT_WORDS


def assert_clean_error(
    exc: BaseException, fn: Callable[..., Any], where: str, match: Optional[str] = None, foreign: bool = False
) -> None:
    """ValueError/TypeError/IndexError whose message names one of fn's arguments (and matches
    `match` when given). With `foreign` (the call runs user code that may fail on its own, a
    distance_function callable), the error may be that code's own (NumPy's broadcasting message,
    say), which losskit passes on as it is: any clean error type then, whatever its wording."""
    msg = str(exc)
    assert isinstance(exc, CLEAN_ERRORS), f"{where}: {type(exc).__name__} is not a clean error: {msg}"
    if match is not None:
        assert re.search(match, msg), f"{where}: expected an error matching {match!r}, got {type(exc).__name__}: {msg}"
    if foreign:
        return
    assert not any(u in msg for u in _UNCLEAR), f"{where}: unclear {type(exc).__name__}: {msg}"
    names = argument_names(fn)
    assert re.search(r"\b(" + "|".join(map(re.escape, names)) + r")\b", msg), (
        f"{where}: the message names no argument of {fn.__name__} {names}: {msg!r}"
    )


def either(*patterns: Optional[str]) -> Optional[str]:
    """One `stricter` regex matching any of `patterns` (None ones left out; None if all are): a
    case can be stricter for several reasons (a bad reduction and a bad label_smoothing), and
    losskit may report whichever it checks first."""
    given_ = [p for p in patterns if p is not None]
    return "|".join(f"(?:{p})" for p in given_) if given_ else None


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Tuple[bool, Any]:
    """(True, result) or (False, exception); counts the call."""
    count()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return True, fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - judged by the caller
            return False, exc


# ---- dtypes, layouts, values -------------------------------------------------------------------
def compute_dtype(dtype: np.dtype) -> np.dtype:
    """docs/api.md: float32/float64 as they are, float16 in float32, integers and booleans in
    float64 (the dtype losskit computes in; the losses that read float16 in place return float16,
    rounded once, which _reference.assert_close compares at that dtype)."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind == "f" and dtype.itemsize < 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


FLOAT_DTYPES = (np.float32, np.float64)
# other dtypes the API converts (float16 to float32, integers and booleans to float64)
CONVERTED_DTYPES = (np.float16, np.int8, np.int32, np.int64, np.uint8, np.bool_)


def convert_values(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """The float data `arr` as `dtype` (values change: rounding, clipping, > 0 for bool)."""
    dtype = np.dtype(dtype)
    arr = np.asarray(arr)
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(arr.astype(dtype))
    if dtype.kind == "b":
        return np.asarray(arr > 0)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return np.asarray(np.clip(np.nan_to_num(np.round(arr.astype(np.float64)), nan=0.0), lo, hi).astype(dtype))


LAYOUTS = ("c", "c", "c", "f", "strided", "reversed", "readonly", "stride0")


def present(arr: Any, layout: str) -> Any:
    """The same values in another memory layout. 'stride0' is np.broadcast_to of the first row
    (its values change: callers apply it before computing the reference)."""
    if not isinstance(arr, np.ndarray) or arr.ndim == 0:
        return arr
    if layout == "f":
        return np.asfortranarray(arr)
    if layout == "strided":
        return np.repeat(arr, 2, axis=-1)[..., ::2]
    if layout == "reversed":
        return np.flip(np.flip(arr).copy())
    if layout == "readonly":
        out = arr.copy()
        out.setflags(write=False)
        return out
    if layout == "stride0" and arr.shape[0] > 0:
        return np.broadcast_to(arr[:1], arr.shape)
    return arr


SPECIALS = np.array(
    [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        1e38,
        -1e38,
        3e-39,
        -3e-39,
        5e-324,
        1e-30,
        1e4,
        -1e4,
        88.0,
        -88.0,
        710.0,
        -710.0,
    ]
)
PROFILES = ("plain", "plain", "plain", "plain", "special", "special", "extreme")


def values(
    rng: np.random.Generator, shape: Tuple[int, ...], dtype: Any, profile: str = "plain", scale: float = 1.0
) -> np.ndarray:
    """Normal values, with `profile` 'special' a sprinkling of NaN, +-inf, +-0, +-1e38,
    denormals and exp/log overflow points, with 'extreme' nothing else."""
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(shape) * scale).astype(np.float64)
        if profile != "plain" and x.size:
            mask = rng.random(shape) < (0.2 if profile == "special" else 1.0)
            x = np.where(mask, rng.choice(SPECIALS, size=shape), x)
        return x.astype(dtype)


@st.composite
def layouts(draw: Any) -> str:
    return draw(st.sampled_from(LAYOUTS))


# ---- the oracle --------------------------------------------------------------------------------
@dataclass
class Case:
    """One call of a loss, as losskit receives it and as torch gets it.

    `slots` maps each gradient losskit returns (in its order) to the torch argument it is the
    gradient of, or None where losskit returns None (a scalar var, no bias)."""

    name: str
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    ref_args: Tuple[Any, ...] = ()
    torch_fn: Optional[Callable[..., Any]] = None
    torch_kwargs: Optional[Dict[str, Any]] = None
    slots: Tuple[Optional[int], ...] = (0,)
    target_grad: bool = False
    grad_output: Any = None
    bad_grad_output: bool = False
    invalid: Optional[str] = None
    stricter: Optional[str] = None
    loose_empty_mean: bool = False  # torch's 'mean' of an empty batch is uninitialised (documented)
    foreign_errors: bool = False  # user code runs in the call: its own clean errors pass (assert_clean_error)
    what: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


def _as_tuple(g: Any) -> Tuple[Any, ...]:
    return tuple(g) if isinstance(g, tuple) else (g,)


def torch_verdict(case: Case) -> Tuple[bool, Any]:
    """(True, None) when torch accepts the call (forward and autograd), else (False, exception)."""
    diff = tuple(s for s in case.slots if s is not None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch_call(
                case.torch_fn,
                case.ref_args,
                case.torch_kwargs,
                diff,
                None if case.bad_grad_output else case.grad_output,
            )
            return True, None
        except Exception as exc:  # noqa: BLE001
            return False, exc


def run_case(case: Case, fb_kwargs: Optional[Dict[str, Any]] = None) -> Dict[str, Tuple[bool, Any]]:
    """Calls forward, backward and forward_backward and judges them (see the module docstring)."""
    fwd = getattr(F, case.name)
    bwd = getattr(F, case.name + "_backward")
    fb = getattr(F, case.name + "_forward_backward")
    tg = {"target_grad": True} if case.target_grad else {}
    go = case.grad_output
    out = {
        "forward": attempt(fwd, *case.args, **case.kwargs),
        "backward": attempt(bwd, go, *case.args, **case.kwargs, **tg),
        "forward_backward": attempt(fb, *case.args, grad_output=go, **case.kwargs, **tg),
    }
    fns = {"forward": fwd, "backward": bwd, "forward_backward": fb}
    note(
        f"case: {case.name} {case.what} kwargs={ {k: _brief(v) for k, v in case.kwargs.items()} } "
        f"args={[_brief(a) for a in case.args]} grad_output={_brief(go)} threads={losskit.get_num_threads()}"
    )

    def all_raise(match: Optional[str], why: str) -> None:
        for mode, (ok, res) in out.items():
            if mode not in case.extra.get("raising_modes", out):
                continue
            assert not ok, f"{case.name} {mode}: returned a value where {why}"
            assert_clean_error(res, fns[mode], f"{case.name} {mode} ({why})", match, case.foreign_errors)

    if case.invalid is not None:
        event(f"{case.name}: invalid by losskit's contract (not asked of torch)")
        all_raise(case.invalid, "losskit's contract says it raises")
        return out
    torch_ok, torch_exc = torch_verdict(case)
    if not torch_ok:
        event(f"{case.name}: torch raises")
        all_raise(None, f"torch 2.13 raises {type(torch_exc).__name__}: {str(torch_exc)[:200]}")
        return out
    if not out["forward"][0] and case.stricter is not None and re.search(case.stricter, str(out["forward"][1])):
        event(f"{case.name}: losskit stricter than torch (documented)")
        all_raise(case.stricter, "losskit is documented stricter than torch here")
        return out
    event(f"{case.name}: compared with torch" + (" (bad grad_output)" if case.bad_grad_output else ""))
    ok, res = out["forward"]
    assert ok, f"{case.name} forward raised {type(res).__name__}: {res} where torch 2.13 returns a value"
    if case.bad_grad_output:
        for mode in ("backward", "forward_backward"):
            ok, res = out[mode]
            assert not ok, f"{case.name} {mode}: accepted grad_output of shape {np.shape(go)}"
            assert_clean_error(res, fns[mode], f"{case.name} {mode}", r"grad_output")
        return out
    for mode in ("backward", "forward_backward"):
        ok, res = out[mode]
        assert ok, f"{case.name} {mode} raised {type(res).__name__}: {res} where torch 2.13 returns a value"
    loss = out["forward"][1]
    grads = _as_tuple(out["backward"][1])
    loss2, grads2 = out["forward_backward"][1]
    grads2 = _as_tuple(grads2)
    assert len(grads) == len(case.slots), f"{case.name}: {len(grads)} gradients, expected {len(case.slots)}"
    for gs in (grads, grads2):
        for g, s in zip(gs, case.slots):
            assert (g is None) == (s is None), f"{case.name}: gradient presence {g is None} for slot {s}"
    diff = tuple(s for s in case.slots if s is not None)
    kw = case.torch_kwargs
    if case.loose_empty_mean and np.size(case.ref_args[0]) == 0:
        assert np.isnan(loss) and np.isnan(loss2)
        return out
    for mode, (l, gs) in (("forward/backward", (loss, grads)), ("forward_backward", (loss2, grads2))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                compare(
                    case.torch_fn,
                    case.ref_args,
                    kw,
                    diff,
                    l,
                    [g for g in gs if g is not None],
                    grad_output=case.grad_output,
                    what=f"{case.name} {case.what} {mode}",
                )
            except AssertionError:
                if _within_float32_conditioning(case, l, [g for g in gs if g is not None], diff):
                    event(f"{case.name}: float32 cancellation, no worse than torch's float32")
                    continue
                _explain(case, l, [g for g in gs if g is not None], diff)
                _dump(case)
                raise
    return out


def _within_float32_conditioning(case: Case, loss: Any, grads: Sequence[Any], diff: Tuple[int, ...]) -> bool:
    """The one tolerance beyond _reference.compare's, for float32 data only: where torch's own
    formula loses float32 digits to cancellation (binary_cross_entropy_with_logits at x = -1e4
    and y = 0.02: (1 - y) x - x), neither torch's float32 result nor any float32 evaluation is
    within 1.3e-6 of the float64 one. An element is then accepted when it is no further from
    torch's float64 result than torch's own float32 result is (plus compare's tolerances); both
    references must be finite there, so an overflow in torch's float32 excuses nothing."""
    if not any(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in case.ref_args):
        return False
    try:
        out32, g32 = torch_call(case.torch_fn, case.ref_args, case.torch_kwargs, diff, case.grad_output)
        out64, g64 = torch_call(
            case.torch_fn, case.ref_args, case.torch_kwargs, diff, case.grad_output, dtype=torch.float64
        )
    except Exception:  # noqa: BLE001
        return False
    pairs = [(loss, out32, out64)] + [
        (g, r32 if r32 is not None else np.zeros(np.shape(g)), r64 if r64 is not None else np.zeros(np.shape(g)))
        for g, r32, r64 in zip(grads, g32, g64)
    ]
    for a, e32, e64 in pairs:
        a, e32 = np.asarray(a, np.float64), np.asarray(e32, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            e64 = np.asarray(e64, np.float64).astype(np.float32).astype(np.float64)
            if a.shape != e64.shape or a.shape != e32.shape:
                return False
            close32 = np.isclose(a, e32, rtol=1.3e-6, atol=1e-5, equal_nan=True)
            close64 = np.isclose(a, e64, rtol=1.3e-6, atol=1e-5, equal_nan=True)
            finite = np.isfinite(e32) & np.isfinite(e64)
            conditioned = finite & (np.abs(a - e64) <= np.abs(e32 - e64) + 1e-5 + 1.3e-6 * np.abs(e64))
        if not (close32 | close64 | conditioned).all():
            return False
    return True


def _dump(case: Case) -> None:
    """LOSSKIT_FUZZ_DUMP=path pickles the failing case there (for debugging by hand)."""
    path = os.environ.get("LOSSKIT_FUZZ_DUMP")
    if path:
        import pickle

        with open(path, "wb") as f:
            state = {k: v for k, v in vars(case).items() if k != "torch_fn"}
            pickle.dump(state | {"torch_fn": getattr(case.torch_fn, "__name__", None)}, f)


def _explain(case: Case, loss: Any, grads: Sequence[Any], diff: Tuple[int, ...]) -> None:
    """Notes the first elements where losskit and torch differ, with the inputs there."""
    try:
        ref_out, ref_grads = torch_call(case.torch_fn, case.ref_args, case.torch_kwargs, diff, case.grad_output)
        for what, a, e in [("loss", loss, ref_out)] + [
            (f"grad {k}", g, r) for k, (g, r) in enumerate(zip(grads, ref_grads))
        ]:
            a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
            if a.shape != e.shape:
                continue
            bad = ~np.isclose(a, e, rtol=1e-5, atol=1e-6, equal_nan=True)
            for idx in list(zip(*np.nonzero(bad)))[:5] if a.ndim else ([()] if bad else []):
                inputs = [np.asarray(r)[idx] if np.shape(r) == a.shape else "-" for r in case.ref_args]
                note(f"{what} at {idx}: losskit {a[idx]!r}, torch {e[idx]!r}; inputs there {inputs}")
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        note(f"(no explanation: {exc})")


def _brief(v: Any) -> str:
    if isinstance(v, np.ndarray):
        flags = (
            ("C" if v.flags.c_contiguous else "")
            + ("F" if v.flags.f_contiguous else "")
            + ("" if v.flags.writeable else "ro")
            + ("0" if 0 in v.strides and v.size > 1 else "")
        )
        return f"array{v.shape}{v.dtype}[{flags}]"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"{type(v).__name__}(len {len(v)})"
    return repr(v)


def ref_array(value: Any, dtype: np.dtype) -> Any:
    """What losskit computes with: the presented float value as an array of the compute dtype."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        return arr
    return np.array(arr, dtype=dtype)


def grad_output_for(
    rng: np.random.Generator, draw: Any, shape: Tuple[int, ...], reduction: str, dtype: np.dtype
) -> Tuple[Any, bool]:
    """A grad_output for the loss's output shape (None: ones), occasionally with special values,
    occasionally of a wrong shape (the bool says so)."""
    kind = draw(st.sampled_from(["none", "random", "random", "random", "special", "wrong", "python"]))
    if reduction != "none":
        shape = ()
    if kind == "none":
        return None, False
    if kind == "python" and shape == ():
        return float(rng.uniform(-2, 2)), False
    if kind == "wrong":
        bad = draw(st.sampled_from([(1,), (2,), shape + (1,), (3,) + shape]))
        if bad != shape:
            return np.ones(bad, dtype), True
    go = values(rng, shape, np.float64, "special" if kind == "special" else "plain") + 0.5
    # grad_output stays finite and within 1e4 in magnitude (NaN kept): torch's autograd multiplies
    # it into each term of a gradient separately, losskit into the fused derivative (docs/api.md),
    # so an infinite grad_output gives torch inf - inf = NaN where losskit gives +-inf, and a huge
    # finite one (1e30, 1e38) overflows a term in torch (g * w * sigmoid(x) * (1 + (p - 1) y), say)
    # where losskit's single product does not, or the other way round. Which intermediate
    # overflows is an evaluation order, not a value either of them owes.
    go = np.where(np.isnan(go), go, np.clip(go, -1e4, 1e4))
    return np.asarray(go).astype(dtype), False


def rarely(draw: Any, n: int) -> bool:
    """True about once in n draws. (draw(st.integers(0, n - 1)) == 0 would be far more often:
    hypothesis favours small integers.)"""
    return draw(st.sampled_from((False,) * (n - 1) + (True,)))


REDUCTIONS = ("none", "mean", "sum")
# Strings torch refuses (ValueError) and losskit must refuse too, plus torch's deprecated alias
# 'elementwise_mean', which torch 2.13 still accepts with a warning and losskit refuses
# (docs/api.md: reductions are 'none', 'mean', 'sum' and 'batchmean' for kl_div).
BAD_REDUCTIONS = ("avg", "", "MEAN", "batchmean", "elementwise_mean", None, 3)
ELEMENTWISE_MEAN = r"reduction expected one of"


@st.composite
def reductions(draw: Any, extra: Sequence[str] = ()) -> Any:
    if rarely(draw, 16):
        return draw(st.sampled_from(BAD_REDUCTIONS))
    return draw(st.sampled_from(REDUCTIONS + tuple(extra)))


def reduction_kwargs(draw: Any, kwargs: Dict[str, Any], legacy: bool = True) -> str:
    """Puts a drawn reduction into kwargs, now and then (with `legacy`) as torch's deprecated
    size_average/reduce pair; returns the reduction in effect."""
    if legacy and rarely(draw, 13):
        kwargs["size_average"] = draw(st.sampled_from([None, True, False]))
        kwargs["reduce"] = draw(st.sampled_from([True, False]))
        return "none" if not kwargs["reduce"] else ("sum" if kwargs["size_average"] is False else "mean")
    kwargs["reduction"] = draw(reductions())
    return kwargs["reduction"]


def thread_count(draw: Any) -> int:
    n = draw(st.sampled_from([1, 1, 2, 2, 3, 4, 8]))
    losskit.set_num_threads(n)
    return n
