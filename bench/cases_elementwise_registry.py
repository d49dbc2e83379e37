"""Benchmark cases of the registered element-wise losses (log_cosh_loss, pseudo_huber_loss,
msle_loss, sigmoid_focal_loss) at 16M float32 elements: losskit's fused forward_backward against
torch autograd of the published formula and against JAX (optax's loss where optax has one, else the
jnp formula) under jit. Cases are built by cases_pointwise._case, as the twelve torch losses'."""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

import losskit.functional as F
from _jax import jnp, optax

sys.path.insert(0, os.path.dirname(__file__))
from cases_pointwise import LARGE, _case, normal  # noqa: E402


def _log1p_domain(rng, n):
    return rng.uniform(0.0, 5.0, n).astype(np.float32)


SPECS = [
    (
        "log_cosh_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.log_cosh_loss_forward_backward,
        lambda x, y: torch.log(torch.cosh(x - y)).mean(),
        lambda x, y: jnp.mean(optax.log_cosh(x, y)),
    ),
    (
        "pseudo_huber_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.pseudo_huber_loss_forward_backward,
        lambda x, y: (torch.sqrt(1 + (x - y) ** 2) - 1).mean(),
        lambda x, y: jnp.mean(jnp.sqrt(1 + (x - y) ** 2) - 1),
    ),
    (
        "msle_loss",
        lambda r, n: [_log1p_domain(r, n), _log1p_domain(r, n)],
        F.msle_loss_forward_backward,
        lambda x, y: ((torch.log1p(x) - torch.log1p(y)) ** 2).mean(),
        lambda x, y: jnp.mean((jnp.log1p(x) - jnp.log1p(y)) ** 2),
    ),
]


def _logits_and_labels(rng, n):
    return [normal(rng, n), (rng.random(n) < 0.1).astype(np.float32)]  # RetinaNet: few positives


def _torchvision_focal(x, y):
    """torchvision.ops.sigmoid_focal_loss (alpha 0.25, gamma 2), mean-reduced."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    return ((0.25 * y + 0.75 * (1 - y)) * ce * (1 - p_t) ** 2).mean()


SPECS.append(
    (
        "sigmoid_focal_loss",
        _logits_and_labels,
        lambda x, y: F.sigmoid_focal_loss_forward_backward(x, y, reduction="mean"),
        _torchvision_focal,
        lambda x, y: jnp.mean(optax.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)),
    )
)

CASES = [_case(name, LARGE, make, [0], lk, th, jx) for name, make, lk, th, jx in SPECS]
