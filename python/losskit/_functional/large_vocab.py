"""Large-vocabulary losses (``cpp/src/large_vocab``), defined once as
:mod:`losskit._functional._spec` describes; the chunked computation lives in
:mod:`losskit._large_vocab`."""

from __future__ import annotations

from typing import Any, Optional

from .. import _large_vocab
from ._spec import ArrayLike, Call, loss, with_stats


@loss(
    inputs=3,
    target="label",
    grads="Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]",
    backward="""Gradients of :func:`linear_cross_entropy`: ``(grad_input, grad_linear_weight,
    grad_linear_bias)`` (``None`` without a bias), recomputing each chunk's logits.""",
    forward_backward=""":func:`linear_cross_entropy` and its three gradients in one chunked pass (three GEMMs per
    chunk, one cross-entropy sweep in place).""",
)
def linear_cross_entropy(
    call: Call,
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
    normalizer: Optional[float] = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    return_stats: bool = False,
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
    64 MiB of logits, but at least 256 rows, below which the GEMMs slow down): the chunk's logits
    (NumPy's BLAS), then the fused
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

    ``z_loss``, ``softcap`` and ``return_stats`` are :func:`cross_entropy`'s extras on the logits
    :math:`z_n` (softcap applied to :math:`z_n`, the bias included; ``"correct"`` compares the
    argmax of :math:`z_n` with the target), from the same in-place pass over each chunk; the
    statistics arrays have the ``'none'`` loss's shape.

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
    value, stats = _large_vocab.linear_cross_entropy(
        call.mode,
        input,
        linear_weight,
        target,
        linear_bias,
        weight,
        call.grad_output,
        reduction,
        ignore_index,
        label_smoothing,
        chunk_size,
        normalizer,
        z_loss,
        softcap,
        return_stats,
    )
    return value if stats is None else with_stats(call, value, stats)
