"""Contrastive losses (``cpp/src/contrastive``), defined once as :mod:`losskit._functional._spec`
describes; the argument conversion lives in :mod:`losskit._contrastive`, the block loop in the C++
core."""

from __future__ import annotations

from typing import Any, Optional

from .. import _contrastive
from ._spec import ArrayLike, Call, loss


@loss(
    inputs=2,
    target="none",
    grads="Tuple[np.ndarray, np.ndarray]",
    backward="""Gradients of :func:`info_nce_loss`: ``(grad_z1, grad_z2)``, each (N, D).""",
    forward_backward=""":func:`info_nce_loss` and both gradients from one blocked pass over the
    similarities (two for the symmetric loss when N needs several blocks).""",
)
def info_nce_loss(
    call: Call,
    z1: ArrayLike,
    z2: ArrayLike,
    temperature: float = 0.07,
    symmetric: bool = True,
    normalize: bool = True,
    reduction: str = "mean",
    *,
    block_size: Optional[int] = None,
    normalizer: Optional[float] = None,
) -> Any:
    r"""InfoNCE contrastive loss between two batches of embeddings whose matching rows are the
    positive pairs: CLIP's symmetric loss by default, the one-sided InfoNCE with ``symmetric=False``.

    With :math:`a_n = z^1_n / \max(\lVert z^1_n \rVert, 10^{-12})` and
    :math:`b_n = z^2_n / \max(\lVert z^2_n \rVert, 10^{-12})` (``normalize=True``, torch's
    ``F.normalize``; :math:`a = z^1, b = z^2` otherwise), :math:`\tau` = ``temperature`` and the
    similarities :math:`S_{nm} = a_n \cdot b_m / \tau`:

    .. math::
        r_n = \log \sum_m e^{S_{nm}} - S_{nn},\qquad
        c_n = \log \sum_m e^{S_{mn}} - S_{nn},\qquad
        l_n = \begin{cases} \tfrac12 (r_n + c_n) & \text{symmetric} \\ r_n & \text{one-sided}
        \end{cases}

    that is ``F.cross_entropy(S, arange(N))`` (:math:`z^1 \to z^2`) and, symmetric, its average
    with ``F.cross_entropy(S.T, arange(N))`` (:math:`z^2 \to z^1`); ``'mean'`` divides
    :math:`\sum_n l_n` by :math:`N`. Gradient, with :math:`g_n` = ``grad_output`` (divided by
    :math:`N` for ``'mean'``), :math:`P = \operatorname{softmax}` of :math:`S`'s rows,
    :math:`Q` of its columns, and :math:`w_r = w_c = \tfrac12` (symmetric; :math:`1, 0` one-sided):

    .. math::
        G_{nm} = \frac{\partial \ell}{\partial S_{nm}} = w_r g_n (P_{nm} - \delta_{nm})
                 + w_c g_m (Q_{nm} - \delta_{nm}),\qquad
        \frac{\partial \ell}{\partial a} = \frac{G b}{\tau},\quad
        \frac{\partial \ell}{\partial b} = \frac{G^\top a}{\tau}

    and through the normalisation :math:`\partial \ell / \partial z^1_n = (\bar a_n - a_n (a_n
    \cdot \bar a_n)) / \lVert z^1_n \rVert` with :math:`\bar a = \partial \ell / \partial a`
    (:math:`\bar a_n / 10^{-12}` for a row of norm below :math:`10^{-12}`, as torch's clamp gives);
    likewise for :math:`z^2`.

    Memory and speed: the :math:`N \times N` similarities are never held. ``block_size`` rows at a
    time (default: about 64 MiB of similarities, at least 256 rows) are computed by a BLAS GEMM
    (SciPy's, as :func:`linear_cross_entropy` uses; NumPy's matmul without SciPy); the C++ core
    computes each block's softmax statistics (row log-sum-exps, and per block column statistics
    merged in block order) and overwrites the block with :math:`G`, then two GEMMs give the
    gradients. The symmetric gradient needs every column's log-sum-exp first, so it takes a
    second pass that recomputes the blocks, unless one block holds all :math:`N` rows. Sums are
    in double in a fixed order: bitwise the same on any number of threads (for the same
    ``block_size``).

    Reference semantics: CLIP (Radford et al., 2021, Fig. 3's pseudocode: L2-normalised
    embeddings, ``logits = a @ b.T * exp(t)``, the average of the two cross-entropies); its
    initial temperature 0.07 is the default here. ``symmetric=False`` is the one-sided InfoNCE of
    CPC (van den Oord et al., 2018, eq. 4) with the other batch's rows as negatives. SimCLR's
    NT-Xent (Chen et al., 2020; ``optax.losses.ntxent`` on ``concatenate([z1, z2])`` with labels
    ``concatenate([arange(N), arange(N)])``) differs: each of its :math:`2N` anchors also takes the
    :math:`N - 1` other rows of its own batch as negatives (:math:`2N - 2` negatives, against
    :math:`N - 1` here), and optax's cosine clamps :math:`\lVert x \rVert \lVert y \rVert` at the
    dtype's machine epsilon instead of each norm at :math:`10^{-12}`; the two agree only for
    :math:`N = 1` (both 0).

    Shape: z1, z2 :math:`(N, D)`; ``'none'`` output :math:`(N)`. Edge values: :math:`N = 0`
    gives NaN for ``'mean'`` and 0 for ``'sum'`` (torch's cross-entropy of an empty batch), with
    empty gradients; a NaN in a row of :math:`z^1` makes that row's :math:`r_n` NaN and (symmetric)
    every :math:`c_m`, as torch's log-softmax does; zero rows normalise to zero vectors.

    >>> z1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> z2 = np.array([[1.0, 0.1], [0.2, 1.0]])
    >>> round(float(info_nce_loss(z1, z2, temperature=0.5)), 6)
    0.171534
    >>> S = (z1 / np.linalg.norm(z1, axis=1, keepdims=True)) @ (z2 / np.linalg.norm(z2, axis=1, keepdims=True)).T / 0.5
    >>> rows = cross_entropy(S, np.arange(2), reduction="none")
    >>> cols = cross_entropy(np.ascontiguousarray(S.T), np.arange(2), reduction="none")
    >>> bool(np.isclose(info_nce_loss(z1, z2, temperature=0.5), np.mean((rows + cols) / 2)))
    True
    """
    return call.result(
        *_loss_and_grads(call, z1, z2, temperature, symmetric, normalize, reduction, block_size, normalizer)
    )


def _loss_and_grads(call: Call, *args: Any) -> Any:
    value = _contrastive.info_nce_loss(call.mode, args[0], args[1], call.grad_output, *args[2:])
    if call.mode in (0, 3):
        return value, None
    if call.mode == 1:
        return None, value
    return value
