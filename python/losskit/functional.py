r"""Every loss of ``torch.nn.functional`` (PyTorch 2.13) for NumPy arrays, forward and backward.

Each loss ``NAME`` comes with

* ``NAME(*inputs, **kwargs)``: torch's arguments, defaults and meaning; returns a NumPy scalar for
  reduced losses and an array for ``reduction='none'``;
* ``NAME_backward(grad_output, *inputs, **kwargs, target_grad=False)``: the gradient that
  ``torch.autograd`` gives for the same call (``grad_output=None`` means 1, or ones);
* ``NAME_forward_backward(*inputs, grad_output=None, target_grad=False, **kwargs)``: both, from
  one fused pass over the data: ``(loss, gradients)``.

Notation follows torch's documentation: :math:`x` the input, :math:`y` the target, :math:`w` a
weight, :math:`N` the number of elements (or the batch size), and

.. math::
    \ell(x, y) = L = \{l_1,\dots,l_N\}^\top,\qquad
    \ell(x, y) = \begin{cases} L & \text{reduction='none'}\\
    \operatorname{mean}(L) & \text{reduction='mean'}\\ \operatorname{sum}(L) & \text{reduction='sum'}
    \end{cases}

The mean of an empty input is NaN and its sum 0, as in torch. Reduced values are accumulated in
double in a fixed blocked order, so they are bitwise the same on any number of threads (and a
float32 result can be more exact than torch's float32 one).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _convert, _core, _engine, _large_vocab, _reduction
from ._engine import no_target_grad, pack

ArrayLike = Any
Gradients = Union[np.ndarray, Tuple[Optional[np.ndarray], ...]]


def _warn_size_mismatch(input: ArrayLike, target: ArrayLike) -> None:
    try:
        mismatch = np.shape(target) != np.shape(input)
    except ValueError:  # a ragged list: the conversion raises the argument's TypeError next
        return
    if mismatch:
        warnings.warn(
            f"Using a target size ({np.shape(target)}) that is different to the input size ({np.shape(input)}). "
            "This will likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------
# l1_loss
# ---------------------------------------------------------------------------------------------
def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
) -> Any:
    r"""Mean absolute error.

    .. math:: l_n = w_n \left| x_n - y_n \right|,\qquad
        \frac{\partial l_n}{\partial x_n} = w_n \operatorname{sign}(x_n - y_n)
        = -\frac{\partial l_n}{\partial y_n}

    ``sign`` is 0 at 0 and at NaN (torch's ``sgn``). ``weight`` (functional only, as in torch) has
    the input's exact shape; with it, ``'mean'`` is :math:`\sum_n w_n |x_n - y_n| / \sum_n w_n`.

    Shape: input :math:`(*)`; target broadcastable to it (a size mismatch warns, as in torch);
    output scalar, or the broadcast shape for ``'none'``.

    Args:
        input: predictions, any shape; float32 and float64 are computed as they are, float16 in
            float32, integers and booleans in float64.
        target: values to match, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.
        weight: optional per-element weights of ``input``'s exact shape.

    >>> float(l1_loss(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0])))
    1.1666666666666667
    """
    _warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("l1_loss", ("input", "target", "weight"), (input, target, weight), reduction)


def l1_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`l1_loss`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("l1_loss", ("input", "target", "weight"), (input, target, weight), reduction,
                         grad_output, (True, target_grad))
    return pack(g if target_grad else g[:1])


def l1_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`l1_loss` and :func:`l1_loss_backward` in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("l1_loss", ("input", "target", "weight"), (input, target, weight),
                                       reduction, grad_output, (True, target_grad))
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# mse_loss
# ---------------------------------------------------------------------------------------------
def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
) -> Any:
    r"""Mean squared error.

    .. math:: l_n = w_n (x_n - y_n)^2,\qquad
        \frac{\partial l_n}{\partial x_n} = 2 w_n (x_n - y_n) = -\frac{\partial l_n}{\partial y_n}

    ``weight`` (functional only) has the input's exact shape; with it, ``'mean'`` is
    :math:`\sum_n w_n (x_n - y_n)^2 / \sum_n w_n`, as in torch.

    Shape: input :math:`(*)`; target broadcastable to it (a size mismatch warns); output scalar,
    or the broadcast shape for ``'none'``.

    Args:
        input: predictions, any shape.
        target: values to match, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.
        weight: optional per-element weights of ``input``'s exact shape.

    >>> float(mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """
    _warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("mse_loss", ("input", "target", "weight"), (input, target, weight), reduction)


def mse_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`mse_loss`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("mse_loss", ("input", "target", "weight"), (input, target, weight), reduction,
                         grad_output, (True, target_grad))
    return pack(g if target_grad else g[:1])


def mse_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`mse_loss` and :func:`mse_loss_backward` in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("mse_loss", ("input", "target", "weight"), (input, target, weight),
                                       reduction, grad_output, (True, target_grad))
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# huber_loss
# ---------------------------------------------------------------------------------------------
def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[ArrayLike] = None,
) -> Any:
    r"""Huber loss: squared near zero, linear beyond ``delta`` (> 0).

    .. math:: z_n = x_n - y_n,\qquad l_n = w_n \begin{cases} \tfrac12 z_n^2 & |z_n| < \delta \\
        \delta (|z_n| - \tfrac12\delta) & \text{otherwise}\end{cases},\qquad
        \frac{\partial l_n}{\partial x_n} = w_n \operatorname{clamp}(z_n, -\delta, \delta)
        = -\frac{\partial l_n}{\partial y_n}

    ``weight`` (functional only) has the input's exact shape. Unlike l1 and mse, torch 2.13
    averages a weighted huber loss by the element count (``(w * l).mean()``), and so does losskit.

    Args:
        input: predictions, any shape.
        target: values to match, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        delta: where the loss turns from quadratic to linear (> 0, default 1).
        weight: optional per-element weights of ``input``'s exact shape.

    >>> float(huber_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0])))
    1.3125
    """
    _warn_size_mismatch(input, target)
    return _engine.forward("huber_loss", ("input", "target", "weight"), (input, target, weight),
                           _reduction.parse(None, None, reduction), delta=delta)


def huber_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`huber_loss`: ``grad_input``, or ``(grad_input, grad_target)``."""
    g = _engine.backward("huber_loss", ("input", "target", "weight"), (input, target, weight),
                         _reduction.parse(None, None, reduction), grad_output, (True, target_grad),
                         delta=delta)
    return pack(g if target_grad else g[:1])


def huber_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`huber_loss` and :func:`huber_loss_backward` in one fused pass."""
    loss, g = _engine.forward_backward("huber_loss", ("input", "target", "weight"), (input, target, weight),
                                       _reduction.parse(None, None, reduction), grad_output,
                                       (True, target_grad), delta=delta)
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# smooth_l1_loss
# ---------------------------------------------------------------------------------------------
def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Any:
    r"""Smooth L1 loss: squared below ``beta`` (>= 0), absolute above.

    .. math:: z_n = x_n - y_n,\qquad l_n = \begin{cases} 0.5 z_n^2 / \beta & |z_n| < \beta \\
        |z_n| - 0.5\beta & \text{otherwise}\end{cases},\qquad
        \frac{\partial l_n}{\partial x_n} = \operatorname{clamp}(z_n / \beta, -1, 1)
        = -\frac{\partial l_n}{\partial y_n}

    ``beta = 0`` is exactly :func:`l1_loss` (gradient ``sign(z)``), as in torch.

    Args:
        input: predictions, any shape.
        target: values to match, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.
        beta: where the loss turns from quadratic to linear (>= 0, default 1).

    >>> float(smooth_l1_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0])))
    1.3125
    """
    _warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("smooth_l1_loss", ("input", "target"), (input, target), reduction, beta=beta)


def smooth_l1_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    beta: float = 1.0,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`smooth_l1_loss`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("smooth_l1_loss", ("input", "target"), (input, target), reduction, grad_output,
                         (True, target_grad), beta=beta)
    return pack(g if target_grad else g[:1])


def smooth_l1_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    beta: float = 1.0,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`smooth_l1_loss` and :func:`smooth_l1_loss_backward` in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("smooth_l1_loss", ("input", "target"), (input, target), reduction,
                                       grad_output, (True, target_grad), beta=beta)
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# soft_margin_loss
# ---------------------------------------------------------------------------------------------
def soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Two-class logistic loss with targets :math:`y_n \in \{1, -1\}`.

    .. math:: l_n = \log(1 + e^{-y_n x_n}),\qquad
        \frac{\partial l_n}{\partial x_n} = \frac{-y_n e^{-y_n x_n}}{1 + e^{-y_n x_n}}

    Evaluated with torch's formula: where :math:`e^{-y_n x_n}` overflows (:math:`-y_n x_n` above
    about 88 in float32, 709 in float64) the loss is inf and the gradient NaN, as in torch. The
    target is a label: it has no gradient.

    Args:
        input: scores, any shape.
        target: labels +1 or -1, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.

    >>> round(float(soft_margin_loss(np.array([0.0]), np.array([1.0]))), 6)
    0.693147
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("soft_margin_loss", ("input", "target"), (input, target), reduction)


def soft_margin_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> np.ndarray:
    """Gradient of :func:`soft_margin_loss` with respect to ``input``."""
    no_target_grad("soft_margin_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return pack(_engine.backward("soft_margin_loss", ("input", "target"), (input, target), reduction,
                                 grad_output, (True,)))


def soft_margin_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`soft_margin_loss` and its gradient in one fused pass."""
    no_target_grad("soft_margin_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("soft_margin_loss", ("input", "target"), (input, target), reduction,
                                       grad_output, (True,))
    return loss, pack(g)


