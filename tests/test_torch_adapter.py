"""losskit.torch against torch itself: every loss's value and the autograd gradient of every input
torch differentiates, over reductions and the main keywords; gradcheck in float64; grad_output of
any layout for 'none'; the modules; and the errors (non-CPU tensors, double backward, gradients
losskit does not have)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import losskit.torch.functional as LTF  # noqa: E402
import losskit.torch.nn as LTN  # noqa: E402
from _reference import assert_close  # noqa: E402

TF = torch.nn.functional


def _inputs(dtype: str) -> Dict[str, Any]:
    r = np.random.default_rng(7)
    n, c, d = 6, 5, 8
    logits = r.standard_normal((n, c))
    lsm = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    a = {
        "x": r.standard_normal((n, c)),
        "y": r.standard_normal((n, c)),
        "p": r.uniform(0.05, 0.95, (n, c)),
        "q": r.uniform(0, 1, (n, c)),
        "sign": r.choice([-1.0, 1.0], (n, c)),
        "pos": r.uniform(0.2, 2.0, (n, c)),
        "var_col": r.uniform(0.2, 2.0, (n, 1)),
        "w_row": r.uniform(0.5, 2.0, c),
        "logp": np.log(r.uniform(0.05, 0.95, (n, c))),
        "labels": np.array([0, 4, 2, -100, 1, 3]),
        "labels_ok": np.array([0, 4, 2, 2, 1, 3]),
        "lsm": lsm,
        "probs": np.exp(lsm),
        "logits_k": r.standard_normal((2, c, 3, 4)),
        "labels_k": r.integers(0, c, (2, 3, 4)),
        "probs_k": r.dirichlet(np.ones(c), (2, 3, 4)).transpose(0, 3, 1, 2).copy(),
        "multilabel": np.array(
            [[0, 1, -1, 0, 0], [3, -1, 0, 0, 0], [1, 2, 3, 4, -1], [4, -1, 0, 0, 0], [2, 0, -1, 0, 0], [1, -1, 0, 0, 0]]
        ),
        "f1": r.standard_normal(10),
        "f2": r.standard_normal(10),
        "fsign": r.choice([-1.0, 1.0], 10),
        "f3": r.standard_normal(10),
        "e1": r.standard_normal((n, d)),
        "e2": r.standard_normal((n, d)),
        "e3": r.standard_normal((n, d)),
        "esign": r.choice([-1.0, 1.0], n),
        "ctc_lp": np.log(np.exp(z := r.standard_normal((12, 3, 6))) / np.exp(z).sum(2, keepdims=True)),
        "ctc_t": r.integers(1, 6, (3, 4)),
        "ctc_il": np.array([12, 10, 11]),
        "ctc_tl": np.array([4, 2, 3]),
        "h": r.standard_normal((n, d)),
        "W": 0.5 * r.standard_normal((c, d)),
        "b": 0.1 * r.standard_normal(c),
    }
    return {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in a.items()}


# (id, loss, positional input keys, keyword arguments (array keys as "@key"), the differentiated
# arguments, the reductions)
R3 = ("none", "mean", "sum")
CASES: List[Tuple[str, str, Tuple[str, ...], Dict[str, Any], Tuple[str, ...], Tuple[str, ...]]] = [
    ("l1", "l1_loss", ("x", "y"), {}, ("input", "target"), R3),
    ("l1_weight", "l1_loss", ("x", "y"), {"weight": "@pos"}, ("input", "target", "weight"), R3),
    ("mse", "mse_loss", ("x", "y"), {}, ("input", "target"), R3),
    ("mse_weight", "mse_loss", ("x", "y"), {"weight": "@pos"}, ("input", "weight"), R3),
    ("mse_weight_only", "mse_loss", ("x", "y"), {"weight": "@pos"}, ("weight",), R3),
    ("huber", "huber_loss", ("x", "y"), {"delta": 0.5}, ("input", "target"), R3),
    ("huber_weight", "huber_loss", ("x", "y"), {"delta": 0.7, "weight": "@pos"}, ("input", "target", "weight"), R3),
    ("smooth_l1", "smooth_l1_loss", ("x", "y"), {"beta": 0.5}, ("input", "target"), R3),
    ("soft_margin", "soft_margin_loss", ("x", "sign"), {}, ("input",), R3),
    ("bce", "binary_cross_entropy", ("p", "q"), {"weight": "@w_row"}, ("input", "target"), R3),
    ("bce_logits", "binary_cross_entropy_with_logits", ("x", "q"), {"pos_weight": "@w_row"}, ("input", "target"), R3),
    ("bce_logits_w", "binary_cross_entropy_with_logits", ("x", "q"), {"weight": "@pos"}, ("input", "target"), R3),
    ("poisson_log", "poisson_nll_loss", ("x", "pos"), {"full": True}, ("input", "target"), R3),
    ("poisson", "poisson_nll_loss", ("pos", "q"), {"log_input": False}, ("input", "target"), R3),
    ("gaussian", "gaussian_nll_loss", ("x", "y", "pos"), {"full": True}, ("input", "target", "var"), R3),
    # a broadcast var: its gradient sums over the loss elements, so 'none' must recompute
    ("gaussian_var_col", "gaussian_nll_loss", ("x", "y", "var_col"), {}, ("input", "target", "var"), R3),
    ("gaussian_scalar_var", "gaussian_nll_loss", ("x", "y"), {"var": 0.7}, ("input", "target"), R3),
    ("kl", "kl_div", ("logp", "q"), {}, ("input", "target"), ("none", "batchmean", "sum")),
    ("kl_log", "kl_div", ("logp", "y"), {"log_target": True}, ("input", "target"), ("none", "batchmean", "sum")),
    (
        "margin_ranking",
        "margin_ranking_loss",
        ("f1", "f2", "fsign"),
        {"margin": 0.3},
        ("input1", "input2", "target"),
        R3,
    ),
    # torch takes any real target, where the gradient of ±1 labels alone would not tell it
    ("margin_ranking_real", "margin_ranking_loss", ("f1", "f2", "f3"), {"margin": 0.1}, ("target", "input2"), R3),
    ("hinge", "hinge_embedding_loss", ("x", "sign"), {"margin": 0.5}, ("input",), R3),
    ("ce", "cross_entropy", ("logits_k", "labels_k"), {}, ("input",), R3),
    ("ce_weighted", "cross_entropy", ("x", "labels"), {"weight": "@w_row", "label_smoothing": 0.1}, ("input",), R3),
    ("ce_ignore", "cross_entropy", ("x", "labels_ok"), {"ignore_index": 2}, ("input",), R3),
    ("ce_probs", "cross_entropy", ("x", "probs"), {"weight": "@w_row"}, ("input", "target", "weight"), R3),
    (
        "ce_probs_k_smooth",
        "cross_entropy",
        ("logits_k", "probs_k"),
        {"weight": "@w_row", "label_smoothing": 0.2},
        ("weight", "input"),
        R3,
    ),
    ("nll", "nll_loss", ("lsm", "labels"), {"weight": "@w_row"}, ("input",), R3),
    ("multi_margin", "multi_margin_loss", ("x", "labels_ok"), {"weight": "@w_row"}, ("input",), R3),
    ("multi_margin_p2", "multi_margin_loss", ("x", "labels_ok"), {"p": 2, "margin": 0.7}, ("input",), R3),
    ("multilabel_margin", "multilabel_margin_loss", ("x", "multilabel"), {}, ("input",), R3),
    (
        "multilabel_soft",
        "multilabel_soft_margin_loss",
        ("x", "q"),
        {"weight": "@w_row"},
        ("input", "target", "weight"),
        R3,
    ),
    ("multilabel_soft_w", "multilabel_soft_margin_loss", ("w_row", "w_row"), {"weight": "@w_row"}, ("weight",), R3),
    ("cosine", "cosine_embedding_loss", ("e1", "e2", "esign"), {"margin": 0.2}, ("input1", "input2"), R3),
    ("triplet", "triplet_margin_loss", ("e1", "e2", "e3"), {"swap": True}, ("anchor", "positive", "negative"), R3),
    (
        "triplet_p1",
        "triplet_margin_loss",
        ("e1", "e2", "e3"),
        {"p": 1, "margin": 2.0},
        ("anchor", "positive", "negative"),
        R3,
    ),
    (
        "triplet_distance",
        "triplet_margin_with_distance_loss",
        ("e1", "e2", "e3"),
        {"margin": 1.5},
        ("anchor", "positive", "negative"),
        R3,
    ),
    ("ctc", "ctc_loss", ("ctc_lp", "ctc_t", "ctc_il", "ctc_tl"), {"zero_infinity": True}, ("log_probs",), R3),
    (
        "linear_ce",
        "linear_cross_entropy",
        ("h", "W", "labels"),
        {"linear_bias": "@b", "label_smoothing": 0.1, "ignore_index": -100},
        ("input", "linear_weight", "linear_bias"),
        R3,
    ),
]


def _tensors(
    name: str,
    a: Dict[str, Any],
    keys: Tuple[str, ...],
    kwargs: Dict[str, Any],
    diff: Tuple[str, ...],
    dtype: Any = None,
) -> Tuple[List[Any], Dict[str, Any], List[Any]]:
    """Fresh tensors for one call (args, kwargs) and the list of those that require grad."""
    params = list(__import__("inspect").signature(getattr(TF, name)).parameters)

    def conv(pname: str, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            value = a[value[1:]]
        if not isinstance(value, np.ndarray):
            return value
        t = torch.from_numpy(value.copy())
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.requires_grad_(pname in diff)

    args = [conv(params[i], a[k]) for i, k in enumerate(keys)]
    kw = {k: conv(k, v) for k, v in kwargs.items()}
    named = dict(zip(params, args), **kw)
    return args, kw, [named[k] for k in diff]


def _run(
    fn: Any, name: str, a: Dict[str, Any], case: Tuple[Any, ...], reduction: str, grad_output: Any, dtype: Any = None
) -> Tuple[np.ndarray, List[np.ndarray]]:
    _, _, keys, kwargs, diff, _ = case
    args, kw, leaves = _tensors(name, a, keys, kwargs, diff, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = fn(*args, **kw, reduction=reduction)
    go = torch.ones_like(out) if grad_output is None else torch.from_numpy(grad_output).to(out.dtype)
    grads = torch.autograd.grad(out, leaves, go)
    return out.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_against_torch(case: Tuple[Any, ...], dtype: str) -> None:
    cid, name, _, _, _, reductions = case
    a = _inputs(dtype)
    for reduction in reductions:
        go = None
        if reduction == "none":  # a true grad_output, not ones
            shape = _run(getattr(TF, name), name, a, case, reduction, None)[0].shape
            go = np.random.default_rng(3).standard_normal(shape).astype(dtype)
        out, grads = _run(getattr(LTF, name), name, a, case, reduction, go)
        ref, ref_grads = _run(getattr(TF, name), name, a, case, reduction, go)
        ref64 = ref64_grads = None
        if dtype == "float32":
            ref64, ref64_grads = _run(
                getattr(TF, name), name, a, case, reduction, None if go is None else go.astype("float64"), torch.float64
            )
        what = f"{cid} {dtype} {reduction}"
        assert_close(out, ref, ref64, what)
        for k, (g, r) in enumerate(zip(grads, ref_grads)):
            assert_close(g, r, None if ref64_grads is None else ref64_grads[k], f"{what} grad of {case[4][k]}")


GRADCHECK = [
    "mse",
    "mse_weight",
    "huber_weight",
    "bce_logits",
    "gaussian_var_col",
    "kl",
    "ce_weighted",
    "ce_probs",
    "ce_probs_k_smooth",
    "multi_margin_p2",
    "multilabel_soft",
    "margin_ranking_real",
    "cosine",
    "triplet",
    "ctc",
    "linear_ce",
]
# torch's CTC gradient (Graves' exp(log_probs) - posterior, which losskit matches) is the gradient
# of the logits under a log_softmax, not of free log_probs (torch's own fails gradcheck on them):
# it is checked through the log_softmax.
_THROUGH = {"ctc": lambda z: z.log_softmax(2)}


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # kl_div's, as torch's
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("cid", GRADCHECK)
def test_gradcheck(cid: str, reduction: str) -> None:
    case = next(c for c in CASES if c[0] == cid)
    _, name, keys, kwargs, diff, _ = case
    a = _inputs("float64")
    args, kw, leaves = _tensors(name, a, keys, kwargs, diff)
    params = list(__import__("inspect").signature(getattr(TF, name)).parameters)
    fn = getattr(LTF, name)

    def f(*xs: Any) -> Any:
        named = dict(zip(params, args), **kw)
        named.update(zip(diff, xs))
        if cid in _THROUGH:
            named[diff[0]] = _THROUGH[cid](named[diff[0]])
        return fn(**named, reduction=reduction)

    assert torch.autograd.gradcheck(f, tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_none_grad_output_layouts() -> None:
    """'none' takes the grad_output autograd passes, whatever its strides: the stride-0 one of a
    following .sum(), a transposed one, a K-dimensional one."""
    r = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=r)
    y = torch.randn(4, 3, 5, dtype=torch.float64, generator=r)
    grads = []
    for fn in (LTF.huber_loss, TF.huber_loss):
        xa, ya = x.clone().requires_grad_(), y.clone().requires_grad_()
        out = fn(xa, ya, reduction="none", delta=0.4)
        w = torch.randn(5, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        (out.sum() + (out * w.permute(2, 1, 0)).sum() + out[:, 1].sum()).backward()
        grads.append((xa.grad, ya.grad))
    for g, r_ in zip(grads[0], grads[1]):
        torch.testing.assert_close(g, r_)
    # row-wise losses: a per-row grad_output through an expand
    logits = torch.randn(6, 7, dtype=torch.float64, generator=r)
    t = torch.randint(0, 7, (6,), generator=r)
    got = []
    for fn in (LTF.cross_entropy, TF.cross_entropy):
        xa = logits.clone().requires_grad_()
        (fn(xa, t, reduction="none") * torch.arange(6.0, dtype=torch.float64)).sum().backward()
        got.append(xa.grad)
    torch.testing.assert_close(got[0], got[1])


def test_target_only_and_retain_graph() -> None:
    """The fused gradient is handed to the first backward (scaled in place unless grad_output is 1);
    later backwards of a retained graph recompute it: every sequence sums as torch's does."""
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y2 = y.detach().clone().requires_grad_()
    for fn, leaf in ((LTF.smooth_l1_loss, y), (TF.smooth_l1_loss, y2)):
        out = fn(x, leaf, reduction="sum")
        for scale in (1.0, 2.0, 1.0, -0.5):
            out.backward(torch.tensor(scale, dtype=torch.float64), retain_graph=True)
    torch.testing.assert_close(y.grad, y2.grad)
    assert x.grad is None
    # a grad_output other than 1 on the first backward (the in-place scaling), for two inputs
    a, b, t = (torch.randn(7, dtype=torch.float64, requires_grad=True) for _ in range(3))
    res = []
    for fn in (LTF.margin_ranking_loss, TF.margin_ranking_loss):
        a.grad = b.grad = None
        (3.0 * fn(a, b, t.detach().sign(), margin=0.2)).backward()
        res.append((a.grad, b.grad))
    for g, r in zip(*res):
        torch.testing.assert_close(g, r)


