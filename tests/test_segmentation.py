"""dice_loss / tversky_loss (DiceLoss / TverskyLoss) against torch autograd of MONAI's published
formulas (monai.losses.DiceLoss and TverskyLoss, soft_label False and True), written here with torch ops;
edge values, thread determinism, the classes and bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

import losskit
import losskit.functional as F
from _reference import compare

DTYPES = (np.float32, np.float64)
REDUCTIONS = ("none", "mean", "sum")


def monai_formula(
    kind,
    input,
    target,
    include_background=True,
    to_onehot_y=False,
    sigmoid=False,
    softmax=False,
    squared_pred=False,
    jaccard=False,
    reduction="mean",
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    batch=False,
    weight=None,
    alpha=0.5,
    beta=0.5,
    soft_label=False,
):
    """MONAI's DiceLoss.forward / TverskyLoss.forward (other_act=None), with 'none' giving
    (N, C') / (C',) (DiceLoss adds trailing ones: see the docstring). soft_label (without
    squared_pred) is MONAI's compute_tp_fp_fn: tp, fp, fn from 1-norms of p, g and p - g."""
    p = torch.sigmoid(input) if sigmoid else input
    n_pred_ch = p.shape[1]
    if softmax and n_pred_ch > 1:
        p = torch.softmax(p, 1)
    g = target
    if to_onehot_y:
        labels = g if g.ndim == p.ndim else g.unsqueeze(1)
        if n_pred_ch > 1:  # monai.networks.one_hot
            g = torch.zeros(p.shape, dtype=p.dtype).scatter_(1, labels.long(), 1.0)
        else:
            g = labels.to(p.dtype)
    if not include_background and n_pred_ch > 1:
        g, p = g[:, 1:], p[:, 1:]
    axes = list(range(2, p.ndim))
    if batch:
        axes = [0] + axes
    if soft_label and not (kind == "dice" and squared_pred):
        pred_o = torch.linalg.vector_norm(p, 1, dim=axes)
        ground_o = torch.linalg.vector_norm(g, 1, dim=axes)
        tp = (pred_o + ground_o - torch.linalg.vector_norm(p - g, 1, dim=axes)) / 2
        fp, fn = pred_o - tp, ground_o - tp
        if kind == "dice":
            scale = 1.0 if jaccard else 0.5
            f = 1.0 - (2.0 * tp + smooth_nr) / (2.0 * (tp + scale * fp + scale * fn) + smooth_dr)
            if weight is not None and g.shape[1] != 1:
                f = f * weight.to(f)
        else:
            f = 1.0 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    elif kind == "dice":
        intersection = torch.sum(g * p, dim=axes)
        if squared_pred:
            ground_o, pred_o = torch.sum(g**2, dim=axes), torch.sum(p**2, dim=axes)
        else:
            ground_o, pred_o = torch.sum(g, dim=axes), torch.sum(p, dim=axes)
        denominator = ground_o + pred_o
        if jaccard:
            denominator = 2.0 * (denominator - intersection)
        f = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
        if weight is not None and g.shape[1] != 1:
            f = f * weight.to(f)
    else:
        tp = torch.sum(p * g, axes)
        fp = alpha * torch.sum(p * (1 - g), axes)
        fn = beta * torch.sum((1 - p) * g, axes)
        f = 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)
    if reduction == "mean":
        return torch.mean(f)
    if reduction == "sum":
        return torch.sum(f)
    return f


def torch_dice(x, y, **kw):
    return monai_formula("dice", x, y, **kw)


def torch_tversky(x, y, **kw):
    return monai_formula("tversky", x, y, **kw)


LOSSES = {"dice": (F.dice_loss, torch_dice), "tversky": (F.tversky_loss, torch_tversky)}


