"""The large-vocabulary family's Python side: the chunk loop of ``linear_cross_entropy`` and the
``AdaptiveLogSoftmaxWithLoss`` class. The formulas are documented once, in
:func:`losskit.functional.linear_cross_entropy` and ``docs/large_vocab.md``.

Memory plan of ``linear_cross_entropy`` (Liger-Kernel's): the N x V logits are never held. One
(rows x V) buffer is reused for every chunk of ``rows`` input rows:

1. ``logits = x[chunk] @ W.T`` (NumPy's BLAS, written into the buffer);
2. the C++ core (``_core.large_vocab_ce_chunk``) adds the bias, computes the chunk's losses and
   overwrites the buffer with d loss / d logits, the global 'mean' scale and the per-row
   ``grad_output`` folded in, and accumulates the bias gradient's column sums in double;
3. ``grad_input[chunk] = dlogits @ W`` (as ``(W.T @ dlogits.T).T``) and ``grad_linear_weight += dlogits.T @ x[chunk]``.

The 'mean' normaliser (the sum of the weights of the counted targets) is computed before the loop
in one cheap pass over the targets, so every chunk gets its final gradient scale at once. Chunk
loss sums are added in double in chunk order; each is bitwise independent of the thread count.
Peak extra memory: the (rows x V) buffer, plus (V x H) gradient of W (owed to the caller anyway).
"""

from __future__ import annotations

import collections
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _convert, _core

_FN = "linear_cross_entropy"
# Logits buffer budget: chunk rows x V x itemsize stays about this size (64 MiB), but chunks keep
# at least DEFAULT_MIN_ROWS rows: OpenBLAS's GEMMs lose speed with fewer (measured at N = 4096,
# H = 1024, V = 128000 on 2 cores: 131-row chunks 23.3 s, 256 rows 19.5 s and 1306 MiB peak RSS,
# 512 rows 17.7 s and 1432 MiB, against 19.1 s for torch's fastest option and 6772 MiB unfused).
DEFAULT_CHUNK_BYTES = 64 << 20
DEFAULT_MIN_ROWS = 512
# The float32 vocabulary blocks of a 16-bit linear_weight (_Weight) stay about this size.
HALF_WEIGHT_BLOCK_BYTES = DEFAULT_CHUNK_BYTES


def _accumulating_gemm(dtype: np.dtype) -> Any:
    """SciPy's BLAS ?gemm (C = alpha A B + beta C in place) when SciPy is installed, else None.

    NumPy's matmul cannot accumulate into its output; with beta = 1 the weight gradient is
    accumulated by the GEMM itself, with no (V x H) temporary."""
    try:
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return None
    return blas.sgemm if dtype == np.float32 else blas.dgemm


