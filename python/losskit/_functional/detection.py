"""Detection losses (``cpp/src/detection``): the box IoU losses of ``torchvision.ops``.

Boxes are ``(x1, y1, x2, y2)`` rows of a last dimension of 4: ``boxes1`` and ``boxes2`` of shape
``(N, 4)`` (or any ``(..., 4)``, or one box ``(4,)``) give one loss per pair of boxes, shaped like
the boxes' leading dimensions broadcast together (one box against ``(N, 4)``; ``(N, 1, 4)``
against ``(M, 4)`` for all ``N x M`` pairs). The signatures, defaults
(``reduction='none'``, ``eps=1e-7``) and formulas are torchvision's (``torchvision.ops``
``generalized_box_iou_loss``, ``distance_box_iou_loss``, ``complete_box_iou_loss``), and so is
the value of ``'mean'`` for no boxes: 0, not NaN. Where losskit differs from torchvision:

* the leading dimensions broadcast both ways, as torch broadcasts the published formula's
  operations (torchvision's own code broadcasts only a ``boxes2`` smaller than ``boxes1``: its
  intersection starts as ``zeros_like`` of ``boxes1``'s coordinates); a broadcast box is read in
  place and its gradient summed over the pairs that read it;
* every pair of boxes is computed in double and rounded once to the input's dtype (torchvision
  computes float32 boxes in float32); float16/bfloat16 boxes are read in place and widened
  exactly, so their results are the float32 boxes' rounded once to the input's dtype;
* the functions take ``normalizer=`` (keyword-only), like every losskit loss with a ``'mean'``.

Boxes with ``x2 < x1`` or ``y2 < y1`` are accepted and computed as given, neither rejected nor
clamped, as torchvision does: such a box has a negative width or height, so a negative (or, with
both, positive) area, and the loss can leave [0, 2]. Gradients follow torch.autograd through
torchvision's operations, ties included: a coordinate equal in both boxes (identical boxes,
shared edges) gets half of the gradient of ``torch.maximum``/``torch.minimum`` on each side.

Each loss is defined once, as :mod:`losskit._functional._spec` describes.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from ._spec import ArrayLike, Call, loss

_NAMES = ("boxes1", "boxes2")
_GRADS = "Tuple[np.ndarray, np.ndarray]"

# The quantities all three losses share, in the docstrings' notation.
_COMMON = r"""
    With boxes :math:`b = (x_1, y_1, x_2, y_2)` (``boxes1``) and :math:`b^g` (``boxes2``),
    intersection :math:`I = w_I h_I` where :math:`w_I = \min(x_2, x^g_2) - \max(x_1, x^g_1)` and
    :math:`h_I` (likewise in :math:`y`) are both positive, else :math:`I = 0`; union
    :math:`U = (x_2 - x_1)(y_2 - y_1) + (x^g_2 - x^g_1)(y^g_2 - y^g_1) - I`;
    :math:`\mathrm{IoU} = I / (U + \epsilon)`; and the smallest enclosing box's sides
    :math:`w_C = \max(x_2, x^g_2) - \min(x_1, x^g_1)`, :math:`h_C` likewise.

"""

_GRADIENT = r"""
    Gradients (both boxes) are torch.autograd's through these operations:
    :math:`\partial\,\mathrm{IoU}/\partial I = 1/(U + \epsilon)`,
    :math:`\partial\,\mathrm{IoU}/\partial U = -\mathrm{IoU}/(U + \epsilon)`, :math:`I` has no
    gradient where the boxes do not overlap, and each max/min passes its gradient to the larger
    (smaller) coordinate, half to each on a tie.
