"""Classification losses against torch 2.13: forward values and torch.autograd gradients for
cross_entropy (class indices and probabilities), nll_loss, multi_margin_loss,
multilabel_margin_loss and multilabel_soft_margin_loss, over every keyword, reduction, both
dtypes and the unbatched / batched / K-dimensional / empty shapes; plus threading determinism,
the in-row parallel path, errors, memory and hypothesis property tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

import losskit
import losskit.functional as F

from _reference import compare

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def _grad_output(rng, loss_shape, reduction, dtype):
    if reduction == "none":
        return (rng.standard_normal(loss_shape) + 0.5).astype(dtype)
    return np.asarray(0.75, dtype=dtype)


def run_all(name, args, kwargs, grad_output, target_grad=False):
    """forward, backward and forward_backward of losskit; checks that the fused pass agrees with the
    separate calls (to a few ulp: the fused loop may vectorise the loss sum in another order), and
    returns (loss, grads list)."""
    fwd = getattr(F, name)
    bwd = getattr(F, name + "_backward")
    fb = getattr(F, name + "_forward_backward")
    loss = fwd(*args, **kwargs)
    extra = {"target_grad": True} if target_grad else {}
    grads = bwd(grad_output, *args, **kwargs, **extra)
    loss2, grads2 = fb(*args, grad_output=grad_output, **kwargs, **extra)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    grads2 = list(grads2) if isinstance(grads2, tuple) else [grads2]
    rtol = 4 * np.finfo(args[0].dtype).eps
    np.testing.assert_allclose(np.asarray(loss2), np.asarray(loss), rtol=rtol, atol=0)
    for a, b in zip(grads, grads2):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    return loss, grads


def check(name, torch_fn, args, kwargs, rng, reduction, diff=(0,), what=""):
    dtype = args[0].dtype
    loss_shape = np.shape(getattr(F, name)(*args, **{**kwargs, "reduction": "none"}))
    go = _grad_output(rng, loss_shape, reduction, dtype)
    kw = {**kwargs, "reduction": reduction}
    loss, grads = run_all(name, args, kw, go, target_grad=len(diff) > 1)
    assert np.asarray(loss).dtype == dtype
    compare(torch_fn, args, kw, diff, loss, grads, grad_output=go, what=what or f"{name} {kw}")


def index_target(rng, shape, C, ignore_index=None, frac_ignored=0.25):
    t = rng.integers(0, C, size=shape).astype(np.int64) if C > 0 else np.zeros(shape, np.int64)
    if ignore_index is not None and t.size:
        mask = rng.random(shape) < frac_ignored
        t = np.where(mask, ignore_index, t)
    return t


CE_SHAPES = [(5,), (4, 5), (3, 5, 4), (2, 5, 3, 2), (0, 5), (0, 5, 3)]


# ---- cross_entropy, class indices -------------------------------------------------------------
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy_indices(shape, dtype, reduction, weighted, ignore_index, label_smoothing, rng):
    C = shape[0] if len(shape) == 1 else shape[1]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = index_target(rng, tshape, C, ignore_index if ignore_index >= 0 else None)
    kwargs = {"ignore_index": ignore_index, "label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, reduction)


@pytest.mark.parametrize("tdtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64])
def test_cross_entropy_any_integer_target_dtype(tdtype, rng):
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    expected = F.cross_entropy(x, t)
    assert F.cross_entropy(x, t.astype(tdtype)) == expected


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 5), (2, 5, 3)], ids=str)
def test_cross_entropy_all_ignored(weighted, label_smoothing, reduction, shape, rng):
    """Every target ignored: 'mean' is NaN (0 / 0, as torch), the gradient is 0."""
    x = rng.standard_normal(shape)
    t = np.full((shape[0],) + shape[2:], -100, np.int64)
    kwargs = {"label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = rng.uniform(0.5, 2, shape[1])
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, reduction)
    loss, g = F.cross_entropy_forward_backward(x, t, reduction=reduction, **kwargs)
    assert not np.any(g)
    if reduction == "mean":
        assert np.isnan(loss)


@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 5, 3), (2, 20_000)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_non_finite_weight_of_an_unused_class(shape, reduction, rng):
    """Without label smoothing torch reads only the targets' weights: a NaN or inf weight of a
    class no target names leaves loss and gradient finite. The gradient's smoothing term
    (eps / C) * sum(w) was computed as 0 * NaN = NaN for every row (found by the fuzz campaign)."""
    C = shape[0] if len(shape) == 1 else shape[1]
    x = rng.standard_normal(shape)
    t = np.asarray(rng.integers(0, 3, () if len(shape) == 1 else (shape[0],) + shape[2:]))
    w = rng.uniform(0.5, 2.0, C)
    w[3], w[4] = np.nan, np.inf
    check("cross_entropy", TF.cross_entropy, (x, t), {"weight": w}, rng, reduction)
    for n in (1, 2):
        losskit.set_num_threads(n)
        assert np.isfinite(F.cross_entropy_backward(None, x, t, weight=w, reduction=reduction)).all()


@pytest.mark.parametrize("label_smoothing", [0.0, 0.5])
def test_cross_entropy_zero_weight_mean_is_nan_like_torch(label_smoothing, rng):
    """With smoothing, torch's mean is nll_sum / W + smooth_sum / W, NaN at W = 0 (0 / 0) where
    losskit's total / W gave inf (found by the fuzz campaign)."""
    x = rng.standard_normal((3, 4))
    t = np.array([1, 1, 2])
    w = np.array([1.0, 0.0, 0.0, 1.0])
    check("cross_entropy", TF.cross_entropy, (x, t), {"weight": w, "label_smoothing": label_smoothing}, rng, "mean")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_cross_entropy_extreme_logits(dtype, label_smoothing, reduction, rng):
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [1e4, -1e4, 0.0, 1.0],
            [-1e4, -1e4, -1e4, 1e4],
            [inf, 0.0, 1.0, 2.0],
            [-inf, 0.0, 1.0, 2.0],
            [-inf, -inf, -inf, -inf],
            [nan, 0.0, 1.0, 2.0],
            [nan, 0.0, 1.0, 2.0],  # ignored row with NaN: torch's gradient is NaN there
            [-inf, 3.0, -inf, 2.0],
            [80.0, 85.0, 89.0, 60.0],
        ],
        dtype=dtype,
    )
    t = np.array([0, 3, 1, 2, 0, 1, -100, 1, 2])
    check("cross_entropy", TF.cross_entropy, (x, t), {"label_smoothing": label_smoothing}, rng, reduction)
    # the same rows as positions of a K-dim (N, C, d) input: the strided tile path
    xk = np.ascontiguousarray(x.T[None])
    check("cross_entropy", TF.cross_entropy, (xk, t[None]), {"label_smoothing": label_smoothing}, rng, reduction)


