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

Gradients flow to the inputs losskit differentiates: the inputs, and a float target where losskit
has its gradient (``target_grad``). Another tensor that requires grad (a ``weight``, or a label
target torch would differentiate) raises NotImplementedError rather than getting a silent zero.
Tensors on another device than the CPU raise ValueError (no silent copies); backward is once
differentiable: a backward with ``create_graph=True`` raises RuntimeError.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as _TF
from torch.nn import _reduction as _torch_reduction

import losskit.functional as _LF
from losskit import _adapters

# torch parameters losskit does not take: linear_cross_entropy's ``options`` choose torch's
# chunking, and losskit always chunks.
_TORCH_ONLY = frozenset({"options"})
_LEGACY = ("size_average", "reduce")

LOSSES: Tuple[str, ...] = tuple(n for n in _adapters.losses() if hasattr(_TF, n))


class _Plan:
    """What the shared autograd function needs to know about one loss."""

    __slots__ = ("name", "qualname", "forward", "backward", "fused", "grads", "target_grad", "torch_fn")

    def __init__(self, name: str) -> None:
        self.name = name
        self.qualname = f"losskit.torch.functional.{name}"
        self.forward: Callable[..., Any] = getattr(_LF, name)
        self.backward: Callable[..., Any] = getattr(_LF, name + "_backward")
        self.fused: Callable[..., Any] = getattr(_LF, name + "_forward_backward")
        self.grads = _adapters.grad_names(name)
        self.target_grad = name in _adapters.TARGET_GRAD
        self.torch_fn: Callable[..., Any] = getattr(_TF, name)


def _numpy(value: Any) -> Any:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else value


def _as_tensor(value: Any, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """A losskit result as a tensor (zero-copy), in the dtype of the tensor it belongs to."""
    t = torch.from_numpy(np.asarray(value))
    return t if dtype is None or t.dtype == dtype else t.to(dtype)


class _LossFunction(torch.autograd.Function):
    """The one autograd function of every loss. ``apply(plan, arguments, names, *tensors)``:
    ``arguments`` holds every losskit argument by name; ``tensors`` are the arguments named in
    ``names`` (the ones losskit can differentiate), passed again so that autograd tracks them."""

    @staticmethod
    def forward(ctx: Any, plan: _Plan, arguments: Dict[str, Any], names: Tuple[str, ...], *tensors: Any) -> Any:
        need = dict(zip(names, ctx.needs_input_grad[3:]))
        target_grad = plan.target_grad and need.get("target", False)
        dtype = next(v.dtype for v in arguments.values() if isinstance(v, torch.Tensor))
        ctx.plan, ctx.names, ctx.target_grad, ctx.need = plan, names, target_grad, need
        ctx.dtypes = {k: v.dtype for k, v in arguments.items() if isinstance(v, torch.Tensor)}
        arrays = {k: _numpy(v) for k, v in arguments.items()}
        # Backward may recompute from the inputs: keep them (saved tensors carry torch's check
        # that nothing modified them in place since).
        ctx.keys = [k for k, v in arguments.items() if isinstance(v, torch.Tensor)]
        ctx.others = {k: v for k, v in arguments.items() if not isinstance(v, torch.Tensor)}
        ctx.save_for_backward(*(arguments[k] for k in ctx.keys))
        if arguments["reduction"] == "none":
            ctx.kept = None
            return _as_tensor(plan.forward(**arrays), dtype)
        loss, grads = plan.fused(**arrays, target_grad=target_grad)
        named = _adapters.by_name(plan.name, target_grad, grads)
        ctx.kept = {k: _as_tensor(g, ctx.dtypes[k]) for k, g in named.items() if g is not None and need.get(k, False)}
        return _as_tensor(loss, dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Any:
        # Autograd runs a backward in grad mode only under create_graph=True. torch's
        # once_differentiable would raise only if grad_output itself required grad, and otherwise
        # return gradients detached from the inputs: a silent zero second derivative.
        if torch.is_grad_enabled():
            raise RuntimeError(f"{ctx.plan.qualname}: losskit computes first derivatives only; "
                               "backward with create_graph=True (double backward) is not supported")
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
            arrays.update((k, t.numpy()) for k, t in zip(ctx.keys, ctx.saved_tensors))
            out = ctx.plan.backward(grad_output.numpy(), **arrays, target_grad=ctx.target_grad)
            named = _adapters.by_name(ctx.plan.name, ctx.target_grad, out)
            grads = {k: _as_tensor(g, ctx.dtypes[k]) for k, g in named.items()
                     if g is not None and ctx.need.get(k, False)}
        return (None, None, None, *(grads.get(k) for k in ctx.names))


def _check(plan: _Plan, arguments: Dict[str, Any]) -> Tuple[str, ...]:
    """Checks every tensor argument before any work; returns the names of those autograd must
    track (empty when no gradient is needed)."""
    grad_mode = torch.is_grad_enabled()
    differentiable = _adapters.differentiable(plan.name)
    tracked = []
    for k, v in arguments.items():
        if not isinstance(v, torch.Tensor):
            continue
        if v.device.type != "cpu":
            raise ValueError(f"{plan.qualname}: {k} expected a CPU tensor, got a tensor on {v.device} "
                             "(losskit computes on the CPU; move it with .cpu() if that is what you want)")
        if v.dtype == torch.bfloat16:
            raise TypeError(f"{plan.qualname}: {k} expected float32, float64 or float16, got torch.bfloat16")
        if grad_mode and v.requires_grad:
            if k not in differentiable:
                raise NotImplementedError(
                    f"{plan.qualname}: {k} requires grad, but losskit computes no gradient for {k} "
                    f"(detach it, or use torch.nn.functional.{plan.name})")
            tracked.append(k)
    return tuple(k for k in differentiable if k in arguments) if tracked else ()


def _call(plan: _Plan, arguments: Dict[str, Any]) -> torch.Tensor:
    if arguments.get("size_average") is not None or arguments.get("reduce") is not None:
        # torch's own legacy rule (and its DeprecationWarning)
        arguments["reduction"] = _torch_reduction.legacy_get_string(arguments["size_average"], arguments["reduce"])
    for k in _LEGACY + tuple(_TORCH_ONLY):
        arguments.pop(k, None)
    if plan.name == "triplet_margin_with_distance_loss" and callable(arguments.get("distance_function")):
        # A distance written in torch runs in torch: losskit cannot call it on its arrays.
        return plan.torch_fn(**arguments)
    names = _check(plan, arguments)
    if not names:
        dtype = next(v.dtype for v in arguments.values() if isinstance(v, torch.Tensor))
        return _as_tensor(plan.forward(**{k: _numpy(v) for k, v in arguments.items()}), dtype)
    return _LossFunction.apply(plan, arguments, names, *(arguments[k] for k in names))


def _make(name: str) -> Callable[..., torch.Tensor]:
    plan = _Plan(name)
    signature = inspect.signature(plan.torch_fn)
    bind = signature.bind

    def fn(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(*args, **kwargs)
        bound.apply_defaults()
        return _call(plan, dict(bound.arguments))

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__doc__ = (f"``torch.nn.functional.{name}`` computed by :func:`losskit.functional.{name}` "
                  f"(its docstring states the formula), for CPU tensors, with torch's autograd.")
    return fn


for _name in LOSSES:
    globals()[_name] = _make(_name)
del _name

__all__ = list(LOSSES)
