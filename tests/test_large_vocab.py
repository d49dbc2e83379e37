"""Large-vocabulary losses against torch 2.13: linear_cross_entropy (values and the gradients of
input, linear_weight and linear_bias) over reductions, both dtypes, class weights, ignore_index
(including every target ignored), label smoothing, bias / no bias, chunk sizes that divide
neither N nor V, the in-row parallel path of long rows, unbatched input; thread determinism,
peak memory (the N x V logits are never held), errors; LinearCrossEntropyLoss against torch's
module; AdaptiveLogSoftmaxWithLoss against torch's module with copied weights (output, loss,
log_prob, predict and the gradients of the input and every weight)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit
import losskit.functional as F

from _reference import assert_close, compare

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def _torch_lce(x, W, t, b, **kw):
    return TF.linear_cross_entropy(x, W, t, linear_bias=b, **kw)


def _problem(rng, N, H, V, dtype, bias, ignore=0):
    x = rng.standard_normal((N, H)).astype(dtype)
    W = (rng.standard_normal((V, H)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype) if bias else None
    t = rng.integers(0, V, N).astype(np.int64)
    if ignore:
        t[rng.choice(N, ignore, replace=False)] = -100
    return x, W, t, b


def _grad_output(rng, reduction, shape, dtype):
    if reduction == "none":
        return (rng.standard_normal(shape) + 0.5).astype(dtype)
    return np.asarray(0.75, dtype=dtype)


def check_lce(x, W, t, b, grad_output, kw, chunk_size, what):
    """forward, backward and forward_backward agree, and match torch (loss + three gradients)."""
    lk_kw = {k: v for k, v in kw.items()}
    loss = F.linear_cross_entropy(x, W, t, linear_bias=b, chunk_size=chunk_size, **lk_kw)
    grads = F.linear_cross_entropy_backward(grad_output, x, W, t, linear_bias=b, chunk_size=chunk_size, **lk_kw)
    loss2, grads2 = F.linear_cross_entropy_forward_backward(
        x, W, t, grad_output, linear_bias=b, chunk_size=chunk_size, **lk_kw
    )
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(loss2))
    assert len(grads) == 3 and len(grads2) == 3
    for g, g2 in zip(grads, grads2):
        if g is None:
            assert g2 is None
        else:
            np.testing.assert_array_equal(g, g2)
    if b is None:
        assert grads[2] is None
    assert np.asarray(loss).dtype == x.dtype
    for g in grads:
        if g is not None:
            assert g.dtype == x.dtype
    assert grads[0].shape == x.shape and grads[1].shape == W.shape
    diff = (0, 1, 3) if b is not None else (0, 1)
    compare(
        lambda xx, WW, tt, bb, **k: _torch_lce(xx, WW, tt, bb, **k),
        (x, W, t, b),
        kw,
        diff,
        loss,
        [g for g in grads if g is not None],
        grad_output=grad_output,
        what=what,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "bias,weighted,smoothing,ignore",
    [
        (False, False, 0.0, 0),
        (True, False, 0.0, 3),
        (False, True, 0.0, 3),
        (True, True, 0.2, 3),
        (False, False, 0.1, 0),
        (True, True, 0.0, 0),
    ],
)
def test_linear_cross_entropy_matches_torch(dtype, reduction, bias, weighted, smoothing, ignore):
    rng = np.random.default_rng(abs(hash((str(dtype), reduction, bias, weighted, smoothing, ignore))) % 2**32)
    N, H, V = 29, 12, 41
    x, W, t, b = _problem(rng, N, H, V, dtype, bias, ignore)
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        kw["weight"] = (rng.random(V) + 0.1).astype(dtype)
    go = _grad_output(rng, reduction, (N,), dtype)
    for chunk in (None, 1, 7, 29, 100):  # 7 divides neither N nor V
        check_lce(x, W, t, b, go, kw, chunk, f"{dtype.__name__} {reduction} chunk={chunk}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_grad_output_and_ignore_index_values(dtype):
    rng = np.random.default_rng(1)
    x, W, t, b = _problem(rng, 20, 8, 30, dtype, True)
    t[::4] = 7
    for red in REDUCTIONS:
        for ii in (None, -100, 7):
            kw = {"reduction": red} if ii is None else {"reduction": red, "ignore_index": ii}
            loss, grads = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=6, **kw)
            compare(
                lambda xx, WW, tt, bb, **k: _torch_lce(xx, WW, tt, bb, **k),
                (x, W, t, b),
                kw,
                (0, 1, 3),
                loss,
                list(grads),
                what=f"{red} ignore_index={ii}",
            )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_targets_ignored(dtype, reduction):
    rng = np.random.default_rng(2)
    x, W, t, b = _problem(rng, 9, 5, 11, dtype, True)
    t[:] = -100
    go = _grad_output(rng, reduction, (9,), dtype)
    check_lce(x, W, t, b, go, {"reduction": reduction, "label_smoothing": 0.1}, 4, f"all ignored {reduction}")
    loss = F.linear_cross_entropy(x, W, t, reduction=reduction)
    if reduction == "mean":
        assert np.isnan(loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched(dtype, reduction):
    rng = np.random.default_rng(3)
    x, W, t, b = _problem(rng, 1, 6, 13, dtype, True)
    x1, t0 = x[0], t[0].reshape(())
    go = _grad_output(rng, reduction, (), dtype)
    check_lce(x1, W, t0, b, go, {"reduction": reduction, "label_smoothing": 0.05}, None, f"unbatched {reduction}")
    assert np.shape(F.linear_cross_entropy(x1, W, t0, reduction=reduction)) == ()


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_across_kernel_chunks_and_in_row_threads(dtype):
    """V past the kernel's 2048-class chunk and past its in-row threshold (16384): with chunks of
    fewer rows than 2 x threads, rows are split across threads; values must not change."""
    rng = np.random.default_rng(4)
    x, W, t, b = _problem(rng, 5, 4, 17001, dtype, True, ignore=1)
    w = (rng.random(17001) + 0.5).astype(dtype)
    kw = {"reduction": "mean", "weight": w, "label_smoothing": 0.1}
    check_lce(x, W, t, b, np.asarray(1.5, dtype), kw, 2, "long rows")
    losskit.set_num_threads(1)
    one = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=2, **kw)
    losskit.set_num_threads(2)
    two = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=2, **kw)
    assert np.asarray(one[0]).tobytes() == np.asarray(two[0]).tobytes()
    np.testing.assert_array_equal(one[1][2], two[1][2])


@pytest.mark.parametrize("shape", [(0, 4, 5), (3, 0, 5), (3, 4, 1)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_and_degenerate_shapes(shape, reduction):
    N, H, V = shape
    rng = np.random.default_rng(13)
    x, W, t, b = _problem(rng, N, H, V, np.float64, True)
    check_lce(x, W, t, b, _grad_output(rng, reduction, (N,), np.float64), {"reduction": reduction}, 2, f"shape {shape}")


def test_without_scipy_the_weight_gradient_accumulates_in_vocabulary_slices(monkeypatch):
    from losskit import _large_vocab

    rng = np.random.default_rng(14)
    x, W, t, b = _problem(rng, 23, 6, 50, np.float32, True, ignore=2)
    ref = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=5)
    monkeypatch.setattr(_large_vocab, "_accumulating_gemm", lambda dtype: None)
    monkeypatch.setattr(_large_vocab, "DEFAULT_CHUNK_BYTES", 7 * 6 * 4)  # 7-row slices of gW
    loss, grads = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=5)
    assert np.asarray(loss).tobytes() == np.asarray(ref[0]).tobytes()
    for g, r in zip(grads, ref[1]):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)


def test_loss_bitwise_equal_for_any_thread_count():
    rng = np.random.default_rng(5)
    x, W, t, b = _problem(rng, 300, 16, 3000, np.float32, True, ignore=10)
    results = []
    for n in (1, 2, 8):
        losskit.set_num_threads(n)
        loss, (gx, gW, gb) = F.linear_cross_entropy_forward_backward(
            x, W, t, linear_bias=b, chunk_size=77, label_smoothing=0.1
        )
        results.append((np.asarray(loss).tobytes(), gb.tobytes()))
    assert results[0] == results[1] == results[2]


def test_concurrent_python_threads():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(15)
    x, W, t, b = _problem(rng, 50, 8, 300, np.float32, True, ignore=3)
    call = lambda _: F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=9)  # noqa: E731
    expected = call(0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    for loss, grads in results:
        assert np.asarray(loss).tobytes() == np.asarray(expected[0]).tobytes()
        for g, e in zip(grads, expected[1]):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_chunk_size_does_not_change_the_result_beyond_rounding():
    rng = np.random.default_rng(6)
    x, W, t, b = _problem(rng, 64, 16, 500, np.float64, True)
    ref = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=64)
    for chunk in (1, 5, 63):
        loss, grads = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=chunk)
        np.testing.assert_allclose(loss, ref[0], rtol=1e-13)
        for g, r in zip(grads, ref[1]):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)


def test_peak_memory_is_a_chunk_not_the_logits():
    """N x V logits would be 32 MiB (and torch keeps two or three such arrays); the chunked pass
    holds one 64-row buffer (1 MiB) besides its outputs (gW 256 KiB, grad_input 128 KiB)."""
    rng = np.random.default_rng(7)
    N, H, V = 2048, 16, 4096
    x, W, t, b = _problem(rng, N, H, V, np.float32, True)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b, chunk_size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    logits_bytes = N * V * 4
    assert peak < logits_bytes / 8, f"peak {peak / 2**20:.1f} MiB"


def test_default_chunk_is_about_64_mib_and_at_least_256_rows():
    assert losskit._core.large_vocab_chunk_rows(4096, 32000, 4, 64 << 20, 256) == 524
    assert losskit._core.large_vocab_chunk_rows(4096, 128000, 4, 64 << 20, 256) == 256
    assert losskit._core.large_vocab_chunk_rows(4096, 128000, 4, 64 << 20, 1) == 131
    assert losskit._core.large_vocab_chunk_rows(10, 128000, 4, 64 << 20, 256) == 10
    assert losskit._core.large_vocab_chunk_rows(10, 10**9, 8, 64 << 20, 1) == 1


def test_inputs_of_other_dtypes_and_layouts():
    rng = np.random.default_rng(8)
    x, W, t, b = _problem(rng, 10, 6, 9, np.float64, True)
    ref = F.linear_cross_entropy_forward_backward(x, W, t, linear_bias=b)
    xf = np.asfortranarray(x)
    loss, grads = F.linear_cross_entropy_forward_backward(xf, W.T.copy().T, t.astype(np.int16), linear_bias=b)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-14)
    np.testing.assert_allclose(grads[1], ref[1][1], rtol=1e-13)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ("oob", {}, losskit.IndexError, "target"),
        ("float_target", {}, TypeError, "target"),
        ("bad_h", {}, ValueError, "in_features"),
        ("kdim", {}, ValueError, "linear_weight"),
        ("ok", {"reduction": "batchmean"}, ValueError, "reduction"),
        ("ok", {"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ("ok", {"chunk_size": 0}, ValueError, "chunk_size"),
        ("ok", {"weight": np.ones(3)}, ValueError, "weight"),
        ("ok", {"linear_bias": np.ones(3)}, ValueError, "linear_bias"),
        ("bad_t_shape", {}, ValueError, "target"),
    ],
)
def test_errors(args, kwargs, exc, match):
    rng = np.random.default_rng(9)
    x, W, t, _ = _problem(rng, 4, 3, 5, np.float64, False)
    if args == "oob":
        t[1] = 5
    elif args == "float_target":
        t = t.astype(np.float64)
    elif args == "bad_h":
        W = W[:, :2]
    elif args == "kdim":
        W = W.reshape(5, 1, 3)
    elif args == "bad_t_shape":
        t = t[:3]
    with pytest.raises(exc, match=match):
        F.linear_cross_entropy_forward_backward(x, W, t, **kwargs)
    with pytest.raises(ValueError, match="target_grad"):
        F.linear_cross_entropy_backward(1.0, x, W, t, target_grad=True)


# ---- LinearCrossEntropyLoss -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_linear_cross_entropy_loss_class_against_torch(dtype, bias):
    rng = np.random.default_rng(10)
    H, V, N = 7, 19, 11
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    w = (rng.random(V) + 0.2).astype(dtype)
    tm = torch.nn.LinearCrossEntropyLoss(
        H, V, bias=bias, dtype=tdtype, weight=torch.from_numpy(w), ignore_index=3, label_smoothing=0.1
    )
    lk = losskit.LinearCrossEntropyLoss(
        H, V, bias=bias, dtype=dtype, weight=w, ignore_index=3, label_smoothing=0.1, chunk_size=4
    )
    # torch's initialisation: U(-1/sqrt(H), 1/sqrt(H)), the same shapes and dtype
    assert lk.linear.weight.shape == (V, H) and lk.linear.weight.dtype == dtype
    assert np.abs(lk.linear.weight).max() <= 1 / np.sqrt(H)
    assert (lk.linear.bias is not None) == bias
    lk.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((N, H)).astype(dtype)
    t = rng.integers(0, V, N)
    t[2] = 3
    xt = torch.from_numpy(x).requires_grad_(True)
    ref = tm(xt, torch.from_numpy(t))
    params = [xt, tm.linear.weight] + ([tm.linear.bias] if bias else [])
    ref_grads = torch.autograd.grad(ref, params)
    loss = lk(x, t)
    assert_close(loss, ref.detach().numpy(), what="class loss")
    grads = lk.backward()
    loss2, grads2 = lk.forward_backward(x, t)
    assert_close(loss2, ref.detach().numpy(), what="class loss fb")
    for k, r in enumerate(ref_grads):
        assert_close(grads[k], r.numpy(), what=f"class grad {k}")
        assert_close(grads2[k], r.numpy(), what=f"class grad fb {k}")
    if not bias:
        assert grads[2] is None
    assert "num_classes=19" in repr(lk) and "LinearCrossEntropyLoss(" in repr(lk)
    with pytest.raises(RuntimeError):
        losskit.LinearCrossEntropyLoss(H, V).backward()


def test_linear_cross_entropy_loss_weights_are_settable():
    lk = losskit.LinearCrossEntropyLoss(4, 6, bias=True)
    lk.linear.weight = np.zeros((6, 4), np.float32)
    lk.linear.bias = np.zeros(6, np.float32)
    loss = lk(np.ones((3, 4), np.float32), np.array([0, 1, 2]))
    assert np.isclose(loss, np.log(6))


# ---- AdaptiveLogSoftmaxWithLoss -------------------------------------------------------------
def _asm_pair(dtype, head_bias, in_features=16, n_classes=40, cutoffs=(8, 20, 30), div_value=2.0):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(
        in_features, n_classes, list(cutoffs), div_value=div_value, head_bias=head_bias, dtype=tdtype
    )
    lk = losskit.AdaptiveLogSoftmaxWithLoss(
        in_features, n_classes, list(cutoffs), div_value=div_value, head_bias=head_bias, dtype=dtype
    )
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert set(sd) == set(lk.state_dict())
    for k, v in sd.items():
        assert lk.state_dict()[k].shape == v.shape and lk.state_dict()[k].dtype == dtype
    lk.load_state_dict(sd)
    return tm, lk


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_bias", [False, True])
def test_adaptive_log_softmax_against_torch(dtype, head_bias):
    rng = np.random.default_rng(11)
    tm, lk = _asm_pair(dtype, head_bias)
    N = 33
    x = rng.standard_normal((N, 16)).astype(dtype)
    t = rng.integers(0, 40, N)
    t[t >= 30] = 5  # the last cluster gets no row: its weights have zero gradient
    t[0], t[1] = 39, 30
    xt = torch.from_numpy(x).requires_grad_(True)
    ref = tm(xt, torch.from_numpy(t))
    names = list(dict(tm.named_parameters()))
    ref_grads = torch.autograd.grad(ref.loss, [xt] + [dict(tm.named_parameters())[n] for n in names])
    out, loss = lk(x, t)
    assert_close(out, ref.output.detach().numpy(), what="output")
    assert_close(loss, ref.loss.detach().numpy(), what="loss")
    gx, grads = lk.backward()
    assert_close(gx, ref_grads[0].numpy(), what="grad input")
    assert list(grads) == names
    for n, r in zip(names, ref_grads[1:]):
        assert_close(grads[n], r.numpy(), what=f"grad {n}")
    (out2, loss2), (gx2, grads2) = lk.forward_backward(x, t, grad_output=2.0)
    assert_close(loss2, ref.loss.detach().numpy(), what="loss fb")
    np.testing.assert_allclose(gx2, 2 * gx, rtol=1e-6)
    with torch.no_grad():
        assert_close(lk.log_prob(x), tm.log_prob(torch.from_numpy(x)).numpy(), what="log_prob")
        np.testing.assert_array_equal(lk.predict(x), tm.predict(torch.from_numpy(x)).numpy())
        # rows whose head argmax is a cluster: shift the input to favour them
        x3 = (x + 3 * rng.standard_normal((N, 16))).astype(dtype)
        np.testing.assert_array_equal(lk.predict(x3), tm.predict(torch.from_numpy(x3)).numpy())


def test_adaptive_log_softmax_unbatched_and_errors():
    tm, lk = _asm_pair(np.float64, True, in_features=8, n_classes=12, cutoffs=(4,), div_value=4.0)
    rng = np.random.default_rng(12)
    x = rng.standard_normal(8)
    for target in (2, 9):
        xt = torch.from_numpy(x).requires_grad_(True)
        ref = tm(xt, torch.tensor(target))
        gref = torch.autograd.grad(ref.loss, [xt])[0]
        out, loss = lk(x, np.array(target))
        assert np.shape(out) == ()
        assert_close(out, ref.output.detach().numpy(), what="unbatched output")
        gx, _ = lk.backward()
        assert_close(gx, gref.numpy(), what="unbatched grad")
    with pytest.raises(ValueError):
        lk(np.ones((3, 8)), np.array([0, 1, 12]))
    with pytest.raises(ValueError, match="cutoffs"):
        losskit.AdaptiveLogSoftmaxWithLoss(8, 12, [4, 4])
    with pytest.raises(RuntimeError):
        losskit.AdaptiveLogSoftmaxWithLoss(8, 12, [4]).backward()
    assert "cutoffs=[4]" in repr(lk)


def test_cpp_chunk_api(tmp_path):
    """Builds tests/cpp_checks/large_vocab_chunks.cpp against the static core library and runs it:
    the public C++ chunk API, driven as a C++ caller with its own BLAS would, gives
    cross_entropy_forward_backward's loss and gradient."""
    from _cpp import run_check

    out = run_check("large_vocab_chunks", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_docstring_examples_run():
    import doctest

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {"np": np, **vars(F)}
    for test in doctest.DocTestFinder().find(F.linear_cross_entropy, "linear_cross_entropy", globs=globs):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0
