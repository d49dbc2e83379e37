"""The functional layer's one-definition-per-loss mechanism (python/losskit/_functional/_spec.py):
every public function of losskit.functional is generated from its loss's single definition, with a
real signature; the committed stub python/losskit/functional.pyi is the generator's output and
agrees with the runtime (mypy's stubtest); warnings still point at the caller's line."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import losskit
import losskit.functional as F
from losskit._functional import _spec, _stubs
from _calls import public_functions

REPO = Path(__file__).resolve().parents[1]


def test_every_public_function_comes_from_one_definition():
    generated = {n: f for loss in _spec.LOSSES.values() for n, f in loss.functions.items()}
    assert set(public_functions()) == set(generated)
    for name, fn in generated.items():
        assert getattr(F, name) is fn


@pytest.mark.parametrize("name", sorted(_spec.LOSSES))
def test_backward_and_fused_signatures_derive_from_the_forward(name):
    fwd = list(inspect.signature(getattr(F, name)).parameters.values())
    bwd = list(inspect.signature(getattr(F, name + "_backward")).parameters.values())
    fused = list(inspect.signature(getattr(F, name + "_forward_backward")).parameters.values())
    assert bwd[0].name == "grad_output" and bwd[0].default is inspect.Parameter.empty
    assert bwd[1:-1] == fwd
    assert bwd[-1].name == fused[-1].name == "target_grad" and bwd[-1].default is False
    k = next(i for i, p in enumerate(fused) if p.name == "grad_output")
    assert fused[k].default is None and fused[:k] + fused[k + 1 : -1] == fwd
    # help() shows the parameters and the docstring, as for a hand-written def.
    text = pydoc.render_doc(getattr(F, name + "_backward"), renderer=pydoc.plaintext)
    assert "target_grad" in text and f":func:`{name}`" in text


def test_generated_functions_bind_arguments_like_a_def():
    x, t = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0])
    positional = F.l1_loss_backward(None, x, t, None, None, "sum", None, target_grad=True)
    keyword = F.l1_loss_backward(grad_output=None, input=x, target=t, reduction="sum", target_grad=True)
    for a, b in zip(positional, keyword):
        np.testing.assert_array_equal(a, b)
    # losskit's own keywords (normalizer=, and target_grad after it) are keyword-only: a
    # positional one is an error, never bound to the wrong parameter.
    with pytest.raises(
        TypeError, match=r"l1_loss_backward\(\) takes from 3 to 7 positional arguments but 8 were given"
    ):
        F.l1_loss_backward(None, x, t, None, None, "sum", None, True)
    with pytest.raises(TypeError, match=r"l1_loss_forward_backward\(\) got an unexpected keyword argument 'delta'"):
        F.l1_loss_forward_backward(x, t, delta=1.0)
    with pytest.raises(TypeError, match=r"triplet_margin_with_distance_loss\(\) takes 3 positional"):
        F.triplet_margin_with_distance_loss(x, x, x, None)


def test_warnings_point_at_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        F.mse_loss(np.ones(3), np.ones(1))
        F.kl_div_forward_backward(np.zeros(2), np.full(2, 0.5))
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name] * 2, [str(w) for w in caught]


def test_classes_pass_their_constructor_keywords():
    crit = losskit.PoissonNLLLoss(log_input=False, full=True, eps=1e-3, reduction="sum")
    assert crit._kwargs() == {"log_input": False, "full": True, "eps": 1e-3, "reduction": "sum"}
    assert repr(losskit.HuberLoss(delta=0.5)) == "HuberLoss(reduction='mean', delta=0.5)"


def test_committed_stub_is_current():
    committed = (REPO / "python" / "losskit" / "functional.pyi").read_text()
    assert committed == _stubs.stub_source(), "run: PYTHONPATH=python python -m losskit._functional._stubs"


def test_stub_agrees_with_the_runtime():
    pytest.importorskip("mypy")
    subprocess.run([sys.executable, "-m", "mypy.stubtest", "losskit.functional"], cwd=REPO, check=True)
