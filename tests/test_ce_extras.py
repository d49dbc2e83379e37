"""Cross-entropy extras (API.md "Cross-entropy extras"): z_loss, softcap and return_stats of
cross_entropy (class indices) and linear_cross_entropy, against torch.autograd of the composed
expression

    x' = softcap * tanh(x / softcap)                         (x' = x without softcap)
    loss = F.cross_entropy(x', target, ...) + z_loss * logsumexp(x')**2 over counted positions,
           reduced like the loss ('mean' divides by the same weighted count)
    stats: lse = logsumexp(x'), entropy = -(softmax(x') * log_softmax(x')).sum(class dim),
           correct = (argmax(x) == target) & counted

over reductions, float32/float64, class weights, ignore_index, label smoothing, K-dimensional
inputs, empty batches, rows longer than a chunk (2048 classes), many rows (row threads), few long
rows (the in-row parallel path), on every CPU target; argmax ties; option errors; thread and
target determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit
import losskit.functional as F
from losskit import _core

from _reference import assert_close

TARGETS = _core.available_cpu_targets().split(",")
DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]
# (z_loss, softcap, label_smoothing, weighted)
EXTRAS = [
    (0.0, None, 0.0, False),  # statistics only
    (1e-2, None, 0.0, False),
    (0.0, 2.5, 0.0, False),
    (1e-2, 2.5, 0.0, True),
    (0.1, 4.0, 0.2, False),
    (0.1, 4.0, 0.2, True),
    (1e-3, None, 0.1, True),
]
# name -> (input shape); class dimension second
SHAPES = {
    "rows": (6, 11),
    "unbatched": (11,),
    "kdim": (3, 7, 4, 5),
    "kdim_tiles": (2, 5, 70, 9),  # 630 positions per sample: several tiles (256 wide for 5 float classes)
    "empty": (0, 5),
    "chunked": (3, 5000),  # rows of three 2048-class chunks
    "row_threads": (400, 300),  # several units of rows
    "in_row": (2, 40000),  # few long rows: chunks of a row split across threads
}


@pytest.fixture(params=TARGETS)
def cpu_target(request):
    before = _core.cpu_target()
    _core.set_cpu_target(request.param)
    yield request.param
    _core.set_cpu_target(before)


def _capped(x, softcap):
    return x if softcap is None else softcap * torch.tanh(x / softcap)


def torch_extras(x, t, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None):
    """The composed torch expression: the loss and the statistics (as tensors)."""
    cdim = 1 if x.dim() > 1 else 0
    xc = _capped(x, softcap)
    loss = TF.cross_entropy(
        xc, t, weight=weight, reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing
    )
    lse = torch.logsumexp(xc, dim=cdim)
    counted = t != ignore_index
    if z_loss:
        zt = z_loss * lse**2 * counted
        if reduction == "none":
            loss = loss + zt
        elif reduction == "sum":
            loss = loss + zt.sum()
        else:
            den = counted.sum() if weight is None else (weight[t.clamp(min=0)] * counted).sum()
            loss = loss + zt.sum() / den
    entropy = -(torch.softmax(xc, cdim) * torch.log_softmax(xc, cdim)).sum(cdim)
    correct = (x.argmax(dim=cdim) == t) & counted
    return loss, {"lse": lse, "entropy": entropy, "correct": correct}


def reference(args, kwargs, grad_output=None, dtype=None):
    """torch's loss, d loss / d input (autograd) and statistics, optionally upcast."""
    x, t, w = args
    X = torch.from_numpy(np.array(x)).to(dtype or torch.from_numpy(np.array(x)).dtype).requires_grad_(True)
    T = torch.from_numpy(np.array(t))
    W = None if w is None else torch.from_numpy(np.array(w)).to(X.dtype)
    loss, stats = torch_extras(X, T, W, **kwargs)
    go = torch.ones_like(loss) if grad_output is None else torch.as_tensor(grad_output, dtype=loss.dtype)
    (g,) = torch.autograd.grad(loss, X, go) if loss.requires_grad else (torch.zeros_like(X),)
    return (loss.detach().numpy(), g.numpy(), {k: v.detach().numpy() for k, v in stats.items()})


