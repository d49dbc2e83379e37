"""The CTC loss (``cpp/src/ctc``), defined once as :mod:`losskit._functional._spec` describes."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _convert, _core, _reduction
from ._spec import BACKWARD, FORWARD, MEAN_NORMALIZER, ArrayLike, Call, loss


def _ctc_int_array(name: str, value: ArrayLike) -> np.ndarray:
    """An integer argument (targets, lengths: any integer dtype, list, tuple or Python int) as a
    C-contiguous, aligned int64 array: a small copy, or none for one that already is. Floats and
    booleans raise TypeError (torch refuses
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


def _ctc_arrays(
    log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike
) -> Tuple[np.dtype, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    dtype, (lp,) = _convert.float_inputs("ctc_loss", ("log_probs",), (log_probs,), half=True)
    return (
        dtype,
        lp,
        _ctc_int_array("targets", targets),
        _ctc_int_array("input_lengths", input_lengths),
        _ctc_int_array("target_lengths", target_lengths),
    )


def _ctc_options(blank: int, reduction: str, zero_infinity: bool) -> Tuple[int, str, bool]:
    return (
        _convert.integer("ctc_loss", "blank", blank),
        _reduction.parse(None, None, reduction),
        _convert.flag("ctc_loss", "zero_infinity", zero_infinity),
    )


@loss(
    inputs=4,
    target="label",
    grads="np.ndarray",
    backward="""torch's gradient of :func:`ctc_loss` with respect to ``log_probs`` (see there: it includes
    ``grad_output * exp(log_probs)`` for ``t < input_length``).""",
    forward_backward=""":func:`ctc_loss` and :func:`ctc_loss_backward` from one pass: the alphas, betas and the
    gradient of each sample are computed together (``grad_output=None`` means 1, or ones).""",
)
def ctc_loss(
    call: Call,
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    *,
    normalizer: Optional[float] = None,
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
    dtype, lp, tg, il, tl = _ctc_arrays(log_probs, targets, input_lengths, target_lengths)
    blank, reduction, zero_infinity = _ctc_options(blank, reduction, zero_infinity)
    if call.mode == MEAN_NORMALIZER:
        return call.result(_core.ctc_loss_mean_normalizer(lp, tg, il, tl, blank, reduction, zero_infinity), None)
    norm = _convert.normalizer("ctc_loss", "normalizer", normalizer)
    # A 16-bit log_probs is read in place; results come back in its dtype.
    if call.mode == FORWARD:
        out = _core.ctc_loss(lp, tg, il, tl, blank, reduction, zero_infinity, norm)
        return _convert.result(out, reduction)
    go = _convert.grad_output_array("ctc_loss", call.grad_output, dtype)  # None: 1 (ones)
    if call.mode == BACKWARD:
        return _core.ctc_loss_backward(go, lp, tg, il, tl, blank, reduction, zero_infinity, norm)
    out, grad = _core.ctc_loss_forward_backward(lp, tg, il, tl, go, blank, reduction, zero_infinity, norm)
    return _convert.result(out, reduction), grad
