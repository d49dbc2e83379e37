"""``torch.nn``'s loss modules computed by losskit: ``losskit.torch.nn.<ClassName>``.

Each class subclasses torch's own (``torch.nn.MSELoss``, ...), so the constructor, its arguments,
the registered buffers (``weight``, ``pos_weight``), ``state_dict`` and ``repr`` are torch's; only
``forward`` differs: it calls :mod:`losskit.torch.functional` with the keywords the module holds.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Tuple

import torch

from . import functional as _functional

# torch's class for each functional loss.
_CLASSES: Dict[str, str] = {
    "L1Loss": "l1_loss", "MSELoss": "mse_loss", "HuberLoss": "huber_loss", "SmoothL1Loss": "smooth_l1_loss",
    "SoftMarginLoss": "soft_margin_loss", "BCELoss": "binary_cross_entropy",
    "BCEWithLogitsLoss": "binary_cross_entropy_with_logits", "PoissonNLLLoss": "poisson_nll_loss",
    "GaussianNLLLoss": "gaussian_nll_loss", "KLDivLoss": "kl_div", "MarginRankingLoss": "margin_ranking_loss",
    "HingeEmbeddingLoss": "hinge_embedding_loss", "CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss",
    "MultiMarginLoss": "multi_margin_loss", "MultiLabelMarginLoss": "multilabel_margin_loss",
    "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss", "CosineEmbeddingLoss": "cosine_embedding_loss",
    "TripletMarginLoss": "triplet_margin_loss", "TripletMarginWithDistanceLoss": "triplet_margin_with_distance_loss",
    "CTCLoss": "ctc_loss",
}
_NOT_KEYWORDS = frozenset({"size_average", "reduce", "options"})  # folded into `reduction` by torch's __init__


def _make(class_name: str, name: str) -> type:
    base = getattr(torch.nn, class_name)
    fn = getattr(_functional, name)
    params = inspect.signature(fn).parameters.values()
    keywords: Tuple[str, ...] = tuple(p.name for p in params
                                      if p.default is not inspect.Parameter.empty and p.name not in _NOT_KEYWORDS)

    def forward(self: torch.nn.Module, *inputs: Any, **kwargs: Any) -> torch.Tensor:
        held = {k: getattr(self, k) for k in keywords if k not in kwargs and hasattr(self, k)}
        return fn(*inputs, **kwargs, **held)

    forward.__signature__ = inspect.signature(base.forward)  # type: ignore[attr-defined]
    doc = (f"``torch.nn.{class_name}`` whose forward is :func:`losskit.torch.functional.{name}` "
           f"(the formula: :func:`losskit.functional.{name}`).")
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
                input, self.linear.weight.reshape((*shape, self.linear.in_features)), target,
                linear_bias=None if bias is None else bias.reshape(shape), weight=self.weight,
                reduction=self.reduction, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing)


__all__ = sorted(n for n, v in globals().items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
