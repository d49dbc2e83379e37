"""What the framework adapters (:mod:`losskit.torch`, :mod:`losskit.jax`) need to know about each
loss beyond its signature: which arguments losskit differentiates, and the gradients torch computes
that losskit's core has no entry point for (:func:`extra_grad`). Imports neither framework."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Tuple

import numpy as np

from ._convert import is_half
from ._functional import _spec

# losskit's gradient outputs, in order, for the losses whose only gradient is not ``input``'s.
_GRADS: Dict[str, Tuple[str, ...]] = {
    "margin_ranking_loss": ("input1", "input2"),
    "cosine_embedding_loss": ("input1", "input2"),
    "triplet_margin_loss": ("anchor", "positive", "negative"),
    "triplet_margin_with_distance_loss": ("anchor", "positive", "negative"),
    "gaussian_nll_loss": ("input", "var"),
    "ctc_loss": ("log_probs",),
    "linear_cross_entropy": ("input", "linear_weight", "linear_bias"),
    "info_nce_loss": ("z1", "z2"),
    # detection
    "generalized_box_iou_loss": ("boxes1", "boxes2"),
    "distance_box_iou_loss": ("boxes1", "boxes2"),
    "complete_box_iou_loss": ("boxes1", "boxes2"),
}

# The losses whose float target losskit differentiates (``target_grad=True``); its gradient
# follows the others.
TARGET_GRAD = frozenset(
    {
        "l1_loss",
        "mse_loss",
        "huber_loss",
        "smooth_l1_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "poisson_nll_loss",
        "gaussian_nll_loss",
        "kl_div",
        "cross_entropy",
        "multilabel_soft_margin_loss",
        # beyond torch.nn: classification
        "poly1_cross_entropy",
        # beyond torch.nn: segmentation (a dense target; class indices have no gradient)
        "dice_loss",
        "tversky_loss",
    }
)


# Gradients torch computes that losskit's core has no entry point for: :func:`extra_grad` computes
# each exactly from losskit's own outputs. cross_entropy's weight only with probability targets
# (torch does not differentiate the weight of class-index targets, nor that of nll_loss,
# multi_margin_loss, binary_cross_entropy, pos_weight, or soft_margin_loss's target).
EXTRA_GRADS: Dict[str, Tuple[str, ...]] = {
    "l1_loss": ("weight",),
    "mse_loss": ("weight",),
    "huber_loss": ("weight",),
    "cross_entropy": ("weight",),
    "multilabel_soft_margin_loss": ("weight",),
    "margin_ranking_loss": ("target",),
}

# Arguments that torch's formula reads only through comparisons (``target == 1``): torch gives them
# no gradient at all (the loss does not require grad through them), and neither do the adapters.
NO_GRADIENT: Dict[str, Tuple[str, ...]] = {
    "hinge_embedding_loss": ("target",),
    "cosine_embedding_loss": ("target",),
}

# torch's weighted 'mean' of these divides by sum(weight), which the gradient of weight must see;
# huber_loss's weighted mean divides by the element count.
_WEIGHT_SUM_MEAN = frozenset({"l1_loss", "mse_loss"})


def differentiates_target(name: str) -> bool:
    """Whether losskit differentiates ``name``'s float target (every registered element-wise
    loss does)."""
    return name in TARGET_GRAD or name in _spec.ELEMENTWISE


def losses() -> Tuple[str, ...]:
    """Every loss of :mod:`losskit.functional`, in its order."""
    from . import functional

    suffix = "_forward_backward"
    return tuple(n[: -len(suffix)] for n in vars(functional) if n.endswith(suffix) and not n.startswith("_"))


def grad_names(name: str, target_grad: bool = False) -> Tuple[str, ...]:
    """The names of the arguments whose gradients ``NAME_backward`` returns, in its order."""
    if name in _spec.ELEMENTWISE:  # its first two parameters, whatever their names
        input_name, target_name = list(inspect.signature(_spec.LOSSES[name].impl).parameters)[1:3]
        return (input_name,) + ((target_name,) if target_grad else ())
    return _GRADS.get(name, ("input",)) + (("target",) if target_grad else ())


def differentiable(name: str) -> Tuple[str, ...]:
    """Every argument losskit can differentiate for this loss."""
    return grad_names(name, differentiates_target(name))


def by_name(name: str, target_grad: bool, grads: object) -> Dict[str, object]:
    """losskit's gradient result (one array bare, several as a tuple) by argument name."""
    grads = grads if isinstance(grads, tuple) else (grads,)
    return dict(zip(grad_names(name, target_grad), grads))


def extra_names(name: str, float_target: bool) -> Tuple[str, ...]:
    """The arguments of this call whose gradient :func:`extra_grad` computes (`float_target`: the
    target is a float array, i.e. cross_entropy's probabilities)."""
    if name == "cross_entropy" and not float_target:
        return ()
    return EXTRA_GRADS.get(name, ())


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """16-bit storage is computed in float32, as losskit's core does."""
    return np.dtype(np.float32) if is_half(dtype) else dtype