# ---------------------------------------------------------------------------------------------
# binary_cross_entropy
# ---------------------------------------------------------------------------------------------
def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Binary cross-entropy between probabilities :math:`x_n \in [0, 1]` and targets :math:`y_n`.

    .. math:: l_n = -w_n \left[ y_n \max(\log x_n, -100) + (1 - y_n) \max(\log(1 - x_n), -100) \right]

    .. math:: \frac{\partial l_n}{\partial x_n} = w_n \frac{x_n - y_n}{\max((1 - x_n) x_n, 10^{-12})},
        \qquad \frac{\partial l_n}{\partial y_n} = w_n \left[\log(1 - x_n) - \log x_n\right]

    The log clamp at -100 and the :math:`10^{-12}` floor are torch's: the loss and the input
    gradient stay finite at 0 and 1, while the target gradient (unclamped, as torch's) is
    :math:`\pm\infty` there. An input or target outside [0, 1] (or NaN) raises ValueError, as in
    torch. ``weight`` broadcasts to the input; ``'mean'`` divides by the element count. The target
    must have the input's shape.

    Args:
        input: probabilities in [0, 1], any shape.
        target: probabilities (often 0 or 1) of ``input``'s shape.
        weight: optional rescaling weight, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.

    >>> round(float(binary_cross_entropy(np.array([0.5]), np.array([1.0]))), 6)
    0.693147
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("binary_cross_entropy", ("input", "target", "weight"), (input, target, weight), reduction)


def binary_cross_entropy_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`binary_cross_entropy`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("binary_cross_entropy", ("input", "target", "weight"), (input, target, weight),
                         reduction, grad_output, (True, target_grad))
    return pack(g if target_grad else g[:1])


def binary_cross_entropy_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`binary_cross_entropy` and its gradients in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("binary_cross_entropy", ("input", "target", "weight"),
                                       (input, target, weight), reduction, grad_output, (True, target_grad))
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits
# ---------------------------------------------------------------------------------------------
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    pos_weight: Optional[ArrayLike] = None,
) -> Any:
    r"""Binary cross-entropy on logits, computed stably through :math:`\log\sigma`.

    .. math:: l_n = w_n \left[ (1 - y_n) x_n - (1 + (p_n - 1) y_n) \log\sigma(x_n) \right],
        \qquad \log\sigma(x) = \min(x, 0) - \log(1 + e^{-|x|})

    which equals :math:`-w_n [p_n y_n \log\sigma(x_n) + (1 - y_n)\log(1 - \sigma(x_n))]`, with
    :math:`p_n` the ``pos_weight`` (1 when absent).

    .. math:: \frac{\partial l_n}{\partial x_n} = w_n\left[(p_n y_n + 1 - y_n)\sigma(x_n) - p_n y_n\right],
        \qquad \frac{\partial l_n}{\partial y_n} = w_n\left[\log\sigma(-x_n) - p_n\log\sigma(x_n)\right]

    ``weight`` and ``pos_weight`` broadcast to the input (``pos_weight`` typically of shape
    ``(C,)`` for inputs ``(N, C)``); the target must have the input's shape.

    Args:
        input: logits (unnormalised scores), any shape.
        target: probabilities (often 0 or 1) of ``input``'s shape.
        weight: optional rescaling weight, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.
        pos_weight: optional weight of the positive term, broadcastable to ``input``
            (one per class along the last dimension).

    >>> round(float(binary_cross_entropy_with_logits(np.array([0.0]), np.array([1.0]))), 6)
    0.693147
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("binary_cross_entropy_with_logits", ("input", "target", "weight", "pos_weight"),
                           (input, target, weight, pos_weight), reduction)


def binary_cross_entropy_with_logits_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    pos_weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`binary_cross_entropy_with_logits`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("binary_cross_entropy_with_logits", ("input", "target", "weight", "pos_weight"),
                         (input, target, weight, pos_weight), reduction, grad_output, (True, target_grad))
    return pack(g if target_grad else g[:1])


def binary_cross_entropy_with_logits_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    pos_weight: Optional[ArrayLike] = None,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`binary_cross_entropy_with_logits` and its gradients in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("binary_cross_entropy_with_logits",
                                       ("input", "target", "weight", "pos_weight"),
                                       (input, target, weight, pos_weight), reduction, grad_output,
                                       (True, target_grad))
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# poisson_nll_loss
# ---------------------------------------------------------------------------------------------
def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    size_average: Optional[bool] = None,
    eps: float = 1e-8,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Negative log-likelihood of a Poisson target :math:`y_n` with rate :math:`e^{x_n}`
    (``log_input=True``) or :math:`x_n`.

    .. math:: l_n = \begin{cases} e^{x_n} - y_n x_n & \text{log_input} \\
        x_n - y_n \log(x_n + \varepsilon) & \text{otherwise}\end{cases}
        \;+\; [\text{full},\ y_n > 1]\left(y_n \log y_n - y_n + \tfrac12\log(2\pi y_n)\right)

    .. math:: \frac{\partial l_n}{\partial x_n} = \begin{cases} e^{x_n} - y_n \\
        1 - y_n / (x_n + \varepsilon)\end{cases},\qquad
        \frac{\partial l_n}{\partial y_n} = \begin{cases} -x_n \\ -\log(x_n + \varepsilon)\end{cases}
        + [\text{full},\ y_n > 1]\left(\log y_n + \tfrac{1}{2 y_n}\right)

    With ``full``, torch's autograd gives a NaN target gradient where :math:`y_n \le 0` (a zero
    gradient times :math:`\log y_n`); losskit returns the same.

    Args:
        input: the log-rate (``log_input=True``) or the rate, any shape.
        target: observed counts, broadcastable to ``input``.
        log_input: whether ``input`` is the log of the rate (default True).
        full: add the Stirling approximation of :math:`\log(y!)` (default False).
        eps: added to the rate inside the log when ``log_input=False`` (default 1e-8).
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.

    >>> float(poisson_nll_loss(np.array([0.0]), np.array([2.0])))
    1.0
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("poisson_nll_loss", ("input", "target"), (input, target), reduction,
                           log_input=log_input, full=full, eps=eps)


def poisson_nll_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    size_average: Optional[bool] = None,
    eps: float = 1e-8,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`poisson_nll_loss`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("poisson_nll_loss", ("input", "target"), (input, target), reduction, grad_output,
                         (True, target_grad), log_input=log_input, full=full, eps=eps)
    return pack(g if target_grad else g[:1])


def poisson_nll_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    log_input: bool = True,
    full: bool = False,
    size_average: Optional[bool] = None,
    eps: float = 1e-8,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`poisson_nll_loss` and its gradients in one fused pass."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("poisson_nll_loss", ("input", "target"), (input, target), reduction,
                                       grad_output, (True, target_grad), log_input=log_input,
                                       full=full, eps=eps)
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# gaussian_nll_loss
# ---------------------------------------------------------------------------------------------
def _is_scalar_var(var: ArrayLike) -> bool:
    """Python and NumPy scalars are one variance for any input shape, with no gradient (torch's
    float var); a 0-d array is an array: it gets its gradient and torch's shape rule (beside a
    0-d or 1-d input only)."""
    return isinstance(var, (int, float, np.generic))


def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: Union[ArrayLike, float],
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Any:
    r"""Negative log-likelihood of a Gaussian target with mean :math:`x_n` and variance
    :math:`v_n = \max(\mathrm{var}_n, \varepsilon)`.

    .. math:: l_n = \tfrac12\left(\log v_n + \frac{(x_n - y_n)^2}{v_n}\right)
        \;[+\ \tfrac12\log 2\pi\ \text{if full}]

    .. math:: \frac{\partial l_n}{\partial x_n} = \frac{x_n - y_n}{v_n} = -\frac{\partial l_n}{\partial y_n},
        \qquad \frac{\partial l_n}{\partial \mathrm{var}_n} = \frac{1}{2 v_n} - \frac{(x_n - y_n)^2}{2 v_n^2}

    The clamp to ``eps`` is applied without gradient, as in torch: the gradient is evaluated at
    the clamped value and passed straight to ``var`` (not zeroed). Negative entries raise
    ValueError.

    Shape (torch's rule): an array ``var`` has the input's shape; or that shape without its last
    dimension (one variance per row); or as many dimensions, differing from the input's in one
    dimension where ``var`` has size 1, a batch dimension included (``(1, D)`` beside
    ``(N, D)``). torch's exact test is that the sizes of ``var`` where it differs add up to 1,
    so a 0 facing an input's 1 also passes (the loss is then empty). A 0-d array is thus taken
    only beside a 0-d or 1-d input; any other shape raises ValueError. A scalar (Python or NumPy
    float) is one variance for every element, whatever the input's shape, and gets no gradient.

    Args:
        input: predicted means, any shape.
        target: observations, broadcastable to ``input``.
        var: predicted variances (>= 0): an array shaped as described above, or a scalar.
        full: add the constant :math:`\tfrac12\log 2\pi` (default False).
        eps: lower clamp of ``var`` (default 1e-6).
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.

    >>> float(gaussian_nll_loss(np.array([1.0]), np.array([1.0]), 1.0))
    0.0
    """
    red = _reduction.parse(None, None, reduction)
    return _engine.forward("gaussian_nll_loss", ("input", "target", "var"), (input, target, var), red,
                           full=full, eps=eps, scalar_var=_is_scalar_var(var))


def gaussian_nll_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    var: Union[ArrayLike, float],
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Optional[np.ndarray], ...]:
    """Gradient of :func:`gaussian_nll_loss`: ``(grad_input, grad_var)`` (``grad_var`` None for a
    scalar var), with ``grad_target`` appended when ``target_grad``."""
    red = _reduction.parse(None, None, reduction)
    g = _engine.backward("gaussian_nll_loss", ("input", "target", "var"), (input, target, var), red,
                         grad_output, (True, not _is_scalar_var(var), target_grad), full=full, eps=eps,
                         scalar_var=_is_scalar_var(var))
    return tuple(g) if target_grad else tuple(g[:2])


def gaussian_nll_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    var: Union[ArrayLike, float],
    grad_output: Optional[ArrayLike] = None,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Tuple[Optional[np.ndarray], ...]]:
    """:func:`gaussian_nll_loss` and its gradients in one fused pass."""
    red = _reduction.parse(None, None, reduction)
    loss, g = _engine.forward_backward("gaussian_nll_loss", ("input", "target", "var"), (input, target, var),
                                       red, grad_output, (True, not _is_scalar_var(var), target_grad),
                                       full=full, eps=eps, scalar_var=_is_scalar_var(var))
    return loss, (tuple(g) if target_grad else tuple(g[:2]))


# ---------------------------------------------------------------------------------------------
# kl_div
# ---------------------------------------------------------------------------------------------
def _kl_reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: str) -> str:
    if size_average is None and reduce is None and isinstance(reduction, str) and reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            UserWarning,
            stacklevel=3,
        )
    return _reduction.parse(size_average, reduce, reduction)


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Any:
    r"""Kullback-Leibler divergence, the input given as log-probabilities.

    .. math:: l_n = \begin{cases} y_n (\log y_n - x_n) & \text{(0 where } y_n = 0) \\
        e^{y_n} (y_n - x_n) & \text{log_target}\end{cases}

    .. math:: \frac{\partial l_n}{\partial x_n} = \begin{cases} -y_n \\ -e^{y_n}\end{cases},\qquad
        \frac{\partial l_n}{\partial y_n} = \begin{cases} \log y_n + 1 - x_n \\
        e^{y_n}(y_n - x_n + 1)\end{cases}

    ``'batchmean'`` divides the sum by the input's first dimension (the mathematical KL
    divergence); ``'mean'`` divides by the element count and warns, as torch does. At
    :math:`y_n = 0` torch's autograd gives a NaN target gradient (:math:`0/0` in ``xlogy``);
    losskit returns the same.

    Args:
        input: log-probabilities, any shape.
        target: probabilities (or log-probabilities with ``log_target``), broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default), ``'sum'`` or
            ``'batchmean'`` (the sum divided by the first dimension).
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.
        log_target: whether ``target`` is given as log-probabilities (default False).

    >>> float(kl_div(np.log(np.array([0.5, 0.5])), np.array([0.5, 0.5]), reduction="batchmean"))
    0.0
    """
    reduction = _kl_reduction(size_average, reduce, reduction)
    return _engine.forward("kl_div", ("input", "target"), (input, target), reduction, log_target=log_target)


def kl_div_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    log_target: bool = False,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`kl_div`: ``grad_input``, or ``(grad_input, grad_target)``."""
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("kl_div", ("input", "target"), (input, target), reduction, grad_output,
                         (True, target_grad), log_target=log_target)
    return pack(g if target_grad else g[:1])


