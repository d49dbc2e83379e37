"""losskit's losses over Dask arrays: ``losskit.dask.<name>``, ``<name>_backward`` and
``<name>_forward_backward`` for every loss of :mod:`losskit.functional`, with its signature, and
:func:`mean_normalizer`. Needs ``pip install losskit[dask]``; ``import losskit`` never imports dask.

The arrays are cut into chunks along the batch dimension (axis 0; ``log_probs``' axis 1 for CTC);
every other dimension (classes, features, time) is one chunk, rechunked so if it is not. Each
chunk is one task that calls the in-memory function of :mod:`losskit.functional` on that chunk's
rows. Arguments without the batch dimension (class weights, ``linear_weight``, a broadcast target)
go whole to every task. NumPy arrays, lists and numbers may be mixed with dask arrays. Nothing is
computed: the results are dask arrays (the loss, 0-d or the ``'none'`` array chunked along the
batch, and gradients chunked like their arguments).

Reductions are exact and deterministic:

* ``'sum'``: each chunk's partial (the core's double accumulation, rounded once to the result
  dtype) is added in double in a fixed pairwise tree over the chunk index, so the result is
  bitwise the same on any scheduler and any number of workers (it depends on the chunks only).
* ``'mean'`` (``'batchmean'``): first each chunk's :func:`losskit.functional.mean_normalizer`
  (tasks that read only class-index targets, lengths and ``weight``, never the inputs), added up
  in the same tree: the global divisor ``Z``. Then every chunk calls the loss with
  ``normalizer=Z``, so its value and gradients are its share of the global mean (docs/training.md),
  and the values are added as for ``'sum'``. A ``Z`` that is not finite and positive (every target
  ignored, an empty batch) leaves each chunk its own divisor: NaN with zero gradients, as in memory
  (a negative ``Z``, from negative class weights, too: a known difference from in-memory losskit).
  A ``normalizer=`` given by the caller replaces ``Z``.
* Gradients of arguments passed whole (``linear_weight``, ``linear_bias``, a broadcast target or
  ``var``) are the sums of the chunks' gradients, added in double in the same tree.

Errors: the call is checked when the graph is built, by running the in-memory function on one row
of zeros with the real shapes and dtypes of everything else (and the real NumPy arrays passed
whole), so shapes, dtypes and options raise there with the in-memory message; a batch extent that
differs between arguments raises a ValueError naming the argument. Checks of values (class
indices, lengths, BCE's range) run in the tasks and raise the in-memory error at compute.

>>> import dask.array as da, numpy as np
>>> import losskit.dask as LD, losskit.functional as F
>>> x = np.random.default_rng(0).standard_normal((10, 4))
>>> t = np.array([0, 3, -100, 1, 2, 2, 0, -100, 3, 1])
>>> loss, grad = LD.cross_entropy_forward_backward(da.from_array(x, chunks=3), t)
>>> grad.chunks
((3, 3, 3, 1), (4,))
>>> bool(np.isclose(loss.compute(), F.cross_entropy(x, t)))
True
>>> bool(np.allclose(grad.compute(), F.cross_entropy_backward(1.0, x, t)))
True
"""

from __future__ import annotations

import inspect
import math
import operator
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from . import _adapters, _reduction
from . import functional as _LF
from ._functional import _spec
from ._functional._spec import ArrayLike  # noqa: F401  (the annotation of the signatures)

_MODULE = "losskit.dask"
_FORWARD, _BACKWARD, _FORWARD_BACKWARD, _NORMALIZER = "forward", "backward", "forward_backward", "normalizer"

# ---- where each loss's batch dimension is --------------------------------------------------------

_ELEMENTWISE = frozenset(
    {
        "l1_loss",
        "mse_loss",
        "huber_loss",
        "smooth_l1_loss",
        "soft_margin_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "poisson_nll_loss",
        "gaussian_nll_loss",
        "kl_div",
        "margin_ranking_loss",
        "hinge_embedding_loss",
    }
) | frozenset(_spec.ELEMENTWISE)
_ROWS_OF_CLASSES = frozenset(
    {"cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"}
)
_TRIPLETS = frozenset({"triplet_margin_loss", "triplet_margin_with_distance_loss"})
_BOXES = frozenset({"generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"})
# beyond torch.nn: classification (cross_entropy's layout)
_ROWS_OF_CLASSES |= {"softmax_focal_loss", "poly1_cross_entropy"}