def test_cross_entropy_minus_inf_target_logit(rng):
    x = np.array([[-np.inf, 0.0, 1.0]])
    check("cross_entropy", TF.cross_entropy, (x, np.array([0])), {}, rng, "sum")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cross_entropy_one_class(dtype, rng):
    x = rng.standard_normal((5, 1)).astype(dtype)
    t = np.zeros(5, np.int64)
    for red in REDUCTIONS:
        check("cross_entropy", TF.cross_entropy, (x, t), {"label_smoothing": 0.1}, rng, red)
    loss, g = F.cross_entropy_forward_backward(x, t)
    assert loss == 0 and not np.any(g)  # log softmax of one class is 0, derivative 0


def test_cross_entropy_analytic_uniform():
    """Equal logits: softmax is 1/C, so the loss is log C and the gradient (1/C - [j = y]) / N."""
    N, C = 3, 4
    x = np.zeros((N, C))
    t = np.array([0, 1, 3])
    loss, g = F.cross_entropy_forward_backward(x, t)
    assert np.isclose(loss, np.log(C))
    expected = np.full((N, C), 1 / C)
    expected[np.arange(N), t] -= 1
    np.testing.assert_allclose(g, expected / N, rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_large_rows_in_row_parallel(dtype, label_smoothing, weighted, rng):
    """Few rows of many classes (C > kInRowMinClasses, several chunks): the in-row parallel path at
    2 threads matches torch and gives the same bits as 1 and 8 threads."""
    N, C = 3, 40_000
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = np.array([5, C - 1, 17_000])
    kwargs = {"label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = rng.uniform(0.5, 1.5, C).astype(dtype)
    results = []
    for n in (1, 2, 8):
        losskit.set_num_threads(n)
        results.append(F.cross_entropy_forward_backward(x, t, **kwargs))
        results.append(F.cross_entropy_forward_backward(x, t, reduction="none", **kwargs))
    for k in range(2, len(results)):
        np.testing.assert_array_equal(results[k][0], results[k % 2][0])
        np.testing.assert_array_equal(results[k][1], results[k % 2][1])
    losskit.set_num_threads(2)
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, "mean")


# ---- cross_entropy, probabilities -------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 5, 4), (2, 5, 2, 3), (0, 5)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities(shape, dtype, reduction, weighted, label_smoothing, rng):
    C = shape[0] if len(shape) == 1 else shape[1]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    axis = 0 if len(shape) == 1 else 1
    y = rng.random(shape)
    y = (y / np.maximum(y.sum(axis=axis, keepdims=True), 1e-9)).astype(dtype)
    kwargs = {"label_smoothing": label_smoothing}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("cross_entropy", TF.cross_entropy, (x, y), kwargs, rng, reduction, diff=(0, 1))


def test_cross_entropy_probabilities_extreme(rng):
    x = np.array([[1e4, -1e4, 0.0], [-np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0]])
    y = np.array([[0.7, 0.1, 0.2], [0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])
    check("cross_entropy", TF.cross_entropy, (x, y), {"label_smoothing": 0.1}, rng, "none", diff=(0, 1))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (2, 0, 4)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities_no_classes(shape, dtype, reduction, rng):
    """C = 0: each position's loss is torch's empty sum, -0.0 (losskit's ws log s - wx gave
    0 * -inf = NaN), and 'mean' is NaN, torch's mean of an empty input (found by the fuzz campaign)."""
    x, y = np.zeros(shape, dtype), np.zeros(shape, dtype)
    check("cross_entropy", TF.cross_entropy, (x, y), {}, rng, reduction, diff=(0, 1))


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5)], ids=str)  # the row path and the tile path
def test_cross_entropy_probabilities_target_gradient_at_the_max(shape):
    """The target gradient is -g (1 - eps) w (x - lse); at the largest logit, with the others far
    below, x - lse is small and was formed from lse rounded to float32 (off by 1e-7 * |x|, times
    g). torch forms (x - max) - log(sum), exact at the max (found by the fuzz campaign)."""
    x = np.full(shape, -12.0, np.float32)
    x[:, 0] = -3.1737425
    y = np.full(shape, 1.0 / 3.0, np.float32)
    go = np.full((shape[0],) + shape[2:], 1e3, np.float32)
    loss, grads = run_all("cross_entropy", (x, y), {"reduction": "none"}, go, target_grad=True)
    compare(TF.cross_entropy, (x, y), {"reduction": "none"}, (0, 1), loss, grads, grad_output=go)


