"""Contrastive losses against torch 2.13 autograd of the published formula: info_nce_loss (CLIP's
symmetric InfoNCE and the one-sided form) as F.cross_entropy(a @ b.T / T, arange(N)) (and its
transpose), a and b the F.normalize'd embeddings or the raw ones. Values and both gradients, both
dtypes, every reduction with a grad_output, N = 1, empty, several row blocks (block_size smaller
than N, not dividing it), NaN, zero rows; bitwise equality on 1 and 2 threads; bfloat16 / float16
read in place (the float32 result rounded once, no float32 copy); the class; errors
naming the argument; optax's ntxent (SimCLR's NT-Xent), which is not this loss: the test pins down
the difference (the same-batch negatives)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit
import losskit.functional as F

from _reference import assert_close

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]


def torch_info_nce(z1, z2, temperature=0.07, symmetric=True, normalize=True, reduction="mean"):
    """The formula as published (CLIP's pseudocode), on torch tensors."""
    a, b = (TF.normalize(z1, dim=1), TF.normalize(z2, dim=1)) if normalize else (z1, z2)
    S = a @ b.T / temperature
    labels = torch.arange(S.shape[0])
    rows = TF.cross_entropy(S, labels, reduction="none")
    per = (rows + TF.cross_entropy(S.T, labels, reduction="none")) / 2 if symmetric else rows
    return {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction]


def torch_reference(z1, z2, grad_output, dtype=None, **kw):
    t1 = torch.tensor(z1, dtype=dtype, requires_grad=True)
    t2 = torch.tensor(z2, dtype=dtype, requires_grad=True)
    out = torch_info_nce(t1, t2, **kw)
    g1, g2 = torch.autograd.grad(out, (t1, t2), torch.tensor(grad_output, dtype=out.dtype), allow_unused=True)
    return out.detach().numpy(), g1.numpy(), g2.numpy()


def _grad_output(rng, reduction, N, dtype):
    if reduction == "none":
        return (rng.standard_normal(N) + 0.5).astype(dtype)
    return np.asarray(0.75, dtype=dtype)


def check(z1, z2, reduction="mean", block_size=None, grad_output=None, **kw):
    dtype = z1.dtype
    go = np.ones(z1.shape[0], dtype) if grad_output is None and reduction == "none" else grad_output
    go = np.asarray(1.0, dtype) if go is None else go
    loss = F.info_nce_loss(z1, z2, reduction=reduction, block_size=block_size, **kw)
    g1, g2 = F.info_nce_loss_backward(go, z1, z2, reduction=reduction, block_size=block_size, **kw)
    loss2, (h1, h2) = F.info_nce_loss_forward_backward(z1, z2, go, reduction=reduction, block_size=block_size, **kw)
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(loss2))
    np.testing.assert_array_equal(g1, h1)
    np.testing.assert_array_equal(g2, h2)
    assert np.asarray(loss).dtype == dtype and g1.dtype == dtype and g2.dtype == dtype
    ref = torch_reference(z1, z2, go, reduction=reduction, **kw)
    ref64 = torch_reference(z1, z2, go, dtype=torch.float64, reduction=reduction, **kw)
    for name, got, want, want64 in zip(("loss", "grad_z1", "grad_z2"), (loss, g1, g2), ref, ref64):
        assert_close(got, want, want64, what=f"{name} {kw} {reduction} block={block_size}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_against_torch(dtype, reduction, symmetric, normalize):
    rng = np.random.default_rng(16)
    N, D = 37, 12
    z1 = rng.standard_normal((N, D)).astype(dtype)
    z2 = (z1 + 0.5 * rng.standard_normal((N, D))).astype(dtype)
    temperature = 0.1 if normalize else 3.0  # raw dot products of D = 12 normals need a warm softmax
    go = _grad_output(rng, reduction, N, dtype)
    check(z1, z2, reduction, grad_output=go, temperature=temperature, symmetric=symmetric, normalize=normalize)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_several_row_blocks(dtype, symmetric, block_size):
    """Blocks of 1, 7 (not dividing N) and 64 rows: the column statistics merged across blocks and
    the symmetric gradient's second pass; a block of N rows gives the same values to rounding."""
    rng = np.random.default_rng(block_size)
    N, D = 100, 16
    z1 = rng.standard_normal((N, D)).astype(dtype)
    z2 = rng.standard_normal((N, D)).astype(dtype)
    go = _grad_output(rng, "none", N, dtype)
    check(z1, z2, "none", block_size=block_size, grad_output=go, symmetric=symmetric)
    check(z1, z2, "mean", block_size=block_size, symmetric=symmetric)


def test_default_block_crosses_threading_and_block_threshold():
    """N = 700 in float64 in blocks of 200 rows (four, the last 100): each block's rows (a grain is
    65536 / N = 93 rows) and its column chunks run on several threads; against torch, and the
    default block (all rows in one) agrees."""
    rng = np.random.default_rng(3)
    N, D = 700, 32
    z1 = rng.standard_normal((N, D))
    z2 = z1 + rng.standard_normal((N, D))
    check(z1, z2, "mean", block_size=200)
    a = F.info_nce_loss_forward_backward(z1, z2, block_size=200)
    b = F.info_nce_loss_forward_backward(z1, z2)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    for x, y in zip(a[1], b[1]):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_pair(dtype):
    """N = 1: the only candidate is the positive, so the loss is 0 and so are the gradients."""
    z1 = np.array([[1.0, 2.0, 3.0]], dtype)
    z2 = np.array([[-1.0, 0.5, 2.0]], dtype)
    for symmetric in (True, False):
        check(z1, z2, "sum", symmetric=symmetric)
        assert float(F.info_nce_loss(z1, z2, symmetric=symmetric)) == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty(reduction):
    z = np.zeros((0, 4), np.float32)
    loss, (g1, g2) = F.info_nce_loss_forward_backward(z, z, reduction=reduction)
    ref = torch_info_nce(torch.zeros(0, 4), torch.zeros(0, 4), reduction=reduction).numpy()
    np.testing.assert_array_equal(np.asarray(loss), ref)
    assert g1.shape == g2.shape == (0, 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_zero_rows(dtype):
    """A NaN in z1 makes its row's loss NaN (and every column's, symmetric), as torch's; a zero row
    normalises to a zero vector (F.normalize's clamp) with the clamp's gradient."""
    rng = np.random.default_rng(5)
    z1 = rng.standard_normal((9, 5)).astype(dtype)
    z2 = rng.standard_normal((9, 5)).astype(dtype)
    z1[2, 3] = np.nan
    z2[6] = 0.0
    for symmetric in (True, False):
        check(z1, z2, "none", symmetric=symmetric, block_size=4)
    z1[2, 3] = 1.0
    z1[4] = 0.0
    check(z1, z2, "mean", block_size=4)


def test_large_logits_are_stable():
    """normalize=False with a small temperature: similarities in the thousands, where a naive
    exp overflows; the shifted log-sum-exps match torch."""
    rng = np.random.default_rng(9)
    z1 = rng.standard_normal((20, 8)) * 10
    z2 = rng.standard_normal((20, 8)) * 10
    check(z1, z2, "mean", normalize=False, temperature=0.05, block_size=6)


def test_bitwise_on_one_and_two_threads():
    rng = np.random.default_rng(11)
    z1 = rng.standard_normal((300, 24)).astype(np.float32)
    z2 = rng.standard_normal((300, 24)).astype(np.float32)
    before = losskit.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            losskit.set_num_threads(n)
            results.append(F.info_nce_loss_forward_backward(z1, z2, block_size=70))
    finally:
        losskit.set_num_threads(before)
    (l1, (a1, b1)), (l2, (a2, b2)) = results
    assert l1.tobytes() == l2.tobytes()
    assert a1.tobytes() == a2.tobytes() and b1.tobytes() == b2.tobytes()


# ---- 16-bit embeddings, read in place ----------------------------------------------------------
HALF_CASES = [
    ("mean", {}),
    ("none", {"symmetric": False}),
    # raw dot products of D = 24 normals need a warm softmax (as in test_against_torch)
    ("sum", {"normalize": False, "temperature": 4.0}),
    ("mean", {"block_size": 7}),  # symmetric in 7-row blocks: the column pass recomputes S
    ("none", {"block_size": 64, "normalize": False, "temperature": 4.0}),
]


def _half_dtype(kind):
    if kind == "float16":
        return np.dtype(np.float16)
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("reduction,kw", HALF_CASES, ids=[f"{r}-{k}" for r, k in HALF_CASES])
def test_half_read_in_place(kind, reduction, kw):
    """bfloat16 / float16 embeddings: the loss and both gradients come back in the input's dtype,
    bitwise equal to the float32 computation on the widened inputs rounded once (the core computes
    exactly that: a float32 GEMM on the normalised or widened rows), and close to torch in float32
    at the 16-bit dtype's tolerance."""
    dtype = _half_dtype(kind)
    rng = np.random.default_rng(17)
    N, D = 150, 24
    z1 = rng.standard_normal((N, D)).astype(dtype)
    z2 = (z1.astype(np.float32) + rng.standard_normal((N, D))).astype(dtype)
    go = _grad_output(rng, reduction, N, np.float32).astype(dtype)
    loss = F.info_nce_loss(z1, z2, reduction=reduction, **kw)
    g1, g2 = F.info_nce_loss_backward(go, z1, z2, reduction=reduction, **kw)
    loss2, (h1, h2) = F.info_nce_loss_forward_backward(z1, z2, go, reduction=reduction, **kw)
    for got in (loss, loss2, g1, g2, h1, h2):
        assert np.asarray(got).dtype == dtype
    assert np.asarray(loss).tobytes() == np.asarray(loss2).tobytes()
    assert g1.tobytes() == h1.tobytes() and g2.tobytes() == h2.tobytes()
    x1, x2, go32 = z1.astype(np.float32), z2.astype(np.float32), go.astype(np.float32)
    loss32, (f1, f2) = F.info_nce_loss_forward_backward(x1, x2, go32, reduction=reduction, **kw)
    assert np.asarray(loss).tobytes() == np.asarray(loss32).astype(dtype).tobytes()
    assert g1.tobytes() == f1.astype(dtype).tobytes() and g2.tobytes() == f2.astype(dtype).tobytes()
    # Against torch in float32 on the widened inputs: within one 16-bit ulp plus the gap between
    # the two float32 results (rounding noise where a gradient cancels), that gap itself held to
    # torch's float32 tolerance.
    from test_low_precision import assert_within_one_ulp

    kw.pop("block_size", None)
    ref = torch_reference(x1, x2, go32, reduction=reduction, **kw)
    ref64 = torch_reference(x1, x2, go32, dtype=torch.float64, reduction=reduction, **kw)
    names = ("loss", "grad_z1", "grad_z2")
    for name, got, got32, want, want64 in zip(names, (loss, g1, g2), (loss32, f1, f2), ref, ref64):
        what = f"{kind} {name} {kw} {reduction}"
        assert_close(got32, want, want64, what=what + " (float32)")
        gap = np.abs(np.asarray(got32, np.float64) - np.asarray(want, np.float64))
        assert_within_one_ulp(got, want, dtype, what, gap)


def test_half_allocates_no_float_copy():
    """(4096, 256) bfloat16 pairs in blocks of 64 rows: what the call allocates is its float32
    workspace (info_nce_workspace_size: the GEMM's normalised rows, one block of similarities and
    the float gradients) and its two 16-bit gradients; a float32 copy of the inputs (8 MB) or float32
    gradients converted afterwards would not fit."""
    import tracemalloc

    from losskit import _core

    dtype = _half_dtype("bfloat16")
    rng = np.random.default_rng(0)
    N, D, rows = 4096, 256, 64
    z1 = rng.standard_normal((N, D), dtype=np.float32).astype(dtype)
    z2 = rng.standard_normal((N, D), dtype=np.float32).astype(dtype)
    F.info_nce_loss_forward_backward(z1, z2, block_size=rows)
    workspace = _core.contrastive_workspace_size(N, D, rows, True) * 4
    tracemalloc.start()
    loss, (g1, g2) = F.info_nce_loss_forward_backward(z1, z2, block_size=rows)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert g1.dtype == g2.dtype == dtype
    assert peak < workspace + g1.nbytes + g2.nbytes + 1_000_000, (peak, workspace)


def test_normalizer_and_mean_normalizer():
    rng = np.random.default_rng(2)
    z1, z2 = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    assert F.mean_normalizer("info_nce_loss", z1, z2) == 10.0
    total = F.info_nce_loss(z1, z2, reduction="sum")
    np.testing.assert_allclose(F.info_nce_loss(z1, z2, normalizer=4.0), total / 4.0, rtol=1e-14)


def test_class():
    rng = np.random.default_rng(4)
    z1 = rng.standard_normal((12, 6)).astype(np.float32)
    z2 = rng.standard_normal((12, 6)).astype(np.float32)
    crit = losskit.InfoNCELoss(temperature=0.2, symmetric=False, reduction="sum")
    assert "temperature=0.2" in repr(crit) and "symmetric=False" in repr(crit)
    loss = crit(z1, z2)
    g = crit.backward()
    loss2, g2 = crit.forward_backward(z1, z2)
    want = F.info_nce_loss_forward_backward(z1, z2, temperature=0.2, symmetric=False, reduction="sum")
    np.testing.assert_array_equal(loss, want[0])
    np.testing.assert_array_equal(loss2, want[0])
    for x, y, w in zip(g, g2, want[1]):
        np.testing.assert_array_equal(x, w)
        np.testing.assert_array_equal(y, w)


@pytest.mark.parametrize(
    "args, kwargs, exc, pattern",
    [
        ((np.zeros((3, 2)), np.zeros((3, 3))), {}, ValueError, r"info_nce_loss: z2 expected z1's shape"),
        ((np.zeros(3), np.zeros(3)), {}, ValueError, r"info_nce_loss: z1 expected an \(N, D\) array"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"temperature": 0.0}, ValueError, r"temperature expected"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"temperature": np.inf}, ValueError, r"temperature expected"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"temperature": "hot"}, TypeError, r"temperature"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"reduction": "batchmean"}, ValueError, r"reduction expected"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"symmetric": "yes"}, TypeError, r"symmetric expected a bool"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"normalize": 0.5}, TypeError, r"normalize expected a bool"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"block_size": 0}, ValueError, r"block_size expected"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"normalizer": -1.0}, ValueError, r"normalizer"),
        ((np.zeros((3, 2), complex), np.zeros((3, 2))), {}, TypeError, r"z1 expected a real"),
        ((np.zeros((3, 2)), "abc"), {}, TypeError, r"z2 expected a real"),
    ],
)
def test_errors(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.info_nce_loss(*args, **kwargs)


def test_grad_output_shape_error():
    z = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"info_nce_loss: grad_output expected"):
        F.info_nce_loss_backward(np.ones(2), z, z, reduction="none")
    with pytest.raises(ValueError, match=r"info_nce_loss: grad_output expected"):
        F.info_nce_loss_backward(np.ones(3), z, z)