def _sum_to(grad: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """The gradient of a broadcast argument: `grad` summed over the broadcast dimensions."""
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad


def _mean_divisor(name: str, arrays: Dict[str, Any]) -> float:
    if arrays.get("normalizer") is not None:
        return float(arrays["normalizer"])
    from . import functional

    return functional.mean_normalizer(name, **{k: v for k, v in arrays.items() if k != "normalizer"})


def extra_grad(name: str, argument: str, arrays: Dict[str, Any], grad_output: Any) -> np.ndarray:
    """The gradient of `name`'s loss with respect to `argument` (one of :func:`extra_names`), for
    `grad_output` (a scalar for a reduced loss, the unreduced loss's shape for 'none'), from
    losskit's outputs: `arrays` are the call's losskit arguments (NumPy). Exact, not a finite
    difference:

    * a per-element ``weight`` (l1, mse, huber): the loss is ``sum(w * l) / D``, so the gradient is
      the unweighted per-element loss ``l`` (a ``'none'`` call without weight) times
      ``grad_output / D``, less ``mean / D`` where ``D = sum(w)`` (l1, mse);
    * cross_entropy's class ``weight`` with probability targets: the loss is
      ``-sum_c w_c y'_c log_softmax(x)_c`` with the smoothed target ``y'``; the target gradient of
      the unweighted, unsmoothed call is ``-log_softmax(x)_c`` times the row's grad_output and
      divisor, whatever the target, so the weight gradient is ``y'`` times it, summed over rows;
    * multilabel_soft_margin's class ``weight``: the per-class loss is
      binary_cross_entropy_with_logits' element, averaged over the classes;
    * margin_ranking's ``target``: the loss ``max(0, -y (x1 - x2) + margin)`` is symmetric in ``y``
      and ``x1 - x2``, so the target's gradient is ``input1``'s gradient of the call with
      ``input1 = y``, ``input2 = 0``, ``target = x1 - x2``.
    """
    from . import functional

    # 16-bit storage as float32, which the core computes in anyway: the per-element values these
    # formulas combine must not be rounded to 16 bits first (l - mean cancels)
    arrays = {
        k: v.astype(np.float32) if isinstance(v, np.ndarray) and is_half(v.dtype) else v for k, v in arrays.items()
    }
    if isinstance(grad_output, np.ndarray) and is_half(grad_output.dtype):
        grad_output = grad_output.astype(np.float32)
    reduction = arrays["reduction"]
    go = np.asarray(grad_output, dtype=np.float64 if reduction != "none" else None)
    if name in ("l1_loss", "mse_loss", "huber_loss"):
        weight = np.asarray(arrays["weight"])
        unweighted = getattr(functional, name)(**dict(arrays, weight=None, reduction="none", normalizer=None))
        work = np.asarray(unweighted, dtype=_work_dtype(weight.dtype))
        if reduction == "mean":
            divisor = _mean_divisor(name, arrays)
            if name in _WEIGHT_SUM_MEAN and arrays.get("normalizer") is None:
                # the mean itself, in double from the same elements: the loss as returned (16-bit,
                # or float32) would be rounded, and l - mean cancels
                mean = np.dot(work.ravel().astype(np.float64), weight.ravel().astype(np.float64)) / divisor
                work = work - work.dtype.type(mean)
            work = work * (go / divisor).astype(work.dtype)
        else:
            work = work * go.astype(work.dtype)
        return _sum_to(work, weight.shape).astype(weight.dtype)
    if name == "cross_entropy":
        weight, target = np.asarray(arrays["weight"]), np.asarray(arrays["target"])
        _, per_target = functional.cross_entropy_backward(
            grad_output, **dict(arrays, weight=None, label_smoothing=0.0), target_grad=True
        )
        per_target = np.asarray(per_target, dtype=_work_dtype(weight.dtype))
        class_axis = 1 if target.ndim >= 2 else 0
        smoothing = float(arrays.get("label_smoothing", 0.0))
        smoothed = np.asarray(target, dtype=per_target.dtype)
        if smoothing:
            smoothed = (1.0 - smoothing) * smoothed + smoothing / target.shape[class_axis]
        rest = tuple(a for a in range(target.ndim) if a != class_axis)
        return (smoothed * per_target).sum(axis=rest).astype(weight.dtype)
    if name == "multilabel_soft_margin_loss":
        weight, x = np.asarray(arrays["weight"]), np.asarray(arrays["input"])
        per_class = functional.binary_cross_entropy_with_logits(x, arrays["target"], reduction="none")
        work = np.asarray(per_class, dtype=_work_dtype(weight.dtype))
        if reduction == "none":
            work = work * go.astype(work.dtype)[..., None]
        else:
            scale = go / _mean_divisor(name, arrays) if reduction == "mean" else go
            work = work * scale.astype(work.dtype)
        classes = x.shape[-1] if x.ndim else 1
        return (work.reshape(-1, classes).sum(axis=0) / classes).astype(weight.dtype)
    if name == "margin_ranking_loss":
        x1, x2, y = (np.asarray(arrays[k]) for k in ("input1", "input2", "target"))
        work_dtype = _work_dtype(np.result_type(x1.dtype, x2.dtype))
        shape = np.broadcast_shapes(x1.shape, x2.shape, y.shape)
        difference = np.ascontiguousarray(np.broadcast_to(np.subtract(x1, x2, dtype=work_dtype), shape))
        labels = np.ascontiguousarray(np.broadcast_to(np.asarray(y, dtype=work_dtype), shape))
        grad_labels, _ = functional.margin_ranking_loss_backward(
            grad_output,
            labels,
            np.zeros(shape, work_dtype),
            difference,
            margin=arrays.get("margin", 0.0),
            reduction=reduction,
            normalizer=arrays.get("normalizer"),
        )
        return _sum_to(np.asarray(grad_labels), y.shape).astype(y.dtype)
    raise ValueError(f"losskit adapters: no gradient of {name} with respect to {argument}")
