"""Pointwise losses (``cpp/src/pointwise``): one loss value per element, and the pair losses
that share their kernels (margin ranking, hinge embedding).

Each loss is defined once, as :mod:`losskit._functional._spec` describes; the entry points are
``losskit.functional.NAME``, ``NAME_backward`` and ``NAME_forward_backward``.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

import numpy as np

from .. import _reduction
from ._spec import BACKWARD, FORWARD, MEAN_NORMALIZER, ArrayLike, Call, elementwise_loss, loss, warn_size_mismatch


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`l1_loss`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`l1_loss` and :func:`l1_loss_backward` in one fused pass.""",
)
def l1_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    *,
    normalizer: Optional[float] = None,
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
    if call.mode == FORWARD:
        warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return call.engine(
        "l1_loss", ("input", "target", "weight"), (input, target, weight), reduction, normalizer=normalizer
    )


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`mse_loss`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`mse_loss` and :func:`mse_loss_backward` in one fused pass.""",
)
def mse_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[ArrayLike] = None,
    *,
    normalizer: Optional[float] = None,
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
    if call.mode == FORWARD:
        warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return call.engine(
        "mse_loss", ("input", "target", "weight"), (input, target, weight), reduction, normalizer=normalizer
    )


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`huber_loss`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`huber_loss` and :func:`huber_loss_backward` in one fused pass.""",
)
def huber_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[ArrayLike] = None,
    *,
    normalizer: Optional[float] = None,
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
    if call.mode == FORWARD:
        warn_size_mismatch(input, target)
    return call.engine(
        "huber_loss",
        ("input", "target", "weight"),
        (input, target, weight),
        _reduction.parse(None, None, reduction),
        delta=delta,
        normalizer=normalizer,
    )


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`smooth_l1_loss`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`smooth_l1_loss` and :func:`smooth_l1_loss_backward` in one fused pass.""",
)
def smooth_l1_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    beta: float = 1.0,
    *,
    normalizer: Optional[float] = None,
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
    if call.mode == FORWARD:
        warn_size_mismatch(input, target)
    reduction = _reduction.parse(size_average, reduce, reduction)
    return call.engine(
        "smooth_l1_loss", ("input", "target"), (input, target), reduction, beta=beta, normalizer=normalizer
    )


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`soft_margin_loss` with respect to ``input``.""",
    forward_backward=""":func:`soft_margin_loss` and its gradient in one fused pass.""",
)
def soft_margin_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    return call.engine("soft_margin_loss", ("input", "target"), (input, target), reduction, normalizer=normalizer)


@loss(
    inputs=3,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`binary_cross_entropy`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`binary_cross_entropy` and its gradients in one fused pass.""",
)
def binary_cross_entropy(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "binary_cross_entropy", ("input", "target", "weight"), (input, target, weight), reduction, normalizer=normalizer
    )


@loss(
    inputs=3,
    target="target",
    grads="Gradients",
    backward=(
        "Gradient of :func:`binary_cross_entropy_with_logits`: ``grad_input``, or ``(grad_input, grad_target)``."
    ),
    forward_backward=""":func:`binary_cross_entropy_with_logits` and its gradients in one fused pass.""",
)
def binary_cross_entropy_with_logits(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    pos_weight: Optional[ArrayLike] = None,
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "binary_cross_entropy_with_logits",
        ("input", "target", "weight", "pos_weight"),
        (input, target, weight, pos_weight),
        reduction,
        normalizer=normalizer,
    )


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`poisson_nll_loss`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`poisson_nll_loss` and its gradients in one fused pass.""",
)
def poisson_nll_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    size_average: Optional[bool] = None,
    eps: float = 1e-8,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Negative log-likelihood of a Poisson target :math:`y_n` with rate :math:`e^{x_n}`
    (``log_input=True``) or :math:`x_n`.

    .. math:: l_n = \begin{cases} e^{x_n} - y_n x_n & \text{log\_input} \\
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
    return call.engine(
        "poisson_nll_loss",
        ("input", "target"),
        (input, target),
        reduction,
        log_input=log_input,
        full=full,
        eps=eps,
        normalizer=normalizer,
    )


def _is_scalar_var(var: ArrayLike) -> bool:
    """Python and NumPy scalars are one variance for any input shape, with no gradient (torch's
    float var); a 0-d array is an array: it gets its gradient and torch's shape rule (beside a
    0-d or 1-d input only)."""
    return isinstance(var, (int, float, np.generic))


@loss(
    inputs=3,
    target="target",
    grads="Tuple[Optional[np.ndarray], ...]",
    backward="""Gradient of :func:`gaussian_nll_loss`: ``(grad_input, grad_var)`` (``grad_var`` None for a
    scalar var), with ``grad_target`` appended when ``target_grad``.""",
    forward_backward=""":func:`gaussian_nll_loss` and its gradients in one fused pass.""",
)
def gaussian_nll_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    var: Union[ArrayLike, float],
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    scalar_var = _is_scalar_var(var)
    return call.engine(
        "gaussian_nll_loss",
        ("input", "target", "var"),
        (input, target, var),
        _reduction.parse(None, None, reduction),
        grads=(True, not scalar_var),
        full=full,
        eps=eps,
        scalar_var=scalar_var,
        normalizer=normalizer,
    )