def check_against_torch(x, t, w, kwargs, loss, grad, stats, grad_output=None, what=""):
    ref_loss, ref_grad, ref_stats = reference((x, t, w), kwargs, grad_output)
    r64 = reference((x, t, w), kwargs, grad_output, torch.float64) if x.dtype == np.float32 else (None, None, None)
    assert_close(loss, ref_loss, r64[0], f"{what} loss")
    if grad is not None:
        assert_close(grad, ref_grad, r64[1], f"{what} grad")
    if stats is not None:
        assert set(stats) == {"lse", "entropy", "correct"}
        for k in ("lse", "entropy"):
            assert_close(stats[k], ref_stats[k], None if r64[2] is None else r64[2][k], f"{what} {k}")
        assert stats["correct"].dtype == np.bool_ and stats["correct"].shape == ref_stats["correct"].shape
        np.testing.assert_array_equal(stats["correct"], ref_stats["correct"], err_msg=f"{what} correct")


def make_problem(rng, shape, dtype, weighted, ignore=True):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng.integers(0, C, tshape).astype(np.int64)
    if ignore and t.size > 1:
        t.reshape(-1)[rng.choice(t.size, max(1, t.size // 5), replace=False)] = -100
    if t.size:  # make some predictions right, so `correct` is not all False
        flat = x.reshape(shape[0], C, -1) if len(shape) > 1 else x.reshape(1, C, 1)
        tf = t.reshape(flat.shape[0], flat.shape[2])
        for n in range(flat.shape[0]):
            for s in range(0, flat.shape[2], 2):
                if tf[n, s] >= 0:
                    flat[n, tf[n, s], s] = flat[n, :, s].max() + 1
    w = (rng.random(C) + 0.5).astype(dtype) if weighted else None
    return x, t, w


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("extras", EXTRAS, ids=[f"z{e[0]}-cap{e[1]}-ls{e[2]}-w{int(e[3])}" for e in EXTRAS])
def test_cross_entropy_extras_match_torch(cpu_target, shape, extras):
    z, cap, ls, weighted = extras
    if shape in ("in_row", "row_threads", "chunked", "kdim_tiles") and cpu_target != TARGETS[0] and extras != EXTRAS[3]:
        pytest.skip("large shapes on lower targets: one combination of every extra")
    losskit.set_num_threads(2)
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        x, t, w = make_problem(rng, SHAPES[shape], dtype, weighted)
        for reduction in REDUCTIONS:
            kw = dict(reduction=reduction, label_smoothing=ls, z_loss=z, softcap=cap)
            what = f"{cpu_target} {shape} {np.dtype(dtype).name} {reduction} {extras}"
            loss, stats = F.cross_entropy(x, t, w, return_stats=True, **kw)
            loss2, grad, stats2 = F.cross_entropy_forward_backward(x, t, weight=w, return_stats=True, **kw)
            check_against_torch(x, t, w, kw, loss, None, stats, what=what + " forward")
            check_against_torch(x, t, w, kw, loss2, grad, stats2, what=what + " forward_backward")
            # without statistics: the same loss and gradient
            assert_close(F.cross_entropy(x, t, w, **kw), np.asarray(loss), what=what + " no stats")
            go = rng.standard_normal(np.shape(loss)).astype(dtype) if reduction == "none" else dtype(0.7)
            g = F.cross_entropy_backward(go, x, t, w, **kw)
            check_against_torch(x, t, w, kw, loss, g, None, grad_output=go, what=what + " backward")
            # backward with statistics runs the gradient-storing kernel instance, the forward the
            # other one: the same formulas, summed in another order on some targets (baseline)
            g3, stats3 = F.cross_entropy_backward(go, x, t, w, return_stats=True, **kw)
            check_against_torch(x, t, w, kw, loss, g3, stats3, grad_output=go, what=what + " backward+stats")


def test_statistics_do_not_change_loss_or_gradient(rng):
    """Asking for the statistics routes through the extras kernels; the loss and gradient must
    still be torch's, and bitwise the same at any thread count."""
    x, t, w = make_problem(rng, (5, 9000), np.float32, True)
    results = []
    for threads in (1, 2, 4):
        losskit.set_num_threads(threads)
        results.append(
            F.cross_entropy_forward_backward(
                x, t, weight=w, z_loss=1e-3, softcap=3.0, return_stats=True, label_smoothing=0.1
            )
        )
    for loss, grad, stats in results[1:]:
        assert np.array_equal(loss, results[0][0]) and np.array_equal(grad, results[0][1])
        for k in stats:
            assert np.array_equal(stats[k], results[0][2][k])


@pytest.mark.parametrize("shape", [(4, 9), (4, 5000), (2, 40000), (2, 9, 3)], ids=["row", "chunked", "in_row", "kdim"])
def test_argmax_ties_take_the_first_index(cpu_target, shape):
    losskit.set_num_threads(2)
    C = shape[1]
    x = np.zeros(shape, np.float64)
    a, b = 3, C - 2  # two equal maxima, in different chunks for long rows
    x[:, a] = 5.0
    x[:, b] = 5.0
    x[3 % shape[0], :] = -np.inf if len(shape) == 2 else x[3 % shape[0], :]  # a row of -inf: argmax 0
    tshape = (shape[0],) + shape[2:]
    for tgt, expect_first in ((a, True), (b, False), (0, None)):
        t = np.full(tshape, tgt, np.int64)
        _, stats = F.cross_entropy(x, t, reduction="none", return_stats=True)
        ref = (torch.from_numpy(x).argmax(dim=1) == torch.from_numpy(t)).numpy()
        np.testing.assert_array_equal(stats["correct"], ref)
        if expect_first is not None:
            assert stats["correct"].reshape(shape[0], -1)[0].all() == expect_first


def test_ignored_positions_keep_their_statistics(rng):
    x, t, _ = make_problem(rng, (6, 13), np.float64, False, ignore=False)
    t[[1, 4]] = -100
    x[1, 0] = x[1].max() + 5  # argmax 0 at an ignored row
    loss, stats = F.cross_entropy(x, t, reduction="none", z_loss=0.5, return_stats=True)
    assert not stats["correct"][[1, 4]].any()
    assert loss[1] == 0 and loss[4] == 0
    X = torch.from_numpy(x)
    assert_close(stats["lse"], torch.logsumexp(X, 1).numpy())


def test_softcap_saturates_and_bounds_the_logits():
    x = np.array([[1e30, -1e30, 0.0, np.inf, -np.inf]], np.float32)
    t = np.array([2])
    loss, g, stats = F.cross_entropy_forward_backward(x, t, softcap=1.0, return_stats=True)
    X = torch.from_numpy(x).requires_grad_(True)
    ref = TF.cross_entropy(1.0 * torch.tanh(X / 1.0), torch.from_numpy(t))
    (rg,) = torch.autograd.grad(ref, X)
    assert_close(loss, ref.detach().numpy())
    assert_close(g, rg.numpy())
    assert np.isfinite(stats["lse"]).all() and np.isfinite(stats["entropy"]).all()


def test_empty_batch():
    x = np.zeros((0, 5), np.float32)
    t = np.zeros((0,), np.int64)
    loss, g, stats = F.cross_entropy_forward_backward(x, t, z_loss=0.1, softcap=2.0, return_stats=True)
    assert np.isnan(loss) and g.shape == (0, 5)
    assert all(v.shape == (0,) for v in stats.values())
    assert stats["lse"].dtype == np.float32 and stats["correct"].dtype == np.bool_


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("softcap", 0.0, "softcap"),
        ("softcap", -1.0, "softcap"),
        ("softcap", float("inf"), "softcap"),
        ("softcap", float("nan"), "softcap"),
        ("z_loss", -0.1, "z_loss"),
        ("z_loss", float("inf"), "z_loss"),
        ("z_loss", float("nan"), "z_loss"),
    ],
)
def test_bad_options_raise_before_any_work(name, value, message):
    x = np.zeros((2, 3))
    t = np.array([0, 1])
    for fn in (F.cross_entropy, F.cross_entropy_forward_backward):
        with pytest.raises(ValueError, match=rf"cross_entropy: {message} expected"):
            fn(x, t, **{name: value})
    with pytest.raises(ValueError, match=rf"linear_cross_entropy: {message} expected"):
        F.linear_cross_entropy(np.zeros((2, 4)), np.zeros((3, 4)), t, **{name: value})
    with pytest.raises(TypeError, match=name):
        F.cross_entropy(x, t, **{name: "1"})


@pytest.mark.parametrize("kw", [{"z_loss": 0.1}, {"softcap": 2.0}, {"return_stats": True}])
def test_probability_targets_reject_the_extras(kw):
    x = np.zeros((2, 3))
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="class indices only"):
        F.cross_entropy(x, p, **kw)


