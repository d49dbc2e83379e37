"""losskit.jax against jax.grad of the jnp formulas (a representative loss per family), under jit,
grad and vmap, in float32 and float64."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Tuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import losskit.functional as LF  # noqa: E402
import losskit.jax as LJ  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Iterator[None]:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


TOL = {"float32": {"rtol": 2e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def _data(dtype: str) -> Dict[str, Any]:
    r = np.random.default_rng(11)
    n, c, d = 5, 4, 6
    a = {
        "x": r.standard_normal((n, c)),
        "y": r.standard_normal((n, c)),
        "q": r.uniform(0, 1, (n, c)),
        "var": r.uniform(0.3, 2.0, (n, 1)),
        "w": r.uniform(0.5, 2.0, c),
        "t": np.array([0, 3, 1, 2, 3]),
        "probs": r.dirichlet(np.ones(c), n),
        "e1": r.standard_normal((n, d)),
        "e2": r.standard_normal((n, d)),
        "e3": r.standard_normal((n, d)),
        "s": np.array([1.0, -1.0, 1.0, -1.0, -1.0]),
        "h": r.standard_normal((n, d)),
        "W": r.standard_normal((7, d)),
        "b": r.standard_normal(7),
        "tv": np.array([0, 6, 2, 5, 1]),
        "wx": r.uniform(0.5, 2.0, (n, c)),
        "f1": r.standard_normal(8),
        "f2": r.standard_normal(8),
        "f3": r.standard_normal(8),
    }
    return {k: jnp.asarray(v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in a.items()}


def _mean_or(reduction: str, l: Any) -> Any:
    return {"none": l, "mean": jnp.mean(l), "sum": jnp.sum(l)}[reduction]


def _ce_ref(z: Any, t: Any, w: Any, eps: float, reduction: str) -> Any:
    logp = jax.nn.log_softmax(z, axis=-1)
    c = z.shape[-1]
    picked = -jnp.take_along_axis(logp, t[:, None], 1)[:, 0]
    l = (1 - eps) * w[t] * picked + eps / c * jnp.sum(-logp * w, -1)
    return jnp.sum(l) / jnp.sum(w[t]) if reduction == "mean" else _mean_or(reduction, l)


def _huber(d: Any, delta: float) -> Any:
    return jnp.where(jnp.abs(d) < delta, 0.5 * d**2, delta * (jnp.abs(d) - 0.5 * delta))


def _cos(a: Any, b: Any) -> Any:
    return jnp.sum(a * b, -1) / jnp.sqrt((jnp.sum(a * a, -1) + 1e-12) * (jnp.sum(b * b, -1) + 1e-12))


def _dist(a: Any, b: Any) -> Any:
    return jnp.sqrt(jnp.sum((a - b + 1e-6) ** 2, -1))


# (id, losskit.jax function, jnp reference (args..., reduction), argument keys, the differentiated
# positions, keywords for both)
CASES: Tuple[Tuple[str, Callable[..., Any], Callable[..., Any], Tuple[str, ...], Tuple[int, ...]], ...] = (
    ("mse", LJ.mse_loss, lambda x, y, r: _mean_or(r, (x - y) ** 2), ("x", "y"), (0, 1)),
    (
        "bce_logits",
        lambda x, y, w, reduction: LJ.binary_cross_entropy_with_logits(x, y, pos_weight=w, reduction=reduction),
        lambda x, y, w, r: _mean_or(r, -(w * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))),
        ("x", "q", "w"),
        (0, 1),
    ),
    (
        "gaussian",
        LJ.gaussian_nll_loss,
        lambda x, y, v, r: _mean_or(r, 0.5 * (jnp.log(v) + (x - y) ** 2 / v) * jnp.ones_like(x)),
        ("x", "y", "var"),
        (0, 1, 2),
    ),
    (
        "cross_entropy",
        lambda x, t, w, reduction: LJ.cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction=reduction),
        lambda x, t, w, r: _ce_ref(x, t, w, 0.1, r),
        ("x", "t", "w"),
        (0,),
    ),
    (
        "cross_entropy_probs",
        LJ.cross_entropy,
        lambda x, p, r: _mean_or(r, -jnp.sum(p * jax.nn.log_softmax(x, -1), -1)),
        ("x", "probs"),
        (0, 1),
    ),
    (
        "cosine",
        lambda a, b, s, reduction: LJ.cosine_embedding_loss(a, b, s, margin=0.1, reduction=reduction),
        lambda a, b, s, r: _mean_or(r, jnp.where(s > 0, 1 - _cos(a, b), jnp.maximum(_cos(a, b) - 0.1, 0))),
        ("e1", "e2", "s"),
        (0, 1),
    ),
    (
        "triplet",
        LJ.triplet_margin_loss,
        lambda a, p, n, r: _mean_or(r, jnp.maximum(_dist(a, p) - _dist(a, n) + 1.0, 0)),
        ("e1", "e2", "e3"),
        (0, 1, 2),
    ),
    # gradients torch differentiates that losskit's core has no entry point for (_adapters.extra_grad)
    (
        "l1_weight",
        lambda x, y, w, reduction: LJ.l1_loss(x, y, weight=w, reduction=reduction),
        lambda x, y, w, r: jnp.sum(w * jnp.abs(x - y)) / jnp.sum(w) if r == "mean" else _mean_or(r, w * jnp.abs(x - y)),
        ("x", "y", "wx"),
        (0, 2),
    ),
    (
        "huber_weight",
        lambda x, y, w, reduction: LJ.huber_loss(x, y, weight=w, delta=0.6, reduction=reduction),
        lambda x, y, w, r: _mean_or(r, w * _huber(x - y, 0.6)),
        ("x", "y", "wx"),
        (2, 1),
    ),
    (
        "cross_entropy_probs_weight",
        lambda x, p, w, reduction: LJ.cross_entropy(x, p, weight=w, label_smoothing=0.2, reduction=reduction),
        lambda x, p, w, r: _mean_or(r, -jnp.sum(w * (0.8 * p + 0.05) * jax.nn.log_softmax(x, -1), -1)),
        ("x", "probs", "w"),
        (2, 0),
    ),
    (
        "multilabel_soft_weight",
        lambda x, y, w, reduction: LJ.multilabel_soft_margin_loss(x, y, weight=w, reduction=reduction),
        lambda x, y, w, r: _mean_or(
            r, -jnp.mean(w * (y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x)), -1)
        ),
        ("x", "q", "w"),
        (2,),
    ),
    (
        "margin_ranking_target",
        lambda a, b, t, reduction: LJ.margin_ranking_loss(a, b, t, margin=0.2, reduction=reduction),
        lambda a, b, t, r: _mean_or(r, jnp.maximum(-t * (a - b) + 0.2, 0)),
        ("f1", "f2", "f3"),
        (2, 0),
    ),
    (
        "linear_ce",
        lambda h, W, t, b, reduction: LJ.linear_cross_entropy(h, W, t, linear_bias=b, reduction=reduction),
        lambda h, W, t, b, r: _ce_ref(h @ W.T + b, t, jnp.ones(W.shape[0], h.dtype), 0.0, r),
        ("h", "W", "tv", "b"),
        (0, 1, 3),
    ),
)


def _check(actual: Any, expected: Any, dtype: str, what: str) -> None:
    assert np.asarray(actual).dtype == np.dtype(dtype), what
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), err_msg=what, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_against_jnp_formulas(case: Tuple[Any, ...], dtype: str) -> None:
    cid, ours, ref, keys, diff = case
    a = _data(dtype)
    args = tuple(a[k] for k in keys)
    for reduction in ("none", "mean", "sum"):
        what = f"{cid} {dtype} {reduction}"
        mine = jax.jit(lambda *xs: ours(*xs, reduction=reduction))
        _check(mine(*args), ref(*args, reduction), dtype, what)
        go = jnp.asarray(np.random.default_rng(5).standard_normal(ref(*args, reduction).shape).astype(dtype))

        def scalar(f: Callable[..., Any]) -> Callable[..., Any]:
            return lambda *xs: jnp.sum(f(*xs) * go)

        g_ours = jax.jit(jax.grad(scalar(lambda *xs: ours(*xs, reduction=reduction)), argnums=diff))(*args)
        g_ref = jax.grad(scalar(lambda *xs: ref(*xs, reduction)), argnums=diff)(*args)
        for k, (g, r) in enumerate(zip(g_ours, g_ref)):
            _check(g, r, dtype, f"{what} grad {keys[diff[k]]}")
        # value_and_grad: the fused forward's value is the loss
        v, _ = jax.value_and_grad(scalar(lambda *xs: ours(*xs, reduction=reduction)), argnums=diff)(*args)
        _check(v, jnp.sum(ref(*args, reduction) * go), dtype, what + " value_and_grad")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_vmap(case: Tuple[Any, ...]) -> None:
    """vmap over a batch of 3 stacked problems (and grad under vmap) equals the loop."""
    cid, ours, ref, keys, diff = case
    batches = [_data("float64") for _ in range(3)]
    r = np.random.default_rng(9)
    for i, b in enumerate(batches[1:], 1):  # distinct data per batch element
        for k in (keys[j] for j in diff):
            b[k] = b[k] + 0.1 * i * jnp.asarray(r.uniform(0.0, 1.0, b[k].shape))
    stacked = tuple(jnp.stack([b[k] for b in batches]) for k in keys)
    for reduction in ("none", "mean"):
        f = lambda *xs: ours(*xs, reduction=reduction)  # noqa: E731
        g = jax.grad(lambda *xs: jnp.sum(ours(*xs, reduction=reduction)), argnums=diff)
        got, got_g = jax.jit(jax.vmap(f))(*stacked), jax.vmap(g)(*stacked)
        for i, b in enumerate(batches):
            args = tuple(b[k] for k in keys)
            _check(got[i], ref(*args, reduction), "float64", f"{cid} {reduction} vmap[{i}]")
            ref_g = jax.grad(lambda *xs: jnp.sum(ref(*xs, reduction)), argnums=diff)(*args)
            for k in range(len(diff)):
                _check(got_g[k][i], ref_g[k], "float64", f"{cid} {reduction} vmap grad[{i}] {k}")


def test_vmap_method_choice() -> None:
    """One call on the stacked batch for an element-wise 'none' loss; one per element otherwise."""
    x = jnp.ones((3, 4, 5))
    once = str(jax.make_jaxpr(jax.vmap(lambda a, b: LJ.huber_loss(a, b, reduction="none")))(x, x))
    assert "broadcast_all" in once and "sequential" not in once
    each = str(jax.make_jaxpr(jax.vmap(lambda a, b: LJ.huber_loss(a, b)))(x, x))
    assert "sequential" in each
    t = jnp.zeros((3, 4), jnp.int32)
    rows = str(jax.make_jaxpr(jax.vmap(lambda a, b: LJ.cross_entropy(a, b, reduction="none")))(x, t))
    assert "sequential" in rows


def test_ctc_matches_losskit_under_jit_and_grad() -> None:
    r = np.random.default_rng(3)
    z = r.standard_normal((10, 2, 5))
    lp = z - np.log(np.exp(z).sum(2, keepdims=True))
    tg, il, tl = np.array([[1, 2, 3], [4, 4, 0]]), np.array([10, 8]), np.array([3, 2])
    f = jax.jit(lambda l: LJ.ctc_loss(l, tg, il, tl, zero_infinity=True))
    np.testing.assert_allclose(f(jnp.asarray(lp)), LF.ctc_loss(lp, tg, il, tl, zero_infinity=True), rtol=1e-12)
    g = jax.grad(lambda l: LJ.ctc_loss(l, tg, il, tl, zero_infinity=True))(jnp.asarray(lp))
    np.testing.assert_allclose(g, LF.ctc_loss_backward(None, lp, tg, il, tl, zero_infinity=True), rtol=1e-12)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("dice_loss", {"sigmoid": True}),
        ("dice_loss", {"softmax": True, "squared_pred": True, "jaccard": True}),
        ("tversky_loss", {"alpha": 0.3, "beta": 0.7, "soft_label": True}),
    ],
)
def test_segmentation_target_gradient(name: str, kw: Dict[str, Any]) -> None:
    """A dense (soft) target of dice_loss / tversky_loss is differentiated under jax.grad, as
    torch.autograd differentiates MONAI's formula with the target requiring grad."""
    torch = pytest.importorskip("torch")
    from test_segmentation import monai_formula

    r = np.random.default_rng(5)
    x, g = r.standard_normal((2, 3, 4, 5)), r.uniform(size=(2, 3, 4, 5))
    if not (kw.get("sigmoid") or kw.get("softmax")):
        x = r.uniform(size=x.shape)
    gx, gg = jax.grad(lambda a, b: getattr(LJ, name)(a, b, **kw), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(g))
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    rx, rg = torch.autograd.grad(monai_formula(name.split("_")[0], tx, tg, **kw), (tx, tg))
    np.testing.assert_allclose(np.asarray(gx), rx.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.asarray(gg), rg.numpy(), rtol=1e-10, atol=1e-15)


