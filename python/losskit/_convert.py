"""Array conversion for the C++ core: dtype choice, C-contiguity and alignment, copying only when
needed.

C-contiguous, aligned float32/float64 arrays pass through untouched (the core reads them in place),
and so do float16 and bfloat16 arrays for the losses whose core reads 16-bit storage in place
(`half=True`); other losses compute those in float32 from one converted copy and round their
results once to the input's dtype (rounded_to_input). Other layouts are made contiguous once;
other real dtypes are converted once (integers and booleans to float64). Complex, object, string
and other dtypes raise TypeError.

bfloat16 is ml_dtypes' dtype (what JAX uses). losskit never imports ml_dtypes: the dtype is
recognised by its name, size and kind, and results of a bfloat16 call are arrays of the very dtype
object the input had.

Alignment: the core reads a float32 array through a `const float*`, which C++ requires to be
4-byte aligned (8 for float64 and int64), and refuses a misaligned pointer with ValueError. A
C-contiguous array whose data is not aligned to its dtype (``np.frombuffer(buf, offset=1)``, a
field of a packed record, a memory map at an odd offset; NumPy's ``flags.aligned`` is False) is
copied once here instead, so every argument of every loss accepts it. Arrays NumPy allocated are
always aligned, so this costs nothing for them.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Tuple

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Float arguments that may be None (absent); every other one is required.
_OPTIONAL = ("weight", "pos_weight", "linear_bias")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}" if x.ndim else str(x.dtype)
    return type(x).__name__


def is_bfloat16(dtype: np.dtype) -> bool:
    """ml_dtypes.bfloat16 (a 2-byte 'V' dtype named bfloat16), recognised without importing it."""
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def is_half(dtype: np.dtype) -> bool:
    """float16 or bfloat16: 16-bit storage, computed in float32."""
    return (dtype.kind == "f" and dtype.itemsize == 2) or is_bfloat16(dtype)


def to_array(function: str, name: str, value: Any) -> np.ndarray:
    """np.asarray with a clear TypeError for values that are not real numbers."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists, objects refusing conversion
        raise TypeError(f"{function}: {name} expected a real array, got {type(value).__name__}") from exc
    if arr.dtype.kind not in "fiub" and not is_bfloat16(arr.dtype):
        raise TypeError(
            f"{function}: {name} expected a real (floating, integer or boolean) array, got {_describe(arr)}"
        )
    return arr