def test_optax_ntxent_is_simclr_and_differs_by_the_same_batch_negatives():
    """optax.losses.ntxent on concatenate([z1, z2]) with labels [arange(N), arange(N)] is SimCLR's
    NT-Xent: 2N anchors, each with its pair as the positive and every other row of both batches as
    negatives. Masking the same-batch negatives out of that formula (to -inf) gives losskit's
    symmetric loss exactly; with them, the values differ (docs/contrastive.md)."""
    optax = pytest.importorskip("optax")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(8)
    N, D, T = 6, 5, 0.5
    z1 = rng.standard_normal((N, D)).astype(np.float32)
    z2 = (z1 + rng.standard_normal((N, D))).astype(np.float32)
    Z = np.concatenate([z1, z2])
    labels = np.concatenate([np.arange(N), np.arange(N)])
    got = float(optax.losses.ntxent(jnp.asarray(Z), jnp.asarray(labels), temperature=T))

    Zn = TF.normalize(torch.tensor(Z, dtype=torch.float64), dim=1)
    S = Zn @ Zn.T / T
    S.fill_diagonal_(-torch.inf)
    positives = torch.cat([torch.arange(N, 2 * N), torch.arange(N)])
    assert got == pytest.approx(float(TF.cross_entropy(S, positives)), rel=1e-5)

    same_batch = torch.zeros(2 * N, 2 * N, dtype=torch.bool)
    same_batch[:N, :N] = same_batch[N:, N:] = True
    clip = float(TF.cross_entropy(S.masked_fill(same_batch, -torch.inf), positives))
    ours = float(F.info_nce_loss(z1.astype(np.float64), z2.astype(np.float64), temperature=T))
    assert ours == pytest.approx(clip, rel=1e-12)
    assert abs(ours - got) > 1e-2