def test_constant_arguments_refuse_differentiation() -> None:
    """Arguments torch does not differentiate (the class weight of class-index targets) refuse at
    trace time; a label read only through comparisons (hinge's target) gets the jnp formula's zero."""
    a = _data("float64")
    with pytest.raises(NotImplementedError, match=r"cross_entropy: losskit computes no gradient for weight"):
        jax.grad(lambda w: LJ.cross_entropy(a["x"], a["t"], weight=w))(a["w"])
    g = jax.grad(lambda s: LJ.hinge_embedding_loss(a["x"], s), argnums=0)(jnp.sign(a["y"]))
    assert np.array_equal(np.asarray(g), np.zeros(a["y"].shape))


@pytest.mark.parametrize("traced", [False, True])
def test_normalizer(traced: bool) -> None:
    """normalizer= passes through (a number, or an array traced under jit): 'mean' is the sum over
    it, for the value and every gradient."""
    a = _data("float64")

    def ours(x: Any, w: Any, n: Any) -> Any:
        return LJ.l1_loss(x, a["y"], weight=w, normalizer=n if traced else 7.5)

    def ref(x: Any, w: Any, n: Any) -> Any:
        return jnp.sum(w * jnp.abs(x - a["y"])) / 7.5

    for f in (ours, ref):
        f.value_and_grad = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))  # type: ignore[attr-defined]
    (v, g), (rv, rg) = (f.value_and_grad(a["x"], a["wx"], jnp.float64(7.5)) for f in (ours, ref))  # type: ignore
    _check(v, rv, "float64", "value")
    for x, y in zip(g, rg):
        _check(x, y, "float64", "grad")


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_extras(reduction: str) -> None:
    """z_loss and softcap against the jnp formula (values and gradients under jit); return_stats
    returns (loss, stats) with losskit's stats, which carry no gradient (has_aux)."""
    a = _data("float64")
    x, t = 3 * a["x"], a["t"]

    def ref(z: Any) -> Any:
        z = 2.0 * jnp.tanh(z / 2.0)
        lse = jax.nn.logsumexp(z, -1)
        per_row = lse - jnp.take_along_axis(z, t[:, None], 1)[:, 0] + 1e-2 * lse**2
        return _mean_or(reduction, per_row)

    def ours(z: Any) -> Any:
        return LJ.cross_entropy(z, t, z_loss=1e-2, softcap=2.0, reduction=reduction, return_stats=True)

    go = jnp.linspace(-1.0, 1.0, ref(x).size).reshape(ref(x).shape)
    (v, stats), g = jax.jit(jax.value_and_grad(lambda z: (jnp.sum(ours(z)[0] * go), ours(z)[1]), has_aux=True))(x)
    rv, rg = jax.value_and_grad(lambda z: jnp.sum(ref(z) * go))(x)
    _check(v, rv, "float64", "value")
    _check(g, rg, "float64", "grad")
    _, expected = LF.cross_entropy(
        np.asarray(x), np.asarray(t), z_loss=1e-2, softcap=2.0, reduction=reduction, return_stats=True
    )
    assert set(stats) == set(expected)
    for k in expected:
        np.testing.assert_array_equal(np.asarray(stats[k]), expected[k])
    with pytest.raises(NotImplementedError, match="return_stats arrays carry no gradient"):
        jax.grad(lambda z: jnp.sum(ours(z)[1]["lse"]))(x)


