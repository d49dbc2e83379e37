"""softmax_focal_loss and poly1_cross_entropy (classification family, beyond torch.nn) against
torch autograd of their published formulas (float64 references: a float32 result accumulated in
double is right when it matches torch's float64 on the same data), and poly1 against optax's
poly_loss_cross_entropy under jax in float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import losskit
import losskit.functional as F

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(5,), (7, 5), (3, 4, 2, 3)]  # (C), (N, C), (N, C, d1, d2)
# rows of three chunks of the smoothed/probability kernel; K-dimensional positions of three tiles
# (64, 64, 22) per sample, in work units that cross samples
POLY1_SHAPES = SHAPES + [(4, 4500), (3, 5, 10, 15)]


def tol(dtype):
    return {"rtol": 1.3e-6, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-7, "atol": 1e-7}


def close(actual, expected, dtype):
    torch.testing.assert_close(
        torch.as_tensor(np.asarray(actual, dtype=np.float64)),
        torch.as_tensor(np.asarray(expected, dtype=np.float64)),
        equal_nan=True,
        **tol(dtype),
    )


def target_shape(shape):
    return () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])


def class_indices(rng, shape, ignore_index=None):
    C = shape[0] if len(shape) == 1 else shape[1]
    t = rng.integers(0, C, target_shape(shape))
    if ignore_index is not None and t.ndim > 0:
        t.flat[::3] = ignore_index
    return t


# ---- torch references (float64 autograd of the composed formulas) -----------------------------


def _class_dim(x):
    return 0 if x.dim() == 1 else 1


def _reduce(loss, reduction, divisor):
    if reduction == "none":
        return loss
    return loss.sum() / divisor if reduction == "mean" else loss.sum()


def torch_focal(x, t, gamma, alpha, ignore_index, reduction):
    """-alpha_t (1 - p_t)^gamma log p_t, 1 - p_t as -expm1(log p_t) (exact near p_t = 1)."""
    d = _class_dim(x)
    t = torch.as_tensor(t)
    mask = t != ignore_index
    safe = torch.where(mask, t, torch.zeros_like(t))
    logpt = torch.log_softmax(x, d).gather(d, safe.unsqueeze(d)).squeeze(d)
    a = torch.ones_like(logpt) if alpha is None else torch.as_tensor(alpha, dtype=x.dtype)[safe]
    loss = -a * (-torch.expm1(logpt)) ** gamma * logpt
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return _reduce(loss, reduction, mask.sum().to(x.dtype))


def torch_poly1(x, target, epsilon, weight, ignore_index, reduction, smoothing):
    """sum_c w_c y'_c (-log softmax_c + epsilon (1 - softmax_c))."""
    d = _class_dim(x)
    C = x.shape[d]
    logp = torch.log_softmax(x, d)
    shape = [1] * x.dim()
    shape[d] = C
    w = torch.ones(C, dtype=x.dtype) if weight is None else torch.as_tensor(weight, dtype=x.dtype)
    w = w.reshape(shape)
    target = torch.as_tensor(target)
    if target.is_floating_point():
        y = target.to(x.dtype)
        mask = torch.ones(logp.sum(d).shape, dtype=torch.bool)
        divisor = torch.tensor(float(mask.numel()), dtype=x.dtype)
    else:
        t = torch.as_tensor(target)
        mask = t != ignore_index
        safe = torch.where(mask, t, torch.zeros_like(t))
        divisor = (w.flatten()[safe] * mask).sum()
        if smoothing == 0:  # the published CE + epsilon (1 - p_t), weighted by w_t
            logpt = logp.gather(d, safe.unsqueeze(d)).squeeze(d)
            loss = w.flatten()[safe] * (-logpt + epsilon * (1 - logpt.exp()))
            return _reduce(torch.where(mask, loss, torch.zeros_like(loss)), reduction, divisor)
        y = torch.nn.functional.one_hot(safe, C).to(x.dtype).movedim(-1, d)
    y = (1 - smoothing) * y + smoothing / C
    loss = (w * y * (-logp + epsilon * (1 - logp.exp()))).sum(d)
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return _reduce(loss, reduction, divisor)


