"""Exact gradient accumulation and data-parallel means (API.md "Global normalizer").

A batch is cut into uneven micro-batches; each is called with ``normalizer=`` the sum of the parts'
``mean_normalizer``. The summed losses must equal torch's full-batch ``'mean'`` and the summed (or,
for per-sample inputs, concatenated) gradients torch.autograd's full-batch gradients, in float64
and in float32 at the suite's tolerances (tests/_reference.py). The divisors are also recomputed
here independently (e.g. the class weights of the counted targets), and bad normalizers raise.
"""

from __future__ import annotations

import doctest
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import losskit
import losskit.functional as F
from _calls import BASE, manhattan
from _cpp import run_check
from _reference import assert_close, torch_call

ROOT = Path(__file__).resolve().parent.parent
rng = np.random.default_rng(11)


class Case:
    """A loss call on a full batch: `args` are the loss's leading (array) arguments, `axes` the
    batch axis of each (None: shared by every micro-batch, e.g. a linear layer's weight), `kwargs`
    the rest, `diff` the arguments with a gradient (in the order losskit returns them)."""

    def __init__(
        self,
        name: str,
        torch_fn: Callable[..., Any],
        args: Sequence[Any],
        axes: Sequence[Optional[int]],
        kwargs: Dict[str, Any],
        diff: Sequence[int],
        cuts: Sequence[int] = (3, 4),
        batched_kwargs: Sequence[str] = (),
    ) -> None:
        self.name, self.torch_fn, self.args, self.axes = name, torch_fn, list(args), list(axes)
        self.kwargs, self.diff, self.cuts, self.batched_kwargs = kwargs, list(diff), list(cuts), tuple(batched_kwargs)

    def astype(self, dtype: Any) -> "Case":
        conv = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in self.args]
        kw = {
            k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in self.kwargs.items()
        }
        return Case(self.name, self.torch_fn, conv, self.axes, kw, self.diff, self.cuts, self.batched_kwargs)

    def parts(self) -> List[Tuple[List[Any], Dict[str, Any]]]:
        """The micro-batches, (args, kwargs): every batched argument (and per-element weight in
        `batched_kwargs`, batch axis 0) cut at `cuts` (uneven parts)."""
        n = next(a.shape[ax] for a, ax in zip(self.args, self.axes) if ax is not None)
        bounds = [0, *self.cuts, n]
        return [
            (
                [a if ax is None else np.take(a, np.arange(lo, hi), axis=ax) for a, ax in zip(self.args, self.axes)],
                {k: v[lo:hi] if k in self.batched_kwargs else v for k, v in self.kwargs.items()},
            )
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]


def _logits(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape) * 2.0


def _targets(n: int, c: int, ignored: Sequence[int] = (), ignore_index: int = -100) -> np.ndarray:
    t = rng.integers(0, c, n)
    t[list(ignored)] = ignore_index
    return t


def _ctc_case() -> Case:
    T, N, C, S = 12, 7, 5, 4
    lp = np.log(TF.softmax(torch.from_numpy(_logits(T, N, C)), dim=-1).numpy())
    targets = rng.integers(1, C, (N, S))
    input_lengths = rng.integers(8, T + 1, N)
    target_lengths = rng.integers(1, S + 1, N)
    return Case(
        "ctc_loss", TF.ctc_loss, [lp, targets, input_lengths, target_lengths], [1, 0, 0, 0], {}, [0], cuts=(2, 3)
    )


