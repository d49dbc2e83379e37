"""The twelve element-wise losses against torch 2.13: forward values and torch.autograd gradients
for every keyword, reduction, dtype and shape form, the fused forward_backward, edge values
(NaN, inf, the BCE clamp, empty inputs) and hypothesis-drawn cases."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from losskit import _core
from _reference import assert_close, compare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REDUCTIONS = ["none", "mean", "sum"]
DTYPES = [np.float32, np.float64]
TARGETS = _core.available_cpu_targets().split(",")


@dataclass
class Spec:
    """How to draw valid arguments for a loss and which of them torch differentiates."""

    name: str
    make: Callable[[np.random.Generator, Tuple[int, ...], Any], Tuple[np.ndarray, ...]]
    diff: Tuple[int, ...]  # positional args with a gradient, in losskit's return order
    target: int = -1  # positional index of a float target with a gradient (-1: none)
    variants: List[Dict[str, Any]] = field(default_factory=lambda: [{}])
    broadcasts: bool = True  # target may broadcast against input
    reductions: Tuple[str, ...] = tuple(REDUCTIONS)


def normal(rng, shape, dt, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dt)


def signs(rng, shape, dt):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(dt)


def prob(rng, shape, dt):
    return rng.uniform(0.02, 0.98, shape).astype(dt)


SPECS = [
    Spec(
        "l1_loss",
        lambda r, s, d: (normal(r, s, d), normal(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"weight": "input"}],
    ),
    Spec(
        "mse_loss",
        lambda r, s, d: (normal(r, s, d), normal(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"weight": "input"}],
    ),
    Spec(
        "huber_loss",
        lambda r, s, d: (normal(r, s, d, 2), normal(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"delta": 0.5}, {"delta": 2.5, "weight": "input"}],
    ),
    Spec(
        "smooth_l1_loss",
        lambda r, s, d: (normal(r, s, d, 2), normal(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"beta": 0.0}, {"beta": 0.3}],
    ),
    Spec("soft_margin_loss", lambda r, s, d: (normal(r, s, d, 2), signs(r, s, d)), (0,)),
    Spec(
        "binary_cross_entropy",
        lambda r, s, d: (prob(r, s, d), prob(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"weight": "input"}, {"weight": "last"}],
        broadcasts=False,
    ),
    Spec(
        "binary_cross_entropy_with_logits",
        lambda r, s, d: (normal(r, s, d, 3), prob(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"weight": "input"}, {"pos_weight": "last"}, {"weight": "last", "pos_weight": "input"}],
        broadcasts=False,
    ),
    Spec(
        "poisson_nll_loss",
        lambda r, s, d: (normal(r, s, d), r.uniform(0, 4, s).astype(d)),
        (0,),
        target=1,
        variants=[{}, {"full": True}, {"log_input": False, "eps": 1e-6}, {"log_input": False, "full": True}],
    ),
    Spec(
        "gaussian_nll_loss",
        lambda r, s, d: (normal(r, s, d), normal(r, s, d), r.uniform(0.1, 2, s).astype(d)),
        (0, 2),
        target=1,
        variants=[{}, {"full": True}, {"eps": 0.5}],
        broadcasts=False,
    ),
    Spec(
        "kl_div",
        lambda r, s, d: (np.log(prob(r, s, d)), prob(r, s, d)),
        (0,),
        target=1,
        variants=[{}, {"log_target": True}],
        reductions=("none", "mean", "sum", "batchmean"),
    ),
    Spec(
        "margin_ranking_loss",
        lambda r, s, d: (normal(r, s, d), normal(r, s, d), signs(r, s, d)),
        (0, 1),
        variants=[{}, {"margin": 0.5}],
    ),
    Spec(
        "hinge_embedding_loss",
        lambda r, s, d: (np.abs(normal(r, s, d, 2)), signs(r, s, d)),
        (0,),
        variants=[{}, {"margin": 2.0}],
    ),
]
SPEC = {s.name: s for s in SPECS}


def resolve(kw: Dict[str, Any], rng, shape, dt) -> Dict[str, Any]:
    """Weight-like keywords: 'input' -> an array of the input's shape, 'last' -> of its last dim."""
    out = {}
    for k, v in kw.items():
        if v == "input":
            out[k] = rng.uniform(0.1, 2.0, shape).astype(dt)
        elif v == "last":
            out[k] = rng.uniform(0.1, 2.0, shape[-1:]).astype(dt)
        else:
            out[k] = v
    return out


