"""Benchmark cases of the element-wise losses: 16M float32 elements (memory-bound) and 4K (call
overhead), fused forward_backward against torch forward + autograd backward, and against JAX:
optax's loss where optax has one, else the jnp formula of torch's definition (bench/_jax.py)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F
from _jax import grads_of, jnp, optax, prepare  # jnp and optax are None without JAX

LARGE = 16 * 1024 * 1024
SMALL = 4096


def _case(
    name: str,
    n: int,
    make: Callable[[Any, int], List[np.ndarray]],
    diff: List[int],
    lk: Callable[..., Any],
    th: Callable[..., Any],
    jx: Callable[..., Any],
) -> Dict[str, Any]:
    def setup(rng):
        arrays = make(rng, n)
        tensors = [torch.from_numpy(a).requires_grad_(i in diff) for i, a in enumerate(arrays)]
        ref = lk(*arrays)
        return arrays, tensors, prepare(jx, diff, arrays, ref[0], grads_of(ref))

    def run_torch(state):
        tensors = state[1]
        loss = th(*tensors)
        return torch.autograd.grad(loss, [tensors[i] for i in diff])

    nbytes = (len(make(np.random.default_rng(0), 1)) + len(diff)) * 4 * n  # inputs read + grads written
    return {
        "name": f"{name} {'16M' if n == LARGE else '4K'}",
        "setup": setup,
        "losskit": lambda state: lk(*state[0]),
        "torch": run_torch,
        "jax": lambda state: state[2](),
        "bytes": nbytes,
    }


def normal(rng, n):
    return rng.standard_normal(n, dtype=np.float32)


def sign(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def prob(rng, n):
    return rng.uniform(0.01, 0.99, n).astype(np.float32)


# name, inputs, losskit, torch, JAX (called with jnp arrays; reduction 'mean' as the other two).
SPECS = [
    (
        "l1_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.l1_loss_forward_backward,
        TF.l1_loss,
        lambda x, y: jnp.mean(jnp.abs(x - y)),
    ),
    (
        "mse_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.mse_loss_forward_backward,
        TF.mse_loss,
        lambda x, y: jnp.mean(optax.losses.squared_error(x, y)),
    ),
    (
        "huber_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.huber_loss_forward_backward,
        TF.huber_loss,
        lambda x, y: jnp.mean(optax.losses.huber_loss(x, y, delta=1.0)),
    ),
    # smooth_l1 with beta is huber with delta = beta, divided by beta: at torch's beta = 1 they are equal.
    (
        "smooth_l1_loss",
        lambda r, n: [normal(r, n), normal(r, n)],
        F.smooth_l1_loss_forward_backward,
        TF.smooth_l1_loss,
        lambda x, y: jnp.mean(optax.losses.huber_loss(x, y, delta=1.0)),
    ),
    (
        "soft_margin_loss",
        lambda r, n: [normal(r, n), sign(r, n)],
        F.soft_margin_loss_forward_backward,
        TF.soft_margin_loss,
        lambda x, y: jnp.mean(jnp.log1p(jnp.exp(-y * x))),
    ),
    # torch clamps both logarithms at -100.
    (
        "binary_cross_entropy",
        lambda r, n: [prob(r, n), prob(r, n)],
        F.binary_cross_entropy_forward_backward,
        TF.binary_cross_entropy,
        lambda x, y: -jnp.mean(y * jnp.maximum(jnp.log(x), -100.0) + (1 - y) * jnp.maximum(jnp.log1p(-x), -100.0)),
    ),
    (
        "binary_cross_entropy_with_logits",
        lambda r, n: [normal(r, n), prob(r, n)],
        F.binary_cross_entropy_with_logits_forward_backward,
        TF.binary_cross_entropy_with_logits,
        lambda x, y: jnp.mean(optax.losses.sigmoid_binary_cross_entropy(x, y)),
    ),
    # torch's defaults: log_input=True, full=False.
    (
        "poisson_nll_loss",
        lambda r, n: [normal(r, n), prob(r, n)],
        F.poisson_nll_loss_forward_backward,
        TF.poisson_nll_loss,
        lambda x, y: jnp.mean(jnp.exp(x) - y * x),
    ),
    # torch's defaults: full=False, var clamped at eps = 1e-6 (never reached by these variances).
    (
        "gaussian_nll_loss",
        lambda r, n: [normal(r, n), normal(r, n), prob(r, n)],
        lambda x, y, v: F.gaussian_nll_loss_forward_backward(x, y, v),
        TF.gaussian_nll_loss,
        lambda x, y, v: jnp.mean(0.5 * (jnp.log(jnp.maximum(v, 1e-6)) + (x - y) ** 2 / jnp.maximum(v, 1e-6))),
    ),
    # batchmean of a 1-D input divides the sum by its length; optax sums over the last axis.
    (
        "kl_div",
        lambda r, n: [np.log(prob(r, n)), prob(r, n)],
        lambda x, y: F.kl_div_forward_backward(x, y, reduction="batchmean"),
        lambda x, y: TF.kl_div(x, y, reduction="batchmean"),
        lambda x, y: optax.losses.kl_divergence(x, y) / x.shape[0],
    ),
    # torch's default margin = 0.
    (
        "margin_ranking_loss",
        lambda r, n: [normal(r, n), normal(r, n), sign(r, n)],
        F.margin_ranking_loss_forward_backward,
        TF.margin_ranking_loss,
        lambda x1, x2, y: jnp.mean(jnp.maximum(0.0, -y * (x1 - x2))),
    ),
    # torch's default margin = 1; x where y = 1, max(0, margin - x) where y = -1.
    (
        "hinge_embedding_loss",
        lambda r, n: [np.abs(normal(r, n)), sign(r, n)],
        F.hinge_embedding_loss_forward_backward,
        TF.hinge_embedding_loss,
        lambda x, y: jnp.mean(jnp.where(y == 1, x, 0.0) + jnp.where(y == -1, jnp.maximum(0.0, 1.0 - x), 0.0)),
    ),
]

# Differentiated arguments, as torch differentiates them in training: the input(s) only.
DIFF = {"margin_ranking_loss": [0, 1], "gaussian_nll_loss": [0, 2]}

CASES = [
    _case(name, n, make, DIFF.get(name, [0]), lk, th, jx) for n in (LARGE, SMALL) for name, make, lk, th, jx in SPECS
]
