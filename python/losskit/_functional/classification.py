"""Classification losses (``cpp/src/classification``): a row of class scores per position, with
class-index (or, for cross_entropy, class-probability) targets.

Each loss is defined once, as :mod:`losskit._functional._spec` describes; its body passes
``call.mode`` (0, 1, 2) to the C++ core, which computes the loss, the gradient or both in one pass.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _convert, _core, _reduction
from .._engine import no_target_grad
from ._spec import BACKWARD, FORWARD, MEAN_NORMALIZER, ArrayLike, Call, loss, with_stats

# Class-index targets: any integer dtype, converted once to int64 here (a small copy); a float
# array where class indices are expected is a TypeError. The C++ core checks every index.


def _cls_index_target(function: str, target: ArrayLike) -> np.ndarray:

    t = _convert.to_array(function, "target", target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{function}: target expected an integer array of class indices, got {t.dtype}")
    return _convert.as_kernel_array(t, np.int64)  # (ascontiguousarray would make 0-d 1-d)


def _cls_input(
    function: str, input: ArrayLike, weight: Optional[ArrayLike] = None, weight_name: str = "weight"
) -> Tuple[np.dtype, np.ndarray, Optional[np.ndarray]]:
    """The input sets the dtype (float16 and bfloat16 stay as they are: the core reads them in
    place); the weights follow it."""
    x = _convert.to_array(function, "input", input)
    dtype = _convert.compute_dtype(x, half=True)
    x = _convert.as_kernel_array(x, dtype)
    w = None if weight is None else _convert.as_kernel_array(_convert.to_array(function, weight_name, weight), dtype)
    return dtype, x, w


def _cls_go(function: str, call: Call, dtype: np.dtype) -> Optional[np.ndarray]:

    if call.mode in (FORWARD, MEAN_NORMALIZER):
        return None
    return _convert.grad_output_array(function, call.grad_output, dtype)


def _cls_result(call: Call, reduction: str, triple: Tuple[Any, Any, Any]) -> Any:

    out, grad_input, grad_target = triple
    if call.mode == MEAN_NORMALIZER:
        return call.result(out, None)  # the core returned the divisor as a float
    grads: Any = (grad_input, grad_target) if call.target_grad else grad_input
    return call.result(None if call.mode == BACKWARD else _convert.result(out, reduction), grads)


@loss(
    inputs=2,
    target="body",
    grads="Gradients",
    backward="""Gradient of :func:`cross_entropy`: ``grad_input``, or ``(grad_input, grad_target)`` for
    probability targets with ``target_grad=True`` (class indices have none: ValueError).""",
    forward_backward=""":func:`cross_entropy` and its gradient in one fused streaming pass per row.""",
)
def cross_entropy(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    normalizer: Optional[float] = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    return_stats: bool = False,
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

    Extras (class indices only; ValueError with probabilities), from the same pass over each row:

    * ``softcap`` (:math:`c > 0`, finite, or None): the logits become
      :math:`x' = c \tanh(x / c)` (Gemma 2) before everything above (the loss, ``lse``,
      ``entropy``), and the gradient is :math:`\partial l_n / \partial x'_{n,j}
      \cdot (1 - \tanh^2(x_{n,j} / c))`.
    * ``z_loss`` (:math:`z \ge 0`, finite): each counted position adds
      :math:`z \operatorname{lse}(x'_n)^2` (PaLM's auxiliary loss), with
      :math:`\operatorname{lse}(x'_n) = \log \sum_c e^{x'_{n,c}}` and derivative
      :math:`2 z \operatorname{lse}(x'_n)\, s_j`. It is not multiplied by the class weight, and
      ``'mean'`` divides it by the same :math:`\sum_n w_{y_n} [y_n \ne \text{ignore\_index}]`
      as the loss (so without weights it is the mean over counted positions); ignored positions
      add nothing.
    * ``return_stats=True``: the result gains a dict of per-position arrays shaped like the
      ``'none'`` loss: ``"lse"`` (:math:`\operatorname{lse}(x'_n)`) and ``"entropy"``
      (:math:`-\sum_c s_c \log s_c` of the softmax of :math:`x'_n`), in the loss's dtype, and
      ``"correct"`` (bool: :math:`\operatorname{argmax}_c x_{n,c} = y_n`, the first index on
      ties, as torch.argmax; False at ignored positions, whose ``lse`` and ``entropy`` are still
      their rows'; NaN logits are skipped by this argmax). ``cross_entropy`` returns
      ``(loss, stats)``, ``cross_entropy_forward_backward`` ``(loss, grad_input, stats)`` and
      ``cross_entropy_backward`` ``(grad_input, stats)``.

    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> round(float(cross_entropy(x, np.array([2, 0]))), 6)
    0.753109
    >>> loss, g = cross_entropy_forward_backward(x, np.array([2, 0]))
    >>> np.round(g, 4).tolist()
    [[0.045, 0.1224, -0.1674], [-0.3333, 0.1667, 0.1667]]
    >>> loss, g, stats = cross_entropy_forward_backward(x, np.array([2, 0]), z_loss=1e-2, softcap=2.0,
    ...                                                 return_stats=True)
    >>> round(float(loss), 6), stats["correct"].tolist(), np.round(stats["entropy"], 4).tolist()
    (0.988771, [True, True], [1.0399, 1.0986])
    >>> np.round(g, 4).tolist()
    [[0.0788, 0.0766, -0.0464], [-0.2568, 0.1364, 0.1364]]
    """
    fn = "cross_entropy"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _convert.to_array(fn, "target", target)
    probabilities = t.dtype.kind == "f" or _convert.is_bfloat16(t.dtype)
    if probabilities:
        if t.shape != x.shape:
            raise TypeError(
                f"{fn}: target expected integer class indices, or class probabilities of the input's shape "
                f"{x.shape}, got a {t.dtype} array of shape {t.shape}"
            )
        t = _convert.as_kernel_array(t, dtype)
    else:
        no_target_grad(fn, call.target_grad)
        t = _cls_index_target(fn, t)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    result = _core.cross_entropy(
        call.mode,
        x,
        t,
        w,
        go,
        reduction,
        _convert.integer(fn, "ignore_index", ignore_index),
        _convert.real(fn, "label_smoothing", label_smoothing),
        probabilities,
        _convert.flag(fn, "target_grad", call.target_grad),
        norm,
        _convert.real(fn, "z_loss", z_loss),
        None if softcap is None else _convert.real(fn, "softcap", softcap),
        _convert.flag(fn, "return_stats", return_stats),
    )
    value = _cls_result(call, reduction, result[:3])
    return value if len(result) == 3 else with_stats(call, value, result[3])


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`nll_loss` with respect to ``input``.""",
    forward_backward=""":func:`nll_loss` and its gradient in one pass.""",
)
def nll_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    fn = "nll_loss"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, call, dtype)
    ignore = _convert.integer(fn, "ignore_index", ignore_index)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    return _cls_result(call, reduction, _core.nll_loss(call.mode, x, t, w, go, reduction, ignore, norm))


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`multi_margin_loss` with respect to ``input``.""",
    forward_backward=""":func:`multi_margin_loss` and its gradient in one pass.""",
)
def multi_margin_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float = 1.0,
    weight: Optional[ArrayLike] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    fn = "multi_margin_loss"
    if _convert.real(fn, "p", p) not in (1.0, 2.0):
        raise ValueError(f"{fn}: p expected 1 or 2, got {p!r}")
    margin = _convert.real(fn, "margin", margin)
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    return _cls_result(
        call, reduction, _core.multi_margin_loss(call.mode, x, t, w, go, reduction, int(p), margin, norm)
    )


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`multilabel_margin_loss` with respect to ``input``.""",
    forward_backward=""":func:`multilabel_margin_loss` and its gradient in one pass.""",
)
def multilabel_margin_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
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
    fn = "multilabel_margin_loss"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, _ = _cls_input(fn, input)
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    return _cls_result(call, reduction, _core.multilabel_margin_loss(call.mode, x, t, go, reduction, norm))


@loss(
    inputs=2,
    target="target",
    grads="Gradients",
    backward="""Gradient of :func:`multilabel_soft_margin_loss`: ``grad_input`` or ``(grad_input, grad_target)``.""",
    forward_backward=""":func:`multilabel_soft_margin_loss` and its gradients in one pass.""",
)
def multilabel_soft_margin_loss(
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
    fn = "multilabel_soft_margin_loss"
    reduction = _reduction.parse(size_average, reduce, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    y = _convert.as_kernel_array(_convert.to_array(fn, "target", target), dtype)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    triple = _core.multilabel_soft_margin_loss(
        call.mode, x, y, w, go, reduction, _convert.flag(fn, "target_grad", call.target_grad), norm
    )
    return _cls_result(call, reduction, triple)


# ---- beyond torch.nn: softmax_focal_loss, poly1_cross_entropy (cross_entropy's row kernels) ----


@loss(
    inputs=2,
    target="label",
    grads="np.ndarray",
    backward="""Gradient of :func:`softmax_focal_loss` with respect to ``input``.""",
    forward_backward=""":func:`softmax_focal_loss` and its gradient in one fused streaming pass per row.""",
)
def softmax_focal_loss(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    gamma: float = 2.0,
    alpha: Optional[ArrayLike] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Softmax focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection") with
    class-index targets: cross-entropy down-weighted where the target's probability is high.

    With :math:`p_n = \operatorname{softmax}(x_n)_{y_n}` (:math:`x_n` the logits of position
    :math:`n`), :math:`\ell_n = -\log p_n` the cross-entropy, :math:`\gamma` = ``gamma`` and
    :math:`\alpha` = ``alpha`` (per-class weights, ones by default):

    .. math::
        l_n = -\alpha_{y_n} (1 - p_n)^{\gamma} \log p_n \cdot [y_n \ne \text{ignore\_index}]

    and ``'mean'`` is :math:`\sum_n l_n / \sum_n [y_n \ne \text{ignore\_index}]`: the mean over the
    counted positions, as mmdet's and kornia's softmax focal losses divide by the count (the
    :math:`\alpha` weights are not in the divisor, unlike :func:`cross_entropy`'s weighted mean).

    Derivative, with :math:`s = \operatorname{softmax}(x_n)` and :math:`q = 1 - p_n`: since
    :math:`\partial \ell_n / \partial x_{n,j} = s_j - [j = y_n]`,

    .. math::
        \frac{\partial l_n}{\partial x_{n,j}} = \alpha_{y_n}
            \left(q^{\gamma} + \gamma\, p_n\, \ell_n\, q^{\gamma - 1}\right) (s_j - [j = y_n])

    evaluated as :math:`q^{\gamma} (1 + \gamma p_n \ell_n / q)` with :math:`\ell_n / q \to 1` as
    :math:`p_n \to 1`: finite (0 for :math:`\gamma > 0`) at :math:`p_n = 1` also for
    :math:`\gamma < 1`, where torch's autograd of the composed formula gives NaN
    (:math:`0 \cdot \infty`). :math:`\gamma = 0` is :func:`cross_entropy` with ``weight=alpha``
    (but the count divisor for ``'mean'``). :math:`q = -\operatorname{expm1}(-\ell_n)` keeps its
    digits near :math:`p_n = 1`.

    Reference semantics: kornia's ``focal_loss`` / mmcv's ``softmax_focal_loss`` with a per-class
    ``alpha`` (mmcv's ``weight``; kornia's scalar ``alpha`` is ``alpha=np.full(C, a)``), plus
    :func:`cross_entropy`'s ``ignore_index`` and K-dimensional inputs. ``gamma`` must be finite
    and :math:`\ge 0`.

    Shape: input :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, \dots, d_K)`; target
    :math:`()`, :math:`(N)` or :math:`(N, d_1, \dots, d_K)` of any integer dtype; ``alpha``
    :math:`(C)`; ``'none'`` output of the target's shape. float32, float64, and float16 and
    bfloat16 read in place and returned in their dtype, as :func:`cross_entropy`.

    Edge values: as :func:`cross_entropy`: ignored positions have loss 0 and gradient 0, a
    ``'mean'`` over no counted position is NaN (gradient 0), a row holding ``+inf`` or NaN gives
    NaN; a target logit of ``-inf`` gives loss ``inf`` and (for :math:`\gamma > 0`) a NaN gradient,
    as the autograd of the formula does.

    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> round(float(softmax_focal_loss(x, np.array([2, 0]))), 6)
    0.266975
    >>> loss, g = softmax_focal_loss_forward_backward(x, np.array([2, 0]), gamma=0.0)
    >>> round(float(loss), 6)
    0.753109
    """
    fn = "softmax_focal_loss"
    reduction = _reduction.parse(None, None, reduction)
    dtype, x, a = _cls_input(fn, input, alpha, "alpha")
    t = _cls_index_target(fn, target)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    result = _core.softmax_focal_loss(
        call.mode,
        x,
        t,
        a,
        go,
        reduction,
        _convert.real(fn, "gamma", gamma),
        _convert.integer(fn, "ignore_index", ignore_index),
        norm,
    )
    return _cls_result(call, reduction, result)