@pytest.mark.parametrize(
    "name, keys", [("l1_loss", ("x", "y")), ("cross_entropy", ("x", "t")), ("multi_margin_loss", ("x", "t"))]
)
def test_bfloat16(name: str, keys: Tuple[str, ...]) -> None:
    """bfloat16 arrays reach losskit as they are (ml_dtypes' bfloat16, what JAX uses): under jit and
    grad the value and gradient are losskit.functional's on the same bfloat16 arrays, in bfloat16."""
    a = _data("float32")
    args = tuple(a[k].astype(jnp.bfloat16) if a[k].dtype == jnp.float32 else a[k] for k in keys)
    fn = getattr(LJ, name)
    v, g = jax.jit(jax.value_and_grad(fn))(*args)
    assert v.dtype == g.dtype == jnp.bfloat16
    host = tuple(np.asarray(x) for x in args)
    expected = getattr(LF, name)(*host)
    expected_g = getattr(LF, name + "_backward")(None, *host)
    np.testing.assert_array_equal(np.asarray(v, np.float32), np.asarray(expected).astype(v.dtype).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(g, np.float32), np.asarray(expected_g).astype(g.dtype).astype(np.float32))


def test_float32_stays_float32() -> None:
    x = jnp.ones((2, 3), jnp.float32)
    assert LJ.l1_loss(x, 2 * x).dtype == jnp.float32
    assert jax.grad(LJ.l1_loss)(x, 2 * x).dtype == jnp.float32