def test_no_grad_results_and_dtypes() -> None:
    x = torch.randn(3, 4)
    t = torch.tensor([0, 1, 3])
    with torch.no_grad():
        out = LTF.cross_entropy(x.requires_grad_(), t)
    assert out.grad_fn is None and out.dtype == torch.float32 and out.shape == ()
    out = LTF.mse_loss(torch.randn(3, 4), torch.randn(3, 4), reduction="none")
    assert out.dtype == torch.float32 and out.shape == (3, 4) and not out.requires_grad
    out16 = LTF.l1_loss(torch.randn(3, 4).half(), torch.randn(3, 4).half())
    assert out16.dtype == torch.float16
    # torch's int64 class-index targets pass through, as do int32 ones
    x64 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    for tt in (t, t.int()):
        torch.testing.assert_close(LTF.nll_loss(x64, tt), TF.nll_loss(x64, t))


def _value_and_grads(fn: Any, leaves: List[Any], *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    out = fn(*leaves, *args, **kwargs)
    loss = out[0] if isinstance(out, tuple) else out
    go = torch.linspace(-1.0, 2.0, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    return (loss.detach(), *torch.autograd.grad(loss, leaves, go))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_normalizer_divides_as_torchs_sum(reduction: str) -> None:
    """normalizer= passes through: 'mean' becomes torch's 'sum' divided by it (values and the
    gradients of every differentiated input, extra ones included); 'none' ignores nothing silently:
    losskit refuses a normalizer there, as it does in NumPy."""
    g = torch.Generator().manual_seed(5)
    x, y, w = (torch.randn(6, 5, dtype=torch.float64, generator=g) for _ in range(3))
    probs = torch.softmax(torch.randn(6, 5, dtype=torch.float64, generator=g), 1)
    labels = torch.tensor([0, 4, 2, -100, 1, 3])
    cases = [
        ("mse_loss", [x, y], (), {}),
        ("l1_loss", [x, y, w.abs() + 0.1], (), {}),  # weight's gradient too
        ("binary_cross_entropy_with_logits", [x, probs], (), {}),
        ("cross_entropy", [x], (labels,), {"label_smoothing": 0.1}),
        ("cross_entropy", [x, probs, w[0].abs()], (), {}),
        ("margin_ranking_loss", [x[:, 0], y[:, 0], w[:, 0]], (), {"margin": 0.2}),
    ]
    for name, leaves, rest, kw in cases:

        def call(fn: Any, normalizer: Any) -> Any:
            def f(*ts: Any) -> Any:
                named = dict(zip(("input", "target", "weight"), (*ts[:1], *rest, *ts[1:])))
                if name == "margin_ranking_loss":
                    named = dict(zip(("input1", "input2", "target"), ts))
                extra = {} if normalizer is None else {"normalizer": normalizer}
                return fn(**named, **kw, **extra, reduction=reduction if normalizer else "sum")

            return f

        if reduction == "none":
            with pytest.raises(ValueError, match="normalizer"):
                call(getattr(LTF, name), 7.0)(*leaves)
            continue
        ours = _value_and_grads(call(getattr(LTF, name), 7.5), leaves)
        theirs = _value_and_grads(lambda *ts: call(getattr(TF, name), None)(*ts) / 7.5, leaves)
        for o, t in zip(ours, theirs):
            torch.testing.assert_close(o, t, msg=name)
    crit = LTN.CrossEntropyLoss(label_smoothing=0.1)
    torch.testing.assert_close(
        crit(x, labels, normalizer=2.0), TF.cross_entropy(x, labels, label_smoothing=0.1, reduction="sum") / 2.0
    )


def _ce_reference(x: Any, t: Any, reduction: str, z_loss: float, softcap: Any, ignore_index: int = -100) -> Any:
    """torch's formula of losskit's cross-entropy extras: softcap the logits, add z_loss * lse**2 per
    counted row, reduce like the loss."""
    logits = x if softcap is None else softcap * torch.tanh(x / softcap)
    per_row = TF.cross_entropy(logits, t, reduction="none", ignore_index=ignore_index)
    counted = t != ignore_index
    per_row = per_row + z_loss * torch.logsumexp(logits, 1) ** 2 * counted
    if reduction == "none":
        return per_row
    return per_row.sum() / (counted.sum() if reduction == "mean" else 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_extras(reduction: str, dtype: Any) -> None:
    """z_loss, softcap and return_stats pass through cross_entropy and linear_cross_entropy: values
    and gradients against torch's formula; the stats are losskit's and carry no gradient."""
    import losskit.functional as LF

    g = torch.Generator().manual_seed(6)
    x = torch.randn(7, 9, dtype=dtype, generator=g) * 3
    t = torch.tensor([0, 8, 2, -100, 1, 3, 3])
    kw = {"z_loss": 1e-2, "softcap": 4.0}
    ours = _value_and_grads(lambda a: LTF.cross_entropy(a, t, reduction=reduction, **kw, return_stats=True), [x])
    theirs = _value_and_grads(lambda a: _ce_reference(a, t, reduction, kw["z_loss"], kw["softcap"]), [x])
    for o, r in zip(ours, theirs):
        torch.testing.assert_close(o, r)
    loss, stats = LTF.cross_entropy(x.clone().requires_grad_(), t, reduction=reduction, **kw, return_stats=True)
    assert loss.requires_grad
    _, expected = LF.cross_entropy(x.numpy(), t.numpy(), reduction=reduction, **kw, return_stats=True)
    assert set(stats) == set(expected)
    for k, v in stats.items():
        assert not v.requires_grad
        np.testing.assert_array_equal(v.numpy(), expected[k])
    # linear_cross_entropy: the logits of a linear layer
    h = torch.randn(7, 6, dtype=dtype, generator=g)
    wl = torch.randn(9, 6, dtype=dtype, generator=g)
    ours = _value_and_grads(lambda a, b: LTF.linear_cross_entropy(a, b, t, reduction=reduction, **kw), [h, wl])
    theirs = _value_and_grads(lambda a, b: _ce_reference(a @ b.T, t, reduction, kw["z_loss"], kw["softcap"]), [h, wl])
    for o, r in zip(ours, theirs):
        torch.testing.assert_close(o, r)


SIXTEEN_BIT = [
    ("l1_loss", ("x", "y"), {}, ("input", "target")),
    ("mse_loss", ("x", "y"), {"weight": "pos"}, ("input", "weight")),
    ("huber_loss", ("x", "y"), {"delta": 0.5}, ("input", "target")),
    ("binary_cross_entropy_with_logits", ("x", "q"), {}, ("input", "target")),
    ("soft_margin_loss", ("x", "sign"), {}, ("input",)),
    ("cross_entropy", ("x", "labels"), {"label_smoothing": 0.1}, ("input",)),
    ("nll_loss", ("lsm", "labels"), {}, ("input",)),
    ("multi_margin_loss", ("x", "labels_ok"), {}, ("input",)),
    ("cosine_embedding_loss", ("e1", "e2", "esign"), {}, ("input1", "input2")),
]


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name, keys, kwargs, diff", SIXTEEN_BIT, ids=[c[0] for c in SIXTEEN_BIT])
def test_16bit_tensors(
    name: str, keys: Tuple[str, ...], kwargs: Dict[str, Any], diff: Tuple[str, ...], dtype: str, reduction: str
) -> None:
    """bfloat16 and float16 tensors reach losskit as 16-bit NumPy views of their storage (bfloat16
    as ml_dtypes' bfloat16): values and gradients are exactly losskit.functional's on the same
    16-bit arrays, in the tensor's dtype, and match torch's float32 on the same values to 16-bit
    tolerances. (The losses that read 16-bit in place and those computed from a float32 copy
    alike.)"""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    import losskit.functional as LF

    tdtype = getattr(torch, dtype)
    ndtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16)
    a = _inputs("float32")
    params = list(__import__("inspect").signature(getattr(TF, name)).parameters)
    arrays = dict(zip(params, (a[k] for k in keys)), **{k: a[v] for k, v in kwargs.items() if isinstance(v, str)})
    options = {k: v for k, v in kwargs.items() if not isinstance(v, str)}
    low = {k: v.astype(ndtype) if v.dtype.kind == "f" else v for k, v in arrays.items()}

    def tensors(float32: bool) -> Dict[str, Any]:
        out = {}
        for k, v in low.items():
            t = torch.from_numpy(v.astype(np.float32) if v.dtype == ndtype else v)
            if v.dtype == ndtype and not float32:
                t = t.to(tdtype)
            out[k] = t.requires_grad_(k in diff)
        return out

    ours_in, ref_in = tensors(False), tensors(True)
    out = getattr(LTF, name)(**ours_in, **options, reduction=reduction)
    ref = getattr(TF, name)(**ref_in, **options, reduction=reduction)
    go = torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)
    grads = torch.autograd.grad(out, [ours_in[k] for k in diff], go.to(tdtype))
    ref_grads = torch.autograd.grad(ref, [ref_in[k] for k in diff], go)
    assert out.dtype == tdtype and all(g.dtype == tdtype for g in grads)
    # exactly losskit's own 16-bit result
    expected = getattr(LF, name)(**low, **options, reduction=reduction)
    np.testing.assert_array_equal(out.detach().float().numpy(), np.asarray(expected).astype(ndtype).astype(np.float32))
    if reduction == "none":
        g16 = go.numpy().astype(ndtype)
        expected_grads = getattr(LF, name + "_backward")(
            g16, **low, **options, reduction=reduction, target_grad="target" in diff
        )
        expected_grads = expected_grads if isinstance(expected_grads, tuple) else (expected_grads,)
        core = [k for k in diff if k != "weight"]
        for g, e in zip(grads, expected_grads[: len(core)]):
            np.testing.assert_array_equal(g.float().numpy(), np.asarray(e).astype(ndtype).astype(np.float32))
    # and torch's float32 on the same 16-bit values, rounded to the 16-bit dtype
    torch.testing.assert_close(out, ref.to(tdtype))
    for g, r, k in zip(grads, ref_grads, diff):
        torch.testing.assert_close(g, r.to(tdtype), msg=f"grad of {k}")


def test_legacy_reduction_arguments_follow_torch() -> None:
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw in ({"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True}):
            torch.testing.assert_close(LTF.mse_loss(x, y, **kw), TF.mse_loss(x, y, **kw))


def test_triplet_torch_distance_runs_in_torch() -> None:
    a, p, n = (torch.randn(4, 6, dtype=torch.float64, requires_grad=True) for _ in range(3))

    def dist(u: Any, v: Any) -> Any:
        return (u - v).abs().sum(-1)

    out = LTF.triplet_margin_with_distance_loss(a, p, n, distance_function=dist, margin=0.5)
    torch.testing.assert_close(out, TF.triplet_margin_with_distance_loss(a, p, n, distance_function=dist, margin=0.5))
    out.backward()
    assert a.grad is not None


# ---------------------------------------------------------------------------------------------
# the modules

MODULE_CASES = [
    ("L1Loss", {}, "l1"),
    ("MSELoss", {"reduction": "sum"}, "mse"),
    ("HuberLoss", {"delta": 0.5}, "huber"),
    ("SmoothL1Loss", {"beta": 0.5}, "smooth_l1"),
    ("SoftMarginLoss", {}, "soft_margin"),
    ("BCELoss", {"weight": "@w_row"}, "bce"),
    ("BCEWithLogitsLoss", {"pos_weight": "@w_row"}, "bce_logits"),
    ("PoissonNLLLoss", {"full": True}, "poisson_log"),
    ("GaussianNLLLoss", {"full": True}, "gaussian"),
    ("KLDivLoss", {"reduction": "batchmean"}, "kl"),
    ("MarginRankingLoss", {"margin": 0.3}, "margin_ranking"),
    ("HingeEmbeddingLoss", {"margin": 0.5}, "hinge"),
    ("CrossEntropyLoss", {"weight": "@w_row", "label_smoothing": 0.1}, "ce_weighted"),
    ("NLLLoss", {"weight": "@w_row", "reduction": "none"}, "nll"),
    ("MultiMarginLoss", {"p": 2, "margin": 0.7}, "multi_margin_p2"),
    ("MultiLabelMarginLoss", {}, "multilabel_margin"),
    ("MultiLabelSoftMarginLoss", {"weight": "@w_row"}, "multilabel_soft"),
    ("CosineEmbeddingLoss", {"margin": 0.2}, "cosine"),
    ("TripletMarginLoss", {"swap": True}, "triplet"),
    ("TripletMarginWithDistanceLoss", {"margin": 1.5}, "triplet_distance"),
    ("CTCLoss", {"zero_infinity": True}, "ctc"),
]


def test_every_module_is_covered() -> None:
    covered = {m[0] for m in MODULE_CASES} | {"LinearCrossEntropyLoss", "AdaptiveLogSoftmaxWithLoss"}
    assert covered == set(LTN.__all__)


@pytest.mark.parametrize("cls, ctor, cid", MODULE_CASES, ids=[m[0] for m in MODULE_CASES])
def test_modules(cls: str, ctor: Dict[str, Any], cid: str) -> None:
    a = _inputs("float64")
    case = next(c for c in CASES if c[0] == cid)
    _, name, keys, kwargs, diff, _ = case
    ctor = {k: torch.from_numpy(a[v[1:]]) if str(v).startswith("@") else v for k, v in ctor.items()}
    ours, theirs = getattr(LTN, cls)(**ctor), getattr(torch.nn, cls)(**ctor)
    assert isinstance(ours, torch.nn.Module) and isinstance(ours, type(theirs))
    assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
    results = []
    diff = tuple(k for k in diff if k not in kwargs)  # the module holds the keyword arguments
    for crit in (ours, theirs):
        args, _, leaves = _tensors(name, a, keys, {}, diff)
        out = crit(*args)
        grads = torch.autograd.grad(out, leaves, torch.ones_like(out))
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for g, r in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g, r)


def test_linear_cross_entropy_module() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.LinearCrossEntropyLoss(
        8, 5, bias=True, dtype=torch.float64, label_smoothing=0.1, ignore_index=-100
    )
    ours = LTN.LinearCrossEntropyLoss(8, 5, bias=True, dtype=torch.float64, label_smoothing=0.1, ignore_index=-100)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 8, dtype=torch.float64)
    t = torch.tensor([0, 4, 2, -100, 1, 3])
    outs = []
    for crit in (ours, theirs):
        out = crit(x, t)
        out.backward()
        outs.append((out, crit.linear.weight.grad, crit.linear.bias.grad))
    for g, r in zip(*outs):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adaptive_log_softmax_module(dtype: Any) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 50, [10, 30], div_value=2.0, head_bias=True, dtype=dtype)
    ours = LTN.AdaptiveLogSoftmaxWithLoss(16, 50, [10, 30], div_value=2.0, head_bias=True, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(20, 16, dtype=dtype)
    t = torch.randint(0, 50, (20,))
    results = []
    for crit in (ours, theirs):
        xx = x.clone().requires_grad_()
        out = crit(xx, t)
        (2 * out.loss).backward(retain_graph=True)
        out.loss.backward()  # a retained graph: the second backward recomputes
        results.append([out.output, out.loss, xx.grad] + [p.grad for p in crit.parameters()])
    for g, r in zip(*results):
        torch.testing.assert_close(g, r)
    with torch.no_grad():  # no gradient asked for: the forward only, unbatched too
        torch.testing.assert_close(ours(x[0], t[0]).loss, theirs(x[0], t[0]).loss)
    out = ours(x.clone().requires_grad_(), t)
    with pytest.raises(NotImplementedError, match="a gradient reaching `output`"):
        (out.output.sum() + out.loss).backward()
    with pytest.raises(ValueError, match="input expected a CPU tensor"):
        ours(torch.empty(2, 16, device="meta"), t[:2])


# ---------------------------------------------------------------------------------------------
# errors


def test_non_cpu_tensors_raise() -> None:
    x = torch.empty(3, 4, device="meta")
    with pytest.raises(ValueError, match=r"mse_loss: input expected a CPU tensor, got a tensor on meta"):
        LTF.mse_loss(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"cross_entropy: weight expected a CPU tensor"):
        LTF.cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), weight=torch.empty(4, device="meta"))
    with pytest.raises(ValueError, match=r"target expected a CPU tensor"):
        LTN.CrossEntropyLoss()(torch.randn(3, 4), torch.empty(3, dtype=torch.int64, device="meta"))


