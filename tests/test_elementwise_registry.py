"""The registered element-wise losses (log_cosh_loss, pseudo_huber_loss, msle_loss,
sigmoid_focal_loss) against
torch autograd of their published formulas: values and input and target gradients for every
option, reduction, dtype and shape form, the fused pass, edge values, the stable forms far out,
bad options, and optax where optax has the loss."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch

import losskit
import losskit.functional as F
from _reference import assert_close, compare, torch_call

REDUCTIONS = ["none", "mean", "sum"]
DTYPES = [np.float32, np.float64]


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return {"none": loss, "mean": loss.mean() if loss.numel() else loss.sum() / 0, "sum": loss.sum()}[reduction]


# The published formulas, literally (torch autograd differentiates them).
def ref_log_cosh(x, y, reduction="mean"):
    return _reduce(torch.log(torch.cosh(x - y)), reduction)


def ref_pseudo_huber(x, y, delta=1.0, reduction="mean"):
    return _reduce(delta**2 * (torch.sqrt(1 + ((x - y) / delta) ** 2) - 1), reduction)


def ref_msle(x, y, reduction="mean"):
    return _reduce((torch.log1p(x) - torch.log1p(y)) ** 2, reduction)


def ref_sigmoid_focal(x, y, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss as published (broadcast first: torchvision needs equal
    shapes, losskit broadcasts like every element-wise loss)."""
    x, y = torch.broadcast_tensors(x, y)
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction)


def _labels(r, s, d):
    """Binary labels, with a quarter soft labels in [0, 1]."""
    hard = (r.random(s) < 0.5).astype(d)
    return np.where(r.random(s) < 0.25, r.random(s), hard).astype(d)


def _normal(r, s, d, scale=1.0):
    return (r.standard_normal(s) * scale).astype(d)


def _above_minus_one(r, s, d):
    return r.uniform(-0.9, 4.0, s).astype(d)