def call_losskit(spec: Spec, args, kw, reduction, grad_output, target_grad):
    fn = getattr(F, spec.name)
    loss = fn(*args, reduction=reduction, **kw)
    back = getattr(F, spec.name + "_backward")(grad_output, *args, reduction=reduction, target_grad=target_grad, **kw)
    loss2, back2 = getattr(F, spec.name + "_forward_backward")(
        *args, grad_output=grad_output, reduction=reduction, target_grad=target_grad, **kw
    )
    as_tuple = lambda g: tuple(g) if isinstance(g, tuple) else (g,)  # noqa: E731
    return loss, as_tuple(back), loss2, as_tuple(back2)


def check(spec: Spec, args, kw, reduction, rng, target_grad=None, what=""):
    """Forward, backward and forward_backward against torch, with a random grad_output."""
    if target_grad is None:
        target_grad = spec.target >= 0
    args = tuple(np.asarray(a) for a in args)  # 0-d arrays, not NumPy scalars (a scalar var has no gradient)
    loss = getattr(F, spec.name)(*args, reduction=reduction, **kw)
    shape = np.shape(loss)
    go = np.asarray(rng.uniform(0.5, 1.5, shape) if reduction == "none" else rng.uniform(0.5, 1.5)).astype(
        args[0].dtype
    )
    lk = call_losskit(spec, args, kw, reduction, go, target_grad)
    diff = spec.diff + ((spec.target,) if target_grad else ())
    torch_fn = getattr(TF, spec.name)
    for mode, (l, g) in (("forward/backward", lk[:2]), ("forward_backward", lk[2:])):
        compare(
            torch_fn,
            args,
            dict(kw, reduction=reduction),
            diff,
            l,
            g,
            grad_output=go,
            what=f"{spec.name} {what} {mode} {reduction}",
        )
    if reduction != "none":
        assert isinstance(lk[0], np.generic) and lk[0].dtype == args[0].dtype