def test_double_backward_raises() -> None:
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    for reduction in ("mean", "none"):
        out = LTF.binary_cross_entropy_with_logits(x, torch.rand(3, 4, dtype=torch.float64), reduction=reduction)
        with pytest.raises(RuntimeError, match=r"binary_cross_entropy_with_logits: .*create_graph=True"):
            torch.autograd.grad(out.sum(), x, create_graph=True)


def test_gradients_torch_refuses_or_lacks_follow_torch() -> None:
    """Where torch's derivative is "not implemented" (the class weight of class-index targets,
    pos_weight, soft_margin's target), a tensor requiring grad raises RuntimeError before any work,
    as torch's forward does;
    where torch's formula reads an argument only through comparisons (hinge's and cosine's ±1
    targets), it gets no gradient (None), as in torch, and alone it leaves the loss without one."""
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2])
    refused = [
        (LTF.cross_entropy, (x, labels), {"weight": torch.rand(4, dtype=torch.float64)}, "weight"),
        (LTF.nll_loss, (x, labels), {"weight": torch.rand(4, dtype=torch.float64)}, "weight"),
        (
            LTF.binary_cross_entropy_with_logits,
            (x, torch.rand(3, 4, dtype=torch.float64)),
            {"pos_weight": torch.rand(4, dtype=torch.float64)},
            "pos_weight",
        ),
        (LTF.soft_margin_loss, (x, torch.ones(3, 4, dtype=torch.float64)), {}, "target"),
    ]
    for fn, args, kw, k in refused:
        for reduction in ("mean", "none"):
            named = {"target": args[1], **kw}
            leaf = named[k].clone().requires_grad_()
            named[k] = leaf
            with pytest.raises(RuntimeError, match=rf"{fn.__name__}: not differentiable with respect to {k}"):
                fn(args[0], named.pop("target"), **named, reduction=reduction)
            theirs = getattr(TF, fn.__name__)
            with pytest.raises(RuntimeError, match=f"not differentiable with respect to argument '{k}'"):
                theirs(
                    args[0],
                    *(() if k == "target" else (args[1],)),
                    **({"target": leaf} if k == "target" else {k: leaf}),
                    reduction=reduction,
                )
    with torch.no_grad():  # no gradient asked for: nothing to refuse
        LTF.cross_entropy(x, labels, weight=torch.rand(4, requires_grad=True, dtype=torch.float64))
    for fn, args in ((LTF.hinge_embedding_loss, (x,)), (LTF.cosine_embedding_loss, (x, x.detach() + 1))):
        for with_input in (True, False):
            first = args[0] if with_input else args[0].detach()
            target = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
            target = target if fn is LTF.cosine_embedding_loss else target[:, None].expand(3, 4).clone()
            target.requires_grad_()
            ours = fn(first, *args[1:], target)
            theirs = getattr(TF, fn.__name__)(first, *args[1:], target)
            assert ours.requires_grad == theirs.requires_grad == with_input
            if with_input:
                ours.backward()
                assert target.grad is None


def test_in_place_change_after_forward_is_caught() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.randn(3, 4)
    out = LTF.mse_loss(x, y, reduction="none")
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_signatures_are_torchs() -> None:
    """torch's parameters, in torch's order, then losskit's own keywords, keyword-only."""
    import inspect

    import losskit.functional as LF

    for name in LTF.LOSSES:
        ours = list(inspect.signature(getattr(LTF, name)).parameters.values())
        theirs = list(inspect.signature(getattr(TF, name)).parameters.values())
        assert ours[: len(theirs)] == theirs, name
        extra = ours[len(theirs) :]
        assert all(p.kind is p.KEYWORD_ONLY for p in extra), name
        own = inspect.signature(getattr(LF, name)).parameters
        assert {p.name for p in extra} == {k for k in own if k not in {p.name for p in theirs}}, name
        assert "normalizer" in {p.name for p in extra}, name


def test_import_losskit_imports_neither_torch_nor_jax() -> None:
    code = (
        "import sys, losskit, losskit.functional, losskit.modules; "
        "bad = [m for m in ('torch', 'jax') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doctests() -> None:
    import doctest

    import losskit.torch

    result = doctest.testmod(losskit.torch)
    assert result.attempted >= 5 and result.failed == 0