CASES: List[Tuple[str, Callable[..., Any], Callable[..., Tuple[np.ndarray, np.ndarray]], List[Dict[str, Any]]]] = [
    ("log_cosh_loss", ref_log_cosh, lambda r, s, t, d: (_normal(r, s, d, 3), _normal(r, t, d)), [{}]),
    (
        "pseudo_huber_loss",
        ref_pseudo_huber,
        lambda r, s, t, d: (_normal(r, s, d, 3), _normal(r, t, d)),
        [{}, {"delta": 0.3}, {"delta": 4.0}],
    ),
    ("msle_loss", ref_msle, lambda r, s, t, d: (_above_minus_one(r, s, d), _above_minus_one(r, t, d)), [{}]),
    (
        "sigmoid_focal_loss",
        ref_sigmoid_focal,
        lambda r, s, t, d: (_normal(r, s, d, 3), _labels(r, t, d)),
        [{}, {"alpha": -1.0, "gamma": 0.0}, {"alpha": 0.7, "gamma": 0.5}, {"gamma": 3.0}, {"alpha": 0.0, "gamma": 1.0}],
    ),
]
SHAPES = [((7, 5), (7, 5)), ((4, 3, 2), (3, 2)), ((), ()), ((6,), (1,))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, ref, make, variants", CASES, ids=[c[0] for c in CASES])
def test_against_torch_autograd(name, ref, make, variants, reduction, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{name} {reduction}".encode()))
    for shape, tshape in SHAPES:
        for kw in variants:
            x, y = make(rng, shape, tshape, dtype)
            out_shape = np.broadcast_shapes(shape, tshape)
            go = rng.standard_normal(out_shape).astype(dtype) if reduction == "none" else dtype(0.7)
            what = f"{name}{kw} {reduction} {shape}/{tshape}"
            loss = getattr(F, name)(x, y, reduction=reduction, **kw)
            grads = getattr(F, name + "_backward")(go, x, y, reduction=reduction, target_grad=True, **kw)
            compare(ref, (x, y), dict(kw, reduction=reduction), (0, 1), loss, grads, go, what)
            fused, fused_grads = getattr(F, name + "_forward_backward")(
                x, y, grad_output=go, reduction=reduction, target_grad=True, **kw
            )
            np.testing.assert_array_equal(fused, loss)
            for a, b in zip(fused_grads, grads):
                np.testing.assert_array_equal(a, b)
            # without target_grad: the input's gradient alone, the same bits
            g_in = getattr(F, name + "_backward")(go, x, y, reduction=reduction, **kw)
            np.testing.assert_array_equal(g_in, grads[0])


def test_defaults_follow_the_references():
    x, y = np.linspace(-3, 3, 12), (np.arange(12) % 2).astype(np.float64)
    for name in ("log_cosh_loss", "pseudo_huber_loss", "msle_loss"):
        assert np.ndim(getattr(F, name)(x + 3, y)) == 0
    # torchvision's defaults: alpha 0.25, gamma 2, unreduced
    assert F.sigmoid_focal_loss(x, y).shape == (12,)
    assert_close(F.sigmoid_focal_loss(x, y), ref_sigmoid_focal(torch.from_numpy(x), torch.from_numpy(y)).numpy())


def test_edge_values():
    inf, nan = np.inf, np.nan
    x = np.array([0.0, inf, -inf, nan, 1e30, -1e30, 1e-30])
    y = np.zeros_like(x)
    l, (gx, gy) = F.log_cosh_loss_forward_backward(x, y, reduction="none", target_grad=True)
    np.testing.assert_array_equal(l[:3], [0.0, inf, inf])
    assert np.isnan(l[3]) and np.isnan(gx[3])
    np.testing.assert_array_equal(gx[[0, 1, 2, 4, 5]], [0.0, 1.0, -1.0, 1.0, -1.0])
    np.testing.assert_allclose(l[4:6], 1e30)
    np.testing.assert_allclose([l[6], gx[6]], [0.5e-60, 1e-30], rtol=1e-15)  # no cancellation near 0
    np.testing.assert_array_equal(gy, -gx)

    l, g = F.pseudo_huber_loss_forward_backward(x, y, reduction="none", delta=2.0)
    np.testing.assert_array_equal(l[:3], [0.0, inf, inf])
    np.testing.assert_array_equal(g[[0, 1, 2]], [0.0, 2.0, -2.0])
    np.testing.assert_allclose(l[4:6], 2e30)  # delta |z|, where the literal formula overflows
    np.testing.assert_allclose(g[4:6], [2.0, -2.0])
    assert np.isnan(l[3]) and np.isnan(g[3])
    np.testing.assert_allclose(l[6], 0.5e-60, rtol=1e-15)

    # msle at and below -1: what log1p gives (no clamp), as torch's autograd of the formula
    xm = np.array([-1.0, -2.0, 0.5, -1.0])
    ym = np.array([0.0, 0.0, -1.0, -1.0])
    lm, gm = F.msle_loss_forward_backward(xm, ym, reduction="none", target_grad=True)
    ref_l, ref_g = torch_call(ref_msle, (xm, ym), {"reduction": "none"}, (0, 1))
    assert_close(lm, ref_l, what="msle edge")
    for a, b in zip(gm, ref_g):
        assert_close(a, b, what="msle edge grad")

    # empty: mean NaN, sum 0, as torch
    e = np.zeros((0, 3))
    for name in ("log_cosh_loss", "pseudo_huber_loss", "msle_loss", "sigmoid_focal_loss"):
        assert np.isnan(getattr(F, name)(e, e, reduction="mean"))
        assert getattr(F, name)(e, e, reduction="sum") == 0
        assert getattr(F, name + "_backward")(None, e, e, reduction="mean").shape == (0, 3)


def test_stable_far_out_against_float64():
    """float32 losskit against the float64 formula where float32's literal formula overflows or
    cancels (log cosh beyond 89 and near 0)."""
    z = np.array([-200.0, -90.0, -30.0, -1.5, -1e-3, 1e-4, 0.99, 1.01, 20.0, 95.0, 300.0], np.float32)
    l, g = F.log_cosh_loss_forward_backward(z, np.zeros_like(z), reduction="none")
    z64 = torch.from_numpy(z.astype(np.float64))
    exact = (torch.logaddexp(z64, -z64) - np.log(2.0)).numpy()
    # float32 to torch's default float32 tolerance (a few ulp: the exact value, not an overflow)
    np.testing.assert_allclose(l, exact, rtol=1.3e-6)
    np.testing.assert_allclose(g, np.tanh(z.astype(np.float64)), rtol=1.3e-6)


def test_against_optax():
    jnp = pytest.importorskip("jax.numpy")
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(200) * 4, rng.standard_normal(200)
    import jax

    jax.config.update("jax_enable_x64", True)  # optax in float64, as losskit computes these arrays
    try:
        theirs64 = np.asarray(optax.log_cosh(jnp.asarray(x), jnp.asarray(y)))
    finally:
        jax.config.update("jax_enable_x64", False)
    # optax's logaddexp(z, -z) - log 2 cancels for small z; losskit's form does not
    np.testing.assert_allclose(F.log_cosh_loss(x, y, reduction="none"), theirs64, rtol=1e-12, atol=1e-15)

    # sigmoid_focal_loss: optax forms 1 - p_t in log space, as stable as losskit's sigmoid form;
    # alpha=None there is alpha < 0 here
    labels = np.where(rng.random(200) < 0.3, rng.random(200), (rng.random(200) < 0.5).astype(np.float64))
    jax.config.update("jax_enable_x64", True)
    try:
        for alpha, gamma in ((None, 2.0), (0.25, 0.5), (0.8, 3.0)):
            theirs = np.asarray(optax.sigmoid_focal_loss(jnp.asarray(x), jnp.asarray(labels), alpha=alpha, gamma=gamma))
            ours = F.sigmoid_focal_loss(x, labels, alpha=-1.0 if alpha is None else alpha, gamma=gamma)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300, err_msg=f"alpha {alpha} gamma {gamma}")
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize(
    "name, kwargs, argument",
    [
        ("pseudo_huber_loss", {"delta": 0.0}, "delta"),
        ("pseudo_huber_loss", {"delta": -1.0}, "delta"),
        ("pseudo_huber_loss", {"delta": np.nan}, "delta"),
        ("sigmoid_focal_loss", {"gamma": -0.5}, "gamma"),
        ("sigmoid_focal_loss", {"gamma": np.inf}, "gamma"),
        ("sigmoid_focal_loss", {"gamma": np.nan}, "gamma"),
        ("sigmoid_focal_loss", {"alpha": np.nan}, "alpha"),
        ("sigmoid_focal_loss", {"alpha": -np.inf}, "alpha"),
        ("log_cosh_loss", {"reduction": "batchmean"}, "reduction"),
        ("msle_loss", {"reduction": "avg"}, "reduction"),
    ],
)
def test_bad_options_name_the_argument(name, kwargs, argument):
    x = np.zeros(3)
    for fn in (getattr(F, name), getattr(F, name + "_forward_backward")):
        with pytest.raises(ValueError, match=rf"{name}: {argument}"):
            fn(x, x, **kwargs)


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="log_cosh_loss: .*target"):
        F.log_cosh_loss(np.zeros((2, 3)), np.zeros((4,)))