SHAPES = {
    "scalar": (),
    "vector": (7,),
    "batched": (4, 5),
    "kdim": (2, 3, 4),
    "empty": (0, 3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_against_torch(name, shape, dtype, rng):
    spec = SPEC[name]
    shp = SHAPES[shape]
    for kw in spec.variants:
        if shp == () and any(v == "last" for v in kw.values()):
            continue
        args = spec.make(rng, shp, dtype)
        kwr = resolve(kw, rng, shp, dtype)
        for reduction in spec.reductions:
            check(spec, args, kwr, reduction, rng, what=f"{shape} {kw}")


def check_or_both_refuse(spec: Spec, args, reduction, rng, what):
    """Where torch refuses a shape combination, losskit must raise ValueError; else match."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(TF, spec.name)(*(torch.from_numpy(np.asarray(a)) for a in args), reduction=reduction)
    except RuntimeError:
        with pytest.raises(ValueError):
            getattr(F, spec.name)(*args, reduction=reduction)
        return
    check(spec, args, {}, reduction, rng, what=what)


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.broadcasts])
def test_broadcast_target(name, rng):
    """A target of shape (5,) against an input (4, 5), and an input (4, 1) against a target
    (4, 5): torch broadcasts (with a warning where it warns), gradients sum over broadcast dims;
    where torch refuses (soft_margin's input-shaped output, margin_ranking's equal ndim), so do we."""
    spec = SPEC[name]
    for dt in DTYPES:
        full = spec.make(rng, (4, 5), dt)
        small = spec.make(rng, (5,), dt)
        column = spec.make(rng, (4, 1), dt)
        for args, what in (
            ((full[0],) + tuple(small[1:]), "target (5,)"),
            ((column[0],) + tuple(full[1:]), "input (4, 1)"),
        ):
            for reduction in spec.reductions:
                check_or_both_refuse(spec, args, reduction, rng, what)


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.broadcasts])
def test_broadcast_to_empty(name, rng):
    """An input (3, 1) against a target (1, 0) broadcasts to an empty (3, 0) loss: the gradients of
    the non-empty input are zeros (torch), not left unwritten."""
    spec = SPEC[name]
    for dt in DTYPES:
        column = spec.make(rng, (3, 1), dt)
        empty = spec.make(rng, (1, 0), dt)
        args = (column[0],) + tuple(empty[1:])
        for reduction in spec.reductions:
            check_or_both_refuse(spec, args, reduction, rng, "input (3, 1), target (1, 0)")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_large_crosses_threading(name, dtype, rng):
    """1.2M elements: many reduction blocks, several threads."""
    spec = SPEC[name]
    shp = (1200, 1000)
    args = spec.make(rng, shp, dtype)
    kw = resolve(spec.variants[-1], rng, shp, dtype)
    for reduction in ("mean", "none"):
        check(spec, args, kw, reduction, rng, what="large")


# torch 2.13's rule for a var array (torch.nn.functional.gaussian_nll_loss): the input's shape;
# or that shape without its last dimension (var is then unsqueezed there); or as many dimensions,
# where the var sizes that differ from the input's add up to 1 (one dimension of size 1, batch
# dimensions included, plus any number of 0s against the input's 1s, which empty the loss).
# Everything else, a 0-d var array beside a 2-d input included, raises "var is of incorrect size".
GAUSSIAN_VAR_ACCEPTED = [
    ((), ()),
    ((4,), ()),
    ((4,), (1,)),
    ((4,), (4,)),
    ((1,), ()),
    ((6, 3), (6,)),
    ((6, 3), (6, 1)),
    ((6, 3), (1, 3)),
    ((6, 3), (6, 3)),
    ((2, 3, 4), (2, 3)),
    ((2, 3, 4), (2, 3, 1)),
    ((2, 1, 4), (2, 1)),
    ((2, 3, 4), (2, 1, 4)),
    ((2, 3, 4), (1, 3, 4)),
    # empty inputs
    ((0,), ()),
    ((0,), (1,)),
    ((0,), (0,)),
    ((0, 3), (0,)),
    ((0, 3), (0, 1)),
    ((0, 3), (1, 3)),
    ((2, 0), (2,)),
    ((2, 0), (2, 1)),
    ((2, 0), (2, 0)),
    # torch's sum-of-sizes test lets a 0 meet an input's 1: the loss is empty
    ((2, 1), (1, 0)),
    ((1, 3), (0, 1)),
    ((2, 1, 4), (1, 0, 4)),
    ((2, 1, 4), (2, 0, 1)),
]
GAUSSIAN_VAR_REJECTED = [
    ((6, 3), ()),
    ((1, 1), ()),
    ((2, 3, 4), ()),
    ((0, 3), ()),
    ((2, 0), ()),  # a 0-d var array
    ((), (1,)),
    ((4,), (1, 1)),
    ((4,), (2,)),
    ((4,), (4, 1)),
    ((6, 3), (3,)),
    ((6, 3), (1, 1)),
    ((6, 3), (6, 3, 1)),
    ((6, 3), (2, 3)),
    ((6, 3), (1,)),
    ((2, 3, 4), (1, 1, 4)),
    ((2, 3, 4), (2, 1, 1)),
    ((2, 3, 4), (3, 4)),
    ((2, 3, 4), (2,)),
    ((0, 3), (1, 1)),
    ((2, 0), (1, 1)),
]


def _gaussian_args(rng, xshape, vshape, dtype):
    x, y = np.asarray(normal(rng, xshape, dtype)), np.asarray(normal(rng, xshape, dtype))
    return x, y, np.asarray(rng.uniform(0.1, 2, vshape)).astype(dtype)


@pytest.mark.parametrize("shapes", GAUSSIAN_VAR_ACCEPTED, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_var_shapes(shapes, dtype, reduction, rng):
    """Every var shape torch accepts: values, grad_input, grad_var and grad_target as torch's."""
    xshape, vshape = shapes
    args = _gaussian_args(rng, xshape, vshape, dtype)
    check(SPEC["gaussian_nll_loss"], args, {}, reduction, rng, what=f"input {xshape} var {vshape}")
    _, (_, grad_var, _) = F.gaussian_nll_loss_forward_backward(*args, reduction=reduction, target_grad=True)
    assert grad_var.shape == vshape


@pytest.mark.parametrize("shapes", GAUSSIAN_VAR_REJECTED, ids=str)
def test_gaussian_var_shapes_torch_rejects(shapes, rng):
    xshape, vshape = shapes
    args = _gaussian_args(rng, xshape, vshape, np.float64)
    with pytest.raises(ValueError, match="var is of incorrect size"):  # the reference refuses it
        TF.gaussian_nll_loss(*(torch.from_numpy(a) for a in args))
    for reduction in REDUCTIONS:
        for call in (
            lambda: F.gaussian_nll_loss(*args, reduction=reduction),
            lambda: F.gaussian_nll_loss_backward(1.0, *args, reduction=reduction),
            lambda: F.gaussian_nll_loss_forward_backward(*args, reduction=reduction, target_grad=True),
            lambda: losskit.GaussianNLLLoss(reduction=reduction)(*args),
        ):
            with pytest.raises(ValueError, match=r"^gaussian_nll_loss: var expected"):
                call()


def test_gaussian_var_broadcast_torch_cannot_do_raises(rng):
    """var passes torch's size test but does not broadcast (torch: RuntimeError): ValueError."""
    args = _gaussian_args(rng, (2, 3), (0, 1), np.float64)
    with pytest.raises(RuntimeError):
        TF.gaussian_nll_loss(*(torch.from_numpy(a) for a in args))
    for reduction in REDUCTIONS:
        for call in (
            lambda: F.gaussian_nll_loss(*args, reduction=reduction),
            lambda: F.gaussian_nll_loss_forward_backward(*args, reduction=reduction),
        ):
            with pytest.raises(ValueError, match=r"^gaussian_nll_loss: var expected a shape broadcastable"):
                call()


@pytest.mark.parametrize("xshape", [(), (4,), (6, 3), (2, 3, 4), (0, 3), (2, 0)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_scalar_var_has_no_gradient(xshape, dtype, reduction, rng):
    """A Python or NumPy scalar var is torch's float var: any input shape, no grad_var (API.md)."""
    x, y = np.asarray(normal(rng, xshape, dtype)), np.asarray(normal(rng, xshape, dtype))
    go = np.asarray(rng.uniform(0.5, 1.5, xshape if reduction == "none" else ())).astype(dtype)
    for var in (0.7, np.float32(0.7), np.float64(0.7)):
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ref = TF.gaussian_nll_loss(tx, torch.from_numpy(y), float(var), reduction=reduction)
        (ref_gx,) = torch.autograd.grad(ref, tx, torch.from_numpy(go))
        loss = F.gaussian_nll_loss(x, y, var, reduction=reduction)
        gx, gvar = F.gaussian_nll_loss_backward(go, x, y, var, reduction=reduction)
        loss2, (gx2, gvar2) = F.gaussian_nll_loss_forward_backward(x, y, var, grad_output=go, reduction=reduction)
        assert gvar is None and gvar2 is None
        for l, g in ((loss, gx), (loss2, gx2)):
            assert_close(l, ref.detach().numpy(), what=f"loss {xshape} var {var!r}")
            assert_close(g, ref_gx.numpy(), what=f"grad_input {xshape} var {var!r}")


def test_gaussian_var_below_eps_passes_gradient_through():
    """API.md: var = 0, input - target = 0.6, eps = 1e-6 gives grad_var = 0.5/eps - 0.5*0.36/eps^2."""
    x, y, var = np.array([0.6]), np.array([0.0]), np.array([0.0])
    _, gvar = F.gaussian_nll_loss_backward(1.0, x, y, var, reduction="sum")
    expected = 0.5 / 1e-6 - 0.5 * 0.36 / 1e-12  # about -1.8e11
    np.testing.assert_allclose(gvar, [expected], rtol=1e-12)
    check(SPEC["gaussian_nll_loss"], (x, y, var), {}, "sum", np.random.default_rng(0))


SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4, np.inf, -np.inf, np.nan]
)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", [s.name for s in SPECS if s.name != "binary_cross_entropy"])
def test_special_values(name, dtype, rng):
    """NaN, inf, zeros and extremes in the input propagate as in torch (targets stay valid)."""
    spec = SPEC[name]
    x = SPECIAL.astype(dtype)
    args = list(spec.make(rng, x.shape, dtype))
    args[0] = x
    if name == "gaussian_nll_loss":
        args[2] = np.abs(args[2])
    for reduction in ("none", "sum"):
        check(spec, tuple(args), {}, reduction, rng, what="special")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bce_clamp_at_zero_and_one(dtype, rng):
    """log(0) is clamped at -100 and the gradient's denominator floored at 1e-12, as in torch."""
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 1e-7, 0.5], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5], dtype=dtype)
    for reduction in REDUCTIONS:
        check(SPEC["binary_cross_entropy"], (x, y), {}, reduction, rng, what="clamp")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_kinks_take_torch_subgradients(dtype, rng):
    """Exactly at the kinks (x == y for l1, |z| == delta for huber, the hinge at 0) the gradient is
    torch's choice."""
    z = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0], dtype=dtype)
    zeros = np.zeros_like(z)
    for name, kw in (
        ("l1_loss", {}),
        ("huber_loss", {"delta": 1.0}),
        ("smooth_l1_loss", {"beta": 1.0}),
        ("smooth_l1_loss", {"beta": 0.0}),
    ):
        check(SPEC[name], (z, zeros), kw, "sum", rng, what="kink")
    ones = np.ones_like(z)
    check(SPEC["margin_ranking_loss"], (z, z, ones), {"margin": 0.0}, "sum", rng, what="kink")
    check(SPEC["hinge_embedding_loss"], (np.full_like(z, 1.0), -ones), {"margin": 1.0}, "sum", rng, what="kink")
    check(SPEC["hinge_embedding_loss"], (z, np.zeros_like(z)), {}, "sum", rng, what="label 0")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_target_gradient_edges(dtype, rng):
    """Targets at 0 and below 1 for kl_div and poisson(full), where torch's autograd gives NaN or 0."""
    y = np.array([0.0, 0.5, 1.0, 2.0, 3.0], dtype=dtype)
    x = normal(rng, y.shape, dtype)
    check(SPEC["kl_div"], (x, y), {}, "sum", rng, what="kl edge")
    check(SPEC["poisson_nll_loss"], (x, y), {"full": True}, "sum", rng, what="poisson edge")
    check(SPEC["poisson_nll_loss"], (np.abs(x), y), {"full": True, "log_input": False}, "sum", rng, what="poisson edge")


