"""torch 2.13 as the reference: forward values and torch.autograd gradients for the same call.

Comparison rule (API.md): values match torch under torch.testing.assert_close's default
tolerances for the dtype, NaN and inf included. losskit accumulates reductions in double, so a
float32 result that differs from torch's float32 result is also accepted when it matches torch's
float64 result on the same (float32) data to float32 tolerances.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

torch.set_num_threads(1)


def to_torch(value: Any, requires_grad: bool = False, dtype: Optional[torch.dtype] = None) -> Any:
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        # A C-contiguous copy: layouts never change torch's values, but some of its kernels refuse
        # them (nll_loss2d's backward: "grad_input must be contiguous" for a Fortran-order input),
        # which is torch's limitation, not a refusal losskit owes.
        t = torch.from_numpy(np.array(value, copy=True, order="C"))
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.requires_grad_(requires_grad) if requires_grad else t
    return value


def torch_call(
    fn: Callable[..., torch.Tensor],
    args: Sequence[Any],
    kwargs: Optional[Dict[str, Any]] = None,
    diff: Sequence[int] = (0,),
    grad_output: Any = None,
    dtype: Optional[torch.dtype] = None,
) -> Tuple[np.ndarray, Tuple[Optional[np.ndarray], ...]]:
    """fn(*args, **kwargs) in torch and the autograd gradients of the args at `diff`.

    kwargs values that are arrays become tensors too (weights). `dtype` upcasts every float
    array (float64 reference for float32 data)."""
    kwargs = dict(kwargs or {})
    targs = [to_torch(a, i in diff, dtype) for i, a in enumerate(args)]
    tkwargs = {k: to_torch(v, False, dtype) for k, v in kwargs.items()}
    out = fn(*targs, **tkwargs)
    if grad_output is None:
        go = torch.ones_like(out)
    else:
        go = torch.as_tensor(np.asarray(grad_output), dtype=out.dtype).reshape(out.shape)
    inputs = [targs[i] for i in diff]
    grads = (
        torch.autograd.grad(out, inputs, go, allow_unused=True)
        if inputs and out.requires_grad
        else [None] * len(inputs)
    )
    return out.detach().numpy(), tuple(None if g is None else g.numpy() for g in grads)


def assert_close(actual: Any, expected: Any, expected64: Any = None, what: str = "") -> None:
    """assert_close with torch's default tolerances for the expected dtype, equal_nan. For float32,
    a mismatch is forgiven when `expected64` (torch in float64 on the same data) matches."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    if a.dtype.itemsize == 2 and a.dtype.kind in "fV" and e.dtype == np.float32:
        # A float16/bfloat16 input: losskit computes in float32 (as this reference did, on the
        # upcast values) and rounds its result once to the input's dtype (docs/api.md "Low
        # precision"). Compared at that dtype with torch's default tolerances for it; where float32
        # itself cancels, torch's float64 result rounded the same way is the fallback.
        rtol = 1e-3 if a.dtype == np.float16 else 1.6e-2
        a32 = torch.from_numpy(a.astype(np.float32))
        with np.errstate(over="ignore"):
            refs = [e] + ([] if expected64 is None else [np.asarray(expected64, np.float64).astype(np.float32)])
            refs = [torch.from_numpy(r.astype(a.dtype).astype(np.float32)) for r in refs]
        for k, r in enumerate(refs):
            try:
                torch.testing.assert_close(
                    a32, r, rtol=rtol, atol=1e-5, equal_nan=True, msg=lambda m: f"{what} ({a.dtype}): {m}"
                )
                return
            except AssertionError:
                if k == len(refs) - 1:
                    raise
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != torch's {e.dtype}"
    try:
        torch.testing.assert_close(
            torch.from_numpy(np.array(a)), torch.from_numpy(np.array(e)), equal_nan=True, msg=lambda m: f"{what}: {m}"
        )
    except AssertionError:
        if expected64 is None or e.dtype != np.float32:
            raise
        # torch's float64 result as a float32 can hold it: a value past float32's range is inf
        # there (e.g. exp(89) in poisson_nll_loss), as a float32 result computed exactly must be.
        with np.errstate(over="ignore"):
            e64 = torch.from_numpy(np.array(expected64, dtype=np.float64).astype(np.float32).astype(np.float64))
        torch.testing.assert_close(
            torch.from_numpy(np.array(a, dtype=np.float64)),
            e64,
            equal_nan=True,
            rtol=1.3e-6,
            atol=1e-5,
            msg=lambda m: f"{what} (against torch float64): {m}",
        )


def compare(
    torch_fn: Callable[..., torch.Tensor],
    args: Sequence[Any],
    kwargs: Optional[Dict[str, Any]],
    diff: Sequence[int],
    loss: Any,
    grads: Sequence[Any],
    grad_output: Any = None,
    what: str = "",
) -> None:
    """Checks a losskit loss value and gradients against torch (float32 with a float64 fallback)."""
    ref_out, ref_grads = torch_call(torch_fn, args, kwargs, diff, grad_output)
    ref64_out = ref64_grads = None
    is32 = any(isinstance(a, (np.ndarray, np.generic)) and a.dtype == np.float32 for a in args)
    if is32:
        ref64_out, ref64_grads = torch_call(torch_fn, args, kwargs, diff, grad_output, dtype=torch.float64)
    assert_close(loss, ref_out, ref64_out, f"{what} loss")
    assert len(grads) == len(ref_grads), f"{what}: {len(grads)} gradients, torch has {len(ref_grads)}"
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        if r is None:
            r = np.zeros_like(np.asarray(args[diff[k]]))
        assert g is not None, f"{what}: gradient {k} missing"
        assert_close(g, r, None if ref64_grads is None else ref64_grads[k], f"{what} grad {k}")