def _kl_reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: str) -> str:
    if size_average is None and reduce is None and isinstance(reduction, str) and reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            UserWarning,
            stacklevel=4,  # the user's line: below it are the entry point and kl_div's body
        )
    return _reduction.parse(size_average, reduce, reduction)


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`kl_div`: ``grad_input``, or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`kl_div` and its gradients in one fused pass.""",
)
def kl_div(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    log_target: bool = False,
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Kullback-Leibler divergence, the input given as log-probabilities.

    .. math:: l_n = \begin{cases} y_n (\log y_n - x_n) & \text{(0 where } y_n = 0) \\
        e^{y_n} (y_n - x_n) & \text{log\_target}\end{cases}

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
    # torch warns about 'mean' where the loss is computed; kl_div_backward alone does not repeat it,
    # nor does mean_normalizer.
    parse = _reduction.parse if call.mode in (BACKWARD, MEAN_NORMALIZER) else _kl_reduction
    reduction = parse(size_average, reduce, reduction)
    return call.engine(
        "kl_div", ("input", "target"), (input, target), reduction, log_target=log_target, normalizer=normalizer
    )


@loss(
    inputs=3,
    target="label",
    grads="Tuple[np.ndarray, np.ndarray]",
    backward="""Gradient of :func:`margin_ranking_loss`: ``(grad_input1, grad_input2)``.""",
    forward_backward=""":func:`margin_ranking_loss` and its gradients in one fused pass.""",
)
def margin_ranking_loss(
    call: Call,
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "margin_ranking_loss",
        ("input1", "input2", "target"),
        (input1, input2, target),
        reduction,
        grads=(True, True),
        margin=margin,
        normalizer=normalizer,
    )


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`hinge_embedding_loss` with respect to ``input``.""",
    forward_backward=""":func:`hinge_embedding_loss` and its gradient in one fused pass.""",
)
def hinge_embedding_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    margin: float = 1.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "hinge_embedding_loss", ("input", "target"), (input, target), reduction, margin=margin, normalizer=normalizer
    )


# ---- the registered element-wise losses ---------------------------------------------------------
# Each is one line of LOSSKIT_REGISTERED_POINTWISE (cpp/include/losskit/pointwise.hpp) and one
# declaration here under ``@elementwise_loss``; the engine, the adapters and losskit.dask follow.


def _registered(
    call: Call, name: str, operands: Any, reduction: str, normalizer: Optional[float], **params: Any
) -> Any:
    """The body of a registered element-wise loss: ``operands`` is ``((input_name, input),
    (target_name, target))``; ``params`` the options of its C++ options struct."""
    (input_name, input), (target_name, target) = operands
    return call.engine(
        name,
        (input_name, target_name),
        (input, target),
        _reduction.parse(None, None, reduction),
        normalizer=normalizer,
        **params,
    )


@elementwise_loss
def log_cosh_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Log-cosh loss: quadratic near zero, linear (slope 1) far from it.

    .. math:: z_n = x_n - y_n,\qquad l_n = \log\cosh z_n,\qquad
        \frac{\partial l_n}{\partial x_n} = \tanh z_n = -\frac{\partial l_n}{\partial y_n}

    Evaluated without overflow as :math:`|z| - \log 2 + \operatorname{log1p}(e^{-2|z|})` for
    :math:`|z| \ge 1` and :math:`-\tfrac12 \operatorname{log1p}(-\tanh^2 z)` below (no
    cancellation as :math:`z \to 0`): finite for any finite :math:`z`, where the literal
    ``log(cosh(z))`` overflows beyond :math:`|z| \approx 89` in float32 (torch then gives inf and a
    NaN gradient); :math:`\pm\infty` gives inf and gradient :math:`\pm 1`. optax's ``log_cosh``
    (``logaddexp(z, -z) - log 2``, unreduced) is the same function; there is no torch loss.

    Args:
        input: predictions, any shape.
        target: values to match, broadcastable to ``input``.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.

    >>> float(log_cosh_loss(np.array([0.0, 2.0]), np.array([0.0, 0.0])))  # log(cosh(2)) / 2
    0.6625013736789321
    """
    return _registered(call, "log_cosh_loss", (("input", input), ("target", target)), reduction, normalizer)


@elementwise_loss
def pseudo_huber_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    delta: float = 1.0,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Pseudo-Huber (Charbonnier) loss: a smooth Huber loss, quadratic near zero, slope
    ``delta`` (> 0) far from it.

    .. math:: z_n = x_n - y_n,\qquad l_n = \delta^2 \left(\sqrt{1 + (z_n/\delta)^2} - 1\right),\qquad
        \frac{\partial l_n}{\partial x_n} = \frac{z_n}{\sqrt{1 + (z_n/\delta)^2}}
        = -\frac{\partial l_n}{\partial y_n}

    optax's ``huber_loss`` is the piecewise Huber loss (:func:`huber_loss` here); this is the
    formula of optax's/Charbonnier's pseudo-Huber, evaluated as :math:`\delta |z| r / (s + 1)`
    with :math:`r = |z|/\delta`, :math:`s = \sqrt{1 + r^2}`: no cancellation for small
    :math:`z`, no overflow of :math:`r^2`. At :math:`z = \pm\infty` the loss is inf and the
    gradient :math:`\pm\delta` (the literal formula's autograd gives NaN there).

    Args:
        input: predictions, any shape.
        target: values to match, broadcastable to ``input``.
        delta: the slope far from zero and the scale of the quadratic region (> 0, default 1).
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.

    >>> round(float(pseudo_huber_loss(np.array([0.0, 3.0]), np.array([0.0, -1.0]), delta=3.0)), 12)
    3.0
    """
    return _registered(
        call, "pseudo_huber_loss", (("input", input), ("target", target)), reduction, normalizer, delta=delta
    )