@pytest.mark.parametrize("target", TARGETS)
def test_cancellations_as_torch_rounds_them_on_every_target(target, rng):
    """Formulas that cancel give torch's value on every target: with fused multiply-adds the
    compiler skipped torch's rounding of a product, so the AVX2/AVX-512 targets gave
    binary_cross_entropy_with_logits' (p y + 1 - y) sigmoid(x) - p y = -8.9e20 where torch (and
    the baseline target) give 0 at x = p = 1e38, and kl_div's y log y - y x = +inf where torch's
    inf - inf is NaN at x = 1e4, y = 1e38 in float32 (found by the fuzz campaign)."""
    before = _core.cpu_target()
    _core.set_cpu_target(target)
    try:
        x = np.array([1e38, 88.0, 1e4, np.inf, 3.0, 40.0])
        y = np.array([0.2085882929319239, 0.98, 0.2, 0.8, 0.2, 0.7])
        pw = np.array([1e38, -1e38, -1e38, -1e38, 1e38, 3e20])
        for reduction in ("none", "sum"):
            check(
                SPEC["binary_cross_entropy_with_logits"],
                (x, y),
                {"pos_weight": pw},
                reduction,
                rng,
                what=f"cancellation on {target}",
            )
        xk = np.array([1e4, -1e4, 3.0], np.float32)
        yk = np.array([1e38, 1e38, 1e38], np.float32)
        check(SPEC["kl_div"], (xk, yk), {}, "none", rng, what=f"overflow on {target}")
    finally:
        _core.set_cpu_target(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_poisson_full_target_gradient_at_infinity(dtype, rng):
    """torch's autograd forms the Stirling term's d(y log y) as log y + y (1/y): at y = +inf that
    is inf * 0 = NaN, where log y + 1/(2y) gave inf (found by the fuzz campaign)."""
    x = np.array([-0.07, 0.5, 2.0], dtype)
    y = np.array([np.inf, np.inf, 3.0], dtype)
    for kw in ({"full": True}, {"full": True, "log_input": False}):
        check(
            SPEC["poisson_nll_loss"],
            (np.abs(x) if not kw.get("log_input", True) else x, y),
            kw,
            "sum",
            rng,
            what="poisson y = inf",
        )


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_target_gradient_through_an_empty_broadcast(log_target, rng):
    """torch evaluates kl_div's target-only factor (xlogy(y, y), exp(y)) at the target's shape:
    against an empty input the target gradient is that empty sum, 0, carried through it: NaN at
    y = 0, +-inf, NaN (and exp(y) = inf), 0 elsewhere; losskit gave 0 throughout (found by the fuzz
    campaign)."""
    y = np.array([0.0, 0.3, np.inf, np.nan, -1.0, 1e38, -np.inf])
    for xshape, yv in (((0, 7), y), ((7, 0), y[:, None]), ((0,), y[:1])):
        for reduction in REDUCTIONS + ["batchmean"]:
            check(
                SPEC["kl_div"],
                (np.zeros(xshape), yv),
                {"log_target": log_target},
                reduction,
                rng,
                what=f"empty input {xshape}",
            )


def test_classes_match_functional(rng):
    x, y = normal(rng, (3, 4), np.float64), normal(rng, (3, 4), np.float64)
    crit = losskit.HuberLoss(delta=0.5, reduction="sum")
    assert repr(crit) == "HuberLoss(reduction='sum', delta=0.5)"
    with pytest.raises(RuntimeError):
        crit.backward()
    loss = crit(x, y)
    assert loss == F.huber_loss(x, y, delta=0.5, reduction="sum")
    np.testing.assert_array_equal(crit.backward(), F.huber_loss_backward(1.0, x, y, delta=0.5, reduction="sum"))
    loss2, g2 = crit.forward_backward(x, y)
    assert loss2 == loss
    np.testing.assert_array_equal(g2, crit.backward())
    none = losskit.MSELoss(reduction="none")
    none(x, y)
    np.testing.assert_array_equal(none.backward(), F.mse_loss_backward(np.ones((3, 4)), x, y, reduction="none"))
    p = prob(rng, (3, 4), np.float64)
    bce = losskit.BCEWithLogitsLoss(pos_weight=np.full(4, 2.0))
    assert "pos_weight" not in repr(bce)
    loss, (gx, gy) = bce.forward_backward(x, p, target_grad=True)
    compare(TF.binary_cross_entropy_with_logits, (x, p), {"pos_weight": np.full(4, 2.0)}, (0, 1), loss, (gx, gy))


def test_legacy_size_average_reduce_warns():
    x, y = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    with pytest.warns(UserWarning, match="size_average and reduce"):
        assert F.mse_loss(x, y, size_average=False) == 5.0
    with pytest.warns(UserWarning):
        assert F.l1_loss(x, y, reduce=False).shape == (2,)
    with pytest.warns(UserWarning):
        assert losskit.L1Loss(size_average=False).reduction == "sum"


def test_target_grad_on_labels_raises():
    x, y = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    for name, args in (
        ("soft_margin_loss", (x, y)),
        ("hinge_embedding_loss", (x, y)),
        ("margin_ranking_loss", (x, x, y)),
    ):
        with pytest.raises(ValueError, match="target_grad"):
            getattr(F, name + "_backward")(1.0, *args, target_grad=True)


def test_dtype_conversions():
    """Lists and integers compute in float64; float16 is read in place, computed in float32 and
    returned as float16 (tests/test_low_precision.py); results keep the input's dtype."""
    assert F.mse_loss([1, 2], [0, 0]).dtype == np.float64
    assert F.mse_loss(np.array([1, 2], np.float16), np.array([0, 0])).dtype == np.float16
    assert F.mse_loss(np.array([1.0], np.float32), np.array([0.0])).dtype == np.float32


# ---- hypothesis: shapes, values (extremes included) and keywords drawn at random -------------
finite = st.floats(-50, 50, allow_nan=False, width=32)


@st.composite
def cases(draw):
    spec = draw(st.sampled_from(SPECS))
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    args = list(spec.make(rng, shape, dtype))
    n = int(np.prod(shape))
    if n and spec.name not in ("binary_cross_entropy", "kl_div", "gaussian_nll_loss", "poisson_nll_loss"):
        values = draw(st.lists(finite, min_size=n, max_size=n))
        args[0] = np.array(values, dtype=dtype).reshape(shape)
    kw = draw(st.sampled_from(spec.variants))
    if shape == () and any(v == "last" for v in kw.values()):
        kw = {}
    reduction = draw(st.sampled_from(spec.reductions))
    return spec, tuple(args), resolve(kw, rng, shape, dtype), reduction, seed


@given(cases())
def test_hypothesis_against_torch(case):
    spec, args, kw, reduction, seed = case
    check(spec, args, kw, reduction, np.random.default_rng(seed), what="hypothesis")