def kl_div_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    log_target: bool = False,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`kl_div` and its gradients in one fused pass."""
    reduction = _kl_reduction(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("kl_div", ("input", "target"), (input, target), reduction, grad_output,
                                       (True, target_grad), log_target=log_target)
    return loss, pack(g if target_grad else g[:1])


# ---------------------------------------------------------------------------------------------
# margin_ranking_loss
# ---------------------------------------------------------------------------------------------
def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Ranking loss for pairs :math:`(x^1_n, x^2_n)` with labels :math:`y_n \in \{1, -1\}`.

    .. math:: l_n = \max(0, -y_n (x^1_n - x^2_n) + \text{margin}),\qquad
        \frac{\partial l_n}{\partial x^1_n} = -y_n [a_n \ge 0] = -\frac{\partial l_n}{\partial x^2_n}

    with :math:`a_n` the argument of the max (at :math:`a_n = 0` the gradient is taken, as torch's
    ``clamp_min``). All three arrays must have the same number of dimensions; they broadcast.

    Args:
        input1, input2: the two scores of each pair, same number of dimensions.
        target: +1 where ``input1`` should rank higher, -1 where ``input2`` should.
        margin: required gap between the scores (default 0).
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.

    >>> float(margin_ranking_loss(np.array([1.0]), np.array([2.0]), np.array([1.0])))
    1.0
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("margin_ranking_loss", ("input1", "input2", "target"), (input1, input2, target),
                           reduction, margin=margin)


def margin_ranking_loss_backward(
    grad_output: ArrayLike,
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`margin_ranking_loss`: ``(grad_input1, grad_input2)``."""
    no_target_grad("margin_ranking_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("margin_ranking_loss", ("input1", "input2", "target"), (input1, input2, target),
                         reduction, grad_output, (True, True), margin=margin)
    return tuple(g)  # type: ignore[return-value]


def margin_ranking_loss_forward_backward(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    margin: float = 0.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Tuple[np.ndarray, np.ndarray]]:
    """:func:`margin_ranking_loss` and its gradients in one fused pass."""
    no_target_grad("margin_ranking_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("margin_ranking_loss", ("input1", "input2", "target"),
                                       (input1, input2, target), reduction, grad_output, (True, True),
                                       margin=margin)
    return loss, tuple(g)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# hinge_embedding_loss
# ---------------------------------------------------------------------------------------------
def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    margin: float = 1.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Hinge embedding loss for distances :math:`x_n` with labels :math:`y_n \in \{1, -1\}`.

    .. math:: l_n = [y_n \ne 1] \max(0, \text{margin} - x_n) + [y_n \ne -1]\, x_n,\qquad
        \frac{\partial l_n}{\partial x_n} = -[y_n \ne 1][\text{margin} - x_n \ge 0] + [y_n \ne -1]

    This is torch's exact formula, which for labels 1 and -1 is the documented
    :math:`x_n` / :math:`\max(0, \text{margin} - x_n)`; any other label value gets both terms.

    Args:
        input: distances (or dissimilarities), any shape.
        target: +1 for similar pairs, -1 for dissimilar ones, broadcastable to ``input``.
        margin: distance beyond which a dissimilar pair costs nothing (default 1).
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.
        size_average, reduce: torch's deprecated pair; when either is given it decides the
            reduction, with torch's UserWarning.

    >>> float(hinge_embedding_loss(np.array([0.25, 2.0]), np.array([-1.0, 1.0])))
    1.375
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("hinge_embedding_loss", ("input", "target"), (input, target), reduction,
                           margin=margin)


def hinge_embedding_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    margin: float = 1.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> np.ndarray:
    """Gradient of :func:`hinge_embedding_loss` with respect to ``input``."""
    no_target_grad("hinge_embedding_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return pack(_engine.backward("hinge_embedding_loss", ("input", "target"), (input, target), reduction,
                                 grad_output, (True,), margin=margin))