@pytest.mark.parametrize("tile", [False, True], ids=["rows", "tile"])
def test_cross_entropy_probabilities_subnormal_softmax_with_infinite_target(tile):
    """float32: a softmax of 3e-39 (logit -88 against 88) is a subnormal, and with an infinite
    target sum(v) is inf: torch's gradient 3e-39 * inf is -inf, where exp flushed to 0 gave
    0 * inf = NaN (found by the fuzz campaign)."""
    x = np.array([[88.0, -3e-39, -3e-39, 88.0]], np.float32)
    y = np.array([[1e-30, -1e38, -88.0, np.inf]], np.float32)
    if tile:
        x, y = np.stack([x, x], -1), np.stack([y, y], -1)
    kw = {"reduction": "none", "label_smoothing": 0.05}
    go = np.full((1,) + x.shape[2:], -0.45, np.float32)
    loss, grads = run_all("cross_entropy", (x, y), kw, go, target_grad=True)
    compare(TF.cross_entropy, (x, y), kw, (0, 1), loss, grads, grad_output=go)


def test_cross_entropy_probabilities_large_in_row(rng):
    x = rng.standard_normal((2, 20_000)).astype(np.float32)
    y = rng.random((2, 20_000)).astype(np.float32)
    y /= y.sum(1, keepdims=True)
    out = []
    for n in (1, 2, 8):
        losskit.set_num_threads(n)
        out.append(F.cross_entropy_forward_backward(x, y, target_grad=True))
    for o in out[1:]:
        assert o[0] == out[0][0]
        for a, b in zip(o[1], out[0][1]):
            np.testing.assert_array_equal(a, b)
    check("cross_entropy", TF.cross_entropy, (x, y), {}, rng, "sum", diff=(0, 1))


# ---- K-dimensional cross_entropy: the spatial tiles ----------------------------------------------
# The (N, C, S) path vectorises across the S contiguous positions in tiles; these sizes give full
# tiles, one short tile and tiles with a vector tail (S = 1 is the row path through the same entry).
@pytest.mark.parametrize("S", [1, 3, 17, 1000])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "weighted_ignore", "smoothing", "all"])
def test_cross_entropy_kdim_spatial_tails(S, dtype, reduction, options, rng):
    N, C = 3, 6
    x = (rng.standard_normal((N, C, S)) * 2).astype(dtype)
    ignore = options in ("weighted_ignore", "all")
    t = index_target(rng, (N, S), C, 2 if ignore else None)
    kwargs = {"ignore_index": 2 if ignore else -100, "label_smoothing": 0.2 if options in ("smoothing", "all") else 0.0}
    if options in ("weighted_ignore", "all"):
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("options", ["plain", "all"])
def test_cross_entropy_kdim_threads_bitwise(dtype, options, rng):
    # 8 x 4087 positions (a tail in every sample's last tile) of 21 classes: many parallel units.
    x = (rng.standard_normal((8, 21, 61, 67)) * 3).astype(dtype)
    t = index_target(rng, (8, 61, 67), 21, 4 if options == "all" else None)
    kwargs = {}
    if options == "all":
        kwargs = {"ignore_index": 4, "label_smoothing": 0.1, "weight": rng.uniform(0.2, 2.0, 21).astype(dtype)}
    go = (rng.standard_normal((8, 61, 67)) + 0.5).astype(dtype)
    results = []
    for n in (1, 2, 8):
        losskit.set_num_threads(n)
        results.append(
            [F.cross_entropy_forward_backward(x, t, reduction=red, **kwargs) for red in ("mean", "sum")]
            + [F.cross_entropy_forward_backward(x, t, reduction="none", grad_output=go, **kwargs)]
        )
    losskit.set_num_threads(2)
    for n, res in zip((2, 8), results[1:]):
        for (l0, g0), (l1, g1) in zip(results[0], res):
            np.testing.assert_array_equal(l1, l0, err_msg=f"threads={n}")
            np.testing.assert_array_equal(g1, g0, err_msg=f"threads={n}")
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, "mean")


# ---- nll_loss ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", CE_SHAPES + [(2, 4, 3, 5)], ids=str)  # 4-D: torch's NLLLoss2d
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_nll_loss(shape, dtype, reduction, weighted, ignore_index, rng):
    C = shape[0] if len(shape) == 1 else shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = index_target(rng, tshape, C, ignore_index if ignore_index >= 0 else None)
    kwargs = {"ignore_index": ignore_index}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("nll_loss", TF.nll_loss, (x, t), kwargs, rng, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_all_ignored(reduction, rng):
    x = rng.standard_normal((3, 4))
    t = np.full(3, -100)
    check("nll_loss", TF.nll_loss, (x, t), {}, rng, reduction)


# ---- multi_margin_loss ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (6, 5), (1, 3)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_loss(shape, dtype, reduction, p, margin, weighted, rng):
    C = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, C, () if len(shape) == 1 else shape[:1])
    kwargs = {"p": p, "margin": margin}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("multi_margin_loss", TF.multi_margin_loss, (x, t), kwargs, rng, reduction)