def _scalar(value: Any) -> Any:
    """A 0-d real array as its NumPy scalar; anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiub":
        return value[()]
    return value


def real(function: str, name: str, value: Any) -> float:
    """A number option (margin, eps, delta, p, ...): any real number, as torch's float arguments
    take; anything else is a TypeError naming the argument (not float()'s own message)."""
    if type(value) is float or type(value) is int:  # the common case first: this runs on every call
        return float(value)
    value = _scalar(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{function}: {name} expected a real number, got {_describe(value)}")


def normalizer(function: str, name: str, value: Any) -> Optional[float]:
    """The `normalizer` keyword: None (the loss's own divisor) or a real number; the C++ core
    checks that it is finite, > 0 and goes with a dividing reduction. A bool is refused (True is
    no divisor anyone means)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{function}: {name} expected None or a real number, got {_describe(value)}")
    return real(function, name, value)


def integer(function: str, name: str, value: Any) -> int:
    """An integer option (ignore_index, blank, chunk_size): an integer of the int64 range the core
    takes; a float, string or array is a TypeError, an integer past int64 a ValueError."""
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return int(value)
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{function}: {name} expected an integer, got {_describe(value)}")
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{function}: {name} expected an integer in the int64 range, got {value}")
    return value


def size(function: str, name: str, value: Any) -> int:
    """A size argument of a class that owns parameters (in_features, num_classes): an integer >= 0."""
    n = integer(function, name, value)
    if n < 0:
        raise ValueError(f"{function}: {name} expected a non-negative integer, got {n}")
    return n


def float_dtype(function: str, name: str, value: Any) -> np.dtype:
    """The parameter dtype of a class that owns parameters: None (float32), float32 or float64."""
    try:
        dt = np.dtype(np.float32 if value is None else value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{function}: {name} expected float32 or float64, got {value!r}") from exc
    if dt not in _FLOATS:
        raise TypeError(f"{function}: {name} expected float32 or float64, got {dt}")
    return dt


def generator(function: str, name: str, value: Any) -> np.random.Generator:
    """None (a fresh default_rng) or a numpy.random.Generator."""
    if value is None:
        return np.random.default_rng()
    if not isinstance(value, np.random.Generator):
        raise TypeError(f"{function}: {name} expected None or a numpy.random.Generator, got {type(value).__name__}")
    return value


def flag(function: str, name: str, value: Any) -> bool:
    """A boolean option (swap, full, log_input, log_target, zero_infinity, target_grad): a bool,
    or an integer or 0-d array standing for one; anything else is a TypeError."""
    if value is True or value is False:
        return value
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return bool(value)
    raise TypeError(f"{function}: {name} expected a bool, got {_describe(value)}")


def compute_dtype(arr: np.ndarray, half: bool = False) -> np.dtype:
    """The kernel dtype for an input: float32 and float64 as they are; float16 and bfloat16 as they
    are where the loss reads 16-bit storage in place (`half`), else float32; integers and booleans
    in float64 (NumPy's default float)."""
    if arr.dtype in _FLOATS:
        return arr.dtype
    if is_half(arr.dtype):
        return arr.dtype if half else np.dtype(np.float32)
    return np.dtype(np.float64)


def aligned(arr: np.ndarray) -> np.ndarray:
    """`arr` itself when its data is aligned to its dtype; otherwise one aligned copy (same dtype,
    shape and values; C-contiguous)."""
    return arr if arr.flags.aligned else np.require(arr, requirements=("C", "A"))


def as_kernel_array(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """C-contiguous, aligned array of `dtype` (a float dtype, or int64 for class indices and
    lengths); the same object when it already is one."""
    return aligned(np.asarray(arr, dtype=dtype, order="C"))


def float_inputs(
    function: str, names: Sequence[str], values: Sequence[Any], half: bool = False
) -> Tuple[np.dtype, Tuple[Optional[np.ndarray], ...]]:
    """Converts the float arguments of a loss (None stays None). The first one, the input, sets
    the dtype of the computation and of the result (`half`: see compute_dtype); the others are
    converted to it (a copy only where their dtype differs)."""
    for n, v in zip(names, values):
        if v is None and n not in _OPTIONAL:
            raise TypeError(f"{function}: {n} expected an array, got None")
    arrays = [None if v is None else to_array(function, n, v) for n, v in zip(names, values)]
    dtype = compute_dtype(arrays[0], half)
    return dtype, tuple(None if a is None else as_kernel_array(a, dtype) for a in arrays)


def rounded_to_input(results: Any, input: Any) -> Any:
    """Results (an array, a NumPy scalar, None, or tuples and dicts of them) of a loss that
    computed a 16-bit `input` from a float32 copy, rounded once to the input's dtype (as torch
    returns them); the results themselves for any other input, and where not float32."""
    dtype = getattr(input, "dtype", None)
    if not (isinstance(dtype, np.dtype) and is_half(dtype)):
        return results
    if isinstance(results, tuple):
        return tuple(rounded_to_input(r, input) for r in results)
    if isinstance(results, dict):
        return {k: rounded_to_input(v, input) for k, v in results.items()}
    if isinstance(results, (np.ndarray, np.generic)) and results.dtype == np.float32:
        return results.astype(dtype)
    return results


def grad_output_array(function: str, grad_output: Any, dtype: np.dtype) -> Optional[np.ndarray]:
    if grad_output is None:
        return None
    return as_kernel_array(to_array(function, "grad_output", grad_output), dtype)


def result(out: np.ndarray, reduction: str) -> Any:
    """A reduced result is a NumPy scalar; an unreduced one stays an array (0-d for unbatched
    0-d inputs, as torch returns)."""
    return out[()] if reduction != "none" else out
