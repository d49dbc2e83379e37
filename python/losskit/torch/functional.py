"""``torch.nn.functional``'s losses computed by losskit, for CPU tensors, under torch's autograd.

Each ``losskit.torch.functional.<name>`` has the signature of ``torch.nn.functional.<name>`` (read
from torch itself) and the meaning of ``losskit.functional.<name>``, whose docstring states the
formula. One :class:`torch.autograd.Function` serves every loss:

* a reduced loss (``'mean'``, ``'sum'``, ``'batchmean'``) calls losskit's fused
  ``NAME_forward_backward`` in ``forward``, on zero-copy ``Tensor.numpy()`` views, for the inputs
  that torch will differentiate; ``backward`` hands those gradients over, scaled in place by the
  incoming scalar (untouched when it is 1, as after ``loss.backward()``), so the step makes no
  second pass over the data; a second backward of a retained graph recomputes with
  ``NAME_backward``;
* ``reduction='none'`` calls ``NAME`` in ``forward`` and ``NAME_backward`` with the true
  ``grad_output`` in ``backward``: a kept gradient computed for ``grad_output = ones`` scales
  correctly only when every gradient element depends on one loss element, which a broadcast target
  or ``var`` breaks, and recomputing costs one pass, as the multiply would.

Gradients flow to every input torch differentiates: those losskit's backward returns (the inputs,
a float target where losskit has its gradient), and the ones torch differentiates that losskit's
core has no entry point for (the weight of l1/mse/huber, cross_entropy with probabilities and
multilabel_soft_margin; margin_ranking's target), computed exactly from losskit's outputs by
:func:`losskit._adapters.extra_grad`. A tensor that requires grad where torch's own loss refuses it
(class weights of class-index targets, pos_weight, soft_margin's target) raises RuntimeError before
any work, as torch's does; hinge's and cosine's ±1 targets, which torch reads only through
comparisons, get no gradient, as in torch.

losskit's own keywords follow torch's signature as keyword-only parameters: ``normalizer``, and
cross_entropy's and linear_cross_entropy's ``z_loss``, ``softcap`` and ``return_stats`` (the call
then returns ``(loss, stats)``, the stats tensors without gradient).

float16 tensors are NumPy float16 views; bfloat16 tensors are viewed as ml_dtypes' bfloat16 (the
dtype losskit reads bfloat16 as; ml_dtypes is imported on the first bfloat16 tensor only). Losses
whose core reads 16-bit storage compute from it in place; the others from a float32 copy; results
and gradients come back in the tensor's dtype. Tensors on another device than the CPU raise
ValueError (no silent copies); backward is once differentiable: a backward with
``create_graph=True`` raises RuntimeError.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as _TF
from torch.nn import _reduction as _torch_reduction

import losskit.functional as _LF
from losskit import _adapters
from losskit._convert import is_bfloat16

# torch parameters losskit does not take: linear_cross_entropy's ``options`` choose torch's
# chunking, and losskit always chunks.
_TORCH_ONLY = frozenset({"options"})
_LEGACY = ("size_average", "reduce")

LOSSES: Tuple[str, ...] = tuple(n for n in _adapters.losses() if hasattr(_TF, n))


class _Plan:
    """What the shared autograd function needs to know about one loss."""

    __slots__ = ("name", "qualname", "forward", "backward", "fused", "grads", "target_grad", "torch_fn", "torch_params")

    def __init__(self, name: str) -> None:
        self.name = name
        self.qualname = f"losskit.torch.functional.{name}"
        self.forward: Callable[..., Any] = getattr(_LF, name)
        self.backward: Callable[..., Any] = getattr(_LF, name + "_backward")
        self.fused: Callable[..., Any] = getattr(_LF, name + "_forward_backward")
        self.grads = _adapters.grad_names(name)
        self.target_grad = _adapters.differentiates_target(name)
        self.torch_fn: Callable[..., Any] = getattr(_TF, name)
        self.torch_params = frozenset(inspect.signature(self.torch_fn).parameters)


_BFLOAT16: List[np.dtype] = []


def _bfloat16() -> np.dtype:
    """ml_dtypes' bfloat16, the NumPy dtype losskit reads bfloat16 storage as (imported on the
    first bfloat16 tensor only)."""
    if not _BFLOAT16:
        try:
            import ml_dtypes
        except ImportError as exc:
            raise TypeError(
                "losskit.torch: bfloat16 tensors need ml_dtypes (pip install 'losskit[torch]'), "
                "the NumPy dtype losskit reads them as"
            ) from exc
        _BFLOAT16.append(np.dtype(ml_dtypes.bfloat16))
    return _BFLOAT16[0]


def _numpy(value: Any) -> Any:
    """A tensor as a NumPy view of its storage (zero-copy; bfloat16 as ml_dtypes' bfloat16)."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach()
    if value.dtype == torch.bfloat16:
        return value.view(torch.int16).numpy().view(_bfloat16())
    return value.numpy()


def _as_tensor(value: Any, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """A losskit result as a tensor (zero-copy), in the dtype of the tensor it belongs to."""
    array = np.asarray(value)
    if is_bfloat16(array.dtype):  # torch reads its bits
        t = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(array)
    return t if dtype is None or t.dtype == dtype else t.to(dtype)


def _result(plan: _Plan, out: Any, dtype: torch.dtype, stats: Dict[str, Any]) -> torch.Tensor:
    """The loss tensor of a forward result; with return_stats, its stats go into `stats`."""
    if isinstance(out, tuple):
        out, found = out
        stats.update((k, torch.from_numpy(np.asarray(v))) for k, v in found.items())
    return _as_tensor(out, dtype)


class _LossFunction(torch.autograd.Function):
    """The one autograd function of every loss. ``apply(plan, arguments, names, stats, *tensors)``:
    ``arguments`` holds every losskit argument by name; ``tensors`` are the arguments named in
    ``names`` (the ones that may need a gradient), passed again so that autograd tracks them;
    ``stats`` receives cross-entropy's ``return_stats`` arrays."""

    @staticmethod
    def forward(
        ctx: Any, plan: _Plan, arguments: Dict[str, Any], names: Tuple[str, ...], stats: Dict[str, Any], *tensors: Any
    ) -> Any:
        need = {k: n for k, n in zip(names, ctx.needs_input_grad[4:]) if n}
        target_grad = plan.target_grad and "target" in need
        target = arguments.get("target")
        float_target = isinstance(target, torch.Tensor) and target.is_floating_point()
        core = set(_adapters.grad_names(plan.name, target_grad))
        ctx.extra = tuple(k for k in _adapters.extra_names(plan.name, float_target) if k in need)
        ctx.fused = any(k in core for k in need)
        dtype = next(v.dtype for v in arguments.values() if isinstance(v, torch.Tensor))
        ctx.plan, ctx.names, ctx.target_grad, ctx.need = plan, names, target_grad, need
        ctx.dtypes = {k: v.dtype for k, v in arguments.items() if isinstance(v, torch.Tensor)}
        arrays = {k: _numpy(v) for k, v in arguments.items()}
        # Backward may recompute from the inputs: keep them (saved tensors carry torch's check
        # that nothing modified them in place since).
        ctx.keys = [k for k, v in arguments.items() if isinstance(v, torch.Tensor)]
        ctx.others = {k: v for k, v in arguments.items() if not isinstance(v, torch.Tensor)}
        ctx.save_for_backward(*(arguments[k] for k in ctx.keys))
        ctx.kept = None
        if arguments["reduction"] == "none" or not (ctx.fused or ctx.extra):
            return _result(plan, plan.forward(**arrays), dtype, stats)
        if ctx.fused:
            out = plan.fused(**arrays, target_grad=target_grad)
            loss, grads = out[0], out[1]
            if len(out) == 3:
                stats.update((k, torch.from_numpy(np.asarray(v))) for k, v in out[2].items())
            named = _adapters.by_name(plan.name, target_grad, grads)
        else:
            loss, named = _result(plan, plan.forward(**arrays), dtype, stats), {}
        ctx.kept = {k: _as_tensor(g, ctx.dtypes[k]) for k, g in named.items() if g is not None and k in need}
        for k in ctx.extra:
            ctx.kept[k] = _as_tensor(_adapters.extra_grad(plan.name, k, arrays, 1.0), ctx.dtypes[k])
        return loss if isinstance(loss, torch.Tensor) else _as_tensor(loss, dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Any:
        # Autograd runs a backward in grad mode only under create_graph=True. torch's
        # once_differentiable would raise only if grad_output itself required grad, and otherwise
        # return gradients detached from the inputs: a silent zero second derivative.
        if torch.is_grad_enabled():
            raise RuntimeError(
                f"{ctx.plan.qualname}: losskit computes first derivatives only; "
                "backward with create_graph=True (double backward) is not supported"
            )
        if ctx.kept is not None:
            # A reduced loss: the fused gradients, for grad_output = 1. They are handed over and
            # forgotten, so they can be scaled in place (or, for the usual grad_output of 1, not
            # touched at all): a multiply into a new tensor cost 3x the fused loss itself (337 ms
            # against 100 ms for cross_entropy at 1024 x 32000 on 2 threads, a fresh 128 MB
            # tensor's page faults included). A second backward (retain_graph=True) recomputes.
            grads, ctx.kept = ctx.kept, None
            if grad_output.item() != 1.0:
                for g in grads.values():
                    g.mul_(grad_output)
        else:
            arrays = dict(ctx.others)
            arrays.update((k, _numpy(t)) for k, t in zip(ctx.keys, ctx.saved_tensors))
            arrays.pop("return_stats", None)
            go = _numpy(grad_output)
            grads = {}
            if ctx.fused:
                out = ctx.plan.backward(go, **arrays, target_grad=ctx.target_grad)
                named = _adapters.by_name(ctx.plan.name, ctx.target_grad, out)
                grads = {k: _as_tensor(g, ctx.dtypes[k]) for k, g in named.items() if g is not None and k in ctx.need}
            for k in ctx.extra:
                grads[k] = _as_tensor(_adapters.extra_grad(ctx.plan.name, k, arrays, go), ctx.dtypes[k])
        return (None, None, None, None, *(grads.get(k) for k in ctx.names))


def _check(plan: _Plan, arguments: Dict[str, Any]) -> Tuple[str, ...]:
    """Checks every tensor argument before any work; returns the names of those autograd must
    track (empty when no gradient is needed). A tensor that requires grad where torch's own loss
    refuses it (its derivative is "not implemented": the class weight of class-index targets,
    pos_weight, soft_margin's target) raises RuntimeError, as torch's forward does; one that torch's
    formula reads only through comparisons (NO_GRADIENT) is not tracked, as in torch."""
    grad_mode = torch.is_grad_enabled()
    target = arguments.get("target")
    float_target = isinstance(target, torch.Tensor) and target.is_floating_point()
    allowed = set(_adapters.differentiable(plan.name)) | set(_adapters.extra_names(plan.name, float_target))
    untracked = _adapters.NO_GRADIENT.get(plan.name, ())
    tracked = []
    for k, v in arguments.items():
        if not isinstance(v, torch.Tensor):
            continue
        if v.device.type != "cpu":
            raise ValueError(
                f"{plan.qualname}: {k} expected a CPU tensor, got a tensor on {v.device} "
                "(losskit computes on the CPU; move it with .cpu() if that is what you want)"
            )
        if grad_mode and v.requires_grad and k not in untracked:
            if k not in allowed:
                raise RuntimeError(
                    f"{plan.qualname}: not differentiable with respect to {k}, as "
                    f"torch.nn.functional.{plan.name} is not: {k} cannot require grad (detach it)"
                )
            tracked.append(k)
    return tuple(tracked)


def _call(plan: _Plan, arguments: Dict[str, Any]) -> Any:
    if arguments.get("size_average") is not None or arguments.get("reduce") is not None:
        # torch's own legacy rule (and its DeprecationWarning)
        arguments["reduction"] = _torch_reduction.legacy_get_string(arguments["size_average"], arguments["reduce"])
    for k in _LEGACY + tuple(_TORCH_ONLY):
        arguments.pop(k, None)
    if plan.name == "triplet_margin_with_distance_loss" and callable(arguments.get("distance_function")):
        # A distance written in torch runs in torch: losskit cannot call it on its arrays.
        if arguments.get("normalizer") is not None:
            raise ValueError(
                f"{plan.qualname}: normalizer expected None with a torch distance_function "
                "(which runs in torch's own loss)"
            )
        return plan.torch_fn(**{k: v for k, v in arguments.items() if k in plan.torch_params})
    names = _check(plan, arguments)
    stats: Dict[str, Any] = {}
    if not names:
        dtype = next(v.dtype for v in arguments.values() if isinstance(v, torch.Tensor))
        loss = _result(plan, plan.forward(**{k: _numpy(v) for k, v in arguments.items()}), dtype, stats)
    else:
        loss = _LossFunction.apply(plan, arguments, names, stats, *(arguments[k] for k in names))
    return (loss, stats) if arguments.get("return_stats") else loss


def _signature(plan: _Plan) -> inspect.Signature:
    """torch's signature, then losskit's own keywords (normalizer; cross-entropy's z_loss, softcap,
    return_stats; linear_cross_entropy's chunk_size) as keyword-only parameters."""
    torch_signature = inspect.signature(plan.torch_fn)
    own = [
        p.replace(kind=p.KEYWORD_ONLY, annotation=p.empty)
        for p in inspect.signature(plan.forward).parameters.values()
        if p.name not in plan.torch_params and p.default is not p.empty
    ]
    return torch_signature.replace(parameters=[*torch_signature.parameters.values(), *own])


def _make(name: str) -> Callable[..., torch.Tensor]:
    plan = _Plan(name)
    signature = _signature(plan)
    bind = signature.bind

    def fn(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(*args, **kwargs)
        bound.apply_defaults()
        return _call(plan, dict(bound.arguments))

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__doc__ = (
        f"``torch.nn.functional.{name}`` computed by :func:`losskit.functional.{name}` "
        f"(its docstring states the formula and losskit's keyword-only extras), for CPU tensors, "
        f"with torch's autograd."
    )
    return fn


for _name in LOSSES:
    globals()[_name] = _make(_name)
del _name

__all__ = list(LOSSES)