def hinge_embedding_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    margin: float = 1.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`hinge_embedding_loss` and its gradient in one fused pass."""
    no_target_grad("hinge_embedding_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("hinge_embedding_loss", ("input", "target"), (input, target), reduction,
                                       grad_output, (True,), margin=margin)
    return loss, pack(g)


# ---- classification ----

# Class-index targets: any integer dtype, converted once to int64 here (a small copy); a float
# array where class indices are expected is a TypeError. The C++ core checks every index.


def _cls_index_target(function: str, target: ArrayLike) -> np.ndarray:

    t = _convert.to_array(function, "target", target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{function}: target expected an integer array of class indices, got {t.dtype}")
    return _convert.as_kernel_array(t, np.int64)  # (ascontiguousarray would make 0-d 1-d)


def _cls_input(function: str, input: ArrayLike, weight: Optional[ArrayLike] = None) -> Tuple[np.dtype, np.ndarray, Optional[np.ndarray]]:

    x = _convert.to_array(function, "input", input)
    dtype = _convert.compute_dtype(x)
    x = _convert.as_kernel_array(x, dtype)
    w = None if weight is None else _convert.as_kernel_array(_convert.to_array(function, "weight", weight), dtype)
    return dtype, x, w


def _cls_go(function: str, mode: int, grad_output: ArrayLike, dtype: np.dtype) -> Optional[np.ndarray]:

    return None if mode == 0 else _convert.grad_output_array(function, grad_output, dtype)


def _cls_result(mode: int, reduction: str, triple: Tuple[Any, Any, Any], target_grad: bool) -> Any:

    out, grad_input, grad_target = triple
    grads: Any = (grad_input, grad_target) if target_grad else grad_input
    if mode == 0:
        return _convert.result(out, reduction)
    if mode == 1:
        return grads
    return _convert.result(out, reduction), grads


def _cross_entropy(mode: int, input: ArrayLike, target: ArrayLike, grad_output: ArrayLike, weight: Optional[ArrayLike],
                   size_average: Optional[bool], ignore_index: int, reduce: Optional[bool], reduction: str,
                   label_smoothing: float, target_grad: bool) -> Any:

    fn = "cross_entropy"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _convert.to_array(fn, "target", target)
    probabilities = t.dtype.kind == "f"
    if probabilities:
        if t.shape != x.shape:
            raise TypeError(
                f"{fn}: target expected integer class indices, or class probabilities of the input's shape "
                f"{x.shape}, got a {t.dtype} array of shape {t.shape}"
            )
        t = _convert.as_kernel_array(t, dtype)
    else:
        no_target_grad(fn, target_grad)
        t = _cls_index_target(fn, t)
    go = _cls_go(fn, mode, grad_output, dtype)
    triple = _core.cross_entropy(mode, x, t, w, go, reduction, _convert.integer(fn, "ignore_index", ignore_index),
                                 _convert.real(fn, "label_smoothing", label_smoothing), probabilities,
                                 _convert.flag(fn, "target_grad", target_grad))
    return _cls_result(mode, reduction, triple, target_grad)


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    r"""Cross-entropy between the softmax of the logits ``input`` and the target.

    With class indices :math:`y_n` (:math:`\epsilon` = ``label_smoothing``, :math:`w` the class
    weights, ones by default, :math:`x_{n,c}` the logits of position :math:`n`):

    .. math::
        l_n = (1 - \epsilon)\, w_{y_n} \left(-\log \frac{e^{x_{n,y_n}}}{\sum_c e^{x_{n,c}}}\right)
              + \frac{\epsilon}{C} \sum_{c=1}^{C} w_c \left(-\log \frac{e^{x_{n,c}}}{\sum_i e^{x_{n,i}}}\right)
              \cdot [y_n \ne \text{ignore\_index}]

    and ``'mean'`` is :math:`\sum_n l_n / \sum_n w_{y_n} [y_n \ne \text{ignore\_index}]` (torch's
    weighted mean, for the smoothing term too). With class probabilities :math:`p_{n,c}` (a float
    target of the input's shape), :math:`p' = (1 - \epsilon) p + \epsilon / C`,
    :math:`l_n = -\sum_c w_c p'_{n,c} \log \operatorname{softmax}(x_n)_c`, and ``'mean'`` divides by
    the number of positions (``input.size / C``).

    Derivative, with :math:`s = \operatorname{softmax}(x_n)`:

    .. math::
        \frac{\partial l_n}{\partial x_{n,j}} = s_j \Big((1-\epsilon) w_{y_n} + \frac{\epsilon}{C}\sum_c w_c\Big)
            - (1-\epsilon) w_{y_n} [j = y_n] - \frac{\epsilon}{C} w_j

    (probabilities: :math:`s_j \sum_c w_c p'_{n,c} - w_j p'_{n,j}`, and
    :math:`\partial l_n / \partial p_{n,j} = -(1-\epsilon) w_j \log s_j`, returned with
    ``target_grad=True``).

    Shape: input :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, \dots, d_K)` (class dimension
    second, e.g. segmentation); class-index target :math:`()`, :math:`(N)` or
    :math:`(N, d_1, \dots, d_K)` of any integer dtype; probability target of the input's shape;
    ``'none'`` output of the class-index target's shape.

    Edge values: ignored positions have loss 0 and gradient 0 (NaN where their logits are NaN, as
    torch's); a ``'mean'`` over no counted position (empty, or every target ignored) is NaN and its
    gradient 0; a row holding ``+inf`` or NaN gives NaN, one holding ``-inf`` entries is finite
    unless its target is one of them. Class indices outside ``[0, C)`` other than ``ignore_index``
    raise :class:`losskit.IndexError` (a ``ValueError`` and an ``IndexError``). ``forward_backward``
    reads each row once (online max and sum of exponentials) and writes the gradient once.

    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> round(float(cross_entropy(x, np.array([2, 0]))), 6)
    0.753109
    >>> loss, g = cross_entropy_forward_backward(x, np.array([2, 0]))
    >>> np.round(g, 4).tolist()
    [[0.045, 0.1224, -0.1674], [-0.3333, 0.1667, 0.1667]]
    """
    return _cross_entropy(0, input, target, None, weight, size_average, ignore_index, reduce, reduction,
                          label_smoothing, False)


def cross_entropy_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`cross_entropy`: ``grad_input``, or ``(grad_input, grad_target)`` for
    probability targets with ``target_grad=True`` (class indices have none: ValueError)."""
    return _cross_entropy(1, input, target, grad_output, weight, size_average, ignore_index, reduce, reduction,
                          label_smoothing, target_grad)


def cross_entropy_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`cross_entropy` and its gradient in one fused streaming pass per row."""
    return _cross_entropy(2, input, target, grad_output, weight, size_average, ignore_index, reduce, reduction,
                          label_smoothing, target_grad)


def _nll_loss(mode: int, input: ArrayLike, target: ArrayLike, grad_output: ArrayLike, weight: Optional[ArrayLike],
              size_average: Optional[bool], ignore_index: int, reduce: Optional[bool], reduction: str,
              target_grad: bool) -> Any:

    fn = "nll_loss"
    no_target_grad(fn, target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, mode, grad_output, dtype)
    ignore = _convert.integer(fn, "ignore_index", ignore_index)
    return _cls_result(mode, reduction, _core.nll_loss(mode, x, t, w, go, reduction, ignore), False)


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Negative log-likelihood of log-probabilities ``input`` at the class indices ``target``.

    .. math:: l_n = -w_{y_n} x_{n,y_n} [y_n \ne \text{ignore\_index}],\qquad
        \frac{\partial l_n}{\partial x_{n,j}} = -w_{y_n} [j = y_n] [y_n \ne \text{ignore\_index}]

    ``'mean'`` is :math:`\sum_n l_n / \sum_n w_{y_n} [y_n \ne \text{ignore\_index}]` (NaN when
    nothing is counted; its gradient is then 0).

    Shape: input :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, \dots, d_K)`; target
    :math:`()`, :math:`(N)` or :math:`(N, d_1, \dots, d_K)`, any integer dtype. The old
    ``NLLLoss2d`` is this function on a 4-D :math:`(N, C, H, W)` input with an :math:`(N, H, W)`
    target. Out-of-range indices raise :class:`losskit.IndexError`.

    >>> logp = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
    >>> round(float(nll_loss(logp, np.array([1, 0]))), 6)
    0.490415
    >>> nll_loss_backward(1.0, logp, np.array([1, 0])).tolist()
    [[0.0, -0.5], [-0.5, 0.0]]
    """
    return _nll_loss(0, input, target, None, weight, size_average, ignore_index, reduce, reduction, False)


def nll_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> np.ndarray:
    """Gradient of :func:`nll_loss` with respect to ``input``."""
    return _nll_loss(1, input, target, grad_output, weight, size_average, ignore_index, reduce, reduction,
                     target_grad)


def nll_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`nll_loss` and its gradient in one pass."""
    return _nll_loss(2, input, target, grad_output, weight, size_average, ignore_index, reduce, reduction,
                     target_grad)


def _multi_margin_loss(mode: int, input: ArrayLike, target: ArrayLike, grad_output: ArrayLike, p: int,
                       margin: float, weight: Optional[ArrayLike], size_average: Optional[bool],
                       reduce: Optional[bool], reduction: str, target_grad: bool) -> Any:

    fn = "multi_margin_loss"
    no_target_grad(fn, target_grad)
    if _convert.real(fn, "p", p) not in (1.0, 2.0):
        raise ValueError(f"{fn}: p expected 1 or 2, got {p!r}")
    margin = _convert.real(fn, "margin", margin)
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, mode, grad_output, dtype)
    return _cls_result(mode, reduction, _core.multi_margin_loss(mode, x, t, w, go, reduction, int(p), margin), False)


