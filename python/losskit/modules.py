"""The ``torch.nn`` loss classes. Each stores its constructor keywords and calls the functional
form; the formulas are documented there, once."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from . import _reduction, functional


class _Loss:
    """Base of every loss class: ``forward``, ``backward``, ``forward_backward`` and ``repr``.

    Subclasses set ``_function`` (the functional name) and put their keywords in
    ``self._options`` (passed to the functional form as they are).
    """

    _function: str = ""

    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean") -> None:
        if size_average is not None or reduce is not None:
            reduction = _reduction.legacy_to_reduction(size_average, reduce)
        self.reduction = reduction
        self._last_inputs: Optional[Tuple[Any, ...]] = None

    # The keywords the functional form receives; subclasses extend it.
    def _kwargs(self) -> Dict[str, Any]:
        return {"reduction": self.reduction}

    def forward(self, *inputs: Any) -> Any:
        """The loss for ``inputs`` (the arguments of the functional form)."""
        loss = getattr(functional, self._function)(*inputs, **self._kwargs())
        self._last_inputs = inputs
        return loss

    __call__ = forward

    def backward(self, grad_output: Any = None, target_grad: bool = False) -> Any:
        """Gradients of the most recent :meth:`forward`; ``grad_output=None`` means 1 (or ones)."""
        if self._last_inputs is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        fn = getattr(functional, self._function + "_backward")
        return fn(grad_output, *self._last_inputs, target_grad=target_grad, **self._kwargs())

    def forward_backward(self, *inputs: Any, grad_output: Any = None, target_grad: bool = False) -> Tuple[Any, Any]:
        """``(loss, gradients)`` from one fused pass: the fast path for training loops."""
        fn = getattr(functional, self._function + "_forward_backward")
        result = fn(*inputs, grad_output=grad_output, target_grad=target_grad, **self._kwargs())
        self._last_inputs = inputs
        return result

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items() if not _is_array(v))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


class L1Loss(_Loss):
    """Mean absolute error; see :func:`losskit.functional.l1_loss`."""

    _function = "l1_loss"


class MSELoss(_Loss):
    """Mean squared error; see :func:`losskit.functional.mse_loss`."""

    _function = "mse_loss"


class HuberLoss(_Loss):
    """Huber loss; see :func:`losskit.functional.huber_loss`."""

    _function = "huber_loss"

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def _kwargs(self) -> Dict[str, Any]:
        return {"reduction": self.reduction, "delta": self.delta}


class SmoothL1Loss(_Loss):
    """Smooth L1 loss; see :func:`losskit.functional.smooth_l1_loss`."""

    _function = "smooth_l1_loss"

    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def _kwargs(self) -> Dict[str, Any]:
        return {"reduction": self.reduction, "beta": self.beta}


class SoftMarginLoss(_Loss):
    """Two-class logistic loss; see :func:`losskit.functional.soft_margin_loss`."""

    _function = "soft_margin_loss"


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities; see :func:`losskit.functional.binary_cross_entropy`."""

    _function = "binary_cross_entropy"

    def __init__(self, weight: Any = None, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight

    def _kwargs(self) -> Dict[str, Any]:
        return {"weight": self.weight, "reduction": self.reduction}


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; see :func:`losskit.functional.binary_cross_entropy_with_logits`."""

    _function = "binary_cross_entropy_with_logits"

    def __init__(self, weight: Any = None, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.pos_weight = pos_weight

    def _kwargs(self) -> Dict[str, Any]:
        return {"weight": self.weight, "reduction": self.reduction, "pos_weight": self.pos_weight}


class PoissonNLLLoss(_Loss):
    """Poisson negative log-likelihood; see :func:`losskit.functional.poisson_nll_loss`."""

    _function = "poisson_nll_loss"

    def __init__(self, log_input: bool = True, full: bool = False, size_average: Optional[bool] = None,
                 eps: float = 1e-8, reduce: Optional[bool] = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input = log_input
        self.full = full
        self.eps = eps

    def _kwargs(self) -> Dict[str, Any]:
        return {"log_input": self.log_input, "full": self.full, "eps": self.eps, "reduction": self.reduction}


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood; see :func:`losskit.functional.gaussian_nll_loss`."""

    _function = "gaussian_nll_loss"

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full = full
        self.eps = eps

    def _kwargs(self) -> Dict[str, Any]:
        return {"full": self.full, "eps": self.eps, "reduction": self.reduction}


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence; see :func:`losskit.functional.kl_div`."""

    _function = "kl_div"

    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def _kwargs(self) -> Dict[str, Any]:
        return {"reduction": self.reduction, "log_target": self.log_target}


class MarginRankingLoss(_Loss):
    """Margin ranking loss; see :func:`losskit.functional.margin_ranking_loss`."""

    _function = "margin_ranking_loss"

    def __init__(self, margin: float = 0.0, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def _kwargs(self) -> Dict[str, Any]:
        return {"margin": self.margin, "reduction": self.reduction}


class HingeEmbeddingLoss(_Loss):
    """Hinge embedding loss; see :func:`losskit.functional.hinge_embedding_loss`."""

    _function = "hinge_embedding_loss"

    def __init__(self, margin: float = 1.0, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def _kwargs(self) -> Dict[str, Any]:
        return {"margin": self.margin, "reduction": self.reduction}


# ---- classification ----
class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy (class indices or probabilities); see :func:`losskit.functional.cross_entropy`."""

    _function = "cross_entropy"

    def __init__(self, weight: Any = None, size_average: Optional[bool] = None, ignore_index: int = -100,
                 reduce: Optional[bool] = None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def _kwargs(self) -> Dict[str, Any]:
        return {"weight": self.weight, "ignore_index": self.ignore_index, "reduction": self.reduction,
                "label_smoothing": self.label_smoothing}


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (also torch's NLLLoss2d on 4-D input); see
    :func:`losskit.functional.nll_loss`."""

    _function = "nll_loss"

    def __init__(self, weight: Any = None, size_average: Optional[bool] = None, ignore_index: int = -100,
                 reduce: Optional[bool] = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index

    def _kwargs(self) -> Dict[str, Any]:
        return {"weight": self.weight, "ignore_index": self.ignore_index, "reduction": self.reduction}


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss; see :func:`losskit.functional.multi_margin_loss`."""

    _function = "multi_margin_loss"

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None, size_average: Optional[bool] = None,
                 reduce: Optional[bool] = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: p expected 1 or 2, got {p!r}")
        self.p = p
        self.margin = margin
        self.weight = weight

    def _kwargs(self) -> Dict[str, Any]:
        return {"p": self.p, "margin": self.margin, "weight": self.weight, "reduction": self.reduction}


class MultiLabelMarginLoss(_Loss):
    """Multi-label hinge loss; see :func:`losskit.functional.multilabel_margin_loss`."""

    _function = "multilabel_margin_loss"


class MultiLabelSoftMarginLoss(_Loss):
    """Multi-label logistic loss; see :func:`losskit.functional.multilabel_soft_margin_loss`."""

    _function = "multilabel_soft_margin_loss"

    def __init__(self, weight: Any = None, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight

    def _kwargs(self) -> Dict[str, Any]:
        return {"weight": self.weight, "reduction": self.reduction}


# ---- embedding ----


# ---- ctc ----


# ---- large_vocab ----
