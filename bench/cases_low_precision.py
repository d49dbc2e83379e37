"""Benchmark cases at 16-bit storage: the bandwidth-bound losses read and write half the bytes of
float32. Each case is named like its float32 case in cases_pointwise.py / cases_classification.py
with the dtype appended, so `--filter "mse_loss 16M"` prints the float32 and the 16-bit rows
together. losskit reads the 16-bit arrays in place (ml_dtypes.bfloat16 and numpy.float16) and
returns its dtype; torch runs on bfloat16/float16 tensors of the same values. No JAX column."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F

try:
    import ml_dtypes
except ImportError:  # the bfloat16 cases need it; float16 is NumPy's own
    ml_dtypes = None

LARGE = 16 * 1024 * 1024

DTYPES = {"float16": (np.dtype(np.float16), torch.float16)}
if ml_dtypes is not None:
    DTYPES["bfloat16"] = (np.dtype(ml_dtypes.bfloat16), torch.bfloat16)


def _tensor(a: np.ndarray, tdtype: torch.dtype) -> torch.Tensor:
    """The same 16-bit values as a torch tensor (torch.from_numpy knows no ml_dtypes dtype)."""
    return torch.from_numpy(a.view(np.int16).copy()).view(tdtype) if a.dtype.kind == "V" else torch.from_numpy(a)


def _case(
    name: str,
    make: Callable[[Any], List[np.ndarray]],
    n_diff: int,
    lk: Callable[..., Any],
    th: Callable[..., Any],
    nbytes: int,
) -> Dict[str, Any]:
    def setup(rng):
        arrays = make(rng)
        tdtype = next(t for d, t in DTYPES.values() if d == arrays[0].dtype)
        tensors = [_tensor(a, tdtype) if a.dtype != np.int64 else torch.from_numpy(a) for a in arrays]
        for t in tensors[:n_diff]:
            t.requires_grad_(True)
        return arrays, tensors

    def run_torch(state):
        tensors = state[1]
        return torch.autograd.grad(th(*tensors), tensors[:n_diff])

    return {
        "name": name,
        "setup": setup,
        "losskit": lambda state: lk(*state[0]),
        "torch": run_torch,
        "jax": None,
        "bytes": nbytes,
    }


def _pair(dtype: np.dtype) -> Callable[[Any], List[np.ndarray]]:
    return lambda rng: [rng.standard_normal(LARGE, dtype=np.float32).astype(dtype) for _ in range(2)]


def _logits(dtype: np.dtype, N: int, C: int) -> Callable[[Any], List[np.ndarray]]:
    return lambda rng: [
        rng.standard_normal((N, C), dtype=np.float32).astype(dtype),
        rng.integers(0, C, N).astype(np.int64),
    ]


CASES = []
for label, (dtype, _) in DTYPES.items():
    CASES.append(
        _case(f"mse_loss 16M {label}", _pair(dtype), 1, F.mse_loss_forward_backward, TF.mse_loss, 3 * 2 * LARGE)
    )  # two inputs read, one gradient written
    CASES.append(
        _case(
            f"cross_entropy 2048x32000 {label}",
            _logits(dtype, 2048, 32000),
            1,
            F.cross_entropy_forward_backward,
            TF.cross_entropy,
            2 * 2 * 2048 * 32000 + 8 * 2048,
        )
    )
