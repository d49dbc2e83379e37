"""The segmentation losses (``cpp/src/segmentation``): Dice (and its Jaccard form) and Tversky,
with MONAI's ``DiceLoss`` / ``TverskyLoss`` options, each defined once as
:mod:`losskit._functional._spec` describes."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

import numpy as np

from .. import _convert, _core, _reduction
from ._spec import FORWARD, FORWARD_BACKWARD, MEAN_NORMALIZER, ArrayLike, Call, loss


def _target_array(function: str, target: ArrayLike, to_onehot_y: bool, dtype: np.dtype) -> np.ndarray:
    """Class indices (to_onehot_y: any integer dtype, as int64) or a dense target of the input's dtype."""
    arr = _convert.to_array(function, "target", target)
    if to_onehot_y:
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"{function}: target expected an integer array of class indices (to_onehot_y=True), got {arr.dtype}"
            )
        return _convert.as_kernel_array(arr, np.int64)
    if arr.dtype.kind not in "fb" and not _convert.is_half(arr.dtype):
        # An integer target without to_onehot_y is most likely a label map passed by mistake.
        raise TypeError(
            f"{function}: target expected a float array of the input's shape (one-hot or soft; "
            f"pass to_onehot_y=True for class indices), got {arr.dtype}"
        )
    return _convert.as_kernel_array(arr, dtype)


def _warn_single_channel(
    function: str, channels: int, softmax: bool, to_onehot_y: bool, include_background: bool
) -> None:
    """MONAI's warnings for the options it ignores on a single-channel input."""
    if channels != 1:
        return
    for flag, name in (
        (softmax, "softmax=True"),
        (to_onehot_y, "to_onehot_y=True"),
        (not include_background, "include_background=False"),
    ):
        if flag:
            warnings.warn(f"{function}: single channel prediction, `{name}` ignored.", UserWarning, stacklevel=5)


def _prepare(
    function: str,
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike,
    to_onehot_y: Any,
    include_background: Any,
    sigmoid: Any,
    softmax: Any,
    batch: Any,
    reduction: str,
    smooth_nr: Any,
    smooth_dr: Any,
) -> Tuple[Any, ...]:
    flags = [
        _convert.flag(function, n, v)
        for n, v in (
            ("to_onehot_y", to_onehot_y),
            ("include_background", include_background),
            ("sigmoid", sigmoid),
            ("softmax", softmax),
            ("batch", batch),
        )
    ]
    target_grad = _convert.flag(function, "target_grad", call.target_grad)
    if target_grad and flags[0]:
        raise ValueError(
            f"{function}: target_grad expected False with to_onehot_y=True (class indices have no gradient), got True"
        )
    reduction = _reduction.parse(None, None, reduction)
    snr = _convert.real(function, "smooth_nr", smooth_nr)
    sdr = _convert.real(function, "smooth_dr", smooth_dr)
    dtype, (x, w) = _convert.float_inputs(function, ("input", "weight"), (input, weight), half=True)
    y = _target_array(function, target, flags[0], dtype)
    shape = () if x is None else x.shape  # never None: float_inputs refuses a None input
    if len(shape) >= 2:
        _warn_single_channel(function, shape[1], flags[3], flags[0], flags[1])
    go = (
        None
        if call.mode in (FORWARD, MEAN_NORMALIZER)
        else _convert.grad_output_array(function, call.grad_output, dtype)
    )
    return x, y, w, go, flags, reduction, snr, sdr, target_grad


def _finish(call: Call, result: Any, reduction: str, input: ArrayLike) -> Any:
    """The entry point's return value from the core's (rounded to a 16-bit input's dtype)."""
    if call.mode == MEAN_NORMALIZER:
        return call.result(result, None)
    result = _convert.rounded_to_input(result, input)
    if call.mode == FORWARD:
        return _convert.result(result, reduction)
    if call.mode == FORWARD_BACKWARD:
        return _convert.result(result[0], reduction), result[1]
    return result