def check_against(name, reference, x, target, kwargs, reduction, rng, target_grad=False):
    """Value, backward (random grad_output) and forward_backward against torch autograd."""
    dtype = x.dtype
    fwd = getattr(F, name)
    out = fwd(x, target, reduction=reduction, **kwargs)
    assert out.dtype == dtype
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target, dtype=torch.float64, requires_grad=True) if target_grad else target
    ref = reference(xt, tt, reduction)
    close(out, ref.detach().numpy(), dtype)
    go = rng.uniform(0.5, 1.5, ref.shape).astype(dtype)
    ref.backward(torch.as_tensor(go, dtype=torch.float64))
    grads = getattr(F, name + "_backward")(go, x, target, reduction=reduction, target_grad=target_grad, **kwargs)
    loss, grads2 = getattr(F, name + "_forward_backward")(
        x, target, go, reduction=reduction, target_grad=target_grad, **kwargs
    )
    close(loss, out, dtype)
    if target_grad:
        close(grads[0], xt.grad.numpy(), dtype)
        close(grads[1], tt.grad.numpy(), dtype)
        np.testing.assert_array_equal(grads2[1], grads[1])
        grads, grads2 = grads[0], grads2[0]
    else:
        close(grads, xt.grad.numpy(), dtype)
    assert grads.dtype == dtype and grads.shape == x.shape
    np.testing.assert_array_equal(grads2, grads)


# ---- softmax_focal_loss -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 2.7])
def test_focal_against_torch(dtype, reduction, shape, gamma, rng):
    x = rng.normal(0, 2, shape).astype(dtype)
    C = shape[0] if len(shape) == 1 else shape[1]
    alpha = rng.uniform(0.1, 1.0, C).astype(dtype) if gamma != 0.5 else None
    t = class_indices(rng, shape, ignore_index=-1 if len(shape) > 1 else None)
    kwargs = {"gamma": gamma, "alpha": alpha, "ignore_index": -1}
    check_against(
        "softmax_focal_loss",
        lambda xt, tt, red: torch_focal(xt, tt, gamma, alpha, -1, red),
        x,
        t,
        kwargs,
        reduction,
        rng,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_gamma_zero_is_cross_entropy(dtype, rng):
    x = rng.normal(0, 2, (9, 6)).astype(dtype)
    t = class_indices(rng, x.shape)
    alpha = rng.uniform(0.1, 1.0, 6).astype(dtype)
    for reduction in ("none", "sum"):
        loss, g = F.softmax_focal_loss_forward_backward(x, t, gamma=0.0, alpha=alpha, reduction=reduction)
        ce, gce = F.cross_entropy_forward_backward(x, t, weight=alpha, reduction=reduction)
        np.testing.assert_array_equal(loss, ce)
        np.testing.assert_array_equal(g, gce)
    # 'mean' divides by the count (mmdet, kornia), cross_entropy by the alpha sum of the targets
    close(
        F.softmax_focal_loss(x, t, gamma=0.0, alpha=alpha),
        F.cross_entropy(x, t, weight=alpha, reduction="sum") / 9,
        dtype,
    )
    assert F.mean_normalizer("softmax_focal_loss", x, t, alpha=alpha) == 9.0


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0, 2.0])
def test_focal_target_probability_near_one(gamma, rng):
    """(1 - p)^gamma's derivative for gamma < 1 is infinite at p = 1, but the loss's is finite."""
    # margins 8..20: 1 - p from 1e-3 down to 6e-9, where q^(gamma - 1) reaches 1e6 for gamma < 1
    x = np.zeros((6, 4))
    x[:, 1] = np.linspace(8.0, 20.0, 6)
    t = np.ones(6, dtype=np.int64)
    check_against(
        "softmax_focal_loss",
        lambda xt, tt, red: torch_focal(xt, tt, gamma, None, -100, red),
        x,
        t,
        {"gamma": gamma},
        "none",
        rng,
    )
    # p exactly 1 (e^-800 is 0): the limit, loss 0 and gradient 0, where autograd gives NaN
    x1 = np.array([[800.0, 0.0, 0.0]])
    loss, g = F.softmax_focal_loss_forward_backward(x1, np.array([0]), gamma=gamma, reduction="none")
    assert loss.tolist() == [0.0] and np.all(g == 0.0)
    xt = torch.tensor(x1, requires_grad=True)
    torch_focal(xt, np.array([0]), gamma, None, -100, "sum").backward()
    if gamma < 1:
        assert torch.isnan(xt.grad).any()  # the composed formula's 0 * inf, which losskit avoids


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_non_finite_logits(dtype, rng):
    x = rng.normal(0, 1, (6, 4)).astype(dtype)
    x[0, 2] = np.nan
    x[1, 1] = np.inf
    x[2, 0] = -np.inf  # not the target: finite
    x[3, 3] = -np.inf  # the target: loss inf, gradient NaN (as autograd)
    t = np.array([1, 2, 1, 3, 0, -100])
    x[5, :] = np.nan  # ignored: loss 0, gradient NaN (as cross_entropy)
    for reduction in REDUCTIONS:
        check_against(
            "softmax_focal_loss",
            lambda xt, tt, red: torch_focal(xt, tt, 2.0, None, -100, red),
            x,
            t,
            {},
            reduction,
            rng,
        )