def _broadcast_rows(shapes: Dict[str, Tuple[int, ...]], names: Sequence[str]) -> Dict[str, Optional[int]]:
    """Arguments that broadcast (element-wise losses, the triplet's rows): those of the largest
    rank whose axis 0 is the batch extent are cut; rank-deficient ones and an axis 0 of 1 broadcast."""
    axes: Dict[str, Optional[int]] = {}
    rank = max((len(shapes[k]) for k in names), default=0)
    full = [shapes[k][0] for k in names if len(shapes[k]) == rank and rank]
    extent = next((n for n in full if n != 1), 1)
    for k in names:
        s = shapes[k]
        axes[k] = 0 if rank and len(s) == rank and (s[0] == extent or s[0] != 1) else None
    return axes


def _batch_axes(name: str, shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, Optional[int]]:
    """The batch axis of each array argument of ``name`` called with these shapes (None: the
    argument goes whole to every task; all None: the call has no batch dimension)."""
    axes: Dict[str, Optional[int]] = dict.fromkeys(shapes)
    if name in _ELEMENTWISE:
        var = shapes.get("var")
        homoscedastic = (
            name == "gaussian_nll_loss" and var is not None and len(var) >= 1 and var == shapes["input"][:-1]
        )  # torch unsqueezes var(N) against input(N, D)
        axes.update(_broadcast_rows(shapes, [k for k in shapes if not (homoscedastic and k == "var")]))
        if homoscedastic and axes.get("input") == 0:
            axes["var"] = 0
    elif name in _ROWS_OF_CLASSES:
        rank = len(shapes["input"])
        if rank >= 2:
            axes["input"] = 0
            if len(shapes.get("target", ())) >= 1:
                axes["target"] = 0
            if name == "multilabel_soft_margin_loss" and len(shapes.get("weight", ())) == rank:
                axes["weight"] = 0
    elif name == "cosine_embedding_loss":
        if len(shapes["input1"]) == 2:
            axes.update({k: 0 for k in ("input1", "input2") if len(shapes[k]) == 2})
            if len(shapes.get("target", ())) == 1:
                axes["target"] = 0
    elif name in _TRIPLETS:
        rows = ("anchor", "positive", "negative")
        if max(len(shapes[k]) for k in rows if k in shapes) >= 2:
            axes.update(_broadcast_rows(shapes, [k for k in rows if k in shapes]))
    elif name == "ctc_loss":
        if len(shapes["log_probs"]) == 3:
            axes["log_probs"] = 1
            # Concatenated (1-d) targets go whole; each task takes its samples' slice (_Chunk).
            axes.update(
                {
                    k: 0
                    for k in ("targets", "input_lengths", "target_lengths")
                    if k in shapes and len(shapes[k]) == (2 if k == "targets" else 1)
                }
            )
    elif name == "linear_cross_entropy":
        if len(shapes["input"]) == 2:
            axes["input"] = 0
            if len(shapes.get("target", ())) >= 1:
                axes["target"] = 0
    elif name == "info_nce_loss":
        # Every pair is a negative of every other: a batch chunk's loss needs the whole batch, so
        # the call has no batch layout here and runs whole, in one task (exact, not distributed).
        pass
    elif name in ("dice_loss", "tversky_loss"):
        if len(shapes["input"]) >= 3:
            axes.update({k: 0 for k in ("input", "target") if k in shapes and len(shapes[k]) >= 2})
    elif name in _BOXES:
        # (N, ..., 4): cut along N; boxes that broadcast against it (one box, (1, M, 4)) go whole
        if max(len(shapes[k]) for k in ("boxes1", "boxes2")) >= 2:
            axes.update(_broadcast_rows(shapes, ["boxes1", "boxes2"]))
    else:  # a new loss family must say where its batch is
        raise NotImplementedError(f"{_MODULE}.{name}: no batch layout for this loss")
    return axes