def test_doctests() -> None:
    import doctest

    result = doctest.testmod(LJ)
    assert result.attempted >= 5 and result.failed == 0


def test_vmap_with_an_unbatched_argument() -> None:
    """in_axes=(0, None) on the one-call path ('broadcast_all'): the unbatched target's gradient
    sums over the batch, as for the jnp formula."""
    r = np.random.default_rng(0)
    x, y = jnp.asarray(r.standard_normal((3, 4, 5))), jnp.asarray(r.standard_normal((4, 5)))

    def ref(a: Any, b: Any) -> Any:
        d = jnp.abs(a - b)
        return jnp.where(d < 0.5, 0.5 * d**2, 0.5 * (d - 0.25))

    def ours(a: Any, b: Any) -> Any:
        return LJ.huber_loss(a, b, reduction="none", delta=0.5)

    for argnums in (0, 1):
        got = jax.grad(lambda a, b: jax.vmap(ours, in_axes=(0, None))(a, b).sum(), argnums=argnums)(x, y)
        want = jax.grad(lambda a, b: jax.vmap(ref, in_axes=(0, None))(a, b).sum(), argnums=argnums)(x, y)
        _check(got, want, "float64", f"grad {argnums}")
    _check(jax.vmap(ours, in_axes=(0, None))(x, y), jax.vmap(ref, in_axes=(0, None))(x, y), "float64", "value")