@pytest.mark.parametrize("name", ["softmax_focal_loss", "poly1_cross_entropy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_all_ignored(name, dtype):
    fn = getattr(F, name)
    x = np.zeros((0, 4), dtype)
    t = np.zeros(0, np.int64)
    assert np.isnan(fn(x, t)) and fn(x, t, reduction="sum") == 0.0
    assert fn(x, t, reduction="none").shape == (0,)
    loss, g = getattr(F, name + "_forward_backward")(x, t)
    assert np.isnan(loss) and g.shape == (0, 4)
    x = np.ones((3, 4), dtype)
    t = np.full(3, -100)
    loss, g = getattr(F, name + "_forward_backward")(x, t)
    assert np.isnan(loss) and np.all(g == 0.0)
    assert fn(x, t, reduction="sum") == 0.0


@pytest.mark.parametrize("name", ["softmax_focal_loss", "poly1_cross_entropy"])
def test_threading_threshold_and_determinism(name, rng):
    """Past the threading threshold (many rows; few rows of C >= 16384 split across threads),
    equal to torch and bitwise the same on 1 and 3 threads."""
    fn = getattr(F, name + "_forward_backward")
    if name == "softmax_focal_loss":
        ref = lambda xt, tt, red: torch_focal(xt, tt, 1.5, None, -100, red)  # noqa: E731
        kwargs = {"gamma": 1.5}
    else:
        ref = lambda xt, tt, red: torch_poly1(xt, tt, 0.7, None, -100, red, 0.0)  # noqa: E731
        kwargs = {"epsilon": 0.7}
    for shape in [(3000, 40), (2, 20000), (8, 6, 700)]:
        x = rng.normal(0, 3, shape).astype(np.float32)
        t = class_indices(rng, shape)
        losskit.set_num_threads(1)
        one = fn(x, t, **kwargs)
        losskit.set_num_threads(3)
        three = fn(x, t, **kwargs)
        assert one[0].tobytes() == three[0].tobytes()
        np.testing.assert_array_equal(one[1], three[1])
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        r = ref(xt, t, "mean")
        r.backward()
        close(three[0], r.detach().numpy(), np.float32)
        close(three[1], xt.grad.numpy(), np.float32)


def test_focal_class(rng):
    x = rng.normal(0, 1, (5, 3))
    t = class_indices(rng, x.shape)
    crit = losskit.SoftmaxFocalLoss(gamma=1.0, alpha=np.array([0.2, 0.3, 0.5]), reduction="sum")
    assert "gamma=1.0" in repr(crit)
    with pytest.raises(RuntimeError):
        crit.backward()
    loss = crit(x, t)
    assert loss == F.softmax_focal_loss(x, t, gamma=1.0, alpha=np.array([0.2, 0.3, 0.5]), reduction="sum")
    np.testing.assert_array_equal(
        crit.backward(), F.softmax_focal_loss_backward(1.0, x, t, gamma=1.0, alpha=[0.2, 0.3, 0.5], reduction="sum")
    )
    loss2, g2 = crit.forward_backward(x, t)
    assert loss2 == loss and g2.shape == x.shape


# ---- poly1_cross_entropy ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", POLY1_SHAPES)
@pytest.mark.parametrize("options", ["plain", "weight", "smoothing", "weight+smoothing"])
def test_poly1_class_indices_against_torch(dtype, reduction, shape, options, rng):
    x = rng.normal(0, 2, shape).astype(dtype)
    C = shape[0] if len(shape) == 1 else shape[1]
    w = rng.uniform(0.1, 1.0, C).astype(dtype) if "weight" in options else None
    eps_s = 0.15 if "smoothing" in options else 0.0
    epsilon = -0.5 if options == "weight" else 1.3
    t = class_indices(rng, shape, ignore_index=3 if len(shape) > 1 else None)
    kwargs = {"epsilon": epsilon, "weight": w, "ignore_index": 3, "label_smoothing": eps_s}
    check_against(
        "poly1_cross_entropy",
        lambda xt, tt, red: torch_poly1(xt, tt, epsilon, w, 3, red, eps_s),
        x,
        t,
        kwargs,
        reduction,
        rng,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", POLY1_SHAPES)
@pytest.mark.parametrize("options", ["plain", "weight+smoothing"])
def test_poly1_probabilities_against_torch(dtype, reduction, shape, options, rng):
    x = rng.normal(0, 2, shape).astype(dtype)
    d = 0 if len(shape) == 1 else 1
    C = shape[d]
    y = rng.uniform(0, 1, shape)
    y = (y / y.sum(axis=d, keepdims=True)).astype(dtype)
    w = rng.uniform(0.1, 1.0, C).astype(dtype) if options != "plain" else None
    eps_s = 0.2 if options != "plain" else 0.0
    kwargs = {"epsilon": 2.0, "weight": w, "label_smoothing": eps_s}
    check_against(
        "poly1_cross_entropy",
        lambda xt, tt, red: torch_poly1(xt, tt, 2.0, w, -100, red, eps_s),
        x,
        y,
        kwargs,
        reduction,
        rng,
        target_grad=True,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_poly1_non_finite_logits(dtype, rng):
    x = rng.normal(0, 1, (5, 4)).astype(dtype)
    x[0, 2] = np.nan
    x[1, 1] = np.inf
    x[2, 0] = -np.inf
    t = np.array([1, 2, 1, 3, 0])
    y = np.eye(4, dtype=dtype)[t]
    for smoothing in (0.0, 0.1):
        check_against(
            "poly1_cross_entropy",
            lambda xt, tt, red: torch_poly1(xt, tt, 1.0, None, -100, red, smoothing),
            x,
            t,
            {"label_smoothing": smoothing},
            "none",
            rng,
        )
        check_against(
            "poly1_cross_entropy",
            lambda xt, tt, red: torch_poly1(xt, tt, 1.0, None, -100, red, smoothing),
            x,
            y,
            {"label_smoothing": smoothing},
            "sum",
            rng,
        )


def test_poly1_epsilon_zero_is_cross_entropy(rng):
    x = rng.normal(0, 2, (6, 5))
    t = class_indices(rng, x.shape)
    w = rng.uniform(0.5, 1, 5)
    for ls in (0.0, 0.1):
        for target in (t, np.eye(5)[t]):
            a = F.poly1_cross_entropy_forward_backward(x, target, epsilon=0.0, weight=w, label_smoothing=ls)
            b = F.cross_entropy_forward_backward(x, target, weight=w, label_smoothing=ls)
            close(a[0], b[0], np.float64)
            close(a[1], b[1], np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poly1_against_optax(dtype, rng):
    """optax.losses.poly_loss_cross_entropy (class axis last, epsilon 1.7) and jax.grad of it;
    float64 under jax_enable_x64, restored afterwards."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    x = rng.normal(0, 2, (6, 5)).astype(dtype)
    y = rng.uniform(0, 1, (6, 5))
    y = (y / y.sum(1, keepdims=True)).astype(dtype)
    y[0] = np.eye(5, dtype=dtype)[2]
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", dtype == np.float64)
    try:
        f = lambda x, y: optax.losses.poly_loss_cross_entropy(x, y, epsilon=1.7)  # noqa: E731
        loss = f(jax.numpy.asarray(x), jax.numpy.asarray(y))
        gx, gy = jax.grad(lambda x, y: f(x, y).sum(), argnums=(0, 1))(jax.numpy.asarray(x), jax.numpy.asarray(y))
        assert loss.dtype == dtype
        loss, gx, gy = np.array(loss), np.array(gx), np.array(gy)
    finally:
        jax.config.update("jax_enable_x64", before)
    ours = F.poly1_cross_entropy(x, y, epsilon=1.7, reduction="none")
    g, g_y = F.poly1_cross_entropy_backward(np.ones(6, dtype), x, y, epsilon=1.7, reduction="none", target_grad=True)
    close(ours, loss, dtype)
    close(g, gx, dtype)
    close(g_y, gy, dtype)
    # a class index gives its one-hot row's value
    close(F.poly1_cross_entropy(x[:1], np.array([2]), epsilon=1.7, reduction="none"), loss[:1], dtype)


def test_jax_adapter(rng):
    """losskit.jax's custom_vjp functions: jax.grad under jit gives the functional gradients."""
    jax = pytest.importorskip("jax")
    import losskit.jax as LJ

    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    t = np.array([0, 3, 1, 2, 2])
    y = np.eye(4, dtype=np.float32)[t] * 0.8 + 0.05
    g = jax.jit(jax.grad(lambda x: LJ.softmax_focal_loss(x, t, gamma=0.5)))(jax.numpy.asarray(x))
    np.testing.assert_array_equal(np.asarray(g), F.softmax_focal_loss_backward(1.0, x, t, gamma=0.5))
    gx, gy = jax.jit(jax.grad(lambda x, y: LJ.poly1_cross_entropy(x, y, epsilon=2.0), argnums=(0, 1)))(x, y)
    ex, ey = F.poly1_cross_entropy_backward(1.0, x, y, epsilon=2.0, target_grad=True)
    np.testing.assert_array_equal(np.asarray(gx), ex)
    np.testing.assert_array_equal(np.asarray(gy), ey)


def test_poly1_class(rng):
    x = rng.normal(0, 1, (5, 3))
    t = class_indices(rng, x.shape)
    crit = losskit.Poly1CrossEntropyLoss(epsilon=2.0, label_smoothing=0.1)
    assert "epsilon=2.0" in repr(crit)
    loss, g = crit.forward_backward(x, t)
    assert loss == F.poly1_cross_entropy(x, t, epsilon=2.0, label_smoothing=0.1)
    np.testing.assert_array_equal(crit.backward(), g)


# ---- normalizer, errors -------------------------------------------------------------------------


def test_normalizer_splits_the_batch(rng):
    x = rng.normal(0, 1, (8, 5))
    t = class_indices(rng, x.shape, ignore_index=-100)
    w = rng.uniform(0.5, 1.0, 5)
    for name, kw in [("softmax_focal_loss", {"alpha": w}), ("poly1_cross_entropy", {"weight": w})]:
        whole = getattr(F, name + "_forward_backward")(x, t, **kw)
        Z = F.mean_normalizer(name, x[:3], t[:3], **kw) + F.mean_normalizer(name, x[3:], t[3:], **kw)
        assert Z == F.mean_normalizer(name, x, t, **kw)
        a = getattr(F, name + "_forward_backward")(x[:3], t[:3], normalizer=Z, **kw)
        b = getattr(F, name + "_forward_backward")(x[3:], t[3:], normalizer=Z, **kw)
        close(a[0] + b[0], whole[0], np.float64)
        close(np.concatenate([a[1], b[1]]), whole[1], np.float64)


@pytest.mark.parametrize(
    "call, exc, argument",
    [
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1]), gamma=-1.0), ValueError, "gamma"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1]), gamma=np.nan), ValueError, "gamma"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1]), alpha=np.ones(2)), ValueError, "alpha"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 3])), IndexError, "target"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, "target"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, "target"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1]), reduction="avg"), ValueError, "reduction"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 1]), gamma="2"), TypeError, "gamma"),
        (lambda: F.softmax_focal_loss(np.zeros((2, 3), complex), np.array([0, 1])), TypeError, "input"),
        (lambda: F.poly1_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), epsilon=np.inf), ValueError, "epsilon"),
        (
            lambda: F.poly1_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5),
            ValueError,
            "label_smoothing",
        ),
        (lambda: F.poly1_cross_entropy(np.zeros((2, 3)), np.zeros((2, 3)), ignore_index=0), ValueError, "ignore_index"),
        (lambda: F.poly1_cross_entropy(np.zeros((2, 3)), np.zeros((2, 4))), TypeError, "target"),
        (lambda: F.poly1_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(4)), ValueError, "weight"),
        (
            lambda: F.poly1_cross_entropy_backward(1.0, np.zeros((2, 3)), np.array([0, 1]), target_grad=True),
            ValueError,
            "target_grad",
        ),
    ],
)
def test_bad_input(call, exc, argument):
    with pytest.raises(exc, match=argument):
        call()