def test_classes_and_normalizer():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 4)), (rng.random((5, 4)) < 0.5).astype(np.float64)
    for cls, name, kw in (
        (losskit.LogCoshLoss, "log_cosh_loss", {}),
        (losskit.PseudoHuberLoss, "pseudo_huber_loss", {"delta": 0.5}),
        (losskit.MSLELoss, "msle_loss", {}),
        (losskit.SigmoidFocalLoss, "sigmoid_focal_loss", {"alpha": 0.4, "gamma": 1.5, "reduction": "mean"}),
    ):
        crit = cls(**kw)
        xa = np.abs(x) if name == "msle_loss" else x
        loss, g = crit.forward_backward(xa, y)
        np.testing.assert_array_equal(loss, getattr(F, name)(xa, y, **kw))
        np.testing.assert_array_equal(g, getattr(F, name + "_backward")(None, xa, y, **kw))
        assert repr(crit) == f"{type(crit).__name__}({', '.join(f'{k}={v!r}' for k, v in crit._kwargs().items())})"
        kw_mean = dict(kw, reduction="mean")
        assert F.mean_normalizer(name, xa, y, **kw_mean) == 20.0
        np.testing.assert_allclose(
            getattr(F, name)(xa, y, normalizer=10.0, **kw_mean), 2 * getattr(F, name)(xa, y, **kw_mean), rtol=1e-15
        )