def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float = 1.0,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Multi-class hinge loss.

    .. math:: l_n = \frac{1}{C} \sum_{j \ne y_n} w_{y_n} \max(0, \text{margin} - x_{n,y_n} + x_{n,j})^p,

    .. math:: \frac{\partial l_n}{\partial x_{n,j}} = \frac{w_{y_n}}{C}\, [z_j > 0]\, p z_j^{p-1}
        \;(j \ne y_n),\qquad
        \frac{\partial l_n}{\partial x_{n,y_n}} = -\sum_{j \ne y_n} \frac{\partial l_n}{\partial x_{n,j}}

    with :math:`z_j = \text{margin} - x_{n,y_n} + x_{n,j}` (a NaN :math:`z_j` counts as inactive,
    as in torch). ``p`` is 1 or 2; ``'mean'`` averages over the :math:`N` samples.

    Shape: input :math:`()`, :math:`(C)` or :math:`(N, C)`; target :math:`()` or :math:`(1)`
    for one sample, else :math:`(N)`; ``'none'`` output of the target's shape. A 0-d input is one
    sample of one class (as in torch): loss and gradient 0, target 0. The mean of an empty batch
    is NaN (torch 2.13 returns an uninitialised value there).

    >>> round(float(multi_margin_loss(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3]))), 6)
    0.325
    """
    return _multi_margin_loss(0, input, target, None, p, margin, weight, size_average, reduce, reduction, False)


def multi_margin_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float = 1.0,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> np.ndarray:
    """Gradient of :func:`multi_margin_loss` with respect to ``input``."""
    return _multi_margin_loss(1, input, target, grad_output, p, margin, weight, size_average, reduce, reduction,
                              target_grad)


def multi_margin_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    p: int = 1,
    margin: float = 1.0,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`multi_margin_loss` and its gradient in one pass."""
    return _multi_margin_loss(2, input, target, grad_output, p, margin, weight, size_average, reduce, reduction,
                              target_grad)


def _multilabel_margin_loss(mode: int, input: ArrayLike, target: ArrayLike, grad_output: ArrayLike,
                            size_average: Optional[bool], reduce: Optional[bool], reduction: str,
                            target_grad: bool) -> Any:

    fn = "multilabel_margin_loss"
    no_target_grad(fn, target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, _ = _cls_input(fn, input)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, mode, grad_output, dtype)
    return _cls_result(mode, reduction, _core.multilabel_margin_loss(mode, x, t, go, reduction), False)


def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Multi-label hinge loss; ``target`` lists class indices, padded with -1.

    .. math:: l_n = \sum_{k} \sum_{j \notin Y_n} \frac{\max(0, 1 - (x_{n,y_{n,k}} - x_{n,j}))}{C},

    .. math:: \frac{\partial l_n}{\partial x_{n,j}} = \frac{1}{C}\Big(\sum_k [j \notin Y_n][z_{kj} > 0]
        - \sum_{k: y_{n,k} = j} \sum_{i \notin Y_n} [z_{ki} > 0]\Big)

    where :math:`y_{n,k}` runs over the target row up to its first -1 (as torch reads it; a
    repeated index counts each time), :math:`Y_n` is the set of those classes and
    :math:`z_{kj} = 1 - x_{n,y_{n,k}} + x_{n,j}`. ``'mean'`` averages over samples.

    Shape: input :math:`()`, :math:`(C)` or :math:`(N, C)`; target of the same shape, any integer
    dtype (for an unbatched input, torch takes any target of at most one dimension with :math:`C`
    entries: :math:`()` or :math:`(1)` beside a :math:`()` or :math:`(1)` input); ``'none'``
    output :math:`()` or :math:`(N)`. A 0-d input is one sample of one class: loss and gradient
    0. Every entry must be in ``[-1, C)``, as torch checks (else :class:`losskit.IndexError`).

    >>> round(float(multilabel_margin_loss(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([[3, 0, -1, 1]]))), 6)
    0.85
    """
    return _multilabel_margin_loss(0, input, target, None, size_average, reduce, reduction, False)


def multilabel_margin_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> np.ndarray:
    """Gradient of :func:`multilabel_margin_loss` with respect to ``input``."""
    return _multilabel_margin_loss(1, input, target, grad_output, size_average, reduce, reduction, target_grad)


def multilabel_margin_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`multilabel_margin_loss` and its gradient in one pass."""
    return _multilabel_margin_loss(2, input, target, grad_output, size_average, reduce, reduction, target_grad)


def _multilabel_soft_margin_loss(mode: int, input: ArrayLike, target: ArrayLike, grad_output: ArrayLike,
                                 weight: Optional[ArrayLike], size_average: Optional[bool], reduce: Optional[bool],
                                 reduction: str, target_grad: bool) -> Any:

    fn = "multilabel_soft_margin_loss"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    y = _convert.as_kernel_array(_convert.to_array(fn, "target", target), dtype)
    go = _cls_go(fn, mode, grad_output, dtype)
    triple = _core.multilabel_soft_margin_loss(mode, x, y, w, go, reduction,
                                               _convert.flag(fn, "target_grad", target_grad))
    return _cls_result(mode, reduction, triple, target_grad)


def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Multi-label one-versus-all logistic loss.

    .. math:: l_n = -\frac{1}{C} \sum_c w_c \left(y_{n,c} \log \sigma(x_{n,c})
        + (1 - y_{n,c}) \log \sigma(-x_{n,c})\right),

    .. math:: \frac{\partial l_n}{\partial x_{n,c}} = \frac{w_c}{C} (\sigma(x_{n,c}) - y_{n,c}),\qquad
        \frac{\partial l_n}{\partial y_{n,c}} = -\frac{w_c}{C} (\log\sigma(x_{n,c}) - \log\sigma(-x_{n,c}))

    (the target gradient with ``target_grad=True``). ``'mean'`` averages over samples.

    Shape: input :math:`(N, C)` or :math:`(C)` (any leading dimensions: the class dimension is the
    last); target of the same shape; weight :math:`(C)` or the input's shape; ``'none'`` output
    drops the class dimension. ``log sigma`` is evaluated stably
    (:math:`\min(x, 0) - \log(1 + e^{-|x|})`).

    >>> round(float(multilabel_soft_margin_loss(np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]]))), 6)
    1.410038
    """
    return _multilabel_soft_margin_loss(0, input, target, None, weight, size_average, reduce, reduction, False)


def multilabel_soft_margin_loss_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Gradients:
    """Gradient of :func:`multilabel_soft_margin_loss`: ``grad_input`` or ``(grad_input, grad_target)``."""
    return _multilabel_soft_margin_loss(1, input, target, grad_output, weight, size_average, reduce, reduction,
                                        target_grad)


def multilabel_soft_margin_loss_forward_backward(
    input: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Gradients]:
    """:func:`multilabel_soft_margin_loss` and its gradients in one pass."""
    return _multilabel_soft_margin_loss(2, input, target, grad_output, weight, size_average, reduce, reduction,
                                        target_grad)


# ---- embedding ----
# Rows are the last dimension's vectors: inputs (N, D) give N losses, unbatched (D,) inputs one
# (a 0-d result for reduction='none'). Rows broadcast as in torch (a (1, D) positive against an
# (N, D) anchor); the vector dimension D must be the same for all inputs (torch would broadcast
# a size-1 D). Per-row sums are accumulated in double.


def _no_label_grad(function: str, target_grad: bool) -> None:
    """The triplet losses have no target at all."""
    if _convert.flag(function, "target_grad", target_grad):
        raise ValueError(f"{function}: target_grad expected False (this loss has no target), got True")


# ---------------------------------------------------------------------------------------------
# cosine_embedding_loss
# ---------------------------------------------------------------------------------------------
_COSINE_NAMES = ("input1", "input2", "target")


def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Cosine embedding loss for pairs :math:`(x^1_n, x^2_n)` with labels :math:`y_n \in \{1, -1\}`.

    .. math:: \cos_n = \frac{\sum_j x^1_{nj} x^2_{nj}}{\sqrt{M^1_n M^2_n}},\quad
        M^k_n = \sum_j (x^k_{nj})^2 + 10^{-12},\qquad
        l_n = \begin{cases} 1 - \cos_n & y_n = 1 \\
        \max(0, \cos_n - \text{margin}) & y_n = -1 \\ 0 & \text{otherwise} \end{cases}

    The :math:`10^{-12}` is torch's EPSILON inside the norms (so zero vectors give
    :math:`\cos = 0`, not NaN). Gradient, with :math:`g_n = \partial l_n/\partial\cos_n` (-1 for
    :math:`y_n = 1`; :math:`[\cos_n - \text{margin} \ge 0]` for :math:`y_n = -1`; 0 otherwise):

    .. math:: \frac{\partial l_n}{\partial x^1_{nj}} = g_n\left(\frac{x^2_{nj}}{\sqrt{M^1_n M^2_n}}
        - \cos_n \frac{x^1_{nj}}{M^1_n}\right)

    and symmetrically for :math:`x^2`. Labels other than 1 and -1 give a zero loss and gradient,
    as in torch (which does not reject them).

    Shape: input1, input2 :math:`(N, D)` with target :math:`(N,)`, or :math:`(D,)` with a 0-d
    target; rows of size 1 broadcast (inputs :math:`(1, D)`, target :math:`(1,)`), as in torch;
    output scalar, or :math:`(N,)` for ``'none'``. The mean of an empty batch is NaN.

    >>> x1 = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> x2 = np.array([[0.0, 1.0], [1.0, 1.0]])
    >>> cosine_embedding_loss(x1, x2, np.array([1.0, -1.0]), reduction="none").round(6).tolist()
    [1.0, 1.0]
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("cosine_embedding_loss", _COSINE_NAMES, (input1, input2, target), reduction,
                           margin=margin)


def cosine_embedding_loss_backward(
    grad_output: ArrayLike,
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`cosine_embedding_loss`: ``(grad_input1, grad_input2)``."""
    no_target_grad("cosine_embedding_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("cosine_embedding_loss", _COSINE_NAMES, (input1, input2, target), reduction,
                         grad_output, (True, True), margin=margin)
    return tuple(g)  # type: ignore[return-value]