def _cases() -> List[Case]:
    N, C = 11, 6
    w = rng.uniform(0.2, 3.0, C)
    t = _targets(N, C, ignored=(1, 5, 6))
    H, V = 8, 9
    x_lin = rng.standard_normal((N, H))
    W_lin = rng.standard_normal((V, H)) * 0.5
    b_lin = rng.standard_normal(V) * 0.1
    t_lin = _targets(N, V, ignored=(0, 7), ignore_index=-1)
    w_lin = rng.uniform(0.2, 3.0, V)
    x_mse, y_mse, w_mse = _logits(N, 3), _logits(N, 3), rng.uniform(0.0, 2.0, (N, 3))
    p = rng.dirichlet(np.ones(4), N)
    return [
        Case("cross_entropy", TF.cross_entropy, [_logits(N, C), t], [0, 0], {"weight": w}, [0]),
        Case("cross_entropy", TF.cross_entropy, [_logits(N, C), t], [0, 0], {"weight": w, "label_smoothing": 0.2}, [0]),
        Case(
            "cross_entropy",
            TF.cross_entropy,
            [_logits(N, C, 3), rng.integers(0, C, (N, 3))],
            [0, 0],
            {"weight": w, "ignore_index": 2},
            [0],
        ),  # K-dimensional, an in-range ignore_index
        Case("nll_loss", TF.nll_loss, [np.log(rng.dirichlet(np.ones(C), N)), t], [0, 0], {"weight": w}, [0]),
        _ctc_case(),
        Case(
            "linear_cross_entropy",
            TF.linear_cross_entropy,
            [x_lin, W_lin, t_lin],
            [0, None, 0],
            {"linear_bias": b_lin, "weight": w_lin, "ignore_index": -1, "label_smoothing": 0.1},
            [0, 1, 3],
        ),
        Case("mse_loss", TF.mse_loss, [x_mse, y_mse], [0, 0], {"weight": w_mse}, [0, 1], batched_kwargs=("weight",)),
        Case("l1_loss", TF.l1_loss, [x_mse, y_mse], [0, 0], {"weight": w_mse}, [0, 1], batched_kwargs=("weight",)),
        Case(
            "huber_loss",
            TF.huber_loss,
            [x_mse, y_mse],
            [0, 0],
            {"weight": w_mse, "delta": 0.5},
            [0, 1],
            batched_kwargs=("weight",),
        ),
        Case(
            "kl_div", TF.kl_div, [np.log(p), rng.dirichlet(np.ones(4), N)], [0, 0], {"reduction": "batchmean"}, [0, 1]
        ),
        Case(
            "binary_cross_entropy_with_logits",
            TF.binary_cross_entropy_with_logits,
            [_logits(N, 4), rng.uniform(0, 1, (N, 4))],
            [0, 0],
            {},
            [0, 1],
        ),
        Case("smooth_l1_loss", TF.smooth_l1_loss, [_logits(N, 2, 3), _logits(N, 2, 3)], [0, 0], {"beta": 0.3}, [0, 1]),
        Case(
            "multilabel_soft_margin_loss",
            TF.multilabel_soft_margin_loss,
            [_logits(N, 5), rng.integers(0, 2, (N, 5)).astype(float)],
            [0, 0],
            {},
            [0],
        ),
        Case(
            "cosine_embedding_loss",
            TF.cosine_embedding_loss,
            [_logits(N, 4), _logits(N, 4), rng.choice([-1.0, 1.0], N)],
            [0, 0, 0],
            {"margin": 0.2},
            [0, 1],
        ),
        Case(
            "triplet_margin_loss",
            TF.triplet_margin_loss,
            [_logits(N, 4), _logits(N, 4), _logits(N, 4)],
            [0, 0, 0],
            {"margin": 2.0},
            [0, 1, 2],
        ),
    ]


CASES = _cases()


def _ids(case: Case) -> str:
    extra = "-".join(k for k in case.kwargs if k not in ("weight", "linear_bias"))
    return case.name + (f"[{extra}]" if extra else "")


def _torch_reference(case: Case, dtype: Optional[torch.dtype] = None) -> Tuple[np.ndarray, Tuple[Any, ...]]:
    if case.name == "linear_cross_entropy":  # the bias has a gradient: pass it as an argument
        args = [case.args[0], case.args[1], case.args[2], case.kwargs["linear_bias"]]
        kw = {k: v for k, v in case.kwargs.items() if k != "linear_bias"}
        return torch_call(
            lambda x, W, t, b, **k: TF.linear_cross_entropy(x, W, t, linear_bias=b, **k),
            args,
            kw,
            diff=(0, 1, 3),
            dtype=dtype,
        )
    return torch_call(case.torch_fn, case.args, case.kwargs, diff=case.diff, dtype=dtype)


def _as_tuple(g: Any) -> Tuple[Any, ...]:
    return g if isinstance(g, tuple) else (g,)