def test_threads_and_16bit():
    """A call past the threading threshold is bitwise the same on any thread count; 16-bit input
    is read in place and the result rounded once from float32."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(300_000).astype(np.float32)
    y = rng.standard_normal(300_000).astype(np.float32)
    old = losskit.get_num_threads()
    try:
        losskit.set_num_threads(1)
        one = F.log_cosh_loss(x, y, reduction="sum")
        losskit.set_num_threads(2)
        two = F.log_cosh_loss(x, y, reduction="sum")
    finally:
        losskit.set_num_threads(old)
    assert one == two
    xh, yh = x[:1000].astype(np.float16), y[:1000].astype(np.float16)
    lh = F.pseudo_huber_loss(xh, yh, reduction="none")
    assert lh.dtype == np.float16
    l32 = F.pseudo_huber_loss(xh.astype(np.float32), yh.astype(np.float32), reduction="none")
    np.testing.assert_array_equal(lh, l32.astype(np.float16))


@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
def test_sigmoid_focal_saturated_logits_against_float64(gamma):
    """Saturated logits in float32: losskit forms 1 - p_t and the cross-entropy from sigmoid(+-x),
    so loss and gradients keep their digits (float32 torchvision rounds 1 - p_t to 0 beyond
    |x| ~ 17, losing them, with NaN gradients for gamma < 1); compared with the formula in float64
    to torch's float32 tolerance."""
    x = np.array([-60.0, -40.0, -25.0, -17.5, -9.0, -1e-3, 0.0, 2e-3, 8.0, 16.0, 30.0, 45.0], np.float32)

    def stable(x, y, gamma):
        """The formula with the same value, without cancellation: float64 torch's literal one
        loses the small cross-entropy of saturated logits too (x - log sigmoid(x) at x = -40)."""
        ce = y * torch.nn.functional.softplus(-x) + (1 - y) * torch.nn.functional.softplus(x)
        m = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
        return (0.25 * y + 0.75 * (1 - y)) * ce * m**gamma

    for label in (0.0, 1.0):
        y = np.full_like(x, label)
        loss, grads = F.sigmoid_focal_loss_forward_backward(x, y, gamma=gamma, target_grad=True)
        ref, ref_grads = torch_call(stable, (x, y), {"gamma": gamma}, (0, 1), dtype=torch.float64)
        what = f"gamma {gamma} y {label}"
        assert np.isfinite(loss).all() and all(np.isfinite(g).all() for g in grads), what
        np.testing.assert_allclose(loss, ref, rtol=1.3e-6, atol=1e-37, err_msg=what)
        np.testing.assert_allclose(grads[0], ref_grads[0], rtol=1.3e-6, atol=1e-37, err_msg=what)
        np.testing.assert_allclose(grads[1], ref_grads[1], rtol=1.3e-6, atol=1e-37, err_msg=what)


def test_sigmoid_focal_special_cases():
    rng = np.random.default_rng(12)
    x = rng.standard_normal(64) * 4
    y = (rng.random(64) < 0.5).astype(np.float64)
    # gamma 0 without alpha is binary cross-entropy on logits, y softplus(-x) + (1 - y) softplus(x)
    # (here without the cancellation of torch's (1 - y) x - log sigmoid(x) at y = 0, x < 0)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    softplus = torch.nn.functional.softplus
    np.testing.assert_allclose(
        F.sigmoid_focal_loss(x, y, alpha=-1.0, gamma=0.0),
        (ty * softplus(-tx) + (1 - ty) * softplus(tx)).numpy(),
        rtol=1e-14,
    )
    # integer gamma is a power of a negative 1 - p_t too (soft labels outside [0, 1]), as torch's pow
    yo = np.array([1.5, -0.5, 2.0])
    xo = np.array([3.0, 2.0, -1.0])
    for gamma in (1.0, 2.0, 3.0, 0.5):
        ours, ours_g = F.sigmoid_focal_loss_forward_backward(xo, yo, gamma=gamma, target_grad=True)
        ref, ref_g = torch_call(ref_sigmoid_focal, (xo, yo), {"gamma": gamma}, (0, 1))
        assert_close(ours, ref, what=f"gamma {gamma}")
        for a, b in zip(ours_g, ref_g):
            assert_close(a, b, what=f"gamma {gamma} grad")
    # inf and NaN logits: what the formula gives (NaN, as torch's cross-entropy at inf)
    l = F.sigmoid_focal_loss(np.array([np.inf, -np.inf, np.nan]), np.array([1.0, 0.0, 1.0]))
    ref, _ = torch_call(ref_sigmoid_focal, (np.array([np.inf, -np.inf, np.nan]), np.array([1.0, 0.0, 1.0])), {})
    np.testing.assert_array_equal(np.isnan(l), np.isnan(ref))