"""


def _run(
    call: Call, name: str, boxes1: ArrayLike, boxes2: ArrayLike, reduction: str, eps: float, normalizer: Any
) -> Any:
    return call.engine(name, _NAMES, (boxes1, boxes2), reduction, grads=(True, True), eps=eps, normalizer=normalizer)


@loss(
    inputs=2,
    target="none",
    grads=_GRADS,
    backward="""Gradient of :func:`generalized_box_iou_loss`: ``(grad_boxes1, grad_boxes2)``.""",
    forward_backward=""":func:`generalized_box_iou_loss` and both boxes' gradients in one fused pass.""",
)
def generalized_box_iou_loss(
    call: Call,
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    reduction: str = "none",
    eps: float = 1e-7,
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Generalized IoU loss (Rezatofighi et al., 2019), as ``torchvision.ops.generalized_box_iou_loss``.
    @COMMON@
    .. math:: l = 1 - \mathrm{IoU} + \frac{C - U}{C + \epsilon},\qquad C = w_C h_C

    with :math:`\partial l/\partial C = (U + \epsilon)/(C + \epsilon)^2` and
    :math:`\partial l/\partial U = -1/(C + \epsilon)` besides the IoU's term.
    @GRADIENT@
    Shape: boxes1, boxes2 :math:`(N, 4)` (or :math:`(..., 4)`, or :math:`(4,)`; the leading
    dimensions broadcast); output scalar, or :math:`(N,)` (their broadcast; 0-d for one box) for
    ``'none'``, the default. The mean of no boxes is 0.

    >>> b1 = np.array([[0.0, 0.0, 2.0, 2.0]]); b2 = np.array([[1.0, 1.0, 3.0, 3.0]])
    >>> generalized_box_iou_loss(b1, b2).round(6).tolist()  # IoU 1/7, C 9, U 7
    [1.079365]
    """
    return _run(call, "generalized_box_iou_loss", boxes1, boxes2, reduction, eps, normalizer)


@loss(
    inputs=2,
    target="none",
    grads=_GRADS,
    backward="""Gradient of :func:`distance_box_iou_loss`: ``(grad_boxes1, grad_boxes2)``.""",
    forward_backward=""":func:`distance_box_iou_loss` and both boxes' gradients in one fused pass.""",
)
def distance_box_iou_loss(
    call: Call,
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    reduction: str = "none",
    eps: float = 1e-7,
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Distance IoU loss (Zheng et al., 2020, eq. 6), as ``torchvision.ops.distance_box_iou_loss``.
    @COMMON@
    .. math:: l = 1 - \mathrm{IoU} + \frac{\rho^2}{c^2},\qquad
        \rho^2 = \Big(\frac{x_1 + x_2}{2} - \frac{x^g_1 + x^g_2}{2}\Big)^2
        + \Big(\frac{y_1 + y_2}{2} - \frac{y^g_1 + y^g_2}{2}\Big)^2,\quad
        c^2 = w_C^2 + h_C^2 + \epsilon

    with :math:`\partial l/\partial \rho^2 = 1/c^2` and
    :math:`\partial l/\partial c^2 = -\rho^2/(c^2)^2` besides the IoU's term.
    @GRADIENT@
    Shape: boxes1, boxes2 :math:`(N, 4)` (or :math:`(..., 4)`, or :math:`(4,)`; the leading
    dimensions broadcast); output scalar, or :math:`(N,)` (their broadcast; 0-d for one box) for
    ``'none'``, the default. The mean of no boxes is 0.

    >>> b1 = np.array([[0.0, 0.0, 2.0, 2.0]]); b2 = np.array([[1.0, 1.0, 3.0, 3.0]])
    >>> distance_box_iou_loss(b1, b2).round(6).tolist()  # 1 - 1/7 + 2/18
    [0.968254]
    """
    return _run(call, "distance_box_iou_loss", boxes1, boxes2, reduction, eps, normalizer)


@loss(
    inputs=2,
    target="none",
    grads=_GRADS,
    backward="""Gradient of :func:`complete_box_iou_loss`: ``(grad_boxes1, grad_boxes2)``.""",
    forward_backward=""":func:`complete_box_iou_loss` and both boxes' gradients in one fused pass.""",
)
def complete_box_iou_loss(
    call: Call,
    boxes1: ArrayLike,
    boxes2: ArrayLike,
    reduction: str = "none",
    eps: float = 1e-7,
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Complete IoU loss (Zheng et al., 2020, eqs. 8-11), as ``torchvision.ops.complete_box_iou_loss``.
    @COMMON@
    .. math:: l = 1 - \mathrm{IoU} + \frac{\rho^2}{c^2} + \alpha v,\qquad
        v = \frac{4}{\pi^2}\Big(\arctan\frac{w^g}{h^g} - \arctan\frac{w}{h}\Big)^2,\quad
        \alpha = \frac{v}{1 - \mathrm{IoU} + v + \epsilon}

    (:math:`\rho^2, c^2` as in :func:`distance_box_iou_loss`; :math:`w = x_2 - x_1`,
    :math:`h = y_2 - y_1`). :math:`\alpha` is a constant of the gradient, as torchvision computes
    it under ``no_grad``: :math:`\partial l/\partial v = \alpha`, and
    :math:`\partial v/\partial w = -\frac{8}{\pi^2}(\arctan\frac{w^g}{h^g} - \arctan\frac{w}{h})
    \frac{1/h}{1 + (w/h)^2}` (and likewise for :math:`h`, :math:`w^g`, :math:`h^g`). A box of
    zero height has an infinite ratio: the loss stays finite (:math:`\arctan\infty = \pi/2`)
    but its gradient is NaN, as torch's.
    @GRADIENT@
    Shape: boxes1, boxes2 :math:`(N, 4)` (or :math:`(..., 4)`, or :math:`(4,)`; the leading
    dimensions broadcast); output scalar, or :math:`(N,)` (their broadcast; 0-d for one box) for
    ``'none'``, the default. The mean of no boxes is 0.

    >>> b1 = np.array([[0.0, 0.0, 2.0, 2.0]]); b2 = np.array([[1.0, 1.0, 3.0, 3.0]])
    >>> complete_box_iou_loss(b1, b2).round(6).tolist()  # same aspect ratio: v = 0
    [0.968254]
    """
    return _run(call, "complete_box_iou_loss", boxes1, boxes2, reduction, eps, normalizer)


for _fn in (generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss):
    _fn.__doc__ = (_fn.__doc__ or "").replace("    @COMMON@\n", _COMMON).replace("    @GRADIENT@\n", _GRADIENT)
del _fn

__all__: Tuple[str, ...] = ()