def test_multi_margin_loss_target_shape_one(rng):
    x = rng.standard_normal(4)
    check("multi_margin_loss", TF.multi_margin_loss, (x, np.array([2])), {}, rng, "none")


@pytest.mark.parametrize("margin", [np.inf, -np.inf, np.nan, 1e38])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multi_margin_loss_non_finite_margin(margin, dtype, p, reduction, rng):
    """torch takes any margin: +inf makes every other class active (an infinite loss, and for
    p = 2 an infinite gradient), -inf and NaN none (loss 0). losskit refused a non-finite margin
    (found by the fuzz campaign)."""
    x = rng.standard_normal((4, 5)).astype(dtype)
    x[1, 2], x[2, 0] = np.inf, -np.inf
    t = np.array([0, 2, 1, 4])
    check("multi_margin_loss", TF.multi_margin_loss, (x, t), {"margin": margin, "p": p}, rng, reduction)


def test_multi_margin_loss_inactive_row_with_infinite_weight(rng):
    """torch weights each active term by w_t, so a row with no active class has loss and gradient
    0 even for w_t = inf, where sum * w_t gave 0 * inf = NaN (found by the fuzz campaign)."""
    x = np.array([[5.0, 0.0, 1.0], [0.0, 5.0, 1.0], [0.0, 0.5, 1.0]])
    w = np.array([np.inf, 1.0, 0.5])
    for reduction in REDUCTIONS:
        check("multi_margin_loss", TF.multi_margin_loss, (x, np.array([0, 1, 2])), {"weight": w}, rng, reduction)


def test_multi_margin_loss_extreme(rng):
    x = np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [1e4, -1e4, 0.0]])
    check("multi_margin_loss", TF.multi_margin_loss, (x, np.array([1, 1, 0])), {"p": 2}, rng, "none")