def make_case(rng, shape, dtype, target_form, activation):
    N, C = shape[:2]
    if activation == "none":
        x = rng.uniform(0.0, 1.0, shape)
    else:
        x = 2.0 * rng.standard_normal(shape)
    labels = rng.integers(0, C, (N,) + shape[2:])
    if target_form == "soft":
        y = rng.uniform(0.0, 1.0, shape)
    elif target_form == "onehot":
        y = (labels[:, None] == np.arange(C).reshape((1, C) + (1,) * (len(shape) - 2))).astype(np.float64)
    elif target_form == "index":
        y = labels
    else:  # index_ch: (N, 1, ...)
        y = labels[:, None]
    x = x.astype(dtype)
    if y.dtype.kind == "f":
        y = y.astype(dtype)
    return x, y


def check(name, x, y, grad_output=None, what="", **kw):
    fn, ref = LOSSES[name]
    backward = getattr(F, fn.__name__ + "_backward")
    fused = getattr(F, fn.__name__ + "_forward_backward")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = fn(x, y, **kw)
        grad = backward(grad_output, x, y, **kw)
        loss2, grad2 = fused(x, y, grad_output=grad_output, **kw)
    tkw = dict(kw)
    compare(ref, [x, y], tkw, (0,), loss, [grad], grad_output, what)
    np.testing.assert_array_equal(np.asarray(loss2), np.asarray(loss))
    np.testing.assert_array_equal(grad2, grad)
    if np.asarray(y).dtype.kind == "f":  # a dense target has a gradient too
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            grad_x, grad_y = backward(grad_output, x, y, target_grad=True, **kw)
            loss3, (grad_x3, grad_y3) = fused(x, y, grad_output=grad_output, target_grad=True, **kw)
        compare(ref, [x, y], tkw, (0, 1), loss, [grad_x, grad_y], grad_output, what + " target_grad")
        assert grad_y.shape == np.shape(y) and grad_y.dtype == x.dtype
        np.testing.assert_array_equal(grad_x, grad)
        np.testing.assert_array_equal(np.asarray(loss3), np.asarray(loss))
        np.testing.assert_array_equal(grad_x3, grad)
        np.testing.assert_array_equal(grad_y3, grad_y)
    return loss, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ("dice", "tversky"))