def cosine_embedding_loss_forward_backward(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Tuple[np.ndarray, np.ndarray]]:
    """:func:`cosine_embedding_loss` and its gradients in one fused pass."""
    no_target_grad("cosine_embedding_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("cosine_embedding_loss", _COSINE_NAMES, (input1, input2, target),
                                       reduction, grad_output, (True, True), margin=margin)
    return loss, tuple(g)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# triplet_margin_loss
# ---------------------------------------------------------------------------------------------
_TRIPLET_NAMES = ("anchor", "positive", "negative")


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Any:
    r"""Triplet margin loss with torch's pairwise distance.

    .. math:: d(x, y) = \left\lVert x - y + \epsilon \right\rVert_p,\qquad
        l_n = \max\{d(a_n, p_n) - d_n^- + \text{margin}, 0\},

    :math:`d_n^- = d(a_n, n_n)`, or with ``swap`` :math:`\min(d(a_n, n_n), d(p_n, n_n))`.
    :math:`\epsilon` is added to the difference before the norm, as ``torch.pairwise_distance``
    does (so identical vectors are :math:`\epsilon D^{1/p}` apart). ``margin`` must be > 0 and
    ``p`` > 0 (``inf`` allowed; torch also takes p <= 0, losskit raises ValueError).

    Gradient: with :math:`u = x - y + \epsilon` and :math:`G` the upstream gradient where the
    hinge is active (:math:`\ge 0`, else 0),

    .. math:: \frac{\partial d}{\partial x_j} = -\frac{\partial d}{\partial y_j}
        = \frac{\operatorname{sgn}(u_j) |u_j|^{p-1}}{d^{\,p-1}},

    taken as 0 where :math:`d = 0` (and at :math:`u_j = 0`), as torch's norm backward does;
    :math:`p = 1` gives :math:`\operatorname{sgn}(u_j)`; :math:`p = \infty` shares the gradient
    among the elements of maximal :math:`|u_j|`. Then :math:`\partial l/\partial d(a,p) = G`,
    :math:`\partial l/\partial d^- = -G`, and with ``swap`` the minimum passes it to the smaller
    distance (half to each on a tie).

    Shape: anchor, positive, negative :math:`(N, D)` (or any :math:`(*, D)`, one number of
    dimensions, rows broadcasting as in torch), or unbatched :math:`(D,)`; output scalar, or
    :math:`(N,)` (a 0-d array when unbatched) for ``'none'``.

    >>> a = np.array([[0.0, 0.0]]); pos = np.array([[3.0, 4.0]]); neg = np.array([[0.0, 1.0]])
    >>> round(float(triplet_margin_loss(a, pos, neg, eps=0.0)), 6)  # 5 - 1 + 1
    5.0
    """
    reduction = _reduction.parse(size_average, reduce, reduction)
    return _engine.forward("triplet_margin_loss", _TRIPLET_NAMES, (anchor, positive, negative), reduction,
                           margin=margin, p=p, eps=eps, swap=swap)


