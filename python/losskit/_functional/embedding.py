"""Embedding losses (``cpp/src/embedding``): one loss per row of vectors.

Rows are the last dimension's vectors: inputs (N, D) give N losses, unbatched (D,) inputs one
(a 0-d result for reduction='none'). Rows broadcast as in torch (a (1, D) positive against an
(N, D) anchor); the vector dimension D must be the same for all inputs (torch would broadcast
a size-1 D). Per-row sums are accumulated in double.

Each loss is defined once, as :mod:`losskit._functional._spec` describes.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _convert, _core, _reduction
from ._spec import FORWARD, MEAN_NORMALIZER, ArrayLike, Call, loss

_COSINE_NAMES = ("input1", "input2", "target")
_TRIPLET_NAMES = ("anchor", "positive", "negative")
_DISTANCES = ("euclidean", "cosine", "squared_euclidean")


@loss(
    inputs=3,
    target="label",
    grads="Tuple[np.ndarray, np.ndarray]",
    backward="""Gradient of :func:`cosine_embedding_loss`: ``(grad_input1, grad_input2)``.""",
    forward_backward=""":func:`cosine_embedding_loss` and its gradients in one fused pass.""",
)
def cosine_embedding_loss(
    call: Call,
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "cosine_embedding_loss",
        _COSINE_NAMES,
        (input1, input2, target),
        reduction,
        grads=(True, True),
        margin=margin,
        normalizer=normalizer,
    )


@loss(
    inputs=3,
    target="none",
    grads="Tuple[np.ndarray, np.ndarray, np.ndarray]",
    backward="""Gradient of :func:`triplet_margin_loss`: ``(grad_anchor, grad_positive, grad_negative)``.""",
    forward_backward=""":func:`triplet_margin_loss` and its three gradients in one fused pass.""",
)
def triplet_margin_loss(
    call: Call,
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
    *,
    normalizer: Optional[float] = None,
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
    return call.engine(
        "triplet_margin_loss",
        _TRIPLET_NAMES,
        (anchor, positive, negative),
        reduction,
        grads=(True, True, True),
        margin=margin,
        p=p,
        eps=eps,
        swap=swap,
        normalizer=normalizer,
    )


def _triplet_custom(
    mode: int,
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    distance_function: Any,
    margin: float,
    swap: bool,
    reduction: str,
    grad_output: Any,
    *,
    normalizer: Optional[float] = None,
) -> Tuple[Any, Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """A user's distance: the callable computes the distances and their vjps; the core computes
    the triplet loss and its gradient with respect to the distances; this function only wires
    the two (adding the two contributions each input receives)."""
    name = "triplet_margin_with_distance_loss"
    margin, swap = _convert.real(name, "margin", margin), _convert.flag(name, "swap", swap)
    # The callable gets the inputs in their own dtype, float16/bfloat16 ones as they are (no copy,
    # as torch hands it the 16-bit tensors); the loss, the distances' gradients and the chain
    # rule's sums are computed in float32 for those and rounded once to the input's dtype.
    _, (a, p, n) = _convert.float_inputs(name, _TRIPLET_NAMES, (anchor, positive, negative), half=True)
    dtype = _convert.compute_dtype(a)
    _core.triplet_margin_check_inputs((a, p, n), reduction, margin)
    pairs = [(a, p), (a, n)] + ([(p, n)] if swap else [])
    dists, vjps = [], []
    for x1, x2 in pairs:
        result = distance_function(x1, x2)
        if not (isinstance(result, tuple) and len(result) == 2 and callable(result[1])):
            raise TypeError(
                f"{name}: distance_function expected to return (distances, vjp), got {type(result).__name__}"
            )
        dists.append(_convert.as_kernel_array(_convert.to_array(name, "distances", result[0]), dtype))
        vjps.append(result[1])
    go = _convert.grad_output_array(name, grad_output, dtype)
    loss, g = _core.triplet_margin_loss_from_distances(
        dists[0],
        dists[1],
        dists[2] if swap else None,
        go,
        reduction,
        margin,
        swap,
        mode != FORWARD,
        _convert.normalizer(name, "normalizer", normalizer),
    )
    loss = _convert.result(_convert.rounded_to_input(loss, anchor), reduction)
    if mode == FORWARD:
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
    return loss, _convert.rounded_to_input((ga, gp, gn), anchor)


def _distance_name(distance_function: Any) -> Optional[str]:
    """The core's name for a built-in distance, or None for a callable."""
    if distance_function is None:
        return "euclidean"
    if isinstance(distance_function, str):
        return distance_function  # validated by the core
    if callable(distance_function):
        return None
    raise TypeError(
        "triplet_margin_with_distance_loss: distance_function expected None, a string or a "
        f"callable, got {type(distance_function).__name__}"
    )


@loss(
    inputs=3,
    target="none",
    grads="Tuple[np.ndarray, np.ndarray, np.ndarray]",
    backward="""Gradient of :func:`triplet_margin_with_distance_loss`: ``(grad_anchor, grad_positive,
    grad_negative)``. ``grad_output=None`` means 1 (ones), as in every embedding backward.""",
    forward_backward=""":func:`triplet_margin_with_distance_loss` and its gradients (one fused pass for the
    built-in distances).""",
)
def triplet_margin_with_distance_loss(
    call: Call,
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Any = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    normalizer: Optional[float] = None,
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
    if name is None and call.mode == MEAN_NORMALIZER:
        name = "euclidean"  # the divisor is the number of rows, whatever the distance; none is called
    if name is None:
        return call.result(
            *_triplet_custom(
                call.mode,
                anchor,
                positive,
                negative,
                distance_function,
                margin,
                swap,
                reduction,
                call.grad_output,
                normalizer=normalizer,
            )
        )
    return call.engine(
        "triplet_margin_with_distance_loss",
        _TRIPLET_NAMES,
        (anchor, positive, negative),
        reduction,
        grads=(True, True, True),
        distance=name,
        margin=margin,
        swap=swap,
        normalizer=normalizer,
    )