class _WeightGradAccumulator:
    """grad_W = sum over chunks of dlogits.T @ x_chunk, through a real BLAS, never a (V x H)
    temporary: SciPy's ?gemm with beta = 1 on the Fortran view gW.T, or, without SciPy, NumPy's
    matmul on vocabulary slices of about the chunk budget, each added in place."""

    def __init__(self, gW: np.ndarray, block_bytes: int) -> None:
        self.gW = gW
        self.first = True
        self.gemm = _accumulating_gemm(gW.dtype)
        V, H = gW.shape
        self.vblock = max(1, min(V, block_bytes // max(1, H * gW.itemsize)))
        self.tmp: Optional[np.ndarray] = None

    def add(self, dlogits: np.ndarray, x: np.ndarray) -> None:
        gW = self.gW
        if self.first:
            np.matmul(dlogits.T, x, out=gW)
            self.first = False
            return
        if gW.size == 0:
            return
        if self.gemm is not None:
            # Column-major view: gW.T (H x V) += x.T (H x n) @ dlogits (n x V); every operand is
            # Fortran-contiguous as it stands, so f2py copies nothing and writes gW in place.
            res = self.gemm(1.0, x.T, dlogits.T, beta=1.0, c=gW.T, trans_b=1, overwrite_c=1)
            if not np.shares_memory(res, gW):  # pragma: no cover - defensive
                gW[...] = res.T
            return
        V = gW.shape[0]
        if self.tmp is None:
            self.tmp = np.empty((self.vblock, gW.shape[1]), gW.dtype)
        for v0 in range(0, V, self.vblock):
            v1 = min(V, v0 + self.vblock)
            t = self.tmp[: v1 - v0]
            np.matmul(dlogits[:, v0:v1].T, x, out=t)
            gW[v0:v1] += t


class _Weight:
    """linear_weight (V x H) in the chunk loop's two products with it, ``logits = x @ W.T`` and
    ``grad_input = dlogits @ W``. A W of the computation's dtype is used as it is. A 16-bit W is
    read in place: the products run on float32 vocabulary blocks of about ``block_bytes``, each
    widened from the 16-bit rows when it is used (no float32 copy of W; BLAS has no 16-bit GEMM);
    a W whose float32 form fits one block is widened once. Where W needs several blocks,
    grad_input sums the blocks' products in float32, in block order (a rounding-level difference
    from one GEMM over all of W, which the 16-bit result hides)."""

    def __init__(self, W: np.ndarray, dtype: np.dtype, block_bytes: int) -> None:
        self.W = W
        V, H = W.shape
        self.vblock = V if W.dtype == dtype else max(1, min(V, block_bytes // max(1, H * dtype.itemsize)))
        self.single = self.vblock >= V
        if W.dtype == dtype:
            self.buf = W
        else:
            self.buf = W.astype(dtype) if self.single else np.empty((self.vblock, H), dtype)

    def _blocks(self) -> Any:
        V = self.W.shape[0]
        if self.single:
            yield 0, V, self.buf
            return
        for v0 in range(0, V, self.vblock):
            v1 = min(V, v0 + self.vblock)
            block = self.buf[: v1 - v0]
            block[...] = self.W[v0:v1]  # widened: exact
            yield v0, v1, block

    def logits(self, xc: np.ndarray, out: np.ndarray) -> None:
        for v0, v1, Wb in self._blocks():
            np.matmul(xc, Wb.T, out=out if self.single else out[:, v0:v1])

    def grad_input_t(self, dlogits: np.ndarray, out: np.ndarray) -> None:
        """out (H x n) = W.T @ dlogits.T (as the float path forms grad_input's transpose)."""
        for v0, v1, Wb in self._blocks():
            if v0 == 0:
                np.matmul(Wb.T, dlogits[:, v0:v1].T, out=out)
            else:
                out += Wb.T @ dlogits[:, v0:v1].T


def _index_target(target: Any) -> np.ndarray:
    t = _convert.to_array(_FN, "target", target)
    if t.dtype.kind == "f":
        raise TypeError(
            f"{_FN}: target expected integer class indices, got a {t.dtype} array (class-probability "
            "targets are not supported by the chunked path; use cross_entropy on the logits)"
        )
    if t.dtype.kind not in "iu":
        raise TypeError(f"{_FN}: target expected an integer array of class indices, got {t.dtype}")
    return _convert.as_kernel_array(t, np.int64)


def linear_cross_entropy(
    mode: int,
    input: Any,
    linear_weight: Any,
    target: Any,
    linear_bias: Any,
    weight: Any,
    grad_output: Any,
    reduction: str,
    ignore_index: Optional[int],
    label_smoothing: float,
    chunk_size: Optional[int],
    normalizer: Optional[float] = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    return_stats: bool = False,
) -> Any:
    """``(value, stats)``: value for mode 0 the loss; 1: the gradients; 2: (loss, gradients); 3: the
    divisor of 'mean' (mean_normalizer). Gradients are ``(grad_input, grad_linear_weight,
    grad_linear_bias or None)``; stats the dict of per-row statistics with ``return_stats``, else
    None."""
    if not isinstance(reduction, str):
        raise TypeError(f"{_FN}: reduction expected a string, got {type(reduction).__name__}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{_FN}: reduction expected one of 'none', 'mean', 'sum', got {reduction!r}")
    ignore = -100 if ignore_index is None else _convert.integer(_FN, "ignore_index", ignore_index)
    smoothing = _convert.real(_FN, "label_smoothing", label_smoothing)
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"{_FN}: label_smoothing expected a value between 0.0 and 1.0, got {smoothing}")
    z_loss = _convert.real(_FN, "z_loss", z_loss)
    softcap = None if softcap is None else _convert.real(_FN, "softcap", softcap)
    return_stats = _convert.flag(_FN, "return_stats", return_stats)

    x = _convert.to_array(_FN, "input", input)
    dtype = _convert.compute_dtype(x)
    # 16-bit input and weight are read in place: x a chunk of rows at a time, W in vocabulary
    # blocks (_Weight); the float32 results are rounded once to the input's dtype at the end.
    half = x.dtype if _convert.is_half(x.dtype) else None
    x = _convert.as_kernel_array(x, half or dtype)
    W = _convert.to_array(_FN, "linear_weight", linear_weight)
    W = _convert.as_kernel_array(W, half if half is not None and W.dtype == half else dtype)
    b = (
        None
        if linear_bias is None
        else _convert.as_kernel_array(_convert.to_array(_FN, "linear_bias", linear_bias), dtype)
    )
    w = None if weight is None else _convert.as_kernel_array(_convert.to_array(_FN, "weight", weight), dtype)
    t = _index_target(target)

    if x.ndim not in (1, 2):
        raise ValueError(f"{_FN}: input expected a (in_features) or (N, in_features) array, got shape {x.shape}")
    if W.ndim != 2:
        raise ValueError(
            f"{_FN}: linear_weight expected a (num_classes, in_features) array, got shape {W.shape} "
            "(K-dimensional out_features are not supported)"
        )
    V, H = W.shape
    if x.shape[-1] != H:
        raise ValueError(
            f"{_FN}: input expected in_features = linear_weight.shape[1] = {H} features, got shape {x.shape}"
        )
    if b is not None and b.shape != (V,):
        raise ValueError(f"{_FN}: linear_bias expected shape ({V},), got shape {b.shape}")
    batched = x.ndim == 2
    N = x.shape[0] if batched else 1
    if t.shape != ((N,) if batched else ()):
        raise ValueError(
            f"{_FN}: target expected class indices of shape {(N,) if batched else ()}, got shape {t.shape}"
        )
    x2 = x.reshape(N, H)
    t1 = t.reshape(N)

    # The cheap global pass: every index checked, the 'mean' divisor summed (in double), or the
    # caller's normalizer in its place.
    if mode == 3:
        return float(_core.large_vocab_mean_normalizer(t1, w, V, ignore, smoothing, reduction, z_loss, softcap)), None
    total_weight = _core.large_vocab_target_weight(
        t1, w, V, ignore, smoothing, reduction, _convert.normalizer(_FN, "normalizer", normalizer), z_loss, softcap
    )

    want_grad = mode != 0
    go_rows = None
    scale = 1.0
    if want_grad:
        if reduction == "none":
            if grad_output is None:
                go_rows = None  # ones
            else:
                go = _convert.grad_output_array(_FN, grad_output, dtype)
                if go.shape != t.shape:
                    raise ValueError(f"{_FN}: grad_output expected the loss's shape {t.shape}, got shape {go.shape}")
                go_rows = go.reshape(N)
        else:
            go = 1.0 if grad_output is None else _convert.grad_output_array(_FN, grad_output, dtype)
            if np.ndim(go) != 0:
                raise ValueError(f"{_FN}: grad_output expected a scalar, shape (), got shape {np.shape(go)}")
            scale = float(go)
            if reduction == "mean":
                with np.errstate(divide="ignore", invalid="ignore"):
                    scale = float(np.float64(scale) / np.float64(total_weight))

    if chunk_size is None:
        rows = _core.large_vocab_chunk_rows(N, V, dtype.itemsize, DEFAULT_CHUNK_BYTES, DEFAULT_MIN_ROWS)
    else:
        if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Real):
            raise TypeError(f"{_FN}: chunk_size expected a positive number of rows, got {type(chunk_size).__name__}")
        if not (chunk_size >= 1 and float(chunk_size).is_integer()):
            raise ValueError(f"{_FN}: chunk_size expected a positive number of rows, got {chunk_size!r}")
        rows = max(1, min(int(chunk_size), N))

    out = np.empty(N, dtype) if reduction == "none" else None
    stats = (
        {"lse": np.empty(N, dtype), "entropy": np.empty(N, dtype), "correct": np.empty(N, np.bool_)}
        if return_stats
        else None
    )
    gx = gW = gb_acc = None
    acc = None
    if want_grad:
        gx = np.empty((N, H), dtype)
        gW = np.empty((V, H), dtype) if N > 0 else np.zeros((V, H), dtype)
        gb_acc = np.zeros(V, np.float64) if b is not None else None
        acc = _WeightGradAccumulator(gW, max(DEFAULT_CHUNK_BYTES, rows * V * dtype.itemsize))
        gxT_buf = np.empty((H, rows), dtype)
    buf = np.empty((min(rows, N), V), dtype)
    weight_blocks = _Weight(W, dtype, HALF_WEIGHT_BLOCK_BYTES)
    total = 0.0
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        logits = buf[: r1 - r0]
        xc = x2[r0:r1]
        if xc.dtype != dtype:
            xc = xc.astype(dtype)  # one chunk of rows, widened (exact)
        weight_blocks.logits(xc, logits)
        total += _core.large_vocab_ce_chunk(
            logits,
            t1[r0:r1],
            b,
            w,
            None if go_rows is None else go_rows[r0:r1],
            None if out is None else out[r0:r1],
            gb_acc,
            want_grad,
            scale,
            ignore,
            smoothing,
            reduction,
            z_loss,
            softcap,
            *((None,) * 3 if stats is None else (a[r0:r1] for a in stats.values())),
        )
        if want_grad:
            # grad_input[chunk] = dlogits @ W, computed as its transpose W.T @ dlogits.T: the same
            # product, but OpenBLAS splits the long side (H) across threads instead of the chunk's
            # few rows; measured 1.5-2x faster for 128-512-row chunks. The (H x n) result is small.
            gxT = gxT_buf if r1 - r0 == rows else np.empty((H, r1 - r0), dtype)
            weight_blocks.grad_input_t(logits, gxT)
            gx[r0:r1] = gxT.T
            acc.add(logits, xc)
    del buf

    if reduction == "none":
        loss: Any = out.reshape(t.shape)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.float64(total) / np.float64(total_weight) if reduction == "mean" else np.float64(total)
        loss = np.asarray(value, dtype=dtype)[()]
    if stats is not None:
        stats = {k: a.reshape(t.shape) for k, a in stats.items()}
    # Computed in float32 from the 16-bit values; the results are rounded once to the input's dtype.
    loss, stats = _convert.rounded_to_input((loss, stats), input)
    if mode == 0:
        return loss, stats
    grads = _convert.rounded_to_input(
        (gx.reshape(x.shape), gW, None if gb_acc is None else gb_acc.astype(dtype)), input
    )
    return (grads if mode == 1 else (loss, grads)), stats


# ---- LinearCrossEntropyLoss's projection ----------------------------------------------------
class Linear:
    """The parameters of a ``torch.nn.Linear``: ``weight`` (out_features, in_features) and
    ``bias`` (out_features) or None, NumPy arrays initialised as torch's ``reset_parameters``
    does (uniform in +-1/sqrt(in_features)) and freely settable."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = None,
        rng: Optional[np.random.Generator] = None,
    ) -> None:
        self.in_features = _convert.size("Linear", "in_features", in_features)
        self.out_features = _convert.size("Linear", "out_features", out_features)
        dt = _convert.float_dtype("Linear", "dtype", dtype)
        rng = _convert.generator("Linear", "rng", rng)
        bias = _convert.flag("Linear", "bias", bias)
        # kaiming_uniform_(a=sqrt(5)) on (out, in) is U(-1/sqrt(in), 1/sqrt(in)); the bias too.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        self.weight = rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dt)
        self.bias = rng.uniform(-bound, bound, self.out_features).astype(dt) if bias else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.aligned_weight().T
        return y + _convert.aligned(self.bias) if self.bias is not None else y

    def aligned_weight(self) -> np.ndarray:
        """``weight``, or an aligned copy of it when it was set to a misaligned array: NumPy's
        matmul takes another summation path for misaligned data, so results would change in the
        last bits (the C++ core's arguments get the same copy in _convert)."""
        return _convert.aligned(self.weight)

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


# ---- AdaptiveLogSoftmaxWithLoss -------------------------------------------------------------
ASMoutput = collections.namedtuple("ASMoutput", ["output", "loss"])


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = np.max(z, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))


class AdaptiveLogSoftmaxWithLoss:
    r"""Efficient softmax approximation (Grave et al., 2017), as ``torch.nn.AdaptiveLogSoftmaxWithLoss``.

    Classes are split by ``cutoffs`` into a frequent shortlist ``[0, cutoffs[0])`` and tail clusters
    ``[cutoffs[i], cutoffs[i+1])``. The head (``head.weight`` (shortlist + clusters, in_features),
    ``head.bias`` with ``head_bias``) scores the shortlist and one logit per cluster; cluster ``i``
    projects through ``tail[i][0].weight`` (in_features // div_value**(i+1), in_features) then
    ``tail[i][1].weight`` (cluster size, that). For a target in the shortlist,
    :math:`\log p(y|x) = \operatorname{log\_softmax}(h)_y`; in cluster :math:`i`,
    :math:`\log p(y|x) = \operatorname{log\_softmax}(h)_{s+i} + \operatorname{log\_softmax}(t_i)_{y - c_i}`.
    ``forward`` returns ``(output, loss)`` with ``output`` these log-probabilities and
    ``loss = -mean(output)``. Both terms are cross-entropies of their logits, computed (with their
    gradients) by losskit's fused cross-entropy kernel; the matrix products use NumPy's BLAS.

    Parameters are NumPy arrays initialised as torch's (``head``, ``tail[i][0]``, ``tail[i][1]`` are
    :class:`Linear` holders); :meth:`state_dict` / :meth:`load_state_dict` use torch's names
    (``head.weight``, ``tail.0.1.weight``, ...), so ``load_state_dict({k: v.numpy() for k, v in
    torch_module.state_dict().items()})`` copies a torch module's weights.

    Reference: E. Grave, A. Joulin, M. Cissé, D. Grangier, H. Jégou, "Efficient softmax
    approximation for GPUs", ICML 2017 (eq. 6-7 for the two-level decomposition).
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cutoffs: Sequence[int],
        div_value: float = 4.0,
        head_bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        rng: Optional[np.random.Generator] = None,
    ) -> None:
        fn = "AdaptiveLogSoftmaxWithLoss"
        if not (device is None or isinstance(device, str) and device == "cpu"):
            raise ValueError(f"{fn}: device expected None or 'cpu', got {device!r}")
        in_features = _convert.size(fn, "in_features", in_features)
        n_classes = _convert.size(fn, "n_classes", n_classes)
        div_value = _convert.real(fn, "div_value", div_value)
        if not div_value > 0:  # torch divides by it (ZeroDivisionError) or makes negative sizes
            raise ValueError(f"{fn}: div_value expected a positive number, got {div_value}")
        dtype = _convert.float_dtype(fn, "dtype", dtype)
        rng = _convert.generator(fn, "rng", rng)
        try:
            cutoffs = list(cutoffs)
        except TypeError as exc:
            raise TypeError(f"{fn}: cutoffs expected a sequence of integers, got {type(cutoffs).__name__}") from exc
        if not all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in cutoffs):
            raise TypeError(f"{fn}: cutoffs expected a sequence of integers, got {cutoffs!r}")
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (
            cutoffs != sorted(cutoffs)
            or min(cutoffs) <= 0
            or max(cutoffs) > (n_classes - 1)
            or len(set(cutoffs)) != len(cutoffs)
            or any(int(c) != c for c in cutoffs)
        ):
            raise ValueError(
                "cutoffs should be a sequence of unique, positive integers sorted in an increasing order, "
                "where each value is between 1 and n_classes-1"
            )
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = [int(c) for c in cutoffs] + [self.n_classes]
        self.div_value = div_value
        self.head_bias = _convert.flag(fn, "head_bias", head_bias)
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(self.in_features, self.head_size, bias=head_bias, dtype=dtype, rng=rng)
        self.tail: List[Tuple[Linear, Linear]] = []
        for i in range(self.n_clusters):
            hsz = int(self.in_features // (self.div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(
                (
                    Linear(self.in_features, hsz, bias=False, dtype=dtype, rng=rng),
                    Linear(hsz, osz, bias=False, dtype=dtype, rng=rng),
                )
            )
        self._saved: Optional[Dict[str, Any]] = None

    # -- parameters ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        d = {"head.weight": self.head.weight}
        if self.head.bias is not None:
            d["head.bias"] = self.head.bias
        for i, (a, b) in enumerate(self.tail):
            d[f"tail.{i}.0.weight"] = a.weight
            d[f"tail.{i}.1.weight"] = b.weight
        return d

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        mine = self.state_dict()
        if set(state) != set(mine):
            raise ValueError(f"AdaptiveLogSoftmaxWithLoss: state expected keys {sorted(mine)}, got {sorted(state)}")
        for k, v in state.items():
            arr = np.array(v, dtype=mine[k].dtype, copy=True)
            if arr.shape != mine[k].shape:
                raise ValueError(f"AdaptiveLogSoftmaxWithLoss: {k} expected shape {mine[k].shape}, got {arr.shape}")
            parts = k.split(".")
            if parts[0] == "head":
                setattr(self.head, parts[1], arr)
            else:
                self.tail[int(parts[1])][int(parts[2])].weight = arr

    # -- forward / backward ----------------------------------------------------------------
    def _prepare(self, input: Any, target: Any) -> Tuple[np.ndarray, np.ndarray, bool]:
        fn = "AdaptiveLogSoftmaxWithLoss"
        x = _convert.to_array(fn, "input", input)
        x = _convert.as_kernel_array(x, self.head.weight.dtype)
        t = _convert.to_array(fn, "target", target)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{fn}: target expected an integer array of class indices, got {t.dtype}")
        t = _convert.as_kernel_array(t, np.int64)
        if t.ndim == 1:
            if x.ndim != 2:
                raise ValueError(
                    f"{fn}: input expected a 2-D (N, in_features) array with a 1-D target, got shape {x.shape}"
                )
            if x.shape[0] != t.shape[0]:
                raise ValueError(
                    f"{fn}: input and target expected the same batch size, got {x.shape[0]} and {t.shape[0]}"
                )
        elif t.ndim == 0:
            if x.ndim != 1:
                raise ValueError(
                    f"{fn}: input expected a 1-D (in_features) array with a 0-D target, got shape {x.shape}"
                )
        else:
            raise ValueError(
                f"{fn}: target expected 0-D or 1-D class indices (multi-target not supported), got shape {t.shape}"
            )
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{fn}: input expected {self.in_features} features, got shape {x.shape}")
        batched = t.ndim == 1
        x2 = x.reshape(-1, self.in_features)
        t1 = t.reshape(-1)
        if t1.size and (t1.min() < 0 or t1.max() >= self.n_classes):
            raise _core.IndexError(
                f"{fn}: target expected class indices in [0, {self.n_classes - 1}], got values in "
                f"[{t1.min()}, {t1.max()}]"
            )
        return x2, t1, batched

    def _run(self, x: np.ndarray, t: np.ndarray, grad: bool, grad_output: float = 1.0) -> Dict[str, Any]:
        from . import functional as F  # the fused cross-entropy (C++ core)

        B = t.shape[0]
        dtype = x.dtype
        go_rows = np.full(B, grad_output / B if B else 0.0, dtype)  # d loss / d (-output_n)
        gather = np.where(t < self.shortlist_size, t, 0)
        output = np.zeros(B, dtype)
        gx = np.zeros_like(x) if grad else None
        grads: Dict[str, np.ndarray] = {}
        for i in range(self.n_clusters):
            lo, hi = self.cutoffs[i], self.cutoffs[i + 1]
            rows = np.nonzero((t >= lo) & (t < hi))[0]
            gather[rows] = self.shortlist_size + i
            aw, bw = (lin.aligned_weight() for lin in self.tail[i])
            if grad:
                grads[f"tail.{i}.0.weight"] = np.zeros_like(aw)
                grads[f"tail.{i}.1.weight"] = np.zeros_like(bw)
            if rows.size == 0:
                continue
            xs = x[rows]
            h = xs @ aw.T
            z = np.ascontiguousarray(h @ bw.T)
            rel = t[rows] - lo
            if grad:
                nll, dz = F.cross_entropy_forward_backward(z, rel, grad_output=go_rows[rows], reduction="none")
                grads[f"tail.{i}.1.weight"] = dz.T @ h
                dh = dz @ bw
                grads[f"tail.{i}.0.weight"] = dh.T @ xs
                gx[rows] += dh @ aw
            else:
                nll = F.cross_entropy(z, rel, reduction="none")
            output[rows] = -nll
        zh = np.ascontiguousarray(self.head(x))
        if grad:
            nll, dzh = F.cross_entropy_forward_backward(zh, gather, grad_output=go_rows, reduction="none")
            grads["head.weight"] = dzh.T @ x
            if self.head.bias is not None:
                grads["head.bias"] = dzh.sum(axis=0, dtype=np.float64).astype(dtype)
            gx += dzh @ self.head.aligned_weight()
        else:
            nll = F.cross_entropy(zh, gather, reduction="none")
        output -= nll
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = np.asarray(-np.sum(output, dtype=np.float64) / B if B else np.nan, dtype=dtype)[()]
        return {"output": output, "loss": loss, "grad_input": gx, "grads": grads}

    def forward(self, input: Any, target: Any) -> ASMoutput:
        """``(output, loss)``: the target log-probabilities (N) (or () unbatched) and their negated mean."""
        x, t, batched = self._prepare(input, target)
        r = self._run(x, t, grad=False)
        self._saved = {"x": x, "t": t, "batched": batched}
        out = r["output"] if batched else r["output"].reshape(())
        return ASMoutput(out, r["loss"])

    __call__ = forward

    def _grads_result(
        self, r: Dict[str, Any], batched: bool, shape: Tuple[int, ...]
    ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        gx = r["grad_input"].reshape(shape if batched else (self.in_features,))
        order = list(self.state_dict())
        return gx, {k: r["grads"][k] for k in order}

    def backward(self, grad_output: Any = None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Gradients of the loss of the most recent :meth:`forward`: ``(grad_input, grads)`` with
        ``grads`` a dict from parameter names (torch's, as in :meth:`state_dict`) to arrays."""
        if self._saved is None:
            raise RuntimeError("AdaptiveLogSoftmaxWithLoss.backward() called before forward()")
        s = self._saved
        go = 1.0 if grad_output is None else float(np.asarray(grad_output))
        r = self._run(s["x"], s["t"], grad=True, grad_output=go)
        return self._grads_result(r, s["batched"], s["x"].shape)

    def forward_backward(
        self, input: Any, target: Any, grad_output: Any = None
    ) -> Tuple[ASMoutput, Tuple[np.ndarray, Dict[str, np.ndarray]]]:
        """``((output, loss), (grad_input, grads))`` in one pass."""
        x, t, batched = self._prepare(input, target)
        go = 1.0 if grad_output is None else float(np.asarray(grad_output))
        r = self._run(x, t, grad=True, grad_output=go)
        self._saved = {"x": x, "t": t, "batched": batched}
        out = r["output"] if batched else r["output"].reshape(())
        return ASMoutput(out, r["loss"]), self._grads_result(r, batched, x.shape)

    def _full_log_prob(self, x: np.ndarray, head_out: np.ndarray) -> np.ndarray:
        out = np.empty((head_out.shape[0], self.n_classes), x.dtype)
        head_lp = _log_softmax(head_out)
        out[:, : self.shortlist_size] = head_lp[:, : self.shortlist_size]
        for i in range(self.n_clusters):
            aw, bw = (lin.aligned_weight() for lin in self.tail[i])
            cl = _log_softmax((x @ aw.T) @ bw.T)
            out[:, self.cutoffs[i] : self.cutoffs[i + 1]] = (
                cl + head_lp[:, self.shortlist_size + i : self.shortlist_size + i + 1]
            )
        return out

    def _input(self, input: Any) -> np.ndarray:
        x = _convert.as_kernel_array(
            _convert.to_array("AdaptiveLogSoftmaxWithLoss", "input", input), self.head.weight.dtype
        )
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"AdaptiveLogSoftmaxWithLoss: input expected shape (N, {self.in_features}), got {x.shape}")
        return x

    def log_prob(self, input: Any) -> np.ndarray:
        """Log-probabilities of all ``n_classes`` classes, (N, n_classes)."""
        x = self._input(input)
        return self._full_log_prob(x, self.head(x))

    def predict(self, input: Any) -> np.ndarray:
        """The most probable class of each row, (N) int64 (``log_prob(input).argmax(1)``, computing
        the full distribution only for rows whose head argmax is a cluster)."""
        x = self._input(input)
        head_out = self.head(x)
        out = np.argmax(head_out, axis=1).astype(np.int64)
        rows = np.nonzero(out >= self.shortlist_size)[0]
        if rows.size:
            out[rows] = np.argmax(self._full_log_prob(x[rows], head_out[rows]), axis=1)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, n_classes={self.n_classes}, cutoffs={self.cutoffs[:-1]}, "
            f"div_value={self.div_value}, head_bias={self.head_bias}"
        )

    def __repr__(self) -> str:
        return f"AdaptiveLogSoftmaxWithLoss({self.extra_repr()})"