# ---- multilabel_margin_loss -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss(dtype, reduction, rng):
    x = rng.standard_normal((5, 6)).astype(dtype)
    t = np.array(
        [
            [3, 0, -1, 1, 2, 4],  # stops at the first -1
            [5, 4, 3, 2, 1, 0],  # every class is a target: loss 0
            [-1, 2, 3, 0, 0, 0],  # no target
            [1, 1, -1, 0, 0, 0],  # a repeated index counts twice (torch)
            [2, 0, -1, 3, 5, 5],  # values after the first -1 are never read
        ]
    )
    check("multilabel_margin_loss", TF.multilabel_margin_loss, (x, t), {}, rng, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss_unbatched(reduction, rng):
    x = rng.standard_normal(4)
    check("multilabel_margin_loss", TF.multilabel_margin_loss, (x, np.array([1, 3, -1, 0])), {}, rng, reduction)


# ---- one sample: 0-d inputs (one sample of one class) and the target shapes torch pairs with them --
# torch reads a 0-d input as (C) with C = 1. multi_margin_loss takes a target of 0 or 1 dimension
# holding one index (its 'none' loss has the target's shape); multilabel_margin_loss takes, for
# a 0-d or 1-d input, any target of at most one dimension with C entries ('none' loss 0-d).
ONE_SAMPLE_MM = [
    ((), ()),
    ((), (1,)),
    ((1,), ()),
    ((1,), (1,)),
    ((1, 1), ()),
    ((1, 1), (1,)),
    ((4,), ()),
    ((4,), (1,)),
    ((1, 4), ()),
    ((1, 4), (1,)),
]


@pytest.mark.parametrize("shapes", ONE_SAMPLE_MM, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_loss_one_sample(shapes, dtype, reduction, p, weighted, rng):
    xshape, tshape = shapes
    C = xshape[-1] if xshape else 1
    x = rng.standard_normal(xshape).astype(dtype)
    t = np.full(tshape, rng.integers(0, C))
    kwargs = {"p": p, "margin": 0.7}
    if weighted:
        kwargs["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    check("multi_margin_loss", TF.multi_margin_loss, (x, t), kwargs, rng, reduction)
    assert np.shape(F.multi_margin_loss(x, t, reduction="none", **kwargs)) == tshape
    assert F.multi_margin_loss_backward(1.0, x, t, **kwargs).shape == xshape


@pytest.mark.parametrize("value", [0.3, -1e4, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_losses_0d_input_special_values(value, reduction, rng):
    """One class: no other class to compare with, so loss and gradient are 0 whatever the input."""
    x = np.array(value)
    for t in (np.array(0), np.array([0])):
        check("multi_margin_loss", TF.multi_margin_loss, (x, t), {"p": 2, "margin": -3.0}, rng, reduction)
    for t in (np.array(0), np.array([-1])):
        check("multilabel_margin_loss", TF.multilabel_margin_loss, (x, t), {}, rng, reduction)


ONE_SAMPLE_MLM = [
    ((), (), [0]),
    ((), (), [-1]),
    ((), (1,), [0]),
    ((), (1,), [-1]),
    ((1,), (), [0]),
    ((1,), (), [-1]),
    ((1,), (1,), [0]),
    ((1, 1), (1, 1), [0]),
    ((4,), (4,), [2, 0, -1, 3]),
]


@pytest.mark.parametrize("case", ONE_SAMPLE_MLM, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss_one_sample(case, dtype, reduction, rng):
    xshape, tshape, values = case
    x = rng.standard_normal(xshape).astype(dtype)
    t = np.array(values).reshape(tshape)
    check("multilabel_margin_loss", TF.multilabel_margin_loss, (x, t), {}, rng, reduction)
    assert np.shape(F.multilabel_margin_loss(x, t, reduction="none")) == (() if len(xshape) < 2 else xshape[:1])
    assert F.multilabel_margin_loss_backward(1.0, x, t).shape == xshape


# Shapes and indices torch refuses next to the accepted ones above: (loss, input shape, target).
ONE_SAMPLE_REJECTED = [
    ("multi_margin_loss", (), np.zeros(0, np.int64), "target"),
    ("multi_margin_loss", (), np.array([0, 0]), "target"),
    ("multi_margin_loss", (), np.array([[0]]), "target"),
    ("multi_margin_loss", (1, 1), np.array([[0]]), "target"),
    ("multi_margin_loss", (), np.array(1), "target"),
    ("multi_margin_loss", (), np.array([-1]), "target"),
    ("multi_margin_loss", (0,), np.array(0), "input"),
    ("multilabel_margin_loss", (), np.zeros(0, np.int64), "target"),
    ("multilabel_margin_loss", (), np.array([0, -1]), "target"),
    ("multilabel_margin_loss", (), np.array([[0]]), "target"),
    ("multilabel_margin_loss", (1,), np.array([[0]]), "target"),
    ("multilabel_margin_loss", (4,), np.array(0), "target"),
    ("multilabel_margin_loss", (4,), np.array([0]), "target"),
    ("multilabel_margin_loss", (1, 1), np.array(0), "target"),
    ("multilabel_margin_loss", (1, 1), np.array([0]), "target"),
    ("multilabel_margin_loss", (), np.array(1), "target"),
    ("multilabel_margin_loss", (), np.array([-2]), "target"),
    ("multilabel_margin_loss", (0,), np.array(0), "input"),
]


@pytest.mark.parametrize("case", ONE_SAMPLE_REJECTED, ids=lambda c: f"{c[0]}-{c[1]}-{c[2].shape}-{c[2].tolist()}")
def test_margin_losses_one_sample_rejected_like_torch(case):
    name, xshape, t, argument = case
    x = np.zeros(xshape)
    with pytest.raises((RuntimeError, ValueError, IndexError)):  # torch refuses it too
        getattr(TF, name)(torch.from_numpy(x), torch.from_numpy(t))
    for call in (
        lambda: getattr(F, name)(x, t),
        lambda: getattr(F, name + "_backward")(1.0, x, t),
        lambda: getattr(F, name + "_forward_backward")(x, t),
    ):
        with pytest.raises(ValueError, match=rf"^{name}: {argument} expected"):
            call()


def test_multi_margin_loss_0d_input_weight_has_one_class():
    x, t = np.array(0.5), np.array(0)
    assert F.multi_margin_loss(x, t, weight=np.array([2.0])) == 0.0
    with pytest.raises(ValueError, match=r"multi_margin_loss: weight expected .*\(1,\), got shape \(2,\)"):
        F.multi_margin_loss(x, t, weight=np.ones(2))


def test_margin_classes_0d_input(rng):
    """The classes on a 0-d input: forward, backward and forward_backward, shaped as torch's."""
    x = np.array(rng.standard_normal())
    for crit, torch_crit, t in (
        (
            losskit.MultiMarginLoss(p=2, reduction="none"),
            torch.nn.MultiMarginLoss(p=2, reduction="none"),
            np.array([0]),
        ),
        (losskit.MultiLabelMarginLoss(reduction="none"), torch.nn.MultiLabelMarginLoss(reduction="none"), np.array(0)),
    ):
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ref = torch_crit(tx, torch.from_numpy(t))
        (ref_g,) = torch.autograd.grad(ref, tx, torch.ones_like(ref))
        loss = crit(x, t)
        g = crit.backward(np.ones(np.shape(loss)))
        loss2, g2 = crit.forward_backward(x, t)
        for value, grad in ((loss, g), (loss2, g2)):
            assert np.shape(value) == tuple(ref.shape) and np.asarray(value).tolist() == ref.tolist()
            assert grad.shape == tuple(ref_g.shape) == () and grad == ref_g.item()


# ---- multilabel_soft_margin_loss --------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "class", "full"])
def test_multilabel_soft_margin_loss(shape, dtype, reduction, weight, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    y = (rng.random(shape) < 0.4).astype(dtype)
    kwargs = {}
    if weight == "class":
        kwargs["weight"] = rng.uniform(0.2, 2.0, shape[-1]).astype(dtype)
    elif weight == "full":
        kwargs["weight"] = rng.uniform(0.2, 2.0, shape).astype(dtype)
    check("multilabel_soft_margin_loss", TF.multilabel_soft_margin_loss, (x, y), kwargs, rng, reduction, diff=(0, 1))


def test_multilabel_soft_margin_loss_extreme(rng):
    x = np.array([[1e4, -1e4, np.inf, -np.inf, np.nan, 0.0, 40.0, -40.0]])
    y = np.array([[0.0, 1.0, 0.3, 0.6, 1.0, 0.5, 1.0, 0.0]])
    check("multilabel_soft_margin_loss", TF.multilabel_soft_margin_loss, (x, y), {}, rng, "none", diff=(0, 1))


@pytest.mark.parametrize("target", losskit._core.available_cpu_targets().split(","))
def test_multilabel_soft_margin_loss_target_gradient_cancels_as_torch_on_every_target(target, rng):
    """At x = 0, (-u) log sigmoid(x) + u log sigmoid(-x) is exactly 0 in torch; the FMA targets
    contracted one product and gave the other's rounding error, -2.7e21 for u = 1e38 (found by the
    fuzz campaign)."""
    before = losskit._core.cpu_target()
    losskit._core.set_cpu_target(target)
    try:
        x = np.zeros((3, 1))
        y = np.array([[1.0], [0.0], [1.0]])
        check(
            "multilabel_soft_margin_loss",
            TF.multilabel_soft_margin_loss,
            (x, y),
            {"weight": np.array([1e38])},
            rng,
            "sum",
            diff=(0, 1),
        )
    finally:
        losskit._core.set_cpu_target(before)


def test_multilabel_soft_margin_loss_subnormal_sigmoid(rng):
    """float32 sigmoid(-88) is 6e-39, a subnormal: against an infinite target torch's gradient
    inf * 6e-39 is inf, where losskit's exp flushed e^-88 to 0 and gave inf * 0 = NaN (found by
    the fuzz campaign; e^-104 is 0 in both)."""
    x = np.array([[88.0, -88.0, 100.0, -100.0, 103.0, 104.0]], np.float32)
    y = np.array([[np.inf, -np.inf, np.inf, -np.inf, np.inf, np.inf]], np.float32)
    check("multilabel_soft_margin_loss", TF.multilabel_soft_margin_loss, (x, y), {}, rng, "none", diff=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin_loss_non_finite_weights_and_inputs(reduction, rng):
    """torch's autograd evaluates the gradients term by term, so an infinite weight meets y = 0
    or 1 as inf * 0 = NaN (and so does an infinite input); losskit's fused (sigmoid(x) - y) w
    gave +-inf (found by the fuzz campaign)."""
    x = rng.standard_normal((4, 6)) * 3
    x[0, 0], x[1, 1], x[2, 2] = np.inf, -np.inf, 1e38
    y = np.array([[0.0, 1.0, 0.3, 0.0, 1.0, 0.5]] * 4)
    w = np.array([1.0, np.inf, 0.5, -np.inf, 0.0, 2.0])
    check(
        "multilabel_soft_margin_loss",
        TF.multilabel_soft_margin_loss,
        (x, y),
        {"weight": w},
        rng,
        reduction,
        diff=(0, 1),
    )


# ---- threads: bitwise the same on 1, 2 and 8 threads, and right above the threshold ------------
def _thread_cases(rng):
    x = rng.standard_normal((4096, 40)).astype(np.float32)
    t = rng.integers(0, 40, 4096)
    seg = rng.standard_normal((4, 7, 32, 40)).astype(np.float32)
    tseg = rng.integers(0, 7, (4, 32, 40))
    y = (rng.random(x.shape) < 0.3).astype(np.float32)
    mlt = np.where(rng.random(x.shape) < 0.1, rng.integers(0, 40, x.shape), -1)
    mlt = np.sort(mlt, axis=1)[:, ::-1].copy()
    w = rng.uniform(0.5, 2, 40).astype(np.float32)
    return [
        ("cross_entropy", (x, t), {"weight": w, "label_smoothing": 0.1}),
        ("cross_entropy", (seg, tseg), {}),
        ("nll_loss", (x, t), {"weight": w}),
        ("nll_loss", (seg, tseg), {}),
        ("multi_margin_loss", (x, t), {"p": 2}),
        ("multilabel_margin_loss", (x, mlt), {}),
        ("multilabel_soft_margin_loss", (x, y), {"weight": w}),
    ]


def test_threads_bitwise(rng):
    for name, args, kwargs in _thread_cases(rng):
        ref = None
        for n in (1, 2, 8):
            losskit.set_num_threads(n)
            res = [getattr(F, name + "_forward_backward")(*args, reduction=red, **kwargs) for red in REDUCTIONS]
            if ref is None:
                ref = res
                continue
            for (l0, g0), (l1, g1) in zip(ref, res):
                np.testing.assert_array_equal(l1, l0, err_msg=f"{name} threads={n}")
                np.testing.assert_array_equal(g1, g0, err_msg=f"{name} threads={n}")


def test_threads_against_torch(rng):
    losskit.set_num_threads(2)
    for name, args, kwargs in _thread_cases(rng):
        torch_fn = getattr(TF, name)
        check(name, torch_fn, args, kwargs, rng, "mean")


# ---- errors -----------------------------------------------------------------------------------
def test_out_of_range_targets_raise_index_error():
    x = np.zeros((2, 3))
    for fn in (F.cross_entropy, F.nll_loss, F.multi_margin_loss):
        with pytest.raises(losskit.IndexError, match="got 7"):
            fn(x, np.array([1, 7]))
        with pytest.raises(ValueError, match="got -3"):
            fn(x, np.array([-3, 0]))
        with pytest.raises(IndexError):
            getattr(F, fn.__name__ + "_forward_backward")(x, np.array([1, 3]))
    with pytest.raises(losskit.IndexError, match="got 3"):
        F.multilabel_margin_loss(x, np.array([[0, 3, -1], [0, 1, 2]]))
    with pytest.raises(losskit.IndexError, match="got -2"):  # torch checks every entry
        F.multilabel_margin_loss(x, np.array([[0, -1, -2], [0, 1, 2]]))
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(np.zeros((2, 3, 4)), np.full((2, 4), 3))


def test_float_targets_where_indices_expected_raise_type_error():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, np.array([1.0, 0.0]))
    for fn in (F.nll_loss, F.multi_margin_loss):
        with pytest.raises(TypeError, match="integer"):
            fn(x, np.array([1.0, 0.0]))
    with pytest.raises(TypeError):
        F.multilabel_margin_loss(x, np.zeros((2, 3)))
    with pytest.raises(TypeError):
        F.cross_entropy(x, np.array([True, False]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), "target"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(4)), "weight"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5), "label_smoothing"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.zeros((2, 3)), ignore_index=1), "ignore_index"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="batchmean"), "reduction"),
        (lambda: F.cross_entropy(np.zeros(()), np.array(0)), "input"),
        (lambda: F.nll_loss(np.zeros((2, 3)), np.array([[0, 1]])), "target"),
        (lambda: F.multi_margin_loss(np.zeros((2, 3)), np.array([0, 1]), p=3), "p"),
        (lambda: F.multi_margin_loss(np.zeros((2, 3, 4)), np.array([0, 1])), "input"),
        (lambda: F.multilabel_margin_loss(np.zeros((2, 3)), np.zeros((2, 4), np.int64)), "target"),
        (lambda: F.multilabel_soft_margin_loss(np.zeros((2, 3)), np.zeros((2, 4))), "target"),
        (lambda: F.multilabel_soft_margin_loss(np.zeros((2, 3)), np.zeros((2, 3)), weight=np.ones(2)), "weight"),
        (
            lambda: F.cross_entropy_backward(np.ones(3), np.zeros((2, 3)), np.array([0, 1]), reduction="none"),
            "grad_output",
        ),
        (lambda: F.cross_entropy_backward(1.0, np.zeros((2, 3)), np.array([0, 1]), target_grad=True), "target_grad"),
        (lambda: F.nll_loss_backward(1.0, np.zeros((2, 3)), np.array([0, 1]), target_grad=True), "target_grad"),
    ],
)
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_legacy_flags_warn():
    x = np.zeros((2, 3))
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert F.cross_entropy(x, np.array([0, 1]), size_average=False) == pytest.approx(2 * np.log(3))


# ---- classes ----------------------------------------------------------------------------------
def test_classes(rng):
    x = rng.standard_normal((4, 3))
    t = rng.integers(0, 3, 4)
    w = rng.uniform(0.5, 2, 3)
    crit = losskit.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1, reduction="sum")
    with pytest.raises(RuntimeError):
        crit.backward()
    loss = crit(x, t)
    assert loss == F.cross_entropy(x, t, weight=w, ignore_index=1, label_smoothing=0.1, reduction="sum")
    np.testing.assert_array_equal(
        crit.backward(),
        F.cross_entropy_backward(1.0, x, t, weight=w, ignore_index=1, label_smoothing=0.1, reduction="sum"),
    )
    loss2, g = crit.forward_backward(x, t, grad_output=2.0)
    assert loss2 == loss
    assert "label_smoothing=0.1" in repr(crit) and "ignore_index=1" in repr(crit)
    assert losskit.NLLLoss(reduction="none")(x, t).shape == (4,)
    assert losskit.MultiMarginLoss(p=2, margin=0.5)(x, t) == F.multi_margin_loss(x, t, p=2, margin=0.5)
    assert losskit.MultiLabelMarginLoss()(x, np.array([[0, -1, 0]] * 4)) == F.multilabel_margin_loss(
        x, np.array([[0, -1, 0]] * 4)
    )
    y = (rng.random(x.shape) < 0.5).astype(float)
    crit = losskit.MultiLabelSoftMarginLoss(weight=w)
    gi, gt = crit.forward_backward(x, y, target_grad=True)[1]
    assert gi.shape == gt.shape == x.shape
    with pytest.raises(ValueError):
        losskit.MultiMarginLoss(p=3)


