"""Embedding losses against torch 2.13: cosine_embedding_loss, triplet_margin_loss,
triplet_margin_with_distance_loss (built-in and callable distances).

Every case checks the three entry points (forward, backward with a random grad_output,
forward_backward) against torch's forward and torch.autograd through tests/_reference.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from _reference import compare

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def _grad_output(rng, reduction, out_shape, dtype):
    if reduction == "none":
        return rng.standard_normal(out_shape).astype(dtype)
    return np.asarray(rng.standard_normal(), dtype=dtype)


def check_all(name, torch_fn, args, kwargs, rng, what="", ndiff=None):
    """Forward, backward and forward_backward of losskit.functional.<name> against torch."""
    fwd = getattr(LF, name)
    bwd = getattr(LF, name + "_backward")
    fb = getattr(LF, name + "_forward_backward")
    reduction = kwargs.get("reduction", "mean")
    ndiff = ndiff if ndiff is not None else len(args)
    diff = tuple(range(ndiff))
    loss = fwd(*args, **kwargs)
    out_shape = np.shape(loss)
    go = _grad_output(rng, reduction, out_shape, args[0].dtype)
    # backward with a random grad_output; forward_backward with the same
    grads = bwd(go, *args, **kwargs)
    loss2, grads2 = fb(*args, grad_output=go, **kwargs)
    compare(torch_fn, args, kwargs_for_torch(kwargs), diff, loss, grads, grad_output=go, what=f"{what} {name}")
    np.testing.assert_array_equal(np.asarray(loss2), np.asarray(loss))
    for g, g2 in zip(grads, grads2):
        np.testing.assert_array_equal(g, g2)
    # forward_backward with grad_output=None means ones
    loss3, grads3 = fb(*args, **kwargs)
    ones = np.ones(out_shape, dtype=args[0].dtype)
    for g, g1 in zip(grads3, bwd(ones, *args, **kwargs)):
        np.testing.assert_array_equal(g, g1)
    assert np.asarray(loss).dtype == args[0].dtype
    return loss, grads


def kwargs_for_torch(kwargs):
    return {k: v for k, v in kwargs.items() if k != "distance_function" or not isinstance(v, str)}


# ---------------------------------------------------------------------------------------------
# cosine_embedding_loss
# ---------------------------------------------------------------------------------------------
def _labels(rng, n):
    return rng.choice([-1.0, 1.0], size=n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (7, 5), (0, 4), (3, 0), (33, 17)])
@pytest.mark.parametrize("margin", [0.0, 0.3, -0.5])
def test_cosine_embedding(rng, dtype, reduction, shape, margin):
    x1 = rng.standard_normal(shape).astype(dtype)
    x2 = rng.standard_normal(shape).astype(dtype)
    t = np.asarray(_labels(rng, shape[0]) if len(shape) == 2 else rng.choice([-1.0, 1.0])).astype(dtype)
    check_all(
        "cosine_embedding_loss",
        F.cosine_embedding_loss,
        (x1, x2, t),
        {"margin": margin, "reduction": reduction},
        rng,
        ndiff=2,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_zero_vectors_and_odd_labels(rng, dtype):
    # The 1e-12 inside torch's norms: zero rows give cos = 0 and finite (large) gradients.
    x1 = rng.standard_normal((8, 6)).astype(dtype)
    x2 = rng.standard_normal((8, 6)).astype(dtype)
    x1[0] = 0
    x2[1] = 0
    x1[2] = 0
    x2[2] = 0
    x1[3] = 1e-4  # tiny but nonzero
    # labels other than 1/-1 are accepted by torch and contribute 0
    t = np.array([1, -1, 1, -1, 0, 2, 0.5, -1], dtype=dtype)
    for reduction in REDUCTIONS:
        check_all(
            "cosine_embedding_loss",
            F.cosine_embedding_loss,
            (x1, x2, t),
            {"margin": -0.2, "reduction": reduction},
            rng,
            ndiff=2,
        )


def test_cosine_embedding_analytic():
    # Orthogonal unit vectors: cos = 0 -> l = 1 for y = 1; parallel vectors: cos = 1 (up to the
    # 1e-12) -> l = max(0, 1 - margin) for y = -1. d cos / dx1 = x2/|x1||x2| - cos x1/|x1|^2.
    x1 = np.array([[1.0, 0.0], [2.0, 0.0]])
    x2 = np.array([[0.0, 1.0], [3.0, 0.0]])
    loss, (g1, g2) = LF.cosine_embedding_loss_forward_backward(
        x1, x2, np.array([1.0, -1.0]), margin=0.25, reduction="none"
    )
    np.testing.assert_allclose(loss, [1.0, 0.75])
    # row 0: l = 1 - cos, dl/dx1 = -x2 / (1 * 1) = [0, -1]
    np.testing.assert_allclose(g1[0], [0.0, -1.0])
    # row 1: l = cos - m, dl/dx1 = x2/(2*3) - 1 * x1/4 = [0.5 - 0.5, 0] = 0
    np.testing.assert_allclose(g1[1], [0.0, 0.0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# triplet_margin_loss
# ---------------------------------------------------------------------------------------------
P_VALUES = [1.0, 1.5, 2.0, 3.0, 0.5, math.inf]


def _triplet(rng, shape, dtype):
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shape", [(6,), (9, 7), (0, 3), (2, 3, 4)])
def test_triplet_margin(rng, dtype, reduction, p, swap, shape):
    args = _triplet(rng, shape, dtype)
    check_all(
        "triplet_margin_loss",
        F.triplet_margin_loss,
        args,
        {"margin": 1.3, "p": p, "eps": 1e-6, "swap": swap, "reduction": reduction},
        rng,
    )


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_float32_cancelling_distances_and_overflow(rng, swap):
    """float32, p = 2. Rows 0-1: a 1e4 coordinate makes both distances about 1e4 with a difference
    near 0.3; x - y rounded to float32 (off by 5e-4) left the loss 6e-4 from torch's float64 result
    (found by the fuzz campaign). Row 2: the squares sum past float32's range, so torch's distance
    is inf and the loss inf - inf = NaN, where a sum in double gave 8.2e37."""
    a = np.array([[1e4, 0.86083984, -1.1650391], [1e4, 0.04998779, 0.2265625], [1e38, 1e38, 0.0]], np.float32)
    pos = np.array(
        [[0.51123047, 0.6069336, -1.4267578], [0.14819336, 0.5175781, 0.46826172], [-1e38, 0.0, 0.0]], np.float32
    )
    neg = np.array(
        [[-0.22351074, -1.4804688, -0.6845703], [0.07318115, -0.06561279, 1.5185547], [0.0, 0.0, 0.0]], np.float32
    )
    for reduction in ("none", "sum"):
        for rows in (slice(0, 2), slice(2, 3)):  # the float64 reference has no overflow: apart
            check_all(
                "triplet_margin_loss",
                F.triplet_margin_loss,
                (a[rows], pos[rows], neg[rows]),
                {"margin": 1.0, "swap": swap, "reduction": reduction},
                rng,
            )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("eps", [1e-6, 0.0, 0.1])
def test_triplet_identical_and_zero(rng, dtype, p, swap, eps):
    # anchor == positive (d_ap = eps D^(1/p), or exactly 0 with eps = 0: the masked zero-norm
    # gradient); positive == negative in row 1 (a tie of the swap minimum: half the gradient
    # each); all-zero rows in row 2 (every distance is the eps path).
    a, pos, neg = _triplet(rng, (4, 5), dtype)
    pos[0] = a[0]
    neg[1] = a[1]
    a[2] = pos[2] = neg[2] = 0
    pos[3] = a[3]
    neg[3] = a[3]
    for reduction in ("none", "sum"):
        check_all(
            "triplet_margin_loss",
            F.triplet_margin_loss,
            (a, pos, neg),
            {"margin": 0.7, "p": p, "eps": eps, "swap": swap, "reduction": reduction},
            rng,
        )


def test_triplet_swap_tie_analytic():
    # anchor = positive = 0, negative = (3, 4), eps = 0: d_ap = 0, d_an = d_pn = 5, margin 6
    # -> l = 1, the swap minimum ties: each of d_an, d_pn gets -1/2.
    z = np.zeros((1, 2))
    n = np.array([[3.0, 4.0]])
    loss, (ga, gp, gn) = LF.triplet_margin_loss_forward_backward(z, z.copy(), n, margin=6.0, eps=0.0, swap=True)
    assert float(loss) == 1.0
    # d(d_an)/da = (a - n)/5 = (-0.6, -0.8), times -1/2; d_ap's gradient is masked (zero norm)
    np.testing.assert_allclose(ga, [[0.3, 0.4]])
    np.testing.assert_allclose(gp, [[0.3, 0.4]])
    np.testing.assert_allclose(gn, [[-0.6, -0.8]])


@pytest.mark.parametrize("p", P_VALUES)
def test_triplet_hinge_at_zero_float32_one_element(rng, p):
    """anchor = positive = 1.5, negative = 1, margin 0.5, eps 1e-6: d_ap = eps and
    d_an = 0.5 + eps rounded to float32, so torch's float32 margin + d_ap - d_an is exactly 0 and
    clamp_min passes the gradient (loss 0, positive's gradient -1, negative's +1). Evaluated in
    double on float32 distances the hinge was 1.3e-8 below 0 and the whole gradient was dropped,
    on every build (found as a one-element case by the hypothesis test under the sanitized build)."""
    a, pos, neg = (np.array([v], dtype=np.float32) for v in (1.5, 1.5, 1.0))
    kwargs = {"margin": 0.5, "p": p, "eps": 1e-6, "swap": False, "reduction": "mean"}
    loss, (ga, gp, gn) = LF.triplet_margin_loss_forward_backward(a, pos, neg, **kwargs)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(gp, [-1.0])
    np.testing.assert_array_equal(gn, [1.0])
    check_all("triplet_margin_loss", F.triplet_margin_loss, (a, pos, neg), kwargs, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_hinge_inactive_and_legacy(rng, dtype, swap):
    a, pos, neg = _triplet(rng, (10, 4), dtype)
    neg += 100  # far negatives: every hinge is inactive, loss and gradients 0
    check_all("triplet_margin_loss", F.triplet_margin_loss, (a, pos, neg), {"swap": swap}, rng)
    with pytest.warns(UserWarning):
        v = LF.triplet_margin_loss(a, pos, neg, size_average=False)
    assert float(v) == float(LF.triplet_margin_loss(a, pos, neg, reduction="sum"))


def test_triplet_swap_tie_decided_by_rounding():
    """d_an and d_pn are both 2.5 + 1e-6 here (the eps-shifted |u| are (2, 0, 0.5) and
    (0.5, 1, 1), each term rounded): torch's sum gives the same double for both, a tie of the swap
    minimum that halves the gradient. The row sums were `omp simd` reductions the compiler was
    free to reorder: on the baseline target the vectorised order of the plain RelWithDebInfo build
    made d_pn one ulp smaller (the whole gradient went to d_pn, 0.8 off) and the sanitized build's
    did not, so the answer depended on the build. Sums now run in the order that
    common/ordered_sum.hpp writes down."""
    a = np.array([[1.0, 3.0, 1.0]])
    pos = np.array([[3.5, 2.0, 1.5]])
    neg = np.array([[3.0, 3.0, 0.5]])
    kwargs = {"margin": 1.5, "p": 1.0, "swap": True, "reduction": "sum"}
    loss, (ga, gp, gn) = LF.triplet_margin_loss_forward_backward(a, pos, neg, grad_output=np.asarray(0.8), **kwargs)
    compare(F.triplet_margin_loss, (a, pos, neg), kwargs, (0, 1, 2), loss, (ga, gp, gn), grad_output=np.asarray(0.8))
    # by hand: l = 1.5 + d_ap - min(d_an, d_pn) > 0, so d_ap gets 0.8 and the tied d_an and d_pn
    # -0.4 each; the p = 1 gradient of each distance is the sign of its eps-shifted difference.
    np.testing.assert_allclose(ga, [[-0.4, 0.4, -1.2]], rtol=1e-15)
    np.testing.assert_allclose(gp, [[0.4, -0.4, 0.4]], rtol=1e-15)
    np.testing.assert_allclose(gn, [[0.0, 0.0, 0.8]], rtol=1e-15)


def test_triplet_p1_bitwise_on_every_cpu_target(rng):
    """With p = 1 the row sums hold only additions (no product the compiler could fuse into an
    FMA on AVX2), so the written-down summation order makes every target agree to the bit. Left to
    the vectoriser, float64 rows of 3 or more values summed in one order per target (float32 terms
    widened to double summed exactly here, so float64 is the case that tells)."""
    dtype = np.float64
    from losskit import _core

    targets = _core.available_cpu_targets().split(",")
    before = _core.cpu_target()
    try:
        for dim in (3, 5, 8, 37):
            args = _triplet(rng, (256, dim), dtype)
            results = {}
            for target in targets:
                _core.set_cpu_target(target)
                results[target] = LF.triplet_margin_loss_forward_backward(
                    *args, p=1.0, swap=True, margin=3.0, reduction="none"
                )
            loss0, grads0 = results[targets[0]]
            for target in targets[1:]:
                loss, grads = results[target]
                assert loss.tobytes() == loss0.tobytes(), f"D={dim}: {target} != {targets[0]}"
                for g, g0 in zip(grads, grads0):
                    np.testing.assert_array_equal(g, g0, err_msg=f"D={dim}: {target}")
    finally:
        _core.set_cpu_target(before)


# ---------------------------------------------------------------------------------------------
# triplet_margin_with_distance_loss
# ---------------------------------------------------------------------------------------------
TORCH_DISTANCES = {
    "euclidean": None,  # torch.pairwise_distance
    "cosine": lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1),
    "squared_euclidean": lambda x, y: ((x - y) ** 2).sum(-1),
}


def _torch_with_distance(name):
    def fn(a, p, n, **kwargs):
        kwargs = dict(kwargs)
        kwargs["distance_function"] = TORCH_DISTANCES[name]
        return F.triplet_margin_with_distance_loss(a, p, n, **kwargs)

    return fn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "squared_euclidean"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shape", [(6,), (9, 7), (0, 3), (3, 0)])
def test_triplet_with_distance(rng, dtype, reduction, distance, swap, shape):
    args = _triplet(rng, shape, dtype)
    check_all(
        "triplet_margin_with_distance_loss",
        _torch_with_distance(distance),
        args,
        {"distance_function": distance, "margin": 0.8, "swap": swap, "reduction": reduction},
        rng,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "squared_euclidean"])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_with_distance_zero_and_identical(rng, dtype, distance, swap):
    # Zero vectors (cosine's eps 1e-8 clamp, whose gradient torch takes through the unclamped
    # norm), vectors below eps, identical anchor and positive, a swap tie.
    a, pos, neg = _triplet(rng, (6, 5), dtype)
    a[0] = 0
    pos[1] = 0
    neg[2] = 0
    pos[3] = a[3]
    neg[4] = pos[4]
    a[5] = 1e-10
    for reduction in ("none", "mean"):
        check_all(
            "triplet_margin_with_distance_loss",
            _torch_with_distance(distance),
            (a, pos, neg),
            {"distance_function": distance, "margin": 1.0, "swap": swap, "reduction": reduction},
            rng,
        )


@pytest.mark.parametrize("swap", [False, True])
def test_cosine_distance_one_dimensional_small_norms_float32(rng, swap):
    """At D = 1 the cosine distance is constant (cos = +-1) and torch's gradient exactly 0; the two
    terms of losskit's gradient cancel there, and computed in float32 they left eps / ||x|| (0.3 at
    ||x|| = 1e-3). Found by the fuzz campaign; the terms are now combined in double."""
    a, pos, neg = _triplet(rng, (300, 1), np.float32)
    pos[::3] *= 1e-3
    a[1::3] *= 1e-3
    for reduction in ("none", "sum"):
        check_all(
            "triplet_margin_with_distance_loss",
            _torch_with_distance("cosine"),
            (a, pos, neg),
            {"distance_function": "cosine", "margin": 5.0, "swap": swap, "reduction": reduction},
            rng,
        )


def _np_manhattan(x1, x2):
    diff = x1 - x2

    def vjp(g):
        gx = np.sign(diff) * np.expand_dims(g, -1)
        return gx, -gx

    return np.abs(diff).sum(-1), vjp


def _torch_manhattan(x1, x2):
    return (x1 - x2).abs().sum(-1)


def _scaled_norm(x):
    """The 2-norm of the last axis scaled by its largest element, as torch's is: NumPy's squares
    1e-30 to 0 in float32."""
    m = np.max(np.abs(x), axis=-1, keepdims=True, initial=0)
    m = np.where(m > 0, m, 1).astype(x.dtype)
    return m * np.linalg.norm(x / m, axis=-1, keepdims=True)


def _np_cubed_cosine(x1, x2):
    """A smooth callable distance with a nontrivial vjp: d = (1 - cos)^2 (eps-free cos)."""
    n1, n2 = _scaled_norm(x1), _scaled_norm(x2)
    c = (x1 * x2).sum(-1, keepdims=True) / (n1 * n2)
    d = (1 - c) ** 2

    # dc/dx1 = (x2 / n2 - c x1 / n1) / n1: no n1**2, which underflows in float32 for a norm of 1e-30
    # (0 * inf = NaN at a zero gradient) where torch's autograd divides twice and stays finite.
    def vjp(g):
        gc = np.expand_dims(g, -1) * -2 * (1 - c)
        g1 = gc * ((x2 / n2 - c * (x1 / n1)) / n1)
        g2 = gc * ((x1 / n1 - c * (x2 / n2)) / n2)
        return g1, g2

    return d[..., 0], vjp


def _torch_cubed_cosine(x1, x2):
    c = (x1 * x2).sum(-1) / (x1.norm(dim=-1) * x2.norm(dim=-1))
    return (1 - c) ** 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shape", [(6,), (9, 7), (0, 3)])
@pytest.mark.parametrize("pair", [(_np_manhattan, _torch_manhattan), (_np_cubed_cosine, _torch_cubed_cosine)])
def test_triplet_with_callable_distance(rng, dtype, reduction, swap, shape, pair):
    np_fn, torch_fn = pair
    args = _triplet(rng, shape, dtype)
    kwargs = {"distance_function": np_fn, "margin": 1.5, "swap": swap, "reduction": reduction}
    loss = LF.triplet_margin_with_distance_loss(*args, **kwargs)
    go = _grad_output(rng, reduction, np.shape(loss), dtype)
    grads = LF.triplet_margin_with_distance_loss_backward(go, *args, **kwargs)
    loss2, grads2 = LF.triplet_margin_with_distance_loss_forward_backward(*args, grad_output=go, **kwargs)
    tkwargs = dict(kwargs, distance_function=torch_fn)
    compare(F.triplet_margin_with_distance_loss, args, tkwargs, (0, 1, 2), loss, grads, grad_output=go)
    np.testing.assert_array_equal(np.asarray(loss2), np.asarray(loss))
    for g, g2 in zip(grads, grads2):
        np.testing.assert_array_equal(g, g2)


def test_callable_distance_bad_returns():
    a = np.ones((2, 3))
    with pytest.raises(TypeError, match="distance_function expected to return"):
        LF.triplet_margin_with_distance_loss(a, a, a, distance_function=lambda x, y: np.zeros(2))
    with pytest.raises(ValueError, match="distance_function\\(anchor, negative\\)"):
        # d(anchor, negative) has 1 entry where d(anchor, positive) has 2
        LF.triplet_margin_with_distance_loss(
            a, a, a[:1], distance_function=lambda x, y: (np.zeros(len(y)), lambda g: (x, y))
        )
    with pytest.raises(ValueError, match="vjp's first gradient expected shape"):
        LF.triplet_margin_with_distance_loss_backward(
            1.0, a, a, a, distance_function=lambda x, y: (np.zeros(2), lambda g: (np.zeros(3), y))
        )


# ---------------------------------------------------------------------------------------------
# threading: inputs large enough for several threads, bitwise equal for 1, 2 and 8 threads
# ---------------------------------------------------------------------------------------------
LARGE_CASES = [
    ("cosine_embedding_loss", {"margin": 0.1}),
    ("triplet_margin_loss", {"swap": True}),
    ("triplet_margin_loss", {"p": 1.5}),
    ("triplet_margin_with_distance_loss", {"distance_function": "cosine", "swap": True}),
    ("triplet_margin_with_distance_loss", {"distance_function": "squared_euclidean"}),
]


def _large_args(rng, name, dtype, shape=(4099, 40)):
    if name == "cosine_embedding_loss":
        return (
            rng.standard_normal(shape).astype(dtype),
            rng.standard_normal(shape).astype(dtype),
            _labels(rng, shape[0]).astype(dtype),
        )
    return _triplet(rng, shape, dtype)


@pytest.mark.parametrize("name,kwargs", LARGE_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_threads_bitwise(rng, name, kwargs, reduction):
    args = _large_args(rng, name, np.float32)
    fb = getattr(LF, name + "_forward_backward")
    before = losskit.get_num_threads()
    results = []
    try:
        for n in (1, 2, 8):
            losskit.set_num_threads(n)
            results.append(fb(*args, reduction=reduction, **kwargs))
    finally:
        losskit.set_num_threads(before)
    for loss, grads in results[1:]:
        np.testing.assert_array_equal(np.asarray(loss), np.asarray(results[0][0]))
        for g, g0 in zip(grads, results[0][1]):
            np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("name,kwargs", LARGE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_against_torch(rng, name, kwargs, dtype):
    args = _large_args(rng, name, dtype)
    before = losskit.get_num_threads()
    losskit.set_num_threads(2)
    try:
        if name == "cosine_embedding_loss":
            check_all(name, F.cosine_embedding_loss, args, dict(kwargs), rng, ndiff=2)
        elif name == "triplet_margin_loss":
            check_all(name, F.triplet_margin_loss, args, dict(kwargs), rng)
        else:
            check_all(name, _torch_with_distance(kwargs["distance_function"]), args, dict(kwargs), rng)
    finally:
        losskit.set_num_threads(before)


@pytest.mark.parametrize("target", ["baseline", "avx2", "avx512"])
def test_every_cpu_target(rng, target):
    from losskit import _core

    if target not in _core.available_cpu_targets():
        pytest.skip(f"{target} not available on this CPU")
    before = _core.cpu_target()
    _core.set_cpu_target(target)
    try:
        for p in (2.0, 1.0, 3.0, math.inf):
            args = _triplet(rng, (37, 19), np.float32)
            check_all("triplet_margin_loss", F.triplet_margin_loss, args, {"p": p, "swap": True}, rng)
        args = _large_args(rng, "cosine_embedding_loss", np.float64, (37, 19))
        check_all("cosine_embedding_loss", F.cosine_embedding_loss, args, {}, rng, ndiff=2)
        for d in TORCH_DISTANCES:
            args = _triplet(rng, (37, 19), np.float64)
            check_all(
                "triplet_margin_with_distance_loss",
                _torch_with_distance(d),
                args,
                {"distance_function": d, "swap": True},
                rng,
            )
    finally:
        _core.set_cpu_target(before)


# ---------------------------------------------------------------------------------------------
# hypothesis
# ---------------------------------------------------------------------------------------------
@st.composite
def _embedding_data(draw):
    n = draw(st.integers(0, 5))
    d = draw(st.integers(0, 6))
    unbatched = draw(st.booleans()) and d > 0
    shape = (d,) if unbatched else (n, d)
    elems = st.floats(-4, 4, allow_nan=False, width=32)
    arrays = [
        np.array(
            draw(st.lists(elems, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))), dtype=np.float64
        ).reshape(shape)
        for _ in range(3)
    ]
    return shape, arrays


@given(
    data=_embedding_data(),
    p=st.sampled_from([1.0, 1.5, 2.0, 3.0, math.inf]),
    swap=st.booleans(),
    margin=st.floats(0.01, 3),
    reduction=st.sampled_from(REDUCTIONS),
    dtype=st.sampled_from(DTYPES),
)
def test_hypothesis_triplet(data, p, swap, margin, reduction, dtype):
    shape, arrays = data
    args = tuple(a.astype(dtype) for a in arrays)
    if p == math.inf and shape[-1] == 0:  # torch: the max of no values has no identity
        with pytest.raises(ValueError, match="non-empty last dimension for p=inf"):
            LF.triplet_margin_loss(*args, p=p)
        return
    check_all(
        "triplet_margin_loss",
        F.triplet_margin_loss,
        args,
        {"margin": margin, "p": p, "swap": swap, "reduction": reduction},
        np.random.default_rng(0),
    )


@given(
    data=_embedding_data(),
    distance=st.sampled_from(sorted(TORCH_DISTANCES)),
    swap=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
)
def test_hypothesis_triplet_with_distance(data, distance, swap, reduction):
    _, args = data
    # A swap minimum whose two distances agree to rounding (anchor parallel to positive under the
    # cosine distance), and a hinge at its kink (margin + d(a, p) - d(a, n) within rounding of 0,
    # as for an anchor equal to its positive and a zero negative), are decided by the last bit of
    # each side's own formula, and torch's cosine_similarity rounds otherwise than losskit's
    # (torch's distance of a vector to itself is 0 or one ulp either side): either side is a right
    # gradient there. Exact and rounding-decided ties have tests of their own
    # (test_triplet_swap_tie_*, test_cosine_distance_of_a_vector_to_itself_is_zero_at_the_hinge).
    dist = TORCH_DISTANCES[distance] or F.pairwise_distance
    a, p, n = (torch.from_numpy(x) for x in args)
    d_ap, d_an, d_pn = dist(a, p).numpy(), dist(a, n).numpy(), dist(p, n).numpy()
    d_neg = np.minimum(d_an, d_pn) if swap else d_an
    assume(not np.isclose(1.0 + d_ap, d_neg, rtol=1e-9, atol=1e-12).any())  # margin 1
    if swap:
        assume(not np.isclose(d_an, d_pn, rtol=1e-9, atol=1e-12).any())
    check_all(
        "triplet_margin_with_distance_loss",
        _torch_with_distance(distance),
        tuple(args),
        {"distance_function": distance, "swap": swap, "reduction": reduction},
        np.random.default_rng(0),
    )


@given(
    data=_embedding_data(),
    margin=st.floats(-1, 1),
    reduction=st.sampled_from(REDUCTIONS),
    labels=st.lists(st.sampled_from([-1.0, 1.0, 0.0]), min_size=5, max_size=5),
)
def test_hypothesis_cosine(data, margin, reduction, labels):
    shape, (x1, x2, _) = data
    t = np.asarray(labels[: shape[0]] if len(shape) == 2 else labels[0], dtype=np.float64)
    check_all(
        "cosine_embedding_loss",
        F.cosine_embedding_loss,
        (x1, x2, t),
        {"margin": margin, "reduction": reduction},
        np.random.default_rng(0),
        ndiff=2,
    )


# ---------------------------------------------------------------------------------------------
# classes
# ---------------------------------------------------------------------------------------------
def test_classes(rng):
    a, p, n = _triplet(rng, (4, 3), np.float64)
    t = _labels(rng, 4)
    cases = [
        (losskit.CosineEmbeddingLoss(margin=0.2), torch.nn.CosineEmbeddingLoss(margin=0.2), (a, p, t), 2),
        (
            losskit.TripletMarginLoss(margin=0.5, p=1.5, swap=True),
            torch.nn.TripletMarginLoss(margin=0.5, p=1.5, swap=True),
            (a, p, n),
            3,
        ),
        (
            losskit.TripletMarginWithDistanceLoss(distance_function="squared_euclidean", reduction="sum"),
            torch.nn.TripletMarginWithDistanceLoss(
                distance_function=TORCH_DISTANCES["squared_euclidean"], reduction="sum"
            ),
            (a, p, n),
            3,
        ),
        (
            losskit.TripletMarginWithDistanceLoss(distance_function=_np_manhattan, swap=True),
            torch.nn.TripletMarginWithDistanceLoss(distance_function=_torch_manhattan, swap=True),
            (a, p, n),
            3,
        ),
    ]
    for crit, tcrit, args, nd in cases:
        with pytest.raises(RuntimeError):
            type(crit)().backward()
        loss = crit(*args)
        grads = crit.backward()
        compare(lambda *xs: tcrit(*xs), args, {}, tuple(range(nd)), loss, grads)
        loss2, grads2 = crit.forward_backward(*args)
        assert float(loss2) == float(loss)
        for g, g2 in zip(grads, grads2):
            np.testing.assert_array_equal(g, g2)
    assert (
        repr(losskit.TripletMarginLoss())
        == "TripletMarginLoss(margin=1.0, p=2.0, eps=1e-06, swap=False, reduction='mean')"
    )
    assert "margin=0.2" in repr(losskit.CosineEmbeddingLoss(margin=0.2))


# ---------------------------------------------------------------------------------------------
# errors: raised by the core before any work, naming the argument
# ---------------------------------------------------------------------------------------------
A = np.ones((3, 4))
ERRORS = [
    (LF.triplet_margin_loss, (A, A, np.ones((3, 5))), {}, ValueError, "negative expected the last dimension of anchor"),
    (LF.triplet_margin_loss, (A, np.ones(4), A), {}, ValueError, "same number of dimensions"),
    (LF.triplet_margin_loss, (A, A, A), {"p": 0}, ValueError, "p expected a number greater than 0, got 0"),
    (LF.triplet_margin_loss, (A, A, A), {"p": -1.5}, ValueError, "p expected a number greater than 0"),
    (LF.triplet_margin_loss, (np.ones((3, 0)),) * 3, {"p": math.inf}, ValueError, "non-empty last dimension"),
    (LF.triplet_margin_loss, (A, A, A), {"margin": 0}, ValueError, "margin expected a number greater than 0"),
    (LF.triplet_margin_loss, (A, A, A), {"reduction": "batchmean"}, ValueError, "reduction expected"),
    (LF.triplet_margin_loss, (A, A, A), {"reduction": "avg"}, ValueError, "reduction expected"),
    (LF.triplet_margin_loss, (A.astype(complex), A, A), {}, TypeError, "anchor expected a real"),
    (LF.triplet_margin_loss, (A, np.array(["a"] * 4), A), {}, TypeError, "positive expected a real"),
    (
        LF.triplet_margin_with_distance_loss,
        (A, A, A),
        {"distance_function": "manhattan"},
        ValueError,
        "distance_function expected",
    ),
    (
        LF.triplet_margin_with_distance_loss,
        (A, A, A),
        {"distance_function": 3},
        TypeError,
        "distance_function expected",
    ),
    (LF.triplet_margin_with_distance_loss, (A, A, A), {"margin": -1.0}, ValueError, "margin expected"),
    (
        LF.triplet_margin_with_distance_loss,
        (A, A, A),
        {"margin": -1.0, "distance_function": _np_manhattan},
        ValueError,
        "margin expected",
    ),
    (
        LF.triplet_margin_with_distance_loss,
        (A, A, np.ones(4)),
        {"distance_function": _np_manhattan},
        ValueError,
        "same number of dimensions",
    ),
    (
        LF.triplet_margin_with_distance_loss,
        (A, A, np.ones((2, 4))),
        {"distance_function": "cosine"},
        ValueError,
        "negative expected rows broadcastable with anchor's shape \\(3, 4\\)",
    ),
    (
        LF.cosine_embedding_loss,
        (A, np.ones((3, 5)), np.ones(3)),
        {},
        ValueError,
        "input2 expected the last dimension of input1",
    ),
    (LF.cosine_embedding_loss, (A, A, np.ones(2)), {}, ValueError, "target expected rows broadcastable"),
    (LF.cosine_embedding_loss, (A, A, np.ones((3, 1))), {}, ValueError, "target expected a 0-d or 1-d"),
    (LF.cosine_embedding_loss, (A, A, np.ones(())), {}, ValueError, "input1 expected a 1-d array"),
    (LF.cosine_embedding_loss, (np.ones(4), np.ones(4), np.ones(1)), {}, ValueError, "input1 expected a 2-d array"),
    (LF.cosine_embedding_loss, (A, A, np.ones(3)), {"reduction": "batchmean"}, ValueError, "reduction expected"),
]


@pytest.mark.parametrize("fn,args,kwargs,exc,match", ERRORS)
def test_errors(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    bwd = getattr(LF, fn.__name__ + "_backward")
    with pytest.raises(exc, match=match):
        bwd(None, *args, **kwargs)


def test_errors_grad_output_and_target_grad():
    with pytest.raises(ValueError, match="grad_output expected a scalar"):
        LF.triplet_margin_loss_backward(np.ones(3), A, A, A)
    with pytest.raises(ValueError, match="grad_output expected shape \\(3,\\)"):
        LF.triplet_margin_loss_backward(np.ones(4), A, A, A, reduction="none")
    with pytest.raises(ValueError, match="target_grad"):
        LF.cosine_embedding_loss_backward(1.0, A, A, np.ones(3), target_grad=True)
    with pytest.raises(ValueError, match="target_grad"):
        LF.triplet_margin_loss_forward_backward(A, A, A, target_grad=True)


def test_no_copy_of_contiguous_inputs(rng):
    # forward on read-only float32 inputs: nothing is written, results are fresh arrays
    a, p, n = _triplet(rng, (5, 4), np.float32)
    for x in (a, p, n):
        x.setflags(write=False)
    loss, (ga, gp, gn) = LF.triplet_margin_loss_forward_backward(a, p, n)
    assert ga.dtype == np.float32 and not np.shares_memory(ga, a)
    # non-contiguous inputs are accepted (copied once by the Python layer)
    loss2 = LF.triplet_margin_loss(np.asfortranarray(a), p, n)
    assert float(loss2) == float(loss)


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_nan_inf_and_0d(rng, p, swap):
    # NaN and inf entries propagate as in torch (NaN losses, NaN gradients in those rows; the
    # inf row's hinge is inactive); 0-d inputs are one vector of one value (a 0-d result).
    a, pos, neg = _triplet(rng, (4, 5), np.float64)
    a[1, 2] = np.nan
    neg[2, 0] = np.inf
    check_all(
        "triplet_margin_loss", F.triplet_margin_loss, (a, pos, neg), {"p": p, "swap": swap, "reduction": "none"}, rng
    )
    zero_d = (np.array(1.0), np.array(2.0), np.array(3.5))
    check_all("triplet_margin_loss", F.triplet_margin_loss, zero_d, {"p": p, "swap": swap, "reduction": "none"}, rng)


def test_cosine_embedding_nan(rng):
    x1, x2 = rng.standard_normal((2, 4, 5))
    x1[1, 2] = np.nan
    x2[2, 0] = np.inf
    check_all(
        "cosine_embedding_loss",
        F.cosine_embedding_loss,
        (x1, x2, np.array([1.0, -1, 1, -1])),
        {"reduction": "none"},
        rng,
        ndiff=2,
    )


def test_python_threads(rng):
    # 8 Python threads calling the core at once (the GIL is released around every core call)
    # get exactly the serial results.
    from concurrent.futures import ThreadPoolExecutor

    jobs = [_triplet(rng, (300, 33), np.float32) for _ in range(8)]

    def run(args):
        return LF.triplet_margin_with_distance_loss_forward_backward(*args, distance_function="cosine", swap=True)

    serial = [run(a) for a in jobs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(run, jobs))
    for (l1, g1), (l2, g2) in zip(serial, parallel):
        assert float(l1) == float(l2)
        for x, y in zip(g1, g2):
            np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# broadcasting of rows (torch broadcasts the paired inputs and the label)
# ---------------------------------------------------------------------------------------------
TRIPLET_BROADCASTS = [
    ((4, 5), (1, 5), (4, 5)),
    ((1, 5), (4, 5), (1, 5)),
    ((2, 1, 5), (1, 3, 5), (2, 3, 5)),
    ((0, 5), (1, 5), (1, 5)),
    ((1, 1), (3, 1), (1, 1)),
]


@pytest.mark.parametrize("shapes", TRIPLET_BROADCASTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_broadcast_rows(rng, shapes, reduction, dtype):
    args = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    check_all("triplet_margin_loss", F.triplet_margin_loss, args, {"swap": True, "p": 1.5, "reduction": reduction}, rng)
    for d in TORCH_DISTANCES:
        check_all(
            "triplet_margin_with_distance_loss",
            _torch_with_distance(d),
            args,
            {"distance_function": d, "swap": True, "reduction": reduction},
            rng,
        )


@pytest.mark.parametrize(
    "shapes",
    [
        ((4, 5), (1, 5), (4,)),
        ((1, 5), (4, 5), (1,)),
        ((1, 5), (1, 5), (4,)),
        ((4, 5), (4, 5), (1,)),
        ((1, 0), (3, 0), (3,)),
    ],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_broadcast_rows(rng, shapes, reduction, dtype):
    s1, s2, st_ = shapes
    args = (
        rng.standard_normal(s1).astype(dtype),
        rng.standard_normal(s2).astype(dtype),
        rng.choice([-1.0, 1.0], size=st_).astype(dtype),
    )
    check_all(
        "cosine_embedding_loss", F.cosine_embedding_loss, args, {"margin": 0.1, "reduction": reduction}, rng, ndiff=2
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("swap", [False, True])
def test_cosine_distance_of_a_vector_to_itself_is_zero_at_the_hinge(rng, dtype, swap):
    """anchor == positive and a zero negative put the triplet exactly at its hinge
    (margin + d(a, p) - d(a, n) = 1 + 0 - 1). losskit's cosine distance of a vector to itself is
    exactly 0, so the gradient flows (clamp_min passes it at 0, and the zero negative's is huge),
    as torch's does for these vectors (its own d(a, a) is 0 for them; for others it rounds to one
    ulp either side, and the hinge's side follows that last bit). A cosine computed as
    dot / (||a|| ||a||) came out 1 + 2^-52 here and cut the gradient (found by hypothesis)."""
    a = np.array([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 4.0, 0.0]], dtype)
    n = np.zeros_like(a)
    for reduction in ("none", "sum"):
        loss, grads = check_all(
            "triplet_margin_with_distance_loss",
            _torch_with_distance("cosine"),
            (a, a.copy(), n),
            {"distance_function": "cosine", "swap": swap, "reduction": reduction},
            rng,
        )
        assert (np.abs(grads[2]).max(axis=-1) > 1e6).all()  # the hinge passed the gradient


# A single broadcast row read in place for thousands of rows: its gradient is summed over blocks
# of 256 rows on both threads.
@pytest.mark.parametrize(
    "shapes", [((5000, 16), (1, 16), (5000, 16)), ((1, 40), (3000, 40), (1, 40)), ((3000, 40), (3000, 40), (1, 40))]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_broadcast_single_row_many_rows(rng, shapes, dtype):
    args = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    for reduction in ("none", "sum"):
        check_all("triplet_margin_loss", F.triplet_margin_loss, args, {"swap": True, "reduction": reduction}, rng)
        check_all(
            "triplet_margin_with_distance_loss",
            _torch_with_distance("cosine"),
            args,
            {"distance_function": "cosine", "reduction": reduction},
            rng,
        )


@pytest.mark.parametrize("shapes", [((4000, 32), (1, 32), (4000,)), ((1, 32), (1, 32), (4000,))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_broadcast_single_row_many_rows(rng, shapes, dtype):
    s1, s2, st_ = shapes
    args = (
        rng.standard_normal(s1).astype(dtype),
        rng.standard_normal(s2).astype(dtype),
        rng.choice([-1.0, 1.0], size=st_).astype(dtype),
    )
    check_all("cosine_embedding_loss", F.cosine_embedding_loss, args, {"margin": -0.5}, rng, ndiff=2)


@pytest.mark.parametrize("kind", ["float32", "bfloat16"])
def test_broadcast_row_gradient_is_the_same_on_any_thread_count(rng, kind):
    dtype = np.float32 if kind == "float32" else pytest.importorskip("ml_dtypes").bfloat16
    a = rng.standard_normal((9000, 48)).astype(dtype)
    p = rng.standard_normal((1, 48)).astype(dtype)
    n = rng.standard_normal((9000, 48)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        losskit.set_num_threads(threads)
        results.append(LF.triplet_margin_loss_forward_backward(a, p, n, swap=True))
    for loss, grads in results[1:]:
        assert np.asarray(loss).tobytes() == np.asarray(results[0][0]).tobytes()
        for g, g0 in zip(grads, results[0][1]):
            assert g.tobytes() == g0.tobytes()


_PEAK_RSS = """
import sys
import numpy as np
import losskit.functional as F
dtype = np.float32 if sys.argv[1] == "float32" else __import__("ml_dtypes").bfloat16
rng = np.random.default_rng(0)
a = rng.standard_normal((8192, 1024), dtype=np.float32).astype(dtype)
n = rng.standard_normal((8192, 1024), dtype=np.float32).astype(dtype)
p = rng.standard_normal((1, 1024), dtype=np.float32).astype(dtype)
F.triplet_margin_loss_forward_backward(a[:8], p, n[:8])

def kib(field):
    status = open("/proc/self/status").read().split("\\n")
    return int(next(line.split()[1] for line in status if line.startswith(field + ":")))

with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current RSS
    f.write("5")
before = kib("VmRSS")
loss, grads = F.triplet_margin_loss_forward_backward(a, p, n)
print((kib("VmHWM") - before) * 1024, sum(g.nbytes for g in grads), a.nbytes)
"""


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_broadcast_row_is_not_expanded(dtype):
    """A (1, D) positive beside (N, D) anchor and negative: the core reads the one row in place and
    sums its gradient over blocks of rows, so the call's peak memory is its gradients plus small
    partial sums, where expanding the positive (an (N, D) copy and an (N, D) gradient temporary)
    would add two input-sized arrays. The peak resident memory of a fresh process during the call
    (the core's own allocations are invisible to tracemalloc)."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory")
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, dtype], capture_output=True, text=True, check=True)
    grown, grads, input_bytes = (int(v) for v in out.stdout.split())
    assert grads <= grown < grads + input_bytes // 2, (grown, grads, input_bytes)


def test_vector_dimension_does_not_broadcast():
    # torch would broadcast (3, 1) against (3, 5) inside x1 - x2; losskit asks for equal D.
    with pytest.raises(ValueError, match="vector dimension does not broadcast"):
        LF.triplet_margin_loss(A, np.ones((3, 1)), A)