def _wanted(case: Case) -> Dict[str, Any]:
    """target_grad=True where the loss differentiates a second input that is its target."""
    return (
        {"target_grad": True}
        if case.name
        in ("mse_loss", "l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits", "smooth_l1_loss")
        else {}
    )


def _combine(case: Case, per_part: List[Tuple[Any, ...]]) -> List[np.ndarray]:
    """Gradients of the full batch from the parts': concatenated along a batched input's axis,
    summed for a shared one (the linear layer's weight and bias)."""
    if case.name == "linear_cross_entropy":
        axes: List[Optional[int]] = [0, None, None]
    else:
        axes = [case.axes[i] for i in case.diff]
    out = []
    for k, ax in enumerate(axes):
        gs = [g[k] for g in per_part]
        out.append(np.sum(gs, axis=0) if ax is None else np.concatenate(gs, axis=ax))
    return out


_RTOL = {np.float64: 1e-13, np.float32: 1e-5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_accumulated_micro_batches_give_the_full_batch_mean_and_gradients(case, dtype):
    case = case.astype(dtype)
    parts = case.parts()
    total = sum(F.mean_normalizer(case.name, *part, **kw) for part, kw in parts)
    full_normalizer = F.mean_normalizer(case.name, *case.args, **case.kwargs)
    assert math.isclose(total, full_normalizer, rel_tol=1e-14), (total, full_normalizer)

    fb = getattr(F, case.name + "_forward_backward")
    bw = getattr(F, case.name + "_backward")
    fw = getattr(F, case.name)
    n_inputs = len(case.args)
    loss_sum = np.zeros((), dtype)
    per_part, per_part_bw = [], []
    for part, kw in parts:
        loss, grads = fb(*part[:n_inputs], normalizer=total, **kw, **_wanted(case))
        assert loss.dtype == dtype
        loss_sum = loss_sum + loss
        per_part.append(_as_tuple(grads))
        # the same divisor in every entry point
        np.testing.assert_allclose(fw(*part, normalizer=total, **kw), loss, rtol=_RTOL[dtype])
        per_part_bw.append(_as_tuple(bw(np.ones((), dtype), *part, normalizer=total, **kw, **_wanted(case))))
    grads = _combine(case, per_part)

    ref, ref_grads = _torch_reference(case)
    ref64 = ref64_grads = None
    if dtype == np.float32:
        ref64, ref64_grads = _torch_reference(case, torch.float64)
    assert_close(np.asarray(loss_sum, dtype), ref, ref64, f"{case.name} accumulated loss")
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, None if ref64_grads is None else ref64_grads[k], f"{case.name} accumulated grad {k}")
    for g_fb, g_bw in zip(grads, _combine(case, per_part_bw)):
        np.testing.assert_allclose(g_bw, g_fb, rtol=_RTOL[dtype], atol=_RTOL[dtype] * 1e-3)


def test_the_classes_take_the_normalizer_in_forward_and_forward_backward():
    x, t = _logits(9, 4), _targets(9, 4, ignored=(2,))
    w = rng.uniform(0.5, 2.0, 4)
    crit = losskit.CrossEntropyLoss(weight=w)
    parts = [(x[:4], t[:4]), (x[4:], t[4:])]
    total = sum(F.mean_normalizer("cross_entropy", xp, tp, weight=w) for xp, tp in parts)
    losses, grads = [], []
    for xp, tp in parts:
        loss, g = crit.forward_backward(xp, tp, normalizer=total)
        assert crit(xp, tp, normalizer=total) == loss
        np.testing.assert_array_equal(crit.backward(), g)  # backward reuses the forward's normalizer
        losses.append(loss)
        grads.append(g)
    full, full_g = F.cross_entropy_forward_backward(x, t, weight=w)
    assert math.isclose(sum(losses), full, rel_tol=1e-14)
    np.testing.assert_allclose(np.concatenate(grads), full_g, rtol=1e-14, atol=1e-17)
    assert "normalizer" not in repr(crit)


_BASE_CALLS = {
    **BASE,
    "triplet_margin_with_distance_loss[callable]": (
        BASE["triplet_margin_with_distance_loss"][0],
        {**BASE["triplet_margin_with_distance_loss"][1], "distance_function": manhattan},
    ),
}