@elementwise_loss
def msle_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Mean squared logarithmic error.

    .. math:: l_n = \left(\log(1 + x_n) - \log(1 + y_n)\right)^2,\qquad
        \frac{\partial l_n}{\partial x_n} = \frac{2 (\log(1 + x_n) - \log(1 + y_n))}{1 + x_n},\qquad
        \frac{\partial l_n}{\partial y_n} = -\frac{2 (\log(1 + x_n) - \log(1 + y_n))}{1 + y_n}

    Domain: :math:`x, y > -1`. Values at and below :math:`-1` are not clamped: they give what
    ``log1p`` gives (inf at :math:`-1`, NaN below), as torchmetrics' ``mean_squared_log_error``
    and torch autograd of this formula do. Keras' ``MeanSquaredLogarithmicError`` differs: it
    clamps both arguments at ``epsilon`` first (so negative values count as 0).

    Args:
        input: predictions, any shape, > -1.
        target: values to match, broadcastable to ``input``, > -1.
        reduction: ``'none'`` (per-element losses), ``'mean'`` (default) or ``'sum'``.

    >>> float(msle_loss(np.array([np.e - 1.0]), np.array([0.0])))
    1.0
    """
    return _registered(call, "msle_loss", (("input", input), ("target", target)), reduction, normalizer)


@elementwise_loss
def sigmoid_focal_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Sigmoid focal loss (RetinaNet): binary cross-entropy on logits, scaled down where the
    prediction is already right.

    .. math:: p_n = \sigma(x_n),\qquad p_{t,n} = p_n y_n + (1 - p_n)(1 - y_n),\qquad
        \alpha_{t,n} = \alpha y_n + (1 - \alpha)(1 - y_n),

        l_n = -\alpha_{t,n} \left(1 - p_{t,n}\right)^{\gamma}
        \left(y_n \log p_n + (1 - y_n) \log(1 - p_n)\right)

    with :math:`\alpha_t = 1` when ``alpha < 0``. Both gradients are torch autograd's of this
    formula; the target's (``target_grad=True``) treats :math:`y` as continuous, so soft labels
    work. The signature and defaults are torchvision.ops' ``sigmoid_focal_loss`` (``alpha=0.25,
    gamma=2, reduction='none'``; its arguments ``inputs, targets`` are ``input, target`` here,
    positionally the same). Differences from torchvision: :math:`1 - p_t` is evaluated as
    :math:`y\,\sigma(-x) + (1 - y)\,\sigma(x)` and the cross-entropy from :math:`\log\sigma(\pm x)`,
    so a saturated logit (:math:`|x| \gtrsim 17` in float32) keeps its small loss and gradient
    where torchvision's float32 :math:`1 - p_t` rounds to 0 or to a few ulps (and ``gamma < 1``
    then gives it NaN gradients); ``gamma`` must be finite and :math:`\ge 0` and ``alpha`` finite
    (``ValueError`` otherwise; torchvision does not check).

    Args:
        input: logits, any shape.
        target: binary labels (or soft labels in [0, 1]), broadcastable to ``input``.
        alpha: weight of the positives, :math:`1 - \alpha` of the negatives; negative to weight
            neither (default 0.25).
        gamma: focusing exponent, :math:`\ge 0` (default 2; 0 with ``alpha < 0`` is
            :func:`binary_cross_entropy_with_logits`).
        reduction: ``'none'`` (default, per-element losses), ``'mean'`` or ``'sum'``.

    >>> round(float(sigmoid_focal_loss(np.array([0.0]), np.array([1.0]))[0]), 12)  # 0.25 * 0.25 * log 2
    0.043321698785
    """
    return _registered(
        call,
        "sigmoid_focal_loss",
        (("input", input), ("target", target)),
        reduction,
        normalizer,
        alpha=alpha,
        gamma=gamma,
    )
