"""losskit's losses as JAX functions: ``losskit.jax.<name>``, usable under ``jax.jit``,
``jax.grad`` and ``jax.vmap`` on the CPU backend.

Each ``losskit.jax.<name>`` has the signature of ``losskit.functional.<name>`` (torch's; its
docstring states the formula) and is a :func:`jax.custom_vjp` over :func:`jax.pure_callback`:

* the primal (``jit`` without differentiation) calls losskit's ``NAME`` only;
* the forward of ``grad`` / ``value_and_grad`` calls the fused ``NAME_forward_backward`` once, for
  the arguments JAX differentiates (``symbolic_zeros`` tells which), and keeps the gradients as the
  residual; for a reduced loss the backward multiplies them by the incoming scalar in JAX;
* ``reduction='none'`` recomputes in the backward with the true cotangent (``NAME_backward``),
  which is right for broadcast arguments too.

Batching (``vmap``): an element-wise loss with ``reduction='none'`` whose array arguments all have
the output's shape is called once on the stacked batch (``vmap_method='broadcast_all'``: the
batch is one more leading dimension of an element-wise loss). Every other call is
``'sequential'`` (one call per batch element): a reduced loss reduces over the whole batch, and a
row-wise loss reads dimension 1 as its classes.

Gradients: every argument losskit's backward differentiates, and the ones torch differentiates
that losskit's core has no entry point for (the weight of l1/mse/huber, cross_entropy with
probabilities and multilabel_soft_margin; margin_ranking's target), computed exactly from
losskit's outputs (:func:`losskit._adapters.extra_grad`); hinge's and cosine's ±1 targets, read
only through comparisons, get a zero cotangent, as the jnp formula's. Other array arguments
(class-index targets, class weights of class-index targets, ``pos_weight``, lengths) are
constants: differentiating with respect to one raises NotImplementedError at trace time. Numbers,
strings, flags and ``distance_function`` are static (a new trace per value); ``normalizer`` may
also be an array (traced under jit). ``return_stats=True`` returns ``(loss, stats)``; the stats
carry no gradient (use ``has_aux``). Needs ``jax`` (``pip install losskit[jax]``); ``import
losskit`` alone never imports it. float32, float64 (``jax.config.update("jax_enable_x64", True)``)
and bfloat16/float16 (read in place by the losses whose core reads 16-bit storage, else computed
in float32; results in the input's dtype).

>>> import jax, jax.numpy as jnp, numpy as np
>>> import losskit.jax as lj
>>> x, t = jnp.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), jnp.array([2, 0])
>>> loss, g = jax.jit(jax.value_and_grad(lj.cross_entropy))(x, t)
>>> round(float(loss), 5), np.asarray(g, np.float64).round(4).tolist()
(0.75311, [[0.045, 0.1224, -0.1674], [-0.3333, 0.1667, 0.1667]])
>>> jax.vmap(lambda a, b: lj.l1_loss(a, b, reduction="none"))(x, 2 * x).tolist()
[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _adapters, _reduction
from . import functional as _LF

# The shape of the 'none' result, by the kind of loss (the default: element-wise, the broadcast of
# the positional array arguments).
_CLASS_DIM = frozenset(
    {"cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"}
)
_ROW = frozenset(
    {
        "cosine_embedding_loss",
        "triplet_margin_loss",
        "triplet_margin_with_distance_loss",
        "info_nce_loss",
        # detection: one loss per (x1, y1, x2, y2) row
        "generalized_box_iou_loss",
        "distance_box_iou_loss",
        "complete_box_iou_loss",
    }
)
# beyond torch.nn: classification
_CLASS_DIM |= {"softmax_focal_loss", "poly1_cross_entropy"}

_SEGMENTATION = frozenset({"dice_loss", "tversky_loss"})
_NOT_ELEMENTWISE = frozenset({"ctc_loss", "linear_cross_entropy"}) | _SEGMENTATION


def _none_shape(
    name: str, positional: Tuple[Tuple[int, ...], ...], options: Optional[Dict[str, Any]] = None
) -> Tuple[int, ...]:
    first = positional[0]
    if name in _SEGMENTATION:  # (N, C') or (C',): C' without the background when it is left out
        options = options or {}
        if len(first) < 2:
            return ()
        counted = first[1] - (1 if not options.get("include_background", True) and first[1] > 1 else 0)
        return (counted,) if options.get("batch", False) else (first[0], counted)
    if name in _CLASS_DIM:
        return first[:1] + first[2:] if len(first) >= 2 else ()
    if name in _ROW:
        return tuple(np.broadcast_shapes(*(s[:-1] for s in positional if s)))
    if name == "linear_cross_entropy":
        return first[:-1]
    if name == "ctc_loss":
        return first[1:2] if len(first) == 3 else ()
    return tuple(np.broadcast_shapes(*positional))


def _is_array(value: Any) -> bool:
    return isinstance(value, (jax.Array, np.ndarray, np.generic))


class _Plan:
    __slots__ = ("name", "qualname", "forward", "backward", "fused", "signature", "positional", "differentiable")

    def __init__(self, name: str) -> None:
        self.name = name
        self.qualname = f"losskit.jax.{name}"
        self.forward: Callable[..., Any] = getattr(_LF, name)
        self.backward: Callable[..., Any] = getattr(_LF, name + "_backward")
        self.fused: Callable[..., Any] = getattr(_LF, name + "_forward_backward")
        self.signature = inspect.signature(self.forward)
        self.positional = tuple(
            p.name
            for p in self.signature.parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
        )
        self.differentiable = _adapters.differentiable(name)


def _call(plan: _Plan, arguments: Dict[str, Any]) -> Any:
    reduction = _reduction.parse(
        arguments.pop("size_average", None), arguments.pop("reduce", None), arguments["reduction"]
    )
    arguments["reduction"] = reduction
    keys = tuple(k for k, v in arguments.items() if _is_array(v))
    static = {k: v for k, v in arguments.items() if k not in keys}
    arrays = tuple(jnp.asarray(arguments[k]) for k in keys)
    shapes = dict(zip(keys, (a.shape for a in arrays)))
    dtypes = dict(zip(keys, (a.dtype for a in arrays)))
    dtype = arrays[0].dtype
    if reduction == "none":
        out_shape = _none_shape(plan.name, tuple(shapes[k] for k in plan.positional if k in shapes), static)
    else:
        out_shape = ()
    loss_type = jax.ShapeDtypeStruct(out_shape, dtype)
    # return_stats: per-row arrays shaped like the unreduced loss, beside the loss
    with_stats = bool(static.get("return_stats"))
    stat_shape = _none_shape(plan.name, tuple(shapes[k] for k in plan.positional if k in shapes), static)
    stat_types = {
        "lse": jax.ShapeDtypeStruct(stat_shape, dtype),
        "entropy": jax.ShapeDtypeStruct(stat_shape, dtype),
        "correct": jax.ShapeDtypeStruct(stat_shape, np.bool_),
    }
    out_type: Any = (loss_type, stat_types) if with_stats else loss_type
    batch_friendly = (
        reduction == "none"
        and plan.name not in _CLASS_DIM | _ROW | _NOT_ELEMENTWISE
        and all(s == out_shape for s in shapes.values())
    )
    vmap_method = "broadcast_all" if batch_friendly else "sequential"
    target_dtype = dtypes.get("target")
    extra = _adapters.extra_names(plan.name, target_dtype is not None and jnp.issubdtype(target_dtype, jnp.floating))

    def named(values: Any) -> Dict[str, Any]:
        # the callback's arguments as NumPy arrays (zero-copy on the CPU), which losskit's number
        # options (a traced normalizer) read as 0-d arrays
        return dict(static, **dict(zip(keys, (np.asarray(v) for v in values))))

    def value_of(result: Any) -> Any:
        """losskit's forward result as the callback's: the loss (and its stats) in the types above."""
        if not with_stats:
            return np.asarray(result, dtype=dtype)
        value, stats = result
        return (np.asarray(value, dtype=dtype), {k: np.asarray(stats[k], dtype=t.dtype) for k, t in stat_types.items()})

    def forward_host(*values: Any) -> Any:
        return value_of(plan.forward(**named(values)))

    def gradients(
        core: Tuple[str, ...], extras: Tuple[str, ...], target_grad: bool, values: Any, grad_output: Any
    ) -> Tuple[Any, Dict[str, Any]]:
        """The loss (None with a grad_output: that is a backward) and the gradients by name, for
        grad_output = 1 of a reduced loss in the forward, or the cotangent: losskit's fused or
        backward entry point for the core ones, _adapters.extra_grad for the others."""
        arrays = named(values)
        value, grads = None, {}
        if grad_output is None:
            if core:
                out = plan.fused(**arrays, target_grad=target_grad)
                value = out[0] if not with_stats else (out[0], out[2])
                grads = _adapters.by_name(plan.name, target_grad, out[1])
            else:
                value = plan.forward(**arrays)
        elif core:
            arrays.pop("return_stats", None)
            out = plan.backward(grad_output, **arrays, target_grad=target_grad)
            grads = _adapters.by_name(plan.name, target_grad, out)
        arrays.pop("return_stats", None)
        for k in extras:
            grads[k] = _adapters.extra_grad(plan.name, k, arrays, 1.0 if grad_output is None else grad_output)
        return value, grads

    traced: Dict[str, Any] = {}

    @jax.custom_vjp
    def loss(*values: Any) -> Any:
        return jax.pure_callback(forward_host, out_type, *values, vmap_method=vmap_method)

    def fwd(*primals: Any) -> Any:
        values = tuple(p.value for p in primals)
        perturbed = {k: p.perturbed for k, p in zip(keys, primals)}
        untracked = _adapters.NO_GRADIENT.get(plan.name, ())
        for k, wanted in perturbed.items():
            if wanted and k not in plan.differentiable and k not in extra and k not in untracked:
                raise NotImplementedError(
                    f"{plan.qualname}: losskit computes no gradient for {k} "
                    "(wrap it in jax.lax.stop_gradient, or differentiate the other arguments)"
                )
        target_grad = "target" in plan.differentiable and perturbed.get("target", False)
        core = tuple(k for k in _adapters.grad_names(plan.name, target_grad) if perturbed.get(k, False))
        extras = tuple(k for k in extra if perturbed.get(k, False))
        # What fwd learnt at trace time, for bwd (residuals hold arrays only). An argument that the
        # loss reads only through comparisons (NO_GRADIENT) gets a zero cotangent, as the jnp formula.
        traced.update(target_grad=target_grad, core=core, extras=extras)
        names = core + extras
        grad_types = tuple(jax.ShapeDtypeStruct(shapes[k], dtypes[k]) for k in names)
        if reduction == "none" or not names:
            out = jax.pure_callback(forward_host, out_type, *values, vmap_method=vmap_method)
            return out, (values, None)

        def fused_host(*vals: Any) -> Any:
            value, grads = gradients(core, extras, target_grad, vals, None)
            return value_of(value), tuple(np.asarray(grads[k], dtype=t.dtype) for k, t in zip(names, grad_types))

        out, grads = jax.pure_callback(fused_host, (out_type, grad_types), *values, vmap_method=vmap_method)
        return out, (values, grads)

    def bwd(residual: Any, g: Any) -> Any:
        values, kept = residual
        target_grad, core, extras = traced["target_grad"], traced["core"], traced["extras"]
        names = core + extras
        if with_stats:
            g, stats_cotangent = g
            if not all(isinstance(c, jax.custom_derivatives.SymbolicZero) for c in stats_cotangent.values()):
                raise NotImplementedError(
                    f"{plan.qualname}: the return_stats arrays carry no gradient "
                    "(differentiate the loss only, e.g. with has_aux=True)"
                )
        if isinstance(g, jax.custom_derivatives.SymbolicZero) or not names:
            return tuple(None for _ in keys)
        if kept is None:
            grad_types = tuple(jax.ShapeDtypeStruct(shapes[k], dtypes[k]) for k in names)

            def backward_host(go: np.ndarray, *vals: Any) -> Any:
                _, grads = gradients(core, extras, target_grad, vals, go)
                return tuple(np.asarray(grads[k], dtype=t.dtype) for k, t in zip(names, grad_types))

            kept = jax.pure_callback(backward_host, grad_types, g, *values, vmap_method=vmap_method)
        else:
            kept = tuple(k * g.astype(k.dtype) for k in kept)
        by_key = dict(zip(names, kept))
        return tuple(by_key.get(k) for k in keys)

    loss.defvjp(fwd, bwd, symbolic_zeros=True)
    return loss(*arrays)


def _make(name: str) -> Callable[..., Any]:
    plan = _Plan(name)
    bind = plan.signature.bind

    def fn(*args: Any, **kwargs: Any) -> Any:
        bound = bind(*args, **kwargs)
        bound.apply_defaults()
        return _call(plan, dict(bound.arguments))

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__signature__ = plan.signature  # type: ignore[attr-defined]
    fn.__doc__ = (
        f":func:`losskit.functional.{name}` (its docstring states the formula) as a JAX function: "
        "a custom_vjp over pure_callback, usable under jit, grad and vmap (see losskit.jax)."
    )
    return fn


LOSSES: Tuple[str, ...] = _adapters.losses()
for _name in LOSSES:
    globals()[_name] = _make(_name)
del _name

__all__ = list(LOSSES)