@pytest.mark.parametrize("key", sorted(_BASE_CALLS))
def test_every_loss_divides_by_the_normalizer_in_every_entry_point(key):
    """Every loss's own divisor, passed back as its normalizer, changes no bit; twice it halves the
    loss and the gradients exactly (a division by a power of two commutes with rounding)."""
    name = key.split("[")[0]
    args, kw = _BASE_CALLS[name if key == name else key]
    z = F.mean_normalizer(name, *args, **kw)
    assert z > 0 and isinstance(z, float)
    fw, bw, fb = (getattr(F, name + s) for s in ("", "_backward", "_forward_backward"))
    loss, grads = fb(*args, **kw)
    loss_fw, grads_bw = fw(*args, **kw), bw(None, *args, **kw)
    for factor in (1.0, 2.0):
        loss_z, grads_z = fb(*args, normalizer=factor * z, **kw)
        np.testing.assert_array_equal(loss_z, loss / factor)
        np.testing.assert_array_equal(fw(*args, normalizer=factor * z, **kw), loss_fw / factor)
        for g, g_z in zip(
            _as_tuple(grads) + _as_tuple(grads_bw),
            _as_tuple(grads_z) + _as_tuple(bw(None, *args, normalizer=factor * z, **kw)),
        ):
            if g is not None:
                np.testing.assert_array_equal(g_z, g / factor)
    with pytest.raises(ValueError, match=rf"{name}: normalizer expected a finite number > 0, got 0"):
        fb(*args, normalizer=0.0, **kw)
    with pytest.raises(ValueError, match=rf"{name}: normalizer expected None with reduction 'sum'"):
        fw(*args, normalizer=z, **{**kw, "reduction": "sum"})


# ---- the divisor, recomputed independently -----------------------------------------------------


def test_mean_normalizer_is_the_weight_of_the_counted_targets():
    x, w = _logits(13, 5), rng.uniform(0.1, 4.0, 5)
    t = _targets(13, 5, ignored=(0, 4, 9))
    counted = t[t != -100]
    expected = math.fsum(w[counted])
    for name, inp in (("cross_entropy", x), ("nll_loss", x)):
        assert math.isclose(F.mean_normalizer(name, inp, t, weight=w), expected, rel_tol=1e-15)
        assert F.mean_normalizer(name, inp, t) == len(counted)
    assert math.isclose(
        F.mean_normalizer("cross_entropy", x, t, weight=w, label_smoothing=0.3), expected, rel_tol=1e-15
    )
    # float32 class weights are summed in double, as the loss sums them
    got32 = F.mean_normalizer("cross_entropy", x.astype(np.float32), t, weight=w.astype(np.float32))
    assert math.isclose(got32, math.fsum(w.astype(np.float32)[counted].astype(np.float64)), rel_tol=1e-15)
    # class probabilities: the number of positions
    p = rng.dirichlet(np.ones(5), (3, 4)).transpose(0, 2, 1)  # (N, C, d1)
    assert F.mean_normalizer("cross_entropy", _logits(3, 5, 4), p) == 12
    # linear_cross_entropy: the same rule on the targets of the linear layer's rows
    H = 3
    assert math.isclose(
        F.mean_normalizer("linear_cross_entropy", _logits(13, H), _logits(5, H), t, weight=w), expected, rel_tol=1e-15
    )