# ---- the tasks -----------------------------------------------------------------------------------


def _normalizer_ok(z: Any) -> bool:
    return z is not None and math.isfinite(z) and z > 0


class _Chunk:
    """One task: a :mod:`losskit.functional` entry point on one batch chunk. Picklable (module-level
    class, plain state), so distributed workers in other processes run it.

    Returns ``(value, grads, stats)``: the value as the in-memory call gives it (a reduced value
    as a Python float, in double), the gradients as a tuple (None where absent), the statistics of
    ``return_stats`` (or None). In ``normalizer`` mode the value is the chunk's divisor."""

    __slots__ = ("name", "mode", "names", "static", "zeros", "concat")

    def __init__(
        self,
        name: str,
        mode: str,
        names: Sequence[str],
        static: Dict[str, Any],
        zeros: Dict[str, Tuple[Tuple[int, ...], str]],
        concat: Optional[Tuple[int, int]],
    ) -> None:
        self.name, self.mode, self.names, self.static = name, mode, tuple(names), static
        self.zeros = zeros  # stand-ins the divisor never reads: name -> (shape, dtype)
        self.concat = concat  # CTC's concatenated targets: this chunk's samples [start, stop)

    def __getstate__(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state: Tuple[Any, ...]) -> None:
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v)

    def __call__(self, *values: Any) -> Tuple[Any, Tuple[Any, ...], Optional[Dict[str, Any]]]:
        kwargs = dict(self.static)
        kwargs.update(zip(self.names, values))
        for k, (shape, dtype) in self.zeros.items():
            kwargs[k] = np.zeros(shape, dtype)  # calloc: pages that are never read cost nothing
        if self.concat is not None:
            start, stop = self.concat
            ends = np.concatenate([[0], np.cumsum(np.asarray(kwargs.pop("_all_target_lengths"), np.int64))])
            kwargs["targets"] = np.asarray(kwargs["targets"])[ends[start] : ends[stop]]
        if "normalizer" in self.names and not _normalizer_ok(kwargs["normalizer"]):
            kwargs["normalizer"] = None  # nothing counted anywhere: each chunk's own NaN mean
        if self.mode == _NORMALIZER:
            return _spec.mean_normalizer(self.name, **kwargs), (), None
        suffix = "" if self.mode == _FORWARD else "_" + self.mode
        value, grads, stats = _unpack(
            self.mode, getattr(_LF, self.name + suffix)(**kwargs), kwargs.get("return_stats", False)
        )
        if value is not None and not isinstance(value, np.ndarray):
            value = float(value)  # a reduced partial, added in double
        return value, grads, stats


def _unpack(mode: str, out: Any, stats: bool) -> Tuple[Any, Tuple[Any, ...], Optional[Dict[str, Any]]]:
    """An in-memory result as ``(value, grads, stats)`` (grads a tuple, () in forward mode)."""
    st = None
    if stats:
        *rest, st = out
        out = rest[0] if len(rest) == 1 else tuple(rest)
    value, grads = (None, out) if mode == _BACKWARD else (out, ()) if mode == _FORWARD else out
    return value, grads if isinstance(grads, tuple) else (grads,), st


def _value(result: Tuple[Any, ...]) -> Any:
    return result[0]


def _grad(result: Tuple[Any, ...], j: int) -> Any:
    return result[1][j]


def _stat(result: Tuple[Any, ...], key: str) -> Any:
    return result[2][key]


def _add(a: Any, b: Any) -> Any:
    """One node of the pairwise tree: a + b in double."""
    return np.add(a, b, dtype=np.float64) if isinstance(a, np.ndarray) else float(a) + float(b)


def _as_dtype(total: Any, dtype: str, ndim: int) -> Any:
    out = np.asarray(total, dtype=np.dtype(dtype))
    return out if ndim else out[()]


# ---- building the graph --------------------------------------------------------------------------