_SHAPES = r"""Shape: ``input`` :math:`(N, C, d_1, \dots, d_K)` with :math:`K \ge 1` and :math:`C \ge 1`;
    ``target`` the input's shape (one-hot or soft, float), or with ``to_onehot_y=True`` integer
    class indices in :math:`[0, C)` of shape :math:`(N, d_1, \dots, d_K)` or
    :math:`(N, 1, d_1, \dots, d_K)`; output a scalar, or for ``'none'`` :math:`(N, C')`, or
    :math:`(C',)` with ``batch`` (:math:`C' = C - 1` when the background is left out, else
    :math:`C`). MONAI's ``DiceLoss`` returns :math:`(N, C', 1, \dots, 1)` there (broadcastable
    against the input); losskit drops the trailing ones, as MONAI's ``TverskyLoss`` does.
    The gradient has the input's shape. With ``target_grad=True`` (a dense target only: class
    indices have none) ``_backward`` returns ``(grad_input, grad_target)``, the target's gradient
    of the target's shape: with :math:`I, P, G` as above,
    :math:`\partial l/\partial g_j = \frac{\partial l}{\partial I} p_j + \frac{\partial l}{\partial G}
    k\, g_j^{k-1}` (with ``soft_label``, :math:`\partial I/\partial g_j = (\operatorname{sgn} g_j -
    \operatorname{sgn}(g_j - p_j))/2` and :math:`\partial G/\partial g_j = \operatorname{sgn} g_j`),
    as torch.autograd gives for MONAI's formula with the target requiring grad; the target is never
    activated."""

_EDGES = r"""Single channel (:math:`C = 1`): as MONAI, ``softmax``, ``to_onehot_y`` and
    ``include_background=False`` are ignored with a UserWarning; class indices must then be 0 or 1
    and are the mask itself. ``sigmoid`` and ``softmax`` together raise ValueError. An
    all-background target gives :math:`I = G = 0`, so the loss is
    :math:`1 - s_{nr}/(\dots + s_{dr})`, close to 1 unless the prediction is empty too (then
    :math:`1 - s_{nr}/s_{dr} = 0`). NaN anywhere in a channel's input or target makes that
    :math:`(n, c)`'s loss and its gradient NaN (with ``softmax``: every channel at that position).
    Empty spatial dimensions give :math:`I = P = G = 0`; :math:`N = 0` gives an empty ``'none'``,
    a 0 ``'sum'`` and a NaN ``'mean'`` (``batch=False``). Sums are accumulated in double in a fixed
    blocked order, so results are bitwise the same on any number of threads.

    ``soft_label=True`` is MONAI's soft-label form (without ``squared_pred``, whose form it already
    is): :math:`I = \tfrac12\big(\sum_j |p_j| + \sum_j |g_j| - \sum_j |p_j - g_j|\big)`,
    :math:`P = \sum_j |p_j|`, :math:`G = \sum_j |g_j|` (for :math:`p, g \ge 0`,
    :math:`I = \sum_j \min(p_j, g_j)`: equal to :math:`\sum_j p_j g_j` on hard targets, and
    right on soft ones), with :math:`\partial I/\partial p_j = (\operatorname{sgn} p_j -
    \operatorname{sgn}(p_j - g_j))/2` and :math:`\partial P/\partial p_j = \operatorname{sgn} p_j`
    (:math:`\operatorname{sgn} 0 = 0`, as torch's ``abs``) in place of the terms above.

    Differences from MONAI: no ``other_act`` (a NumPy array has no autograd; apply your activation
    and its vjp yourself, or use ``sigmoid``/``softmax``, which losskit fuses and differentiates);
    class indices must be an integer array (MONAI takes float label maps); ``'none'``'s shape as
    above. Differentiating through ``softmax`` in the core
    means ``input`` stays the logits: no probability array is formed."""


def _shared_doc(impl: Any) -> Any:
    """Writes the two losses' common Shape and edge-value sections into a docstring (at ``{shapes}``)."""
    impl.__doc__ = impl.__doc__.replace("{shapes}", _SHAPES + "\n\n" + _EDGES)
    return impl


