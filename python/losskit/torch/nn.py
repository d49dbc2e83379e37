"""``torch.nn``'s loss modules computed by losskit: ``losskit.torch.nn.<ClassName>``.

Each class subclasses torch's own (``torch.nn.MSELoss``, ...), so the constructor, its arguments,
the registered buffers (``weight``, ``pos_weight``), ``state_dict`` and ``repr`` are torch's; only
``forward`` differs: it calls :mod:`losskit.torch.functional` with the keywords the module holds
(``AdaptiveLogSoftmaxWithLoss``: losskit's class on the module's parameters).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Tuple

import numpy as np
import torch

from . import functional as _functional

# torch's class for each functional loss.
_CLASSES: Dict[str, str] = {
    "L1Loss": "l1_loss",
    "MSELoss": "mse_loss",
    "HuberLoss": "huber_loss",
    "SmoothL1Loss": "smooth_l1_loss",
    "SoftMarginLoss": "soft_margin_loss",
    "BCELoss": "binary_cross_entropy",
    "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
    "PoissonNLLLoss": "poisson_nll_loss",
    "GaussianNLLLoss": "gaussian_nll_loss",
    "KLDivLoss": "kl_div",
    "MarginRankingLoss": "margin_ranking_loss",
    "HingeEmbeddingLoss": "hinge_embedding_loss",
    "CrossEntropyLoss": "cross_entropy",
    "NLLLoss": "nll_loss",
    "MultiMarginLoss": "multi_margin_loss",
    "MultiLabelMarginLoss": "multilabel_margin_loss",
    "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss",
    "CosineEmbeddingLoss": "cosine_embedding_loss",
    "TripletMarginLoss": "triplet_margin_loss",
    "TripletMarginWithDistanceLoss": "triplet_margin_with_distance_loss",
    "CTCLoss": "ctc_loss",
}
_NOT_KEYWORDS = frozenset({"size_average", "reduce", "options"})  # folded into `reduction` by torch's __init__


def _make(class_name: str, name: str) -> type:
    base = getattr(torch.nn, class_name)
    fn = getattr(_functional, name)
    params = inspect.signature(fn).parameters.values()
    keywords: Tuple[str, ...] = tuple(
        p.name for p in params if p.default is not inspect.Parameter.empty and p.name not in _NOT_KEYWORDS
    )

    def forward(self: torch.nn.Module, *inputs: Any, **kwargs: Any) -> torch.Tensor:
        held = {k: getattr(self, k) for k in keywords if k not in kwargs and hasattr(self, k)}
        return fn(*inputs, **kwargs, **held)

    forward.__signature__ = inspect.signature(base.forward)  # type: ignore[attr-defined]
    doc = (
        f"``torch.nn.{class_name}`` whose forward is :func:`losskit.torch.functional.{name}` "
        f"(the formula: :func:`losskit.functional.{name}`)."
    )
    return type(class_name, (base,), {"forward": forward, "__doc__": doc, "__module__": __name__})


for _class_name, _name in _CLASSES.items():
    if hasattr(torch.nn, _class_name):
        globals()[_class_name] = _make(_class_name, _name)
del _class_name, _name


if hasattr(torch.nn, "LinearCrossEntropyLoss"):

    class LinearCrossEntropyLoss(torch.nn.LinearCrossEntropyLoss):
        """``torch.nn.LinearCrossEntropyLoss`` whose forward is
        :func:`losskit.torch.functional.linear_cross_entropy` (``options`` are ignored: losskit
        always chunks)."""

        def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            shape = (self.num_classes, *self.out_features)
            bias = self.linear.bias
            return _functional.linear_cross_entropy(  # type: ignore[attr-defined]
                input,
                self.linear.weight.reshape((*shape, self.linear.in_features)),
                target,
                linear_bias=None if bias is None else bias.reshape(shape),
                weight=self.weight,
                reduction=self.reduction,
                ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing,
            )


class _AdaptiveFunction(torch.autograd.Function):
    """The adaptive softmax's autograd function: ``apply(module, input, target, *parameters)``
    returns ``(output, loss)``. It is not the functional losses' function because it has two
    outputs and parameters named by the module; the fused gradients are kept and handed over in
    the same way (losskit's class computes the gradients of ``loss`` only, so a gradient reaching
    ``output`` raises rather than being dropped)."""

    @staticmethod
    def forward(
        ctx: Any, module: "AdaptiveLogSoftmaxWithLoss", input: torch.Tensor, target: torch.Tensor, *params: torch.Tensor
    ) -> Any:
        ctx.set_materialize_grads(False)
        core = module._core(params)
        (output, loss), (gx, grads) = core.forward_backward(input.detach().numpy(), target.detach().numpy())
        need = ctx.needs_input_grad
        ctx.kept = [torch.from_numpy(gx) if need[1] else None] + [
            torch.from_numpy(grads[k]) if n else None for k, n in zip(module._names, need[3:])
        ]
        ctx.module = module
        ctx.save_for_backward(input, target, *params)
        return torch.from_numpy(np.asarray(output)), torch.from_numpy(np.asarray(loss))

    @staticmethod
    def backward(ctx: Any, grad_output: Any, grad_loss: Any) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "losskit.torch.nn.AdaptiveLogSoftmaxWithLoss: losskit computes first derivatives "
                "only; backward with create_graph=True (double backward) is not supported"
            )
        if grad_output is not None and bool((grad_output != 0).any()):
            raise NotImplementedError(
                "losskit.torch.nn.AdaptiveLogSoftmaxWithLoss: losskit differentiates `loss` "
                "only; a gradient reaching `output` is not supported (use .loss)"
            )
        n = 2 + len(ctx.module._names)
        if grad_loss is None:
            return (None,) * (n + 1)
        if ctx.kept is not None:  # handed over once, as the functional losses' fused gradients
            grads, ctx.kept = ctx.kept, None
            if grad_loss.item() != 1.0:
                for g in grads:
                    if g is not None:
                        g.mul_(grad_loss)
        else:  # a later backward of a retained graph
            input, target, *params = ctx.saved_tensors
            core = ctx.module._core(params)
            _, (gx, named) = core.forward_backward(input.numpy(), target.numpy(), grad_output=grad_loss.item())
            grads = [torch.from_numpy(gx)] + [torch.from_numpy(named[k]) for k in ctx.module._names]
        return (None, grads[0], None, *grads[1:])


class AdaptiveLogSoftmaxWithLoss(torch.nn.AdaptiveLogSoftmaxWithLoss):
    """``torch.nn.AdaptiveLogSoftmaxWithLoss`` whose forward is losskit's
    :class:`losskit.AdaptiveLogSoftmaxWithLoss` (formula there), reading this module's parameters
    in place. Gradients reach ``input`` and every parameter through ``loss``; ``log_prob`` and
    ``predict`` are torch's."""

    def _core(self, params: Any) -> Any:
        from losskit import AdaptiveLogSoftmaxWithLoss as Core

        core = self.__dict__.get("_losskit_core")
        if core is None:
            dtype = self.head.weight.dtype
            core = Core(
                self.in_features,
                self.n_classes,
                self.cutoffs[:-1],
                self.div_value,
                self.head_bias,
                dtype=np.float64 if dtype == torch.float64 else np.float32,
            )
            self.__dict__["_losskit_core"] = core
        arrays = dict(zip(self._names, (p.detach().numpy() for p in params)))
        core.head.weight = arrays["head.weight"]
        core.head.bias = arrays.get("head.bias")
        for i, (a, b) in enumerate(core.tail):
            a.weight, b.weight = arrays[f"tail.{i}.0.weight"], arrays[f"tail.{i}.1.weight"]
        return core

    @property
    def _names(self) -> Tuple[str, ...]:
        return tuple(k for k, _ in self.named_parameters())

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Any:  # type: ignore[override]
        from torch.nn.modules.adaptive import _ASMoutput

        params = tuple(p for _, p in self.named_parameters())
        for k, v in (("input", input), ("target", target), *zip(self._names, params)):
            if v.device.type != "cpu":
                raise ValueError(
                    f"losskit.torch.nn.AdaptiveLogSoftmaxWithLoss: {k} expected a CPU tensor, "
                    f"got a tensor on {v.device}"
                )
        if torch.is_grad_enabled() and (input.requires_grad or any(p.requires_grad for p in params)):
            output, loss = _AdaptiveFunction.apply(self, input, target, *params)
        else:
            out, loss_value = self._core(params).forward(input.detach().numpy(), target.detach().numpy())
            output, loss = torch.from_numpy(np.asarray(out)), torch.from_numpy(np.asarray(loss_value))
        return _ASMoutput(output, loss)


__all__ = sorted(n for n, v in globals().items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