def triplet_margin_loss_backward(
    grad_output: ArrayLike,
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of :func:`triplet_margin_loss`: ``(grad_anchor, grad_positive, grad_negative)``."""
    _no_label_grad("triplet_margin_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    g = _engine.backward("triplet_margin_loss", _TRIPLET_NAMES, (anchor, positive, negative), reduction,
                         grad_output, (True, True, True), margin=margin, p=p, eps=eps,
                         swap=swap)
    return tuple(g)  # type: ignore[return-value]


def triplet_margin_loss_forward_backward(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`triplet_margin_loss` and its three gradients in one fused pass."""
    _no_label_grad("triplet_margin_loss", target_grad)
    reduction = _reduction.parse(size_average, reduce, reduction)
    loss, g = _engine.forward_backward("triplet_margin_loss", _TRIPLET_NAMES, (anchor, positive, negative),
                                       reduction, grad_output, (True, True, True), margin=margin,
                                       p=p, eps=eps, swap=swap)
    return loss, tuple(g)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# triplet_margin_with_distance_loss
# ---------------------------------------------------------------------------------------------
_DISTANCES = ("euclidean", "cosine", "squared_euclidean")


def _triplet_custom(
    mode: str,
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    distance_function: Any,
    margin: float,
    swap: bool,
    reduction: str,
    grad_output: Any,
) -> Tuple[Any, Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """A user's distance: the callable computes the distances and their vjps; the core computes
    the triplet loss and its gradient with respect to the distances; this function only wires
    the two (adding the two contributions each input receives)."""
    name = "triplet_margin_with_distance_loss"
    margin, swap = _convert.real(name, "margin", margin), _convert.flag(name, "swap", swap)
    dtype, (a, p, n) = _convert.float_inputs(name, _TRIPLET_NAMES, (anchor, positive, negative))
    _core.triplet_margin_check_inputs((a, p, n), reduction, margin)
    pairs = [(a, p), (a, n)] + ([(p, n)] if swap else [])
    dists, vjps = [], []
    for x1, x2 in pairs:
        result = distance_function(x1, x2)
        if not (isinstance(result, tuple) and len(result) == 2 and callable(result[1])):
            raise TypeError(f"{name}: distance_function expected to return (distances, vjp), got "
                            f"{type(result).__name__}")
        dists.append(_convert.as_kernel_array(_convert.to_array(name, "distances", result[0]), dtype))
        vjps.append(result[1])
    go = _convert.grad_output_array(name, grad_output, dtype)
    loss, g = _core.triplet_margin_loss_from_distances(
        dists[0], dists[1], dists[2] if swap else None, go, reduction, margin, swap,
        mode != "forward")
    loss = _convert.result(loss, reduction)
    if mode == "forward":
        return loss, None

    def vjp(k: int, x1: np.ndarray, x2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        g1, g2 = vjps[k](g[k])
        out = []
        for gx, x, what in ((g1, x1, "first"), (g2, x2, "second")):
            gx = _convert.as_kernel_array(_convert.to_array(name, "vjp result", gx), dtype)
            if gx.shape != x.shape:
                raise ValueError(f"{name}: vjp's {what} gradient expected shape {x.shape}, got {gx.shape}")
            out.append(gx)
        return out[0], out[1]

    ga, gp = vjp(0, a, p)
    ga2, gn = vjp(1, a, n)
    ga = ga + ga2  # the chain rule's sum over the two distances that read the anchor
    if swap:
        gp2, gn2 = vjp(2, p, n)
        gp, gn = gp + gp2, gn + gn2
    return loss, (ga, gp, gn)


def _distance_name(distance_function: Any) -> Optional[str]:
    """The core's name for a built-in distance, or None for a callable."""
    if distance_function is None:
        return "euclidean"
    if isinstance(distance_function, str):
        return distance_function  # validated by the core
    if callable(distance_function):
        return None
    raise TypeError("triplet_margin_with_distance_loss: distance_function expected None, a string or a "
                    f"callable, got {type(distance_function).__name__}")


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Any = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Any:
    r"""Triplet margin loss with a chosen distance :math:`d`.

    .. math:: l_n = \max\{d(a_n, p_n) - d_n^- + \text{margin}, 0\},\qquad
        d_n^- = d(a_n, n_n) \text{ or, with swap, } \min(d(a_n, n_n), d(p_n, n_n)).

    ``distance_function`` is

    * ``None`` or ``"euclidean"``: torch's ``pairwise_distance``,
      :math:`\lVert x - y + 10^{-6}\rVert_2`, gradient :math:`u / \lVert u\rVert` (0 at a zero
      norm), :math:`u = x - y + 10^{-6}`;
    * ``"cosine"``: :math:`1 - \cos(x, y)` with torch's ``cosine_similarity`` (eps
      :math:`10^{-8}`): :math:`\cos = \sum_j x_j y_j / (n_x n_y)`,
      :math:`n = \max(\lVert\cdot\rVert, 10^{-8})`; torch clamps the norms under ``no_grad``, so the
      gradient is :math:`\partial\cos/\partial x_j = y_j/(n_x n_y) - \cos\, x_j/(n_x \lVert x\rVert)`
      (second term 0 for a zero vector), even below eps;
    * ``"squared_euclidean"``: :math:`\sum_j (x_j - y_j)^2`, gradient :math:`2 (x_j - y_j)`;
    * a callable ``f(x1, x2) -> (distances, vjp)``, with ``vjp(grad_distances) -> (grad_x1,
      grad_x2)``. NumPy has no autograd, so the distance brings its own backward. It receives two
      ``(N, D)`` (or ``(D,)``) arrays of the input dtype and returns ``(N,)`` (or 0-d) distances;
      it is called for (anchor, positive), (anchor, negative) and, with ``swap``, (positive,
      negative). The triplet arithmetic (hinge, swap, reduction and their gradient) stays in the
      C++ core.

    Backward: :math:`\partial l/\partial d(a,p) = G`, :math:`\partial l/\partial d^- = -G` where
    the hinge argument is :math:`\ge 0` (else 0), the swap minimum passing the gradient to the
    smaller distance (half each on a tie); then through :math:`d`'s gradient above. ``margin``
    must be > 0.

    Shape: as :func:`triplet_margin_loss`.

    >>> a = np.array([[0.0, 0.0]]); pos = np.array([[3.0, 4.0]]); neg = np.array([[0.0, 1.0]])
    >>> float(triplet_margin_with_distance_loss(a, pos, neg, distance_function="squared_euclidean"))
    25.0
    >>> def manhattan(x1, x2):
    ...     diff = x1 - x2
    ...     def vjp(g):  # g: gradient of the (N,) distances
    ...         gx = np.sign(diff) * np.expand_dims(g, -1)
    ...         return gx, -gx
    ...     return np.abs(diff).sum(-1), vjp
    >>> loss, (ga, gp, gn) = triplet_margin_with_distance_loss_forward_backward(
    ...     a, pos, neg, distance_function=manhattan)
    >>> float(loss), ga.tolist(), gn.tolist()
    (7.0, [[-1.0, 0.0]], [[0.0, -1.0]])
    """
    name = _distance_name(distance_function)
    if name is None:
        return _triplet_custom("forward", anchor, positive, negative, distance_function, margin, swap,
                               reduction, None)[0]
    return _engine.forward("triplet_margin_with_distance_loss", _TRIPLET_NAMES, (anchor, positive, negative),
                           reduction, distance=name, margin=margin, swap=swap)


def triplet_margin_with_distance_loss_backward(
    grad_output: ArrayLike,
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Any = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of :func:`triplet_margin_with_distance_loss`: ``(grad_anchor, grad_positive,
    grad_negative)``. ``grad_output=None`` means 1 (ones), as in every embedding backward."""
    _no_label_grad("triplet_margin_with_distance_loss", target_grad)
    name = _distance_name(distance_function)
    if name is None:
        return _triplet_custom("backward", anchor, positive, negative, distance_function, margin, swap,
                               reduction, grad_output)[1]  # type: ignore[return-value]
    g = _engine.backward("triplet_margin_with_distance_loss", _TRIPLET_NAMES, (anchor, positive, negative),
                         reduction, grad_output, (True, True, True), distance=name, margin=margin,
                         swap=swap)
    return tuple(g)  # type: ignore[return-value]


def triplet_margin_with_distance_loss_forward_backward(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    *,
    distance_function: Any = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    target_grad: bool = False,
) -> Tuple[Any, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`triplet_margin_with_distance_loss` and its gradients (one fused pass for the
    built-in distances)."""
    _no_label_grad("triplet_margin_with_distance_loss", target_grad)
    name = _distance_name(distance_function)
    if name is None:
        return _triplet_custom("forward_backward", anchor, positive, negative, distance_function, margin,
                               swap, reduction, grad_output)  # type: ignore[return-value]
    loss, g = _engine.forward_backward("triplet_margin_with_distance_loss", _TRIPLET_NAMES,
                                       (anchor, positive, negative), reduction, grad_output,
                                       (True, True, True), distance=name, margin=margin,
                                       swap=swap)
    return loss, tuple(g)  # type: ignore[return-value]


# ---- ctc ----
# Imported here, not at the top, so this family's additions stay below its anchor.



def _ctc_int_array(name: str, value: ArrayLike) -> np.ndarray:
    """An integer argument (targets, lengths: any integer dtype, list, tuple or Python int) as a
    C-contiguous, aligned int64 array: a small copy, or none for one that already is. Floats and booleans raise TypeError (torch refuses
    non-integral lengths)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists
        raise TypeError(f"ctc_loss: {name} expected an integer array, got {type(value).__name__}") from exc
    if arr.size == 0 and isinstance(value, (list, tuple)):
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty list holds no floats
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ctc_loss: {name} expected an integer array, got {arr.dtype}")
    return _convert.aligned(np.ascontiguousarray(arr, dtype=np.int64))


def _ctc_arrays(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike,
                target_lengths: ArrayLike) -> Tuple[np.dtype, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    dtype, (lp,) = _convert.float_inputs("ctc_loss", ("log_probs",), (log_probs,))
    return (dtype, lp, _ctc_int_array("targets", targets), _ctc_int_array("input_lengths", input_lengths),
            _ctc_int_array("target_lengths", target_lengths))


def _ctc_options(blank: int, reduction: str, zero_infinity: bool) -> Tuple[int, str, bool]:
    return (_convert.integer("ctc_loss", "blank", blank), _reduction.parse(None, None, reduction),
            _convert.flag("ctc_loss", "zero_infinity", zero_infinity))


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Any:
    r"""Connectionist temporal classification loss (Graves et al., 2006).

    For sample :math:`n` with log-probabilities :math:`x_{t,n,c}`, input length :math:`T_n` and
    target :math:`y_n = (y_{n,1}, \dots, y_{n,S_n})` (labels in :math:`[0, C)`, none equal to
    ``blank``), the loss is the negative log-likelihood of all alignments :math:`\pi \in [0, C)^{T_n}`
    that collapse to :math:`y_n` (:math:`\mathcal{B}` merges repeated labels, then removes blanks):

    .. math::
        l_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t=1}^{T_n} e^{x_{t,n,\pi_t}}

    It is computed by the forward recursion over the extended target
    :math:`y' = (\varnothing, y_1, \varnothing, \dots, y_{S_n}, \varnothing)` of length
    :math:`2S_n + 1` (:math:`\varnothing` = blank), in log space (Graves eq. 5-8):

    .. math::
        \alpha_1(1) = x_{1,n,\varnothing},\quad \alpha_1(2) = x_{1,n,y_1},\qquad
        \alpha_t(s) = \operatorname{LSE}\big(\alpha_{t-1}(s),\ \alpha_{t-1}(s-1),\
        [y'_s \ne y'_{s-2}]\,\alpha_{t-1}(s-2)\big) + x_{t,n,y'_s}

    .. math::
        l_n = -\operatorname{LSE}\big(\alpha_{T_n}(2S_n+1),\ \alpha_{T_n}(2S_n)\big)

    (a term in brackets that is false is :math:`-\infty`; a blank never skips). Repeated labels
    therefore need a blank between them. Then, as in torch,
    :math:`\ell = L = \{l_1,\dots,l_N\}^\top` for ``'none'``, :math:`\sum_n l_n` for ``'sum'``,
    and :math:`\frac1N \sum_n l_n / \max(S_n, 1)` for ``'mean'``. With ``zero_infinity`` an
    infinite :math:`l_n` (and its gradient) becomes 0.

    Gradient. With :math:`\beta` the backward recursion (eq. 10-11, including :math:`x_t` as
    :math:`\alpha` does), :math:`p_n = e^{-l_n}` and :math:`g_n` the gradient reaching
    :math:`l_n` (``grad_output``, divided by :math:`N \max(S_n,1)` for ``'mean'``), the derivative is
    minus the posterior occupation of class :math:`c` at time :math:`t` (eq. 16):

    .. math::
        \frac{\partial l_n}{\partial x_{t,n,c}} = -\gamma_{t}(c),\qquad
        \gamma_t(c) = \frac{1}{p_n} \sum_{s:\,y'_s = c} e^{\alpha_t(s) + \beta_t(s) - x_{t,n,c}}

    :func:`ctc_loss_backward` returns **torch's gradient**, which is not this derivative: it is
    :math:`g_n \big(e^{x_{t,n,c}} - \gamma_t(c)\big)` for :math:`t < T_n` and 0 beyond. torch
    assumes ``log_probs`` comes from a ``log_softmax``, whose backward cancels the added
    :math:`g_n e^{x}` (the gradient with respect to the logits is then :math:`g_n(e^{x} - \gamma)`).

    Edge values (as torch): :math:`T_n = 0` gives 0 for an empty target, else :math:`\infty`; a
    target that no alignment of length :math:`T_n` can produce gives :math:`\infty` and a NaN
    gradient at every :math:`t < T_n` (0 and 0 with ``zero_infinity``); a :math:`-\infty` entry of
    ``log_probs`` at :math:`t < T_n` gives a NaN gradient there. Everything is computed in double
    (float32 included), with log-sum-exp shifted by its maximum: no other NaN arises.

    Deviation from torch: a label equal to ``blank`` raises ``ValueError`` and one outside
    :math:`[0, C)` raises :class:`losskit.IndexError` (a ``ValueError`` too), naming the sample;
    torch computes with them (reading out of bounds for the latter).

    Shape: ``log_probs`` :math:`(T, N, C)` or unbatched :math:`(T, C)`; ``targets`` padded
    :math:`(N, S)` with :math:`S \ge \max S_n` (the padding is never read) or concatenated
    :math:`(\sum_n S_n,)` (unbatched: :math:`(S_1,)` or :math:`(1, S)`); ``input_lengths`` and
    ``target_lengths`` :math:`N` integers each (array of any integer dtype, list or tuple;
    :math:`0 \le T_n \le T`); output a scalar, or :math:`(N,)` for ``'none'`` (0-d unbatched).

    References: A. Graves, S. Fernández, F. Gomez, J. Schmidhuber, "Connectionist Temporal
    Classification: Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.

    One step, two classes: the only alignment of target ``[1]`` is ``(1,)``, so the loss is
    :math:`-\log 0.75` and torch's gradient :math:`(0.25 - 0,\ 0.75 - 1)`:

    >>> lp = np.log(np.array([[0.25, 0.75]]))
    >>> round(float(ctc_loss(lp, np.array([1]), [1], [1])), 6)
    0.287682
    >>> ctc_loss_backward(1.0, lp, np.array([1]), [1], [1]).round(6).tolist()
    [[0.25, -0.25]]
    """
    _, lp, tg, il, tl = _ctc_arrays(log_probs, targets, input_lengths, target_lengths)
    blank, reduction, zero_infinity = _ctc_options(blank, reduction, zero_infinity)
    out = _core.ctc_loss(lp, tg, il, tl, blank, reduction, zero_infinity)
    return _convert.result(out, reduction)


def ctc_loss_backward(
    grad_output: ArrayLike,
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    target_grad: bool = False,
) -> np.ndarray:
    """torch's gradient of :func:`ctc_loss` with respect to ``log_probs`` (see there: it includes
    ``grad_output * exp(log_probs)`` for ``t < input_length``)."""
    no_target_grad("ctc_loss", target_grad)
    dtype, lp, tg, il, tl = _ctc_arrays(log_probs, targets, input_lengths, target_lengths)
    blank, reduction, zero_infinity = _ctc_options(blank, reduction, zero_infinity)
    go = _convert.grad_output_array("ctc_loss", grad_output, dtype)  # None: 1 (ones)
    return _core.ctc_loss_backward(go, lp, tg, il, tl, blank, reduction, zero_infinity)


def ctc_loss_forward_backward(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    target_grad: bool = False,
) -> Tuple[Any, np.ndarray]:
    """:func:`ctc_loss` and :func:`ctc_loss_backward` from one pass: the alphas, betas and the
    gradient of each sample are computed together (``grad_output=None`` means 1, or ones)."""
    no_target_grad("ctc_loss", target_grad)
    dtype, lp, tg, il, tl = _ctc_arrays(log_probs, targets, input_lengths, target_lengths)
    blank, reduction, zero_infinity = _ctc_options(blank, reduction, zero_infinity)
    go = _convert.grad_output_array("ctc_loss", grad_output, dtype)
    out, grad = _core.ctc_loss_forward_backward(lp, tg, il, tl, go, blank, reduction, zero_infinity)
    return _convert.result(out, reduction), grad


# ---- large_vocab ----


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = -100,
    label_smoothing: float = 0.0,
    chunk_size: Optional[int] = None,
) -> Any:
    r"""Cross-entropy of the logits ``input @ linear_weight.T + linear_bias``, computed chunk by
    chunk so the (N, C) logits are never held.

    With :math:`z_n = W x_n + b` (:math:`W` = ``linear_weight``), this is
    :func:`cross_entropy` (class indices, ``weight``, ``ignore_index``, ``label_smoothing``,
    weighted ``'mean'``) of :math:`z`:

    .. math::
        l_n = \Big((1 - \epsilon)\, w_{y_n} \big(\operatorname{lse}(z_n) - z_{n,y_n}\big)
              + \frac{\epsilon}{C} \sum_c w_c \big(\operatorname{lse}(z_n) - z_{n,c}\big)\Big)
              [y_n \ne \text{ignore\_index}]

    Derivatives, with :math:`g_n = \partial \ell / \partial z_n` the cross-entropy gradient (see
    :func:`cross_entropy`) times ``grad_output`` (and divided by :math:`\sum_n w_{y_n}` for
    ``'mean'``):

    .. math::
        \frac{\partial \ell}{\partial x_n} = g_n W,\qquad
        \frac{\partial \ell}{\partial W} = \sum_n g_n^\top x_n,\qquad
        \frac{\partial \ell}{\partial b} = \sum_n g_n

    Rows are processed ``chunk_size`` at a time (default: ``64 MiB / (C * itemsize)`` rows, about
    64 MiB of logits, but at least 256 rows, below which the GEMMs slow down): the chunk's logits (NumPy's BLAS), then the fused
    cross-entropy in place in the C++ core (the global ``'mean'`` scale and ``grad_output``
    folded in), then its two gradient products. Peak extra memory is ``chunk_size x C`` elements,
    not ``N x C``; the loss is accumulated in double in chunk order (bitwise the same for any
    thread count and the same chunks). ``ignore_index=None`` means -100 (torch's default here).

    Shape: input :math:`(H)` or :math:`(N, H)`; linear_weight :math:`(C, H)`; linear_bias and
    weight :math:`(C)`; target :math:`()` or :math:`(N)` class indices of any integer dtype;
    ``'none'`` output :math:`()` or :math:`(N)`. Not supported (torch has them): class-probability
    targets and K-dimensional ``linear_weight`` :math:`(C, d_1, \dots, d_K, H)`; torch's
    ``options`` are replaced by ``chunk_size`` (always chunked; results do not depend on it beyond
    rounding).

    Edge values: as :func:`cross_entropy`: ``'mean'`` over no counted target is NaN with zero
    gradients; out-of-range indices raise :class:`losskit.IndexError` before any work.

    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    >>> t = np.array([0, 1, 2])
    >>> round(float(linear_cross_entropy(x, W, t)), 6)
    1.043865
    >>> round(float(cross_entropy(x @ W.T, t)), 6)
    1.043865
    >>> loss, (gx, gW, gb) = linear_cross_entropy_forward_backward(x, W, t, chunk_size=2)
    >>> np.allclose(gx, cross_entropy_backward(1.0, x @ W.T, t) @ W), gb is None
    (True, True)
    """
    return _large_vocab.linear_cross_entropy(0, input, linear_weight, target, linear_bias, weight, None,
                                             reduction, ignore_index, label_smoothing, chunk_size)


def linear_cross_entropy_backward(
    grad_output: ArrayLike,
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = -100,
    label_smoothing: float = 0.0,
    chunk_size: Optional[int] = None,
    target_grad: bool = False,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Gradients of :func:`linear_cross_entropy`: ``(grad_input, grad_linear_weight,
    grad_linear_bias)`` (``None`` without a bias), recomputing each chunk's logits."""
    no_target_grad("linear_cross_entropy", target_grad)
    return _large_vocab.linear_cross_entropy(1, input, linear_weight, target, linear_bias, weight, grad_output,
                                             reduction, ignore_index, label_smoothing, chunk_size)


def linear_cross_entropy_forward_backward(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    grad_output: Optional[ArrayLike] = None,
    *,
    linear_bias: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = -100,
    label_smoothing: float = 0.0,
    chunk_size: Optional[int] = None,
    target_grad: bool = False,
) -> Tuple[Any, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
    """:func:`linear_cross_entropy` and its three gradients in one chunked pass (three GEMMs per
    chunk, one cross-entropy sweep in place)."""
    no_target_grad("linear_cross_entropy", target_grad)
    return _large_vocab.linear_cross_entropy(2, input, linear_weight, target, linear_bias, weight, grad_output,
                                             reduction, ignore_index, label_smoothing, chunk_size)