def test_no_copy_of_contiguous_input(rng):
    """Contiguous float inputs are passed to the core as they are (the gradient is a new array)."""
    x = rng.standard_normal((3, 4)).astype(np.float32)
    _, g = F.cross_entropy_forward_backward(x, np.array([0, 1, 2]))
    assert g.dtype == np.float32 and not np.shares_memory(g, x)


# ---- memory: forward_backward allocates its gradient and O(threads x C) scratch, nothing N x C --
def test_forward_backward_peak_memory():
    code = textwrap.dedent(
        """
        import numpy as np, losskit, losskit.functional as F
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith('VmHWM'):
                    return int(line.split()[1]) * 1024
        losskit.set_num_threads(2)
        N, C = 2048, 16000
        x = np.random.default_rng(0).standard_normal((N, C), dtype=np.float32)
        t = np.arange(N) % C
        F.cross_entropy(x[:4], t[:4])      # warm up: import-time allocations
        before = hwm()
        loss = F.cross_entropy(x, t)       # forward alone: nothing input-sized
        mid = hwm()
        loss, g = F.cross_entropy_forward_backward(x, t, label_smoothing=0.1)
        after = hwm()
        print(mid - before, after - mid, g.nbytes)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    fwd_extra, fb_extra, grad_bytes = map(int, out.stdout.split())
    slack = 8 << 20  # allocator and page granularity; an N x C temporary would be 131 MB
    assert fwd_extra < slack, (fwd_extra, grad_bytes)
    assert fb_extra < grad_bytes + slack, (fb_extra, grad_bytes)


# ---- hypothesis -------------------------------------------------------------------------------
@st.composite
def ce_problems(draw):
    kdims = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    unbatched = draw(st.booleans()) and not kdims
    N = draw(st.integers(0, 5))
    C = draw(st.integers(1, 6))
    shape = (C,) if unbatched else (N, C, *kdims)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from(DTYPES))
    x = (rng.standard_normal(shape) * draw(st.sampled_from([0.1, 1.0, 10.0]))).astype(dtype)
    tshape = () if unbatched else (N, *kdims)
    ignore_index = draw(st.sampled_from([-100, 0, C - 1]))
    t = index_target(rng, tshape, C, ignore_index, 0.3)
    kwargs = {
        "ignore_index": ignore_index,
        "label_smoothing": draw(st.sampled_from([0.0, 0.05, 0.5, 1.0])),
        "reduction": draw(st.sampled_from(REDUCTIONS)),
    }
    if draw(st.booleans()):
        kwargs["weight"] = rng.uniform(0.0, 2.0, C).astype(dtype)
    return x, t, kwargs, seed


@given(ce_problems())
def test_hypothesis_cross_entropy(problem):
    x, t, kwargs, seed = problem
    rng = np.random.default_rng(seed)
    reduction = kwargs.pop("reduction")
    check("cross_entropy", TF.cross_entropy, (x, t), kwargs, rng, reduction)
    kwargs.pop("label_smoothing")
    check("nll_loss", TF.nll_loss, (x, t), kwargs, rng, reduction)


@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([1, 2]),
    st.floats(-1, 2),
    st.booleans(),
    st.sampled_from(REDUCTIONS),
    st.integers(0, 2**31 - 1),
)
def test_hypothesis_margin_losses(N, C, p, margin, weighted, reduction, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C))
    t = rng.integers(0, C, N)
    kwargs = {"p": p, "margin": margin}
    if weighted:
        kwargs["weight"] = rng.uniform(0, 2, C)
    check("multi_margin_loss", TF.multi_margin_loss, (x, t), kwargs, rng, reduction)
    mlt = rng.integers(-1, C, (N, C))
    check("multilabel_margin_loss", TF.multilabel_margin_loss, (x, mlt), {}, rng, reduction)
    y = rng.random((N, C))
    check(
        "multilabel_soft_margin_loss",
        TF.multilabel_soft_margin_loss,
        (x, y),
        {"weight": kwargs.get("weight")} if weighted else {},
        rng,
        reduction,
        diff=(0, 1),
    )


@given(
    st.integers(0, 4),
    st.integers(1, 5),
    st.lists(st.integers(1, 3), max_size=2),
    st.sampled_from(DTYPES),
    st.sampled_from(REDUCTIONS),
    st.floats(0, 1),
    st.integers(0, 2**31 - 1),
)
def test_hypothesis_cross_entropy_probabilities(N, C, kdims, dtype, reduction, eps, seed):
    rng = np.random.default_rng(seed)
    shape = (N, C, *kdims)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.random(shape).astype(dtype)
    check("cross_entropy", TF.cross_entropy, (x, y), {"label_smoothing": eps}, rng, reduction, diff=(0, 1))


def test_reused_gradient_buffers_do_not_alias(rng):
    """Large gradients come from a one-slot cache of the last freed buffer: results that are alive
    together never share memory, and a reused buffer is fully rewritten."""
    x = rng.standard_normal((64, 20_000)).astype(np.float32)
    t = rng.integers(0, 20_000, 64)
    g1 = F.cross_entropy_forward_backward(x, t)[1]
    keep = g1.copy()
    g2 = F.nll_loss_forward_backward(x, t)[1]
    assert not np.shares_memory(g1, g2)
    np.testing.assert_array_equal(g1, keep)
    del g1, g2
    for name, args in [("nll_loss", (x, t)), ("cross_entropy", (x, t)), ("multi_margin_loss", (x, t))]:
        g = getattr(F, name + "_forward_backward")(*args)[1]
        ref = getattr(F, name + "_backward")(1.0, *args)
        np.testing.assert_array_equal(g, ref)
        del g, ref


def test_python_threads_concurrently(rng):
    """The core runs with the GIL released: 8 Python threads calling at once get the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    x = rng.standard_normal((256, 3000)).astype(np.float32)
    t = rng.integers(0, 3000, 256)
    calls = [
        lambda: F.cross_entropy_forward_backward(x, t, label_smoothing=0.1),
        lambda: F.nll_loss_forward_backward(x, t),
        lambda: F.multi_margin_loss_forward_backward(x, t),
    ]
    expected = [c() for c in calls]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: (k % 3, calls[k % 3]()), range(24)))
    for k, (loss, g) in results:
        assert loss == expected[k][0]
        np.testing.assert_array_equal(g, expected[k][1])


def test_cpp_internal_entry_points(tmp_path):
    """Builds tests/cpp_checks/classification_internal.cpp against the static core library and
    runs it: the in-place cross_entropy_rows kernel the large-vocabulary family reuses, and C++-only
    argument combinations."""
    from _cpp import run_check

    out = run_check("classification_internal", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
