"""The contrastive family's Python side: the argument conversion of ``info_nce_loss`` and the
GEMM that the C++ core's block loop calls back for its matrix products. The formulas and the
memory plan are documented once, in :func:`losskit.functional.info_nce_loss`,
``docs/contrastive.md`` and ``cpp/include/losskit/contrastive.hpp``.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

from . import _convert, _core

_FN = "info_nce_loss"
# Similarity block budget: block rows x N x itemsize stays about this size (64 MiB, as
# linear_cross_entropy's logits chunk), but blocks keep at least DEFAULT_MIN_ROWS rows (GEMMs of
# fewer rows lose speed).
DEFAULT_BLOCK_BYTES = 64 << 20
DEFAULT_MIN_ROWS = 256


def _blas(dtype: np.dtype) -> Any:
    """SciPy's BLAS ?gemm (alpha and beta in place), or None without SciPy."""
    try:
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return None
    return blas.sgemm if dtype == np.float32 else blas.dgemm


def _gemm_for(dtype: np.dtype) -> Any:
    """The core's GEMM callback: ``c = alpha op(a) op(b) + beta c`` in place (row-major views of the
    core's buffers, ``a`` and ``b`` as stored). SciPy's ?gemm works on the column-major views
    ``c.T = alpha op(b).T op(a).T + beta c.T``, where every operand is Fortran-contiguous as it
    stands, so nothing is copied and alpha / beta cost no extra pass. Without SciPy, NumPy's matmul
    (one extra pass for alpha; a temporary for beta = 1)."""
    blas = _blas(dtype)

    def gemm(
        trans_a: bool, trans_b: bool, alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray
    ) -> None:
        if c.size == 0:
            return
        if blas is not None:
            res = blas(alpha, b.T, a.T, beta=beta, c=c.T, trans_a=int(trans_b), trans_b=int(trans_a), overwrite_c=1)
            if not np.shares_memory(res, c):  # pragma: no cover - defensive
                c[...] = res.T
            return
        op_a = a.T if trans_a else a  # pragma: no cover - exercised only without SciPy
        op_b = b.T if trans_b else b
        if beta == 0.0:
            np.matmul(op_a, op_b, out=c)
            if alpha != 1.0:
                c *= c.dtype.type(alpha)
        else:
            c *= c.dtype.type(beta)
            c += c.dtype.type(alpha) * (op_a @ op_b)

    return gemm


def info_nce_loss(
    mode: int,
    z1: Any,
    z2: Any,
    grad_output: Any,
    temperature: float,
    symmetric: bool,
    normalize: bool,
    reduction: str,
    block_size: Optional[int],
    normalizer: Optional[float],
) -> Any:
    """Mode 0: the loss; 1: ``(grad_z1, grad_z2)``; 2: both; 3: the divisor of 'mean'."""
    if not isinstance(reduction, str):
        raise TypeError(f"{_FN}: reduction expected a string, got {type(reduction).__name__}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{_FN}: reduction expected one of 'none', 'mean', 'sum', got {reduction!r}")
    temperature = _convert.real(_FN, "temperature", temperature)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{_FN}: temperature expected a finite number > 0, got {temperature}")
    symmetric = _convert.flag(_FN, "symmetric", symmetric)
    normalize = _convert.flag(_FN, "normalize", normalize)
    # 16-bit embeddings are read in place by the core (z2 follows z1's dtype, as every loss's
    # inputs follow its first); its GEMM and workspace are float32.
    dtype, (a, b) = _convert.float_inputs(_FN, ("z1", "z2"), (z1, z2), half=True)
    half = _convert.is_half(dtype)
    work = np.dtype(np.float32) if half else dtype
    if a.ndim != 2:
        raise ValueError(f"{_FN}: z1 expected an (N, D) array of embeddings, got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"{_FN}: z2 expected z1's shape {a.shape}, got shape {b.shape}")
    N, D = a.shape
    if mode == 3:
        return _core.contrastive_mean_normalizer(N, temperature, reduction)
    norm = _convert.normalizer(_FN, "normalizer", normalizer)
    if block_size is None:
        rows = _core.contrastive_block_rows(N, work.itemsize, DEFAULT_BLOCK_BYTES, DEFAULT_MIN_ROWS)
    else:
        if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, numbers.Real):
            raise TypeError(f"{_FN}: block_size expected a positive number of rows, got {type(block_size).__name__}")
        if not (block_size >= 1 and float(block_size).is_integer()):
            raise ValueError(f"{_FN}: block_size expected a positive number of rows, got {block_size!r}")
        rows = max(1, min(int(block_size), max(N, 1)))
    go = _convert.grad_output_array(_FN, grad_output, dtype) if mode != 0 else None
    out = np.empty((N,) if reduction == "none" else (), dtype)
    g1 = g2 = None
    if mode != 0:
        g1 = np.zeros((N, D), dtype) if N == 0 else np.empty((N, D), dtype)
        g2 = np.zeros((N, D), dtype) if N == 0 else np.empty((N, D), dtype)
    workspace = np.empty(_core.contrastive_workspace_size(N, D, rows, half), work)
    _core.contrastive_info_nce(
        a, b, go, out, g1, g2, workspace, rows, temperature, symmetric, normalize, reduction, norm, _gemm_for(work)
    )
    del workspace
    loss = _convert.result(out, reduction)
    if mode == 0:
        return loss
    return (g1, g2) if mode == 1 else (loss, (g1, g2))