@loss(
    inputs=2,
    target="body",
    grads="Gradients",
    backward="""Gradient of :func:`poly1_cross_entropy`: ``grad_input``, or ``(grad_input, grad_target)``
    for probability targets with ``target_grad=True`` (class indices have none: ValueError).""",
    forward_backward=""":func:`poly1_cross_entropy` and its gradient in one fused pass per row.""",
)
def poly1_cross_entropy(
    call: Call,
    input: ArrayLike,
    target: ArrayLike,
    epsilon: float = 1.0,
    weight: Optional[ArrayLike] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    normalizer: Optional[float] = None,
) -> Any:
    r"""Poly-1 cross-entropy (Leng et al., 2022, "PolyLoss"): :func:`cross_entropy` plus
    :math:`\epsilon` times the first polynomial term :math:`1 - p_t`.

    With :math:`s = \operatorname{softmax}(x_n)`, labels :math:`y'_{n}` (the one-hot of a class
    index, or the probability target; smoothed to :math:`(1 - \epsilon_s) y + \epsilon_s / C` by
    ``label_smoothing`` :math:`\epsilon_s`), :math:`\epsilon` = ``epsilon`` and class weights
    :math:`w` (ones by default), :math:`v_{n,c} = w_c y'_{n,c}`:

    .. math::
        l_n = \sum_c v_{n,c} \big(-\log s_c + \epsilon (1 - s_c)\big)
            \cdot [y_n \ne \text{ignore\_index}]

    which for a class index without smoothing is
    :math:`w_{y_n} \big(-\log s_{y_n} + \epsilon (1 - s_{y_n})\big)`, and without weights is
    optax's ``poly_loss_cross_entropy``: :math:`\mathrm{CE} + \epsilon (1 - p_t)` with
    :math:`p_t = \sum_c y'_c s_c` (for labels summing to 1). ``'mean'`` divides by what
    :func:`cross_entropy`'s would: :math:`\sum_n w_{y_n} [y_n \ne \text{ignore\_index}]` for class
    indices, the number of positions for probabilities.

    Derivative, with :math:`V = \sum_c v_{n,c}` and :math:`P = \sum_c v_{n,c} s_c`:

    .. math::
        \frac{\partial l_n}{\partial x_{n,j}} = s_j (V + \epsilon P) - v_{n,j} (1 + \epsilon s_j),
        \qquad
        \frac{\partial l_n}{\partial y_{n,j}} = (1 - \epsilon_s) w_j \big(-\log s_j + \epsilon (1 - s_j)\big)

    (the target gradient for probability targets with ``target_grad=True``).

    Reference semantics: optax's ``poly_loss_cross_entropy(logits, labels, epsilon)`` (class axis
    last there, second here as in torch; optax's default ``epsilon`` is 2.0, the paper's
    ImageNet value; losskit's is 1.0), extended with :func:`cross_entropy`'s ``weight``, ``ignore_index``
    (class indices only), ``label_smoothing``, K-dimensional inputs and reductions. ``epsilon``
    may be any finite value (the paper uses :math:`\epsilon \ge -1`).

    Shape: as :func:`cross_entropy`. dtypes as :func:`cross_entropy` (16-bit inputs read in place).
    Edge values: as :func:`cross_entropy`. Class indices without smoothing run on
    :func:`cross_entropy`'s fused row kernels (one pass per row); with smoothing or probability
    targets a three-sweep kernel per position reads the row three times from cache.

    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> round(float(poly1_cross_entropy(x, np.array([2, 0]))), 6)
    1.253822
    >>> y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    >>> round(float(poly1_cross_entropy(x, y)), 6)
    1.253822
    """
    fn = "poly1_cross_entropy"
    reduction = _reduction.parse(None, None, reduction)
    dtype, x, w = _cls_input(fn, input, weight)
    t = _convert.to_array(fn, "target", target)
    probabilities = t.dtype.kind == "f" or _convert.is_bfloat16(t.dtype)
    if probabilities:
        if t.shape != x.shape:
            raise TypeError(
                f"{fn}: target expected integer class indices, or class probabilities of the input's shape "
                f"{x.shape}, got a {t.dtype} array of shape {t.shape}"
            )
        t = _convert.as_kernel_array(t, dtype)
    else:
        no_target_grad(fn, call.target_grad)
        t = _cls_index_target(fn, t)
    go = _cls_go(fn, call, dtype)
    norm = _convert.normalizer(fn, "normalizer", normalizer)
    result = _core.poly1_cross_entropy(
        call.mode,
        x,
        t,
        w,
        go,
        reduction,
        _convert.real(fn, "epsilon", epsilon),
        _convert.integer(fn, "ignore_index", ignore_index),
        _convert.real(fn, "label_smoothing", label_smoothing),
        probabilities,
        _convert.flag(fn, "target_grad", call.target_grad),
        norm,
    )
    return _cls_result(call, reduction, result)