@pytest.mark.parametrize("activation", ("none", "sigmoid", "softmax"))
@pytest.mark.parametrize("target_form", ("soft", "onehot", "index", "index_ch"))
@pytest.mark.parametrize("include_background,batch", ((True, False), (False, True)))
def test_against_monai_formula(dtype, name, activation, target_form, include_background, batch):
    rng = np.random.default_rng(hash((name, activation, target_form, include_background, batch)) % 2**32)
    shape = (3, 4, 5, 6) if target_form != "index_ch" else (2, 3, 7)
    x, y = make_case(rng, shape, dtype, target_form, activation)
    kw = dict(
        include_background=include_background,
        to_onehot_y=target_form.startswith("index"),
        sigmoid=activation == "sigmoid",
        softmax=activation == "softmax",
        batch=batch,
    )
    for reduction in REDUCTIONS:
        kw["reduction"] = reduction
        C = shape[1] - (0 if include_background else 1)
        out_shape = (C,) if batch else (shape[0], C)
        go = rng.uniform(0.5, 1.5, out_shape).astype(dtype) if reduction == "none" else dtype(0.7)
        loss, _ = check(name, x, y, go, f"{name} {activation} {target_form} {reduction}", **kw)
        if reduction == "none":
            assert loss.shape == out_shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options",
    (
        dict(squared_pred=True),
        dict(jaccard=True),
        dict(squared_pred=True, jaccard=True, softmax=True),
        dict(smooth_nr=0.0, smooth_dr=1e-6, sigmoid=True),
        dict(smooth_nr=0.5, smooth_dr=2.0, batch=True, squared_pred=True),
        dict(weight=np.array([0.5, 2.0, 0.0, 1.0])),
        dict(weight=np.array([1.5, 0.25, 3.0]), include_background=False, softmax=True, batch=True),
    ),
)
def test_dice_options(dtype, options):
    rng = np.random.default_rng(1)
    x, y = make_case(rng, (3, 4, 4, 5), dtype, "soft", "softmax" if options.get("softmax") else "none")
    for reduction in REDUCTIONS:
        kw = dict(options, reduction=reduction)
        if "weight" in kw:
            kw["weight"] = kw["weight"].astype(dtype)
        check("dice", x, y, None, f"dice {options} {reduction}", **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", ((0.3, 0.7), (1.0, 1.0), (0.0, 2.0)))
def test_tversky_alpha_beta(dtype, alpha, beta):
    rng = np.random.default_rng(2)
    x, y = make_case(rng, (2, 3, 6, 5), dtype, "index", "softmax")
    for reduction, batch in itertools.product(REDUCTIONS, (False, True)):
        kw = dict(alpha=alpha, beta=beta, to_onehot_y=True, softmax=True, reduction=reduction, batch=batch)
        check("tversky", x, y, None, f"tversky {alpha} {beta} {reduction}", **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name,options",
    (
        ("dice", dict()),
        ("dice", dict(sigmoid=True, jaccard=True)),
        ("dice", dict(softmax=True, include_background=False, batch=True)),
        ("dice", dict(squared_pred=True)),  # soft_label has no effect: its form already
        ("dice", dict(weight=np.array([0.5, 2.0, 1.0, 3.0]), smooth_nr=0.0)),
        ("tversky", dict()),
        ("tversky", dict(sigmoid=True, alpha=0.3, beta=0.7)),
        ("tversky", dict(softmax=True, include_background=False, batch=True)),
    ),
)
def test_soft_label(dtype, name, options):
    """MONAI's soft-label form on soft targets, inputs of both signs without an activation, and
    exact ties p = g and p = 0 (where |.|'s gradient is 0, as torch's)."""
    rng = np.random.default_rng(21)
    act = "sigmoid" if options.get("sigmoid") else ("softmax" if options.get("softmax") else "none")
    x, y = make_case(rng, (3, 4, 5, 6), dtype, "soft", act)
    if act == "none":
        x = (x - 0.25).astype(dtype)
        x[0, 0, 0, :3] = y[0, 0, 0, :3]
        x[0, 1, 1, :2] = 0.0
    for reduction in REDUCTIONS:
        kw = dict(options, reduction=reduction, soft_label=True)
        if "weight" in kw:
            kw["weight"] = kw["weight"].astype(dtype)
        loss, _ = check(name, x, y, None, f"{name} soft {options} {reduction}", **kw)
    if not options.get("squared_pred"):  # the soft form differs from the hard one on soft targets
        hard = dict(kw, soft_label=False)
        assert not np.allclose(loss, getattr(F, LOSSES[name][0].__name__)(x, y, **hard))


def test_tversky_half_half_is_dice():
    rng = np.random.default_rng(3)
    x, y = make_case(rng, (2, 3, 8, 8), np.float64, "soft", "sigmoid")
    kw = dict(sigmoid=True, reduction="none", smooth_nr=0.0, smooth_dr=0.0)  # the smoothing terms differ
    np.testing.assert_allclose(F.tversky_loss(x, y, **kw), F.dice_loss(x, y, **kw), rtol=1e-13)
    np.testing.assert_allclose(
        F.tversky_loss(x, y, alpha=1.0, beta=1.0, **kw), F.dice_loss(x, y, jaccard=True, **kw), rtol=1e-13
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ("dice", "tversky"))
def test_all_background(dtype, name):
    """Every label 0: the foreground channels have I = G = 0."""
    rng = np.random.default_rng(4)
    x, _ = make_case(rng, (2, 3, 5, 5), dtype, "index", "softmax")
    y = np.zeros((2, 5, 5), np.int64)
    for include_background, batch, reduction in itertools.product((True, False), (False, True), REDUCTIONS):
        kw = dict(
            to_onehot_y=True, softmax=True, include_background=include_background, batch=batch, reduction=reduction
        )
        check(name, x, y, None, f"{name} background {kw}", **kw)
    # An empty prediction of an empty mask scores 1 - smooth_nr / smooth_dr = 0.
    z = np.zeros((2, 3, 5, 5), dtype)
    loss = LOSSES[name][0](z, np.zeros_like(z), reduction="none")
    np.testing.assert_array_equal(loss, np.zeros((2, 3), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ("dice", "tversky"))
@pytest.mark.parametrize("shape", ((0, 3, 4), (2, 3, 0), (0, 2, 0, 5)))
def test_empty(dtype, name, shape):
    x = np.zeros(shape, dtype)
    for activation, batch, reduction in itertools.product(("none", "softmax"), (False, True), REDUCTIONS):
        kw = dict(softmax=activation == "softmax", batch=batch, reduction=reduction)
        check(name, x, np.zeros(shape, dtype), None, f"{name} empty {shape} {kw}", **kw)
        check(name, x, np.zeros((shape[0],) + shape[2:], np.int64), None, "labels", to_onehot_y=True, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ("dice", "tversky"))
@pytest.mark.parametrize("activation", ("none", "sigmoid", "softmax"))
def test_nan_inf(dtype, name, activation):
    rng = np.random.default_rng(5)
    x, y = make_case(rng, (3, 3, 4, 4), dtype, "soft", activation)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, 0, 0] = np.inf
    x[1, 2, 1, 1] = -np.inf
    y[2, 2, 0, 1] = np.nan
    for include_background, reduction in itertools.product((True, False), REDUCTIONS):
        kw = dict(
            sigmoid=activation == "sigmoid",
            softmax=activation == "softmax",
            include_background=include_background,
            reduction=reduction,
        )
        check(name, x, y, None, f"{name} nan {kw}", **kw)


@pytest.mark.parametrize("name", ("dice", "tversky"))
def test_single_channel(name):
    """MONAI ignores softmax, to_onehot_y and include_background=False for C == 1, with a warning."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 1, 5, 5))
    mask = rng.integers(0, 2, (2, 1, 5, 5))
    fn = LOSSES[name][0]
    with pytest.warns(UserWarning, match="single channel prediction"):
        a = fn(x, mask, sigmoid=True, to_onehot_y=True, include_background=False, reduction="none")
    b = fn(x, mask.astype(np.float64), sigmoid=True, reduction="none")
    np.testing.assert_array_equal(a, b)
    check(name, x, mask, None, "single channel", sigmoid=True, to_onehot_y=True, include_background=False)
    with pytest.warns(UserWarning, match="softmax=True"):
        fn(x, mask.astype(np.float64), softmax=True)
    with pytest.raises(losskit.IndexError, match=rf"{name}_loss: target expected labels 0 or 1"):
        with pytest.warns(UserWarning, match="to_onehot_y=True"):
            fn(x, mask + 1, to_onehot_y=True)


def test_threads_bitwise_and_large():
    """A case past the threading grain: bitwise equal on 1 and 4 threads, and right."""
    rng = np.random.default_rng(7)
    x, y = make_case(rng, (3, 3, 64, 192), np.float32, "index", "softmax")
    kw = dict(to_onehot_y=True, softmax=True, include_background=False, reduction="mean")
    before = losskit.get_num_threads()
    try:
        results = []
        for n in (1, 4):
            losskit.set_num_threads(n)
            results.append(F.dice_loss_forward_backward(x, y, **kw))
            results.append(F.tversky_loss_forward_backward(x, y, batch=True, **kw))
    finally:
        losskit.set_num_threads(before)
    for a, b in zip(results[:2], results[2:]):
        assert a[0].tobytes() == b[0].tobytes()
        assert a[1].tobytes() == b[1].tobytes()
    check("dice", x, y, None, "large", **kw)


@pytest.mark.parametrize(
    "name, activation, target_form, kw",
    [
        ("dice", "sigmoid", "onehot", {}),
        ("dice", "softmax", "index", {"to_onehot_y": True, "include_background": False}),
        ("tversky", "softmax", "soft", {"alpha": 0.3, "beta": 0.7}),
        ("dice", "sigmoid", "soft", {"squared_pred": True, "reduction": "none"}),
    ],
)
def test_samples_run_in_cache_sized_chunks(name, activation, target_form, kw):
    """forward_backward runs both passes over a few samples at a time (about 2 MB of input and
    target): with 5 MB samples each is a chunk of its own; the results are those of the
    unchunked forward (bitwise), torch's, and the same on 1 and 3 threads."""
    rng = np.random.default_rng(11)
    x, y = make_case(rng, (3, 2, 512, 640), np.float32, target_form, activation)
    kw = dict(kw, sigmoid=activation == "sigmoid", softmax=activation == "softmax")
    check(name, x, y, None, "chunks", **kw)
    fused = getattr(F, name + "_loss_forward_backward")
    before = losskit.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            losskit.set_num_threads(n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                results.append(fused(x, y, **kw))
    finally:
        losskit.set_num_threads(before)
    assert np.asarray(results[0][0]).tobytes() == np.asarray(results[1][0]).tobytes()
    assert results[0][1].tobytes() == results[1][1].tobytes()


def test_no_copy_and_dtypes():
    rng = np.random.default_rng(8)
    x, y = make_case(rng, (2, 3, 4, 4), np.float32, "soft", "none")
    loss = F.dice_loss(x, y)
    assert loss.dtype == np.float32 and np.ndim(loss) == 0
    g = F.dice_loss_backward(1.0, x, y)
    assert g.dtype == np.float32 and g.shape == x.shape
    # Any integer dtype of class indices.
    labels = rng.integers(0, 3, (2, 4, 4))
    ref = F.dice_loss(x, labels, to_onehot_y=True)
    for dt in (np.uint8, np.int16, np.int32):
        assert F.dice_loss(x, labels.astype(dt), to_onehot_y=True) == ref


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", ("dice", "tversky"))
@pytest.mark.parametrize("activation", ("none", "sigmoid", "softmax"))
@pytest.mark.parametrize("target_form", ("soft", "index"))
@pytest.mark.parametrize("reduction", ("none", "mean"))
def test_half_read_in_place(kind, name, activation, target_form, reduction):
    """float16/bfloat16 input (and dense target, weights, grad_output) are read in place, tile by
    tile through the float kernels: every loss and gradient is the float32 path's on the upcast
    arrays rounded once (a reduced value within one 16-bit ulp), on tiles that cross the
    1024-position boundary and with the background left out."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from test_low_precision import assert_within_one_ulp

    dtype = np.dtype(ml_dtypes.bfloat16) if kind == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(12)
    x, y = make_case(rng, (2, 3, 37, 41), np.float64, target_form, activation)
    x = x.astype(dtype)
    y = y.astype(dtype) if y.dtype.kind == "f" else y
    kw = {"reduction": reduction, "include_background": activation != "softmax"}
    kw.update({"sigmoid": activation == "sigmoid", "softmax": activation == "softmax"})
    kw["to_onehot_y"] = target_form == "index"
    if name == "dice" and kw["include_background"]:
        kw["weight"] = np.array([0.5, 1.0, 2.0], dtype)
    fn = getattr(F, LOSSES[name][0].__name__ + "_forward_backward")
    up = lambda a: a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == dtype else a
    value = fn(x, y, **kw)[0]
    go = np.asarray(rng.uniform(0.5, 1.5, np.shape(value))).astype(dtype)
    loss, grad = fn(x, y, grad_output=go, **kw)
    loss32, grad32 = fn(up(x), up(y), grad_output=up(go), **{k: up(v) for k, v in kw.items()})
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    if reduction == "none":
        np.testing.assert_array_equal(loss, loss32.astype(dtype))
    else:
        assert_within_one_ulp(loss, loss32, dtype, f"{name} {kind} {activation}")
    np.testing.assert_array_equal(grad, grad32.astype(dtype))
    if target_form == "soft":  # the dense target's gradient, rounded once as well
        _, (grad_x, grad_y) = fn(x, y, grad_output=go, target_grad=True, **kw)
        _, (_, grad_y32) = fn(up(x), up(y), grad_output=up(go), target_grad=True, **{k: up(v) for k, v in kw.items()})
        assert grad_y.dtype == dtype
        np.testing.assert_array_equal(grad_x, grad)
        np.testing.assert_array_equal(grad_y, grad_y32.astype(dtype))


def test_half_input_is_not_copied():
    """A 16 MB bfloat16 input and target (a float32 copy of each would be 32 MB): the Python side
    allocates nothing input-sized but the 16-bit gradient."""
    import tracemalloc

    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 8, 512, 512), dtype=np.float32).astype(ml_dtypes.bfloat16)
    y = (rng.random(x.shape) < 0.2).astype(ml_dtypes.bfloat16)
    F.dice_loss_forward_backward(x, y, sigmoid=True)
    tracemalloc.start()
    loss, g = F.dice_loss_forward_backward(x, y, sigmoid=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert g.dtype == x.dtype and np.asarray(loss).dtype == x.dtype
    assert peak < g.nbytes + 1_000_000, peak


def test_classes():
    rng = np.random.default_rng(9)
    x, y = make_case(rng, (2, 3, 4, 4), np.float64, "index", "softmax")
    w = np.array([1.0, 2.0])
    crit = losskit.DiceLoss(to_onehot_y=True, softmax=True, include_background=False, weight=w, jaccard=True)
    kw = dict(to_onehot_y=True, softmax=True, include_background=False, weight=w, jaccard=True)
    assert crit(x, y) == F.dice_loss(x, y, **kw)
    np.testing.assert_array_equal(crit.backward(), F.dice_loss_backward(1.0, x, y, **kw))
    loss, grad = crit.forward_backward(x, y)
    assert loss == F.dice_loss(x, y, **kw)
    assert "jaccard=True" in repr(crit) and "weight" not in repr(crit)
    tv = losskit.TverskyLoss(alpha=0.3, beta=0.7, softmax=True, to_onehot_y=True, reduction="none")
    np.testing.assert_array_equal(
        tv(x, y), F.tversky_loss(x, y, alpha=0.3, beta=0.7, softmax=True, to_onehot_y=True, reduction="none")
    )
    assert repr(tv).startswith("TverskyLoss(") and "alpha=0.3" in repr(tv)


def test_mean_normalizer():
    rng = np.random.default_rng(10)
    x, y = make_case(rng, (4, 3, 5, 5), np.float64, "index", "softmax")
    kw = dict(to_onehot_y=True, softmax=True)
    assert F.mean_normalizer("dice_loss", x, y, **kw) == 12
    assert F.mean_normalizer("tversky_loss", x, y, include_background=False, **kw) == 8
    assert F.mean_normalizer("dice_loss", x, y, batch=True, **kw) == 3
    total = F.mean_normalizer("dice_loss", x[:1], y[:1], **kw) + F.mean_normalizer("dice_loss", x[1:], y[1:], **kw)
    l1, g1 = F.dice_loss_forward_backward(x[:1], y[:1], normalizer=total, **kw)
    l2, g2 = F.dice_loss_forward_backward(x[1:], y[1:], normalizer=total, **kw)
    full, g = F.dice_loss_forward_backward(x, y, **kw)
    np.testing.assert_allclose(l1 + l2, full, rtol=1e-14)
    np.testing.assert_allclose(np.concatenate([g1, g2]), g, rtol=1e-14)


@pytest.mark.parametrize(
    "call,exc,match",
    (
        (
            lambda x, y, t: F.dice_loss(x, y, sigmoid=True, softmax=True),
            ValueError,
            r"dice_loss: softmax expected False when sigmoid",
        ),
        (
            lambda x, y, t: F.dice_loss(x[:, :, 0, 0], y[:, :, 0, 0]),
            ValueError,
            r"dice_loss: input expected an \(N, C, d1",
        ),
        (lambda x, y, t: F.tversky_loss(x, y[:, :2]), ValueError, r"tversky_loss: target expected the input's shape"),
        (
            lambda x, y, t: F.dice_loss(x, t[:, :, :3], to_onehot_y=True),
            ValueError,
            r"dice_loss: target expected class indices of shape",
        ),
        (
            lambda x, y, t: F.dice_loss(x, t + 1, to_onehot_y=True),
            IndexError,
            r"dice_loss: target expected class indices in \[0, 3\), got 3",
        ),
        (lambda x, y, t: F.dice_loss(x, t - 1, to_onehot_y=True), losskit.IndexError, r"got -1 at flat position"),
        (
            lambda x, y, t: F.dice_loss(x, y, to_onehot_y=True),
            TypeError,
            r"dice_loss: target expected an integer array",
        ),
        (lambda x, y, t: F.tversky_loss(x, t), TypeError, r"tversky_loss: target expected a float array"),
        (
            lambda x, y, t: F.dice_loss(x, y, weight=np.ones(2)),
            ValueError,
            r"dice_loss: weight expected one value per counted class, shape \(3,\)",
        ),
        (
            lambda x, y, t: F.dice_loss(x, y, weight=np.array([1.0, -1.0, 1.0])),
            ValueError,
            r"dice_loss: weight expected non-negative",
        ),
        (lambda x, y, t: F.dice_loss(x, y, reduction="batchmean"), ValueError, r"dice_loss"),
        (lambda x, y, t: F.dice_loss(x, y, reduction="max"), ValueError, r"reduction"),
        (
            lambda x, y, t: F.dice_loss_backward(np.ones(3), x, y),
            ValueError,
            r"dice_loss: grad_output expected a scalar",
        ),
        (
            lambda x, y, t: F.dice_loss_backward(np.ones(3), x, y, reduction="none"),
            ValueError,
            r"dice_loss: grad_output",
        ),
        (
            lambda x, y, t: F.dice_loss_backward(1.0, x, t, to_onehot_y=True, target_grad=True),
            ValueError,
            r"dice_loss: target_grad expected False with to_onehot_y=True \(class indices have no gradient\)",
        ),
        (
            lambda x, y, t: F.tversky_loss_forward_backward(x, t, to_onehot_y=True, target_grad=True),
            ValueError,
            r"tversky_loss: target_grad expected False with to_onehot_y=True",
        ),
        (
            lambda x, y, t: F.dice_loss_backward(1.0, x, y, target_grad="yes"),
            TypeError,
            r"dice_loss: target_grad expected a bool",
        ),
        (lambda x, y, t: F.dice_loss(x, y, batch="yes"), TypeError, r"dice_loss: batch expected a bool"),
        (lambda x, y, t: F.tversky_loss(x, y, alpha="a"), TypeError, r"tversky_loss: alpha"),
        (lambda x, y, t: F.dice_loss(x, y, normalizer=0.0), ValueError, r"dice_loss: normalizer expected"),
        (lambda x, y, t: F.dice_loss(x.astype(complex), y), TypeError, r"dice_loss: input"),
        (lambda x, y, t: F.tversky_loss(x, y, weight=np.ones(3)), TypeError, r"weight"),
    ),
)
def test_errors(call, exc, match):
    rng = np.random.default_rng(11)
    x, y = make_case(rng, (2, 3, 4, 4), np.float64, "soft", "none")
    t = rng.integers(0, 3, (2, 4, 4))
    with pytest.raises(exc, match=match):
        call(x, y, t)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("where", [0, 300_000, 2 * 512 * 512 - 1])
def test_label_check_names_the_first_bad_label_in_any_threads_part(threads, where):
    """The label pre-pass runs on the loss's threads (parts of 2^17 labels or more): a label out
    of range in the first, a middle or the last thread's part is found, and the message names the
    first bad one (a later, second bad label is not the one named)."""
    losskit.set_num_threads(threads)
    x = np.zeros((2, 3, 512, 512), np.float32)
    t = np.zeros((2, 512, 512), np.int64)
    F.dice_loss(x, t, to_onehot_y=True)  # every label in range: no error
    flat = t.reshape(-1)
    flat[where] = 7
    if where + 1 < flat.size:
        flat[-1] = -2
    with pytest.raises(
        losskit.IndexError,
        match=rf"dice_loss: target expected class indices in \[0, 3\), got 7 at flat position {where}$",
    ):
        F.dice_loss(x, t, to_onehot_y=True)