@loss(
    inputs=2,
    target="body",
    grads="Gradients",
    backward="""Gradient of :func:`dice_loss` with respect to ``input`` (through ``sigmoid`` or
    ``softmax`` when set), as torch.autograd gives for MONAI's formula; with ``target_grad=True``
    ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`dice_loss` and :func:`dice_loss_backward` from two passes over the
    input: the sums, then the gradient (``grad_output=None`` means 1, or ones).""",
)
@_shared_doc
def dice_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    *,
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
    weight: Optional[ArrayLike] = None,
    soft_label: bool = False,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Soft Dice loss (Milletari et al., 2016) with MONAI's ``DiceLoss`` options.

    With :math:`p` the prediction (``input``, or ``sigmoid(input)``, or ``softmax(input)`` over the
    channels) and :math:`g` the target (one-hot of the class indices with ``to_onehot_y``), for
    each sample :math:`n` and counted channel :math:`c` (all but channel 0 when
    ``include_background=False``) the sums run over the spatial positions :math:`j` (and over the
    batch too with ``batch=True``, giving one loss per channel):

    .. math::
        I = \sum_j p_j g_j,\quad P = \sum_j p_j^k,\quad G = \sum_j g_j^k,\qquad
        k = 2 \text{ if squared\_pred else } 1

    .. math::
        l_{n,c} = w_c \Big(1 - \frac{2I + s_{nr}}{P + G + s_{dr}}\Big)
        \quad\text{or, with jaccard,}\quad
        l_{n,c} = w_c \Big(1 - \frac{2I + s_{nr}}{2(P + G - I) + s_{dr}}\Big)

    (:math:`w_c` = ``weight[c]``, 1 without it, and ignored when a single channel is counted, as
    MONAI does), then :math:`\ell = L` for ``'none'``, the sum or the mean of the :math:`l_{n,c}`.

    Gradient. With :math:`D` the denominator, :math:`U = 2I + s_{nr}` and :math:`\lambda` the
    gradient reaching :math:`l_{n,c}` (``grad_output``, over :math:`N C'` for ``'mean'``), times
    :math:`w_c`:

    .. math::
        \frac{\partial l_{n,c}}{\partial p_j} = \lambda\Big(-\frac{2 g_j}{D}
        + \frac{U}{D^2}\,(b\, g_j + c\, k\, p_j^{k-1})\Big)

    with :math:`(b, c) = (0, 1)` for Dice and :math:`(-2, 2)` for Jaccard; then through the
    activation: :math:`\partial p/\partial x = p(1-p)` for ``sigmoid``, and
    :math:`\partial \ell/\partial x_c = p_c(\delta_c - \sum_{c'} p_{c'} \delta_{c'})` for ``softmax``
    (:math:`\delta_c` the derivative with respect to :math:`p_c`, 0 for a channel left out).
    {shapes}

    References: F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net: Fully Convolutional Neural Networks
    for Volumetric Medical Image Segmentation", 3DV 2016; MONAI ``monai.losses.DiceLoss``.

    A perfect one-hot prediction of two classes has loss 0, an inverted one loss 1 (less the
    smoothing term :math:`s_{nr}/(P + G + s_{dr})`):

    >>> g = np.array([[[1.0, 0.0]], [[0.0, 1.0]]]).transpose(1, 0, 2)  # (N=1, C=2, 2 positions)
    >>> round(float(dice_loss(g, g)), 6), round(float(dice_loss(1 - g, g)), 6)
    (0.0, 0.999995)
    >>> dice_loss_backward(1.0, g, g).round(3).tolist()
    [[[-0.25, 0.25], [0.25, -0.25]]]
    """
    fn = "dice_loss"
    x, y, w, go, flags, reduction, snr, sdr, tgrad = _prepare(
        fn,
        call,
        input,
        target,
        weight,
        to_onehot_y,
        include_background,
        sigmoid,
        softmax,
        batch,
        reduction,
        smooth_nr,
        smooth_dr,
    )
    squared = _convert.flag(fn, "squared_pred", squared_pred)
    jac = _convert.flag(fn, "jaccard", jaccard)
    norm = None if call.mode == MEAN_NORMALIZER else _convert.normalizer(fn, "normalizer", normalizer)
    soft_label = _convert.flag(fn, "soft_label", soft_label)
    _, include, sig, soft, bat = flags
    out = _core.dice_loss(
        call.mode, x, y, w, go, include, sig, soft, squared, jac, reduction, snr, sdr, bat, soft_label, norm, tgrad
    )
    return _finish(call, out, reduction, input)


@loss(
    inputs=2,
    target="body",
    grads="Gradients",
    backward="""Gradient of :func:`tversky_loss` with respect to ``input`` (through ``sigmoid`` or
    ``softmax`` when set), as torch.autograd gives for MONAI's formula; with ``target_grad=True``
    ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`tversky_loss` and :func:`tversky_loss_backward` from two passes over
    the input: the sums, then the gradient (``grad_output=None`` means 1, or ones).""",
)
@_shared_doc
def tversky_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    *,
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
    normalizer: Optional[float] = None,
) -> Any:
    r"""Tversky loss (Salehi et al., 2017) with MONAI's ``TverskyLoss`` options.

    With :math:`p`, :math:`g` and the sums over the spatial positions (and the batch with
    ``batch=True``) as in :func:`dice_loss` (here :math:`k = 1`), the true positives
    :math:`TP = \sum_j p_j g_j`, false positives :math:`FP = \sum_j p_j (1 - g_j)` and false
    negatives :math:`FN = \sum_j (1 - p_j) g_j` give

    .. math::
        l_{n,c} = 1 - \frac{TP + s_{nr}}{TP + \alpha\,FP + \beta\,FN + s_{dr}}

    then :math:`\ell = L` for ``'none'``, the sum or the mean of the :math:`l_{n,c}`.
    :math:`\alpha = \beta = 1/2` is the Dice loss, :math:`\alpha = \beta = 1` the Jaccard loss.
    losskit computes :math:`FP = P - TP` and :math:`FN = G - TP` from the sums
    :math:`P = \sum_j p_j`, :math:`G = \sum_j g_j` (the same values in exact arithmetic; all sums
    in double).

    Gradient. With :math:`D` the denominator, :math:`U = TP + s_{nr}` and :math:`\lambda` the
    gradient reaching :math:`l_{n,c}`:

    .. math::
        \frac{\partial l_{n,c}}{\partial p_j} = \lambda\Big(-\frac{g_j}{D}
        + \frac{U}{D^2}\big((1 - \alpha - \beta)\, g_j + \alpha\big)\Big)

    then through ``sigmoid`` or ``softmax`` as in :func:`dice_loss`.
    {shapes}

    References: S. S. M. Salehi, D. Erdogmus, A. Gholipour, "Tversky loss function for image
    segmentation using 3D fully convolutional deep networks", MLMI 2017; MONAI
    ``monai.losses.TverskyLoss``.

    With :math:`\alpha = \beta = 1/2` it is the Dice loss:

    >>> rng = np.random.default_rng(0)
    >>> p, t = rng.uniform(size=(2, 3, 4, 4)), rng.integers(0, 3, (2, 4, 4))
    >>> bool(np.isclose(tversky_loss(p, t, to_onehot_y=True), dice_loss(p, t, to_onehot_y=True)))
    True
    """
    fn = "tversky_loss"
    x, y, _, go, flags, reduction, snr, sdr, tgrad = _prepare(
        fn,
        call,
        input,
        target,
        None,
        to_onehot_y,
        include_background,
        sigmoid,
        softmax,
        batch,
        reduction,
        smooth_nr,
        smooth_dr,
    )
    a = _convert.real(fn, "alpha", alpha)
    b = _convert.real(fn, "beta", beta)
    norm = None if call.mode == MEAN_NORMALIZER else _convert.normalizer(fn, "normalizer", normalizer)
    soft_label = _convert.flag(fn, "soft_label", soft_label)
    _, include, sig, soft, bat = flags
    out = _core.tversky_loss(
        call.mode, x, y, go, include, sig, soft, a, b, reduction, snr, sdr, bat, soft_label, norm, tgrad
    )
    return _finish(call, out, reduction, input)