def test_loss_class_passes_the_extras(rng):
    x, t, w = make_problem(rng, (5, 7), np.float64, True)
    crit = losskit.CrossEntropyLoss(weight=w, z_loss=0.01, softcap=3.0, return_stats=True)
    loss, stats = crit(x, t)
    g, stats_b = crit.backward()
    loss2, g2, stats2 = crit.forward_backward(x, t)
    check_against_torch(x, t, w, dict(z_loss=0.01, softcap=3.0), loss, g, stats)
    assert np.array_equal(g, g2) and np.array_equal(loss, loss2)
    for k in stats:
        assert np.array_equal(stats[k], stats2[k]) and np.array_equal(stats[k], stats_b[k])


# ---- linear_cross_entropy --------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("extras", EXTRAS[1:5], ids=[f"z{e[0]}-cap{e[1]}-ls{e[2]}-w{int(e[3])}" for e in EXTRAS[1:5]])
def test_linear_cross_entropy_extras_match_torch(reduction, dtype, extras):
    z, cap, ls, weighted = extras
    rng = np.random.default_rng(11)
    N, H, V = 37, 16, 300
    x = rng.standard_normal((N, H)).astype(dtype)
    W = (rng.standard_normal((V, H)) / 2).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    t = rng.integers(0, V, N).astype(np.int64)
    t[[2, 9]] = -100
    w = (rng.random(V) + 0.5).astype(dtype) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=ls, z_loss=z, softcap=cap)
    loss, (gx, gW, gb), stats = F.linear_cross_entropy_forward_backward(
        x, W, t, linear_bias=b, weight=w, chunk_size=10, return_stats=True, **kw
    )

    def run(d):
        X, Wt, B = (torch.from_numpy(a).to(d).requires_grad_(True) for a in (x, W, b))
        Wc = None if w is None else torch.from_numpy(w).to(d)
        L, S = torch_extras(X @ Wt.T + B, torch.from_numpy(t), Wc, **kw)
        return L, torch.autograd.grad(L.sum(), (X, Wt, B)), S

    L, G, S = run(torch.from_numpy(x).dtype)
    L64, G64, S64 = run(torch.float64) if dtype == np.float32 else (None, (None,) * 3, None)
    what = f"linear {np.dtype(dtype).name} {reduction} {extras}"
    assert_close(loss, L.detach().numpy(), None if L64 is None else L64.detach().numpy(), what)
    # 'none': autograd of the sum is the gradient with grad_output of ones
    for k, (got, r, r64) in enumerate(zip((gx, gW, gb), G, G64)):
        assert_close(got, r.numpy(), None if r64 is None else r64.numpy(), f"{what} grad {k}")
    for k in ("lse", "entropy"):
        assert_close(stats[k], S[k].detach().numpy(), None if S64 is None else S64[k].detach().numpy(), f"{what} {k}")
    np.testing.assert_array_equal(stats["correct"], S["correct"].numpy())
    # the forward and the class give the same
    loss_f, stats_f = F.linear_cross_entropy(x, W, t, linear_bias=b, weight=w, chunk_size=7, return_stats=True, **kw)
    assert_close(loss_f, np.asarray(loss), what=what + " forward")
    np.testing.assert_array_equal(stats_f["correct"], stats["correct"])


def test_linear_cross_entropy_unbatched_stats():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(8)
    W = rng.standard_normal((20, 8))
    t = np.array(4)
    loss, stats = F.linear_cross_entropy(x, W, t, softcap=5.0, return_stats=True)
    assert all(v.shape == () for v in stats.values())
    L, S = torch_extras(torch.from_numpy(W @ x), torch.from_numpy(t), softcap=5.0)
    assert_close(loss, L.numpy())
    assert_close(stats["lse"], S["lse"].numpy())


def test_cpp_extras(tmp_path):
    """Builds tests/cpp_checks/ce_extras.cpp against the static core library and runs it: the C++
    options and statistics views (finite differences, direct log-sum-exp and argmax), the in-place
    row kernel with the extras on every path, and the option errors."""
    from _cpp import run_check

    out = run_check("ce_extras", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
