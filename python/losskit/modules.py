"""The ``torch.nn`` loss classes. Each stores its constructor keywords and calls the functional
form; the formulas are documented there, once."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Optional, Tuple

from . import _convert, _reduction, functional
from ._functional import _spec


class _Loss:
    """Base of every loss class: ``forward``, ``backward``, ``forward_backward`` and ``repr``.

    Subclasses set ``_function`` (the functional name) and store each constructor keyword in the
    attribute of its name (``self.delta = delta``): :meth:`_kwargs` passes on those of the
    functional form's keywords that the constructor takes, in the functional signature's order.
    """

    _function: str = ""
    _keywords: Tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls._function:  # an intermediate base sharing a constructor (the box IoU losses)
            return
        # The functional form's keywords that the constructor takes (the legacy pair excepted: the
        # constructor turns it into `reduction`), found once per class.
        taken = inspect.signature(cls.__init__).parameters
        cls._keywords = tuple(
            k for k in _spec.LOSSES[cls._function].keywords if k in taken and k not in ("size_average", "reduce")
        )

    def __init__(
        self, size_average: Optional[bool] = None, reduce: Optional[bool] = None, reduction: str = "mean"
    ) -> None:
        if size_average is not None or reduce is not None:
            reduction = _reduction.legacy_to_reduction(size_average, reduce)
        self.reduction = reduction
        self._last_inputs: Optional[Tuple[Any, ...]] = None
        self._last_normalizer: Optional[float] = None

    def _kwargs(self) -> Dict[str, Any]:
        """The keywords the functional form receives."""
        return {k: getattr(self, k) for k in self._keywords}

    def forward(self, *inputs: Any, normalizer: Optional[float] = None) -> Any:
        """The loss for ``inputs`` (the arguments of the functional form); ``normalizer`` replaces
        the divisor of ``'mean'`` (see :func:`losskit.functional.mean_normalizer`)."""
        loss = getattr(functional, self._function)(*inputs, normalizer=normalizer, **self._kwargs())
        self._last_inputs, self._last_normalizer = inputs, normalizer
        return loss

    __call__ = forward

    def backward(self, grad_output: Any = None, target_grad: bool = False) -> Any:
        """Gradients of the most recent :meth:`forward` (with its ``normalizer``);
        ``grad_output=None`` means 1 (or ones)."""
        if self._last_inputs is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        fn = getattr(functional, self._function + "_backward")
        return fn(
            grad_output, *self._last_inputs, target_grad=target_grad, normalizer=self._last_normalizer, **self._kwargs()
        )

    def forward_backward(
        self, *inputs: Any, grad_output: Any = None, target_grad: bool = False, normalizer: Optional[float] = None
    ) -> Tuple[Any, Any]:
        """``(loss, gradients)`` from one fused pass: the fast path for training loops."""
        fn = getattr(functional, self._function + "_forward_backward")
        result = fn(*inputs, grad_output=grad_output, target_grad=target_grad, normalizer=normalizer, **self._kwargs())
        self._last_inputs, self._last_normalizer = inputs, normalizer
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


class SmoothL1Loss(_Loss):
    """Smooth L1 loss; see :func:`losskit.functional.smooth_l1_loss`."""

    _function = "smooth_l1_loss"

    def __init__(
        self,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
        beta: float = 1.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta


class SoftMarginLoss(_Loss):
    """Two-class logistic loss; see :func:`losskit.functional.soft_margin_loss`."""

    _function = "soft_margin_loss"


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities; see :func:`losskit.functional.binary_cross_entropy`."""

    _function = "binary_cross_entropy"

    def __init__(
        self,
        weight: Any = None,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; see :func:`losskit.functional.binary_cross_entropy_with_logits`."""

    _function = "binary_cross_entropy_with_logits"

    def __init__(
        self,
        weight: Any = None,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.pos_weight = pos_weight


class PoissonNLLLoss(_Loss):
    """Poisson negative log-likelihood; see :func:`losskit.functional.poisson_nll_loss`."""

    _function = "poisson_nll_loss"

    def __init__(
        self,
        log_input: bool = True,
        full: bool = False,
        size_average: Optional[bool] = None,
        eps: float = 1e-8,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input = log_input
        self.full = full
        self.eps = eps


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood; see :func:`losskit.functional.gaussian_nll_loss`."""

    _function = "gaussian_nll_loss"

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full = full
        self.eps = eps


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence; see :func:`losskit.functional.kl_div`."""

    _function = "kl_div"

    def __init__(
        self,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
        log_target: bool = False,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target


class MarginRankingLoss(_Loss):
    """Margin ranking loss; see :func:`losskit.functional.margin_ranking_loss`."""

    _function = "margin_ranking_loss"

    def __init__(
        self,
        margin: float = 0.0,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class HingeEmbeddingLoss(_Loss):
    """Hinge embedding loss; see :func:`losskit.functional.hinge_embedding_loss`."""

    _function = "hinge_embedding_loss"

    def __init__(
        self,
        margin: float = 1.0,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


# The registered element-wise losses (beyond torch.nn): a constructor of their keywords.
class LogCoshLoss(_Loss):
    """Log-cosh loss; see :func:`losskit.functional.log_cosh_loss`."""

    _function = "log_cosh_loss"

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class PseudoHuberLoss(_Loss):
    """Pseudo-Huber (Charbonnier) loss; see :func:`losskit.functional.pseudo_huber_loss`."""

    _function = "pseudo_huber_loss"

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.delta = delta


class MSLELoss(_Loss):
    """Mean squared logarithmic error; see :func:`losskit.functional.msle_loss`."""

    _function = "msle_loss"

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class SigmoidFocalLoss(_Loss):
    """Sigmoid focal loss (RetinaNet); see :func:`losskit.functional.sigmoid_focal_loss`."""

    _function = "sigmoid_focal_loss"

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> None:
        super().__init__(reduction=reduction)
        self.alpha = alpha
        self.gamma = gamma


# ---- classification ----
class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy (class indices or probabilities); see :func:`losskit.functional.cross_entropy`."""

    _function = "cross_entropy"

    def __init__(
        self,
        weight: Any = None,
        size_average: Optional[bool] = None,
        ignore_index: int = -100,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        z_loss: float = 0.0,
        softcap: Optional[float] = None,
        return_stats: bool = False,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.softcap = softcap
        self.return_stats = return_stats


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (also torch's NLLLoss2d on 4-D input); see
    :func:`losskit.functional.nll_loss`."""

    _function = "nll_loss"

    def __init__(
        self,
        weight: Any = None,
        size_average: Optional[bool] = None,
        ignore_index: int = -100,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss; see :func:`losskit.functional.multi_margin_loss`."""

    _function = "multi_margin_loss"

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight: Any = None,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if _convert.real("MultiMarginLoss", "p", p) not in (1.0, 2.0):
            raise ValueError(f"MultiMarginLoss: p expected 1 or 2, got {p!r}")
        self.p = p
        self.margin = margin
        self.weight = weight


class MultiLabelMarginLoss(_Loss):
    """Multi-label hinge loss; see :func:`losskit.functional.multilabel_margin_loss`."""

    _function = "multilabel_margin_loss"


class MultiLabelSoftMarginLoss(_Loss):
    """Multi-label logistic loss; see :func:`losskit.functional.multilabel_soft_margin_loss`."""

    _function = "multilabel_soft_margin_loss"

    def __init__(
        self,
        weight: Any = None,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight


# ---- embedding ----
class CosineEmbeddingLoss(_Loss):
    """Cosine embedding loss; see :func:`losskit.functional.cosine_embedding_loss`."""

    _function = "cosine_embedding_loss"

    def __init__(
        self,
        margin: float = 0.0,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class TripletMarginLoss(_Loss):
    """Triplet margin loss; see :func:`losskit.functional.triplet_margin_loss`."""

    _function = "triplet_margin_loss"

    def __init__(
        self,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        size_average: Optional[bool] = None,
        reduce: Optional[bool] = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap


class TripletMarginWithDistanceLoss(_Loss):
    """Triplet margin loss with a chosen distance (None, "euclidean", "cosine",
    "squared_euclidean" or a callable returning (distances, vjp)); see
    :func:`losskit.functional.triplet_margin_with_distance_loss`."""

    _function = "triplet_margin_with_distance_loss"

    def __init__(
        self, *, distance_function: Any = None, margin: float = 1.0, swap: bool = False, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction=reduction)
        self.distance_function = distance_function
        self.margin = margin
        self.swap = swap


# ---- ctc ----
class CTCLoss(_Loss):
    """Connectionist temporal classification loss; see :func:`losskit.functional.ctc_loss`.

    ``crit(log_probs, targets, input_lengths, target_lengths)``; ``backward`` returns torch's
    gradient with respect to ``log_probs``."""

    _function = "ctc_loss"

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity


# ---- large_vocab ----
import numpy as np  # noqa: E402

from ._large_vocab import ASMoutput, AdaptiveLogSoftmaxWithLoss, Linear  # noqa: E402,F401


class LinearCrossEntropyLoss(_Loss):
    """Cross-entropy of a linear projection it owns, computed in chunks; see
    :func:`losskit.functional.linear_cross_entropy`.

    As torch's class: ``linear`` holds the projection (``linear.weight`` (num_classes, in_features)
    and ``linear.bias`` (num_classes) or None, NumPy arrays initialised as torch's ``Linear`` and
    settable); ``weight`` is the class weight. ``crit(input, target)`` is the loss, ``backward()``
    and ``forward_backward(input, target)`` give ``(grad_input, grad_linear_weight,
    grad_linear_bias)``. :meth:`state_dict` / :meth:`load_state_dict` use torch's names
    (``linear.weight``, ``linear.bias``, ``weight``). ``chunk_size`` (rows per chunk, default about
    64 MiB of logits and at least 256 rows) replaces torch's ``options``; ``out_features`` must be ``()``.
    """

    _function = "linear_cross_entropy"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: Tuple[int, ...] = (),
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        reduction: str = "mean",
        weight: Any = None,
        ignore_index: Optional[int] = None,
        label_smoothing: float = 0.0,
        options: Any = None,
        chunk_size: Optional[int] = None,
        rng: Any = None,
        z_loss: float = 0.0,
        softcap: Optional[float] = None,
        return_stats: bool = False,
    ) -> None:
        fn = "LinearCrossEntropyLoss"
        if not isinstance(out_features, (tuple, list)) or tuple(out_features) != ():
            raise ValueError(
                f"{fn}: out_features expected (), got {out_features!r} (K-dimensional losses are not supported)"
            )
        if not (device is None or isinstance(device, str) and device == "cpu"):
            raise ValueError(f"{fn}: device expected None or 'cpu', got {device!r}")
        in_features = _convert.size(fn, "in_features", in_features)
        num_classes = _convert.size(fn, "num_classes", num_classes)
        bias = _convert.flag(fn, "bias", bias)
        if weight is not None and _convert.to_array(fn, "weight", weight).shape != (num_classes,):
            raise ValueError(f"{fn}: weight expected shape {(num_classes,)}, got {np.shape(weight)}")
        if not 0.0 <= _convert.real(fn, "label_smoothing", label_smoothing) <= 1.0:
            raise ValueError(f"{fn}: label_smoothing expected a value in [0, 1], got {label_smoothing}")
        super().__init__(reduction=reduction)
        self.num_classes = int(num_classes)
        self.out_features = ()
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options  # accepted for torch compatibility; losskit always chunks
        self.chunk_size = chunk_size
        self.z_loss = z_loss
        self.softcap = softcap
        self.return_stats = return_stats
        self.linear = Linear(in_features, num_classes, bias=bias, dtype=dtype, rng=rng)

    def _kwargs(self) -> Dict[str, Any]:
        return {
            "linear_bias": self.linear.bias,
            "weight": self.weight,
            "reduction": self.reduction,
            "ignore_index": self.ignore_index,
            "label_smoothing": self.label_smoothing,
            "chunk_size": self.chunk_size,
            "z_loss": self.z_loss,
            "softcap": self.softcap,
            "return_stats": self.return_stats,
        }

    def forward(self, input: Any, target: Any, *, normalizer: Optional[float] = None) -> Any:
        loss = functional.linear_cross_entropy(
            input, self.linear.weight, target, normalizer=normalizer, **self._kwargs()
        )
        self._last_inputs, self._last_normalizer = (input, target), normalizer
        return loss

    __call__ = forward

    def backward(self, grad_output: Any = None, target_grad: bool = False) -> Any:
        if self._last_inputs is None:
            raise RuntimeError("LinearCrossEntropyLoss.backward() called before forward()")
        x, t = self._last_inputs
        return functional.linear_cross_entropy_backward(
            grad_output,
            x,
            self.linear.weight,
            t,
            target_grad=target_grad,
            normalizer=self._last_normalizer,
            **self._kwargs(),
        )

    def forward_backward(
        self,
        input: Any,
        target: Any,
        grad_output: Any = None,
        target_grad: bool = False,
        *,
        normalizer: Optional[float] = None,
    ) -> Tuple[Any, Any]:
        result = functional.linear_cross_entropy_forward_backward(
            input,
            self.linear.weight,
            target,
            grad_output,
            target_grad=target_grad,
            normalizer=normalizer,
            **self._kwargs(),
        )
        self._last_inputs, self._last_normalizer = (input, target), normalizer
        return result

    def state_dict(self) -> Dict[str, Any]:
        d = {"linear.weight": self.linear.weight}
        if self.linear.bias is not None:
            d["linear.bias"] = self.linear.bias
        if self.weight is not None:
            d["weight"] = self.weight
        return d

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for k, v in state.items():
            if k == "linear.weight":
                self.linear.weight = np.array(v, dtype=self.linear.weight.dtype, copy=True)
            elif k == "linear.bias" and self.linear.bias is not None:
                self.linear.bias = np.array(v, dtype=self.linear.bias.dtype, copy=True)
            elif k == "weight":
                self.weight = np.array(v, copy=True)
            else:
                raise ValueError(f"LinearCrossEntropyLoss: unexpected state key {k!r}")

    def extra_repr(self) -> str:
        return (
            f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
            f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
            f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}, chunk_size={self.chunk_size}"
        )


# ---- contrastive ----
class InfoNCELoss(_Loss):
    """InfoNCE contrastive loss (CLIP's symmetric form by default); see
    :func:`losskit.functional.info_nce_loss`. ``crit(z1, z2)``."""

    _function = "info_nce_loss"

    def __init__(
        self,
        temperature: float = 0.07,
        symmetric: bool = True,
        normalize: bool = True,
        reduction: str = "mean",
        block_size: Optional[int] = None,
    ) -> None:
        super().__init__(reduction=reduction)
        self.temperature = temperature
        self.symmetric = symmetric
        self.normalize = normalize
        self.block_size = block_size


# ---- segmentation ----
class DiceLoss(_Loss):
    """Soft Dice (or Jaccard) loss with MONAI's ``DiceLoss`` options; see
    :func:`losskit.functional.dice_loss`. ``crit(input, target)``; ``backward`` returns the gradient
    with respect to ``input``."""

    _function = "dice_loss"

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: Any = None,
        soft_label: bool = False,
    ) -> None:
        super().__init__(reduction=reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.batch = batch
        self.weight = weight
        self.soft_label = soft_label


class TverskyLoss(_Loss):
    """Tversky loss with MONAI's ``TverskyLoss`` options; see
    :func:`losskit.functional.tversky_loss`. ``crit(input, target)``."""

    _function = "tversky_loss"

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        soft_label: bool = False,
    ) -> None:
        super().__init__(reduction=reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.alpha = alpha
        self.beta = beta
        self.smooth_nr = smooth_nr
        self.smooth_dr = smooth_dr
        self.batch = batch
        self.soft_label = soft_label


# ---- detection ----
class _BoxIouLoss(_Loss):
    """The box IoU losses' constructor: torchvision's keywords and defaults (``reduction='none'``)."""

    def __init__(self, reduction: str = "none", eps: float = 1e-7) -> None:
        super().__init__(None, None, reduction)
        self.eps = eps


class GeneralizedBoxIoULoss(_BoxIouLoss):
    """Generalized IoU loss of box pairs; see :func:`losskit.functional.generalized_box_iou_loss`."""

    _function = "generalized_box_iou_loss"


class DistanceBoxIoULoss(_BoxIouLoss):
    """Distance IoU loss of box pairs; see :func:`losskit.functional.distance_box_iou_loss`."""

    _function = "distance_box_iou_loss"


class CompleteBoxIoULoss(_BoxIouLoss):
    """Complete IoU loss of box pairs; see :func:`losskit.functional.complete_box_iou_loss`."""

    _function = "complete_box_iou_loss"


# ---- beyond torch.nn: classification ----
class SoftmaxFocalLoss(_Loss):
    """Softmax focal loss (class indices); see :func:`losskit.functional.softmax_focal_loss`."""

    _function = "softmax_focal_loss"

    def __init__(
        self, gamma: float = 2.0, alpha: Any = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(None, None, reduction)
        self.gamma = gamma
        self.alpha = alpha
        self.ignore_index = ignore_index


class Poly1CrossEntropyLoss(_Loss):
    """Poly-1 cross-entropy (PolyLoss); see :func:`losskit.functional.poly1_cross_entropy`."""

    _function = "poly1_cross_entropy"

    def __init__(
        self,
        epsilon: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(None, None, reduction)
        self.epsilon = epsilon
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