def _tree(layer: Dict[Any, Any], name: str, leaves: List[Any]) -> Any:
    """Adds the fixed pairwise tree over ``leaves`` (in chunk order) to ``layer``; returns the
    root's key. The tree depends only on the number of chunks, never on the scheduler."""
    level = 0
    while len(leaves) > 1:
        pairs = [(name, level, j // 2) for j in range(0, len(leaves) - 1, 2)]
        for j, key in enumerate(pairs):
            layer[key] = (_add, leaves[2 * j], leaves[2 * j + 1])
        leaves, level = pairs + leaves[2 * len(pairs) :], level + 1
    return leaves[0]


def _as_array(value: Any) -> Any:
    """Lists and tuples as NumPy arrays (a ragged one stays as it is: the in-memory check raises
    its TypeError); dask and NumPy arrays as they are; anything else (numbers) None."""
    if isinstance(value, (da.Array, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except (TypeError, ValueError):
            return None
    return None


def _block(name: str, ndim: int, axis: Optional[int], i: int) -> Tuple[Any, ...]:
    """The key of block ``i`` along ``axis`` of an array chunked along that axis only."""
    return (name,) + tuple(i if k == axis else 0 for k in range(ndim))


def _with_layer(base: HighLevelGraph, base_name: str, out: str, layer: Dict[Any, Any]) -> HighLevelGraph:
    return HighLevelGraph({**base.layers, out: layer}, {**base.dependencies, out: {base_name}})


class _Plan:
    """One call laid out for dask: its array arguments as dask arrays in one chunk except along the
    batch axis (all cut like the first dask argument cut there), the static arguments, and the
    in-memory probe's result (which checked the call and gives the dtypes and row shapes)."""

    def __init__(self, name: str, mode: str, arguments: Dict[str, Any], array_names: Sequence[str]) -> None:
        self.name, self.mode = name, mode
        fn = (
            f"{_MODULE}.mean_normalizer"
            if mode == _NORMALIZER
            else f"{_MODULE}.{name}" + ("" if mode == _FORWARD else "_" + mode)
        )
        converted = {k: _as_array(arguments[k]) for k in array_names if k in arguments}
        arrays = {k: v for k, v in converted.items() if v is not None}
        for k, v in arrays.items():
            if any(math.isnan(n) for n in v.shape):
                raise ValueError(f"{fn}: {k} has unknown chunk sizes {v.shape}; call {k}.compute_chunk_sizes() first")
        go = arrays.pop("grad_output", None)
        shapes = {k: tuple(v.shape) for k, v in arrays.items()}
        self.axes = _batch_axes(name, shapes)
        if name in ("dice_loss", "tversky_loss") and arguments.get("batch") is True:
            # batch=True sums over the whole batch before the ratio: chunks' losses do not add up,
            # so the call runs as one task.
            self.axes = dict.fromkeys(self.axes)
        cut = [k for k, ax in self.axes.items() if ax is not None]
        self.batched = bool(cut)
        extent = shapes[cut[0]][self.axes[cut[0]]] if cut else 1
        for k in cut:
            if shapes[k][self.axes[k]] != extent:
                raise ValueError(
                    f"{fn}: {k} expected {extent} entries along its batch axis {self.axes[k]} "
                    f"(as {cut[0]} has), got shape {shapes[k]}"
                )
        ref = next((k for k in cut if isinstance(arrays[k], da.Array)), None)
        self.chunks: Tuple[int, ...] = arrays[ref].chunks[self.axes[ref]] if ref else (extent,)
        if go is not None:
            arrays["grad_output"] = go
            self.axes["grad_output"] = (
                0
                if (self.batched and arguments.get("reduction") == "none" and go.ndim >= 1 and go.shape[0] == extent)
                else None
            )
        self.probe = self._probe(arguments, arrays)
        self.dask: Dict[str, da.Array] = {}
        for k, v in arrays.items():
            spec = tuple(self.chunks if a == self.axes[k] else (n,) for a, n in enumerate(v.shape))
            self.dask[k] = (
                v.rechunk(spec)
                if isinstance(v, da.Array)
                else da.from_array(v, chunks=spec, name=f"losskit-array-{tokenize(v)}")
            )
        self.static = {k: v for k, v in arguments.items() if k not in arrays}
        # CTC's concatenated targets go whole; each task slices its samples by the target lengths.
        self.concat = name == "ctc_loss" and self.batched and "targets" in arrays and self.axes["targets"] is None
        if self.concat:
            self.dask["_all_target_lengths"] = self.dask["target_lengths"].rechunk(-1)
            self.axes["_all_target_lengths"] = None

    def _probe(self, arguments: Dict[str, Any], arrays: Dict[str, Any]) -> Any:
        """The in-memory call on one row of zeros, the real shapes and dtypes of everything else
        and the real NumPy arrays passed whole: the in-memory errors for bad shapes, dtypes and
        options, raised now; its result gives the dtypes and row shapes of the real one."""
        kwargs = dict(arguments)
        for k, v in arrays.items():
            ax = self.axes[k]
            if ax is not None or isinstance(v, da.Array):
                kwargs[k] = np.zeros(tuple(min(n, 1) if a == ax else n for a, n in enumerate(v.shape)), v.dtype)
        if self.name == "ctc_loss" and self.batched and "targets" in arrays and self.axes["targets"] is None:
            kwargs["targets"] = np.zeros(0, arrays["targets"].dtype)  # zero target lengths: no labels
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if self.mode == _NORMALIZER:
                    result = _spec.mean_normalizer(self.name, **kwargs)
                else:
                    suffix = "" if self.mode == _FORWARD else "_" + self.mode
                    result = _unpack(
                        self.mode, getattr(_LF, self.name + suffix)(**kwargs), bool(kwargs.get("return_stats"))
                    )
            for w in caught:  # the in-memory call's warnings, once, at the caller's line
                message = str(w.message)
                if message.startswith("Using a target size"):  # about the real shapes, not the probe's
                    with warnings.catch_warnings(record=True) as real:
                        warnings.simplefilter("always")
                        _spec.warn_size_mismatch(arrays["input"], arrays["target"])
                    message = str(real[0].message)
                warnings.warn(message, w.category, stacklevel=5)  # _probe, _Plan, _call, the function
            return result
        except (ValueError, TypeError) as exc:
            if not self.batched:
                raise
            # The message names the argument; say which shapes it saw, and the real ones.
            real = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
            raise type(exc)(
                f"{exc} (losskit.dask checks the call on one row of the batch; the shapes: {real})"
            ) from exc

    def chunk_tasks(
        self,
        mode: str,
        names: Sequence[str],
        static: Dict[str, Any],
        zeros: Sequence[str] = (),
        z: Optional[da.Array] = None,
    ) -> Tuple[str, HighLevelGraph]:
        """One task per chunk calling ``mode`` with the arrays ``names`` (those in ``zeros``
        replaced by zeros of their chunk's shape) and ``z`` as the normalizer."""
        real = [k for k in names if k not in zeros]
        token = tokenize(
            self.name,
            mode,
            sorted(static.items(), key=operator.itemgetter(0)),
            list(zeros),
            [self.dask[k].name for k in real],
            None if z is None else z.name,
        )
        key = f"losskit-{self.name}-{mode}-{token}"
        layer: Dict[Any, Any] = {}
        bounds = np.concatenate([[0], np.cumsum(self.chunks)]).tolist()
        for i in range(len(self.chunks)):
            standins = {
                k: (
                    tuple(self.chunks[i] if a == self.axes[k] else n for a, n in enumerate(self.dask[k].shape)),
                    self.dask[k].dtype.str,
                )
                for k in zeros
            }
            call = _Chunk(
                self.name,
                mode,
                real + (["normalizer"] if z is not None else []),
                static,
                standins,
                (bounds[i], bounds[i + 1]) if self.concat else None,
            )
            args = [_block(self.dask[k].name, self.dask[k].ndim, self.axes[k], i) for k in real]
            layer[(key, i)] = (call, *args, *([(z.name,)] if z is not None else []))
        deps: List[Any] = [self.dask[k] for k in real] + ([z] if z is not None else [])
        return key, HighLevelGraph.from_collections(key, layer, dependencies=deps)


def _tree_array(
    graph: HighLevelGraph, chunk: str, out: str, pick: Tuple[Any, ...], n: int, shape: Tuple[int, ...], dtype: np.dtype
) -> da.Array:
    """The sum over the chunks of one piece of their results, added in double in the fixed tree:
    a single-chunk array of ``shape``."""
    layer: Dict[Any, Any] = {(out + "-part", i): (pick[0], (chunk, i), *pick[1:]) for i in range(n)}
    root = _tree(layer, out + "-tree", [(out + "-part", i) for i in range(n)])
    layer[(out,) + (0,) * len(shape)] = (_as_dtype, root, dtype.str, len(shape))
    return da.Array(
        _with_layer(graph, chunk, out, layer),
        out,
        chunks=tuple((d,) for d in shape),
        dtype=dtype,
        meta=np.empty((0,) * len(shape), dtype),
    )


def _cut_array(
    plan: _Plan,
    graph: HighLevelGraph,
    chunk: str,
    out: str,
    pick: Tuple[Any, ...],
    shape: Tuple[int, ...],
    axis: Optional[int],
    dtype: np.dtype,
) -> da.Array:
    """One piece of every chunk's result, cut along ``axis`` like the batch (``shape``: the whole
    array's); one chunk when the call has no batch."""
    if axis is None:
        layer = {(out,) + (0,) * len(shape): (pick[0], (chunk, 0), *pick[1:])}
        chunks = tuple((d,) for d in shape)
    else:
        layer = {_block(out, len(shape), axis, i): (pick[0], (chunk, i), *pick[1:]) for i in range(len(plan.chunks))}
        chunks = tuple(plan.chunks if a == axis else (d,) for a, d in enumerate(shape))
    return da.Array(
        _with_layer(graph, chunk, out, layer), out, chunks=chunks, dtype=dtype, meta=np.empty((0,) * len(shape), dtype)
    )


def _normalizer(plan: _Plan) -> da.Array:
    """The global divisor of 'mean', a 0-d float64 dask array: each chunk's mean_normalizer, added
    in the fixed tree. Its tasks read class-index targets, lengths and weights only; the float
    inputs (the large arrays) are zeros of their chunk's shape there, so computing the divisor never
    computes them."""
    names = [k for k in plan.dask if k != "grad_output"]
    zeros = [k for k in names if plan.dask[k].dtype.kind not in "iub" and k != "weight"]
    static = {
        k: v for k, v in plan.static.items() if k not in ("grad_output", "target_grad", "normalizer", "return_stats")
    }
    chunk, graph = plan.chunk_tasks(_NORMALIZER, names, static, zeros)
    return _tree_array(graph, chunk, chunk + "-total", (_value,), len(plan.chunks), (), np.dtype(np.float64))


def _build(plan: _Plan, z: Optional[da.Array]) -> Any:
    """The lazy result of ``plan``, in the in-memory function's structure."""
    static = {k: v for k, v in plan.static.items() if not (z is not None and k == "normalizer")}
    chunk, graph = plan.chunk_tasks(plan.mode, list(plan.dask), static, z=z)
    n, token = len(plan.chunks), chunk.rsplit("-", 1)[-1]
    value, grads, stats = plan.probe
    axis0 = 0 if plan.batched else None

    def rows(out: str, pick: Tuple[Any, ...], like: np.ndarray) -> da.Array:
        shape = ((sum(plan.chunks),) + like.shape[1:]) if plan.batched else like.shape
        return _cut_array(plan, graph, chunk, out, pick, shape, axis0, like.dtype)

    parts: List[Any] = []
    if plan.mode != _BACKWARD:
        out = f"losskit-{plan.name}-loss-{token}"
        parts.append(
            rows(out, (_value,), value)
            if isinstance(value, np.ndarray)
            else _tree_array(graph, chunk, out, (_value,), n, (), np.asarray(value).dtype)
        )
    if plan.mode != _FORWARD:
        names = _adapters.grad_names(plan.name, bool(plan.static.get("target_grad")))
        lazy: List[Any] = []
        for j, (k, g) in enumerate(zip(names, grads)):
            out = f"losskit-{plan.name}-grad-{k}-{token}"
            if g is None:
                lazy.append(None)
            elif plan.axes.get(k) is not None:
                lazy.append(_cut_array(plan, graph, chunk, out, (_grad, j), plan.dask[k].shape, plan.axes[k], g.dtype))
            else:  # an argument every chunk shares: the sum of the chunks' gradients
                lazy.append(_tree_array(graph, chunk, out, (_grad, j), n, np.shape(g), g.dtype))
        parts.append(lazy[0] if len(lazy) == 1 else tuple(lazy))
    if stats is not None:
        parts.append(
            {key: rows(f"losskit-{plan.name}-{key}-{token}", (_stat, key), like) for key, like in stats.items()}
        )
    return parts[0] if len(parts) == 1 else tuple(parts)


# ---- the public functions ------------------------------------------------------------------------


def _call(
    name: str,
    mode: str,
    signature: inspect.Signature,
    array_names: Tuple[str, ...],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> Any:
    arguments = signature.bind(*args, **kwargs)
    arguments.apply_defaults()
    a = dict(arguments.arguments)
    if "size_average" in a:  # torch's legacy pair, decided (with its warning) once, here
        a["reduction"] = _reduction.parse(a["size_average"], a["reduce"], a["reduction"])
        a["size_average"] = a["reduce"] = None
    if mode == _NORMALIZER:
        del a["normalizer"]  # the one keyword mean_normalizer does not take: it returns it
    plan = _Plan(name, mode, a, array_names)
    if mode == _NORMALIZER:
        return _normalizer(plan)
    z = _normalizer(plan) if a.get("reduction") in ("mean", "batchmean") and a.get("normalizer") is None else None
    return _build(plan, z)


def _make(name: str, mode: str) -> Callable[..., Any]:
    suffix = "" if mode == _FORWARD else "_" + mode
    template = getattr(_LF, name + suffix)
    signature = inspect.signature(template)
    array_names = tuple(p.name for p in signature.parameters.values() if "ArrayLike" in str(p.annotation))

    def fn(*args: Any, **kwargs: Any) -> Any:
        return _call(name, mode, signature, array_names, args, kwargs)

    fn.__name__ = fn.__qualname__ = name + suffix
    fn.__module__ = _MODULE
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__doc__ = (
        f":func:`losskit.functional.{name}{suffix}` (its docstring states the formula, shapes and "
        "edge values) over dask arrays chunked along the batch dimension: the same arguments, "
        "lazy dask results, exact and deterministic reductions (see losskit.dask)."
    )
    return fn


def mean_normalizer(name: str, *inputs: Any, **kwargs: Any) -> Any:
    """:func:`losskit.functional.mean_normalizer` over dask arrays: the divisor ``'mean'`` uses for
    this call, as a lazy 0-d float64 dask array (the chunks' divisors added in the fixed tree;
    the float inputs are never computed for it)."""
    loss_def = _spec.LOSSES.get(name) if isinstance(name, str) else None
    if loss_def is None:
        raise ValueError(f"{_MODULE}.mean_normalizer: name expected one of {sorted(_spec.LOSSES)}, got {name!r}")
    if "normalizer" in kwargs:
        raise TypeError(f"{_MODULE}.mean_normalizer: normalizer is not an argument here")
    forward = loss_def.functions[name]
    signature = inspect.signature(forward)
    array_names = tuple(p.name for p in signature.parameters.values() if "ArrayLike" in str(p.annotation))
    return _call(name, _NORMALIZER, signature, array_names, inputs, kwargs)


LOSSES: Tuple[str, ...] = tuple(_spec.LOSSES)
for _name in LOSSES:
    for _mode in (_FORWARD, _BACKWARD, _FORWARD_BACKWARD):
        _f = _make(_name, _mode)
        globals()[_f.__name__] = _f
del _name, _mode, _f

__all__ = [n for loss in _spec.LOSSES.values() for n in loss.functions] + ["mean_normalizer"]