def test_mean_normalizer_of_the_other_losses():
    a, b = _logits(4, 1, 3), _logits(2, 3)
    w = rng.uniform(0.0, 2.0, (4, 2, 3))
    assert F.mean_normalizer("l1_loss", a, b) == 24  # the broadcast (4, 2, 3)
    x, y = _logits(4, 2, 3), _logits(4, 2, 3)
    assert math.isclose(F.mean_normalizer("mse_loss", x, y, weight=w), math.fsum(w.ravel()), rel_tol=1e-15)
    assert F.mean_normalizer("huber_loss", x, y, weight=w) == 24  # torch: (w * l).mean()
    assert (
        F.mean_normalizer(
            "binary_cross_entropy",
            rng.uniform(0.1, 0.9, (4, 2)),
            rng.uniform(0, 1, (4, 2)),
            weight=rng.uniform(0, 1, (4, 2)),
        )
        == 8
    )
    assert F.mean_normalizer("kl_div", x, y, reduction="batchmean") == 4
    assert F.mean_normalizer("kl_div", x, y) == 24
    assert F.mean_normalizer("multilabel_soft_margin_loss", _logits(6, 5), rng.uniform(0, 1, (6, 5))) == 6
    assert F.mean_normalizer("multi_margin_loss", _logits(6, 5), rng.integers(0, 5, 6)) == 6
    assert F.mean_normalizer("cosine_embedding_loss", _logits(7, 3), _logits(1, 3), np.ones(7)) == 7
    assert F.mean_normalizer("triplet_margin_loss", _logits(5, 3), _logits(5, 3), _logits(1, 3)) == 5
    assert (
        F.mean_normalizer(
            "triplet_margin_with_distance_loss",
            _logits(5, 3),
            _logits(5, 3),
            _logits(5, 3),
            distance_function=lambda u, v: None,
        )
        == 5
    )  # never called
    case = _ctc_case()
    assert F.mean_normalizer("ctc_loss", *case.args) == 7
    assert F.mean_normalizer("gaussian_nll_loss", x, y, np.ones((4, 2, 1))) == 24
    assert isinstance(F.mean_normalizer("mse_loss", x, y), float)


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), float("inf")])
def test_a_normalizer_must_be_finite_and_positive(bad):
    x, t = _logits(3, 4), _targets(3, 4)
    with pytest.raises(ValueError, match=r"cross_entropy: normalizer expected a finite number > 0"):
        F.cross_entropy(x, t, normalizer=bad)
    with pytest.raises(ValueError, match=r"mse_loss: normalizer expected a finite number > 0"):
        F.mse_loss_backward(1.0, x, x, normalizer=bad)
    with pytest.raises(ValueError, match=r"ctc_loss: normalizer expected"):
        F.ctc_loss(*_ctc_case().args, normalizer=bad)
    with pytest.raises(ValueError, match=r"linear_cross_entropy: normalizer expected"):
        F.linear_cross_entropy(x, _logits(5, 4), _targets(3, 5), normalizer=bad)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_a_normalizer_goes_only_with_a_dividing_reduction(reduction):
    x, t = _logits(3, 4), _targets(3, 4)
    with pytest.raises(ValueError, match=rf"cross_entropy: normalizer expected None with reduction '{reduction}'"):
        F.cross_entropy_forward_backward(x, t, reduction=reduction, normalizer=2.0)
    with pytest.raises(ValueError, match=r"triplet_margin_loss: normalizer expected None with reduction"):
        F.triplet_margin_loss(x, x, x, reduction=reduction, normalizer=2.0)
    with pytest.raises(ValueError, match=r"kl_div: normalizer expected None with reduction"):
        F.kl_div(x, x, reduction=reduction, normalizer=2.0)
    with pytest.raises(ValueError, match=r"reduction expected 'mean' or 'batchmean'"):
        F.mean_normalizer("cross_entropy", x, t, reduction=reduction)


def test_mean_normalizer_argument_errors():
    x = _logits(3, 4)
    with pytest.raises(ValueError, match=r"mean_normalizer: name expected one of .*'cross_entropy'"):
        F.mean_normalizer("cross_entropy_loss", x, x)
    with pytest.raises(losskit.IndexError, match=r"cross_entropy: target expected class indices in \[0, 4\)"):
        F.mean_normalizer("cross_entropy", x, np.array([0, 4, 1]))  # checked as the loss checks it
    with pytest.raises(TypeError, match=r"normalizer"):
        F.mse_loss(x, x, normalizer="12")
    with pytest.raises(TypeError, match=r"normalizer"):
        F.mean_normalizer("mse_loss", x, x, normalizer=3.0)


# ---- the C++ API, and the recipe in the docs ---------------------------------------------------


def test_cpp_gradient_accumulation(tmp_path):
    run = run_check("normalizer", tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok" in run.stdout


def test_training_recipe_runs():
    result = doctest.testfile(
        str(ROOT / "docs" / "training.md"), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted >= 5 and result.failed == 0
