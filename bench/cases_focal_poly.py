"""Benchmark cases of softmax_focal_loss and poly1_cross_entropy (classification, beyond torch.nn):
fused forward_backward against torch forward + autograd backward of the composed formula, and
against JAX under jit (optax's poly_loss_cross_entropy; the jnp formula for the focal loss, which
optax lacks), float32, poly1 also with label smoothing (optax's loss on the smoothed one-hot). The
focal case is issue 16's 16M logits (16384 x 1000). `bytes` is the
least traffic (bench/cases_classification.py)."""

from __future__ import annotations

import torch

import losskit.functional as F
from _jax import jax, jnp, optax
from cases_classification import _case, logits

GAMMA = 2.0


def torch_focal(x, t, gamma=GAMMA):
    logpt = torch.log_softmax(x, 1).gather(1, t[:, None]).squeeze(1)
    return (-((1 - logpt.exp()) ** gamma) * logpt).mean()


def jax_focal(x, t):
    logpt = jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), t[:, None], axis=-1)[:, 0]
    return jnp.mean(-((1 - jnp.exp(logpt)) ** GAMMA) * logpt)


def torch_poly1(x, t, epsilon=1.0):
    pt = torch.softmax(x, 1).gather(1, t[:, None]).squeeze(1)
    return (torch.nn.functional.cross_entropy(x, t, reduction="none") + epsilon * (1 - pt)).mean()


def jax_poly1(x, t):
    return jnp.mean(optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(t, x.shape[-1]), epsilon=1.0))


SMOOTHING = 0.1


def torch_poly1_smoothed(x, t, label_smoothing=SMOOTHING, epsilon=1.0):
    """sum_c y'_c (-log p_c + epsilon (1 - p_c)), y' the smoothed one-hot (classes on dim 1)."""
    onehot = torch.nn.functional.one_hot(t, x.shape[1]).movedim(-1, 1).to(x.dtype)
    y = onehot * (1 - label_smoothing) + label_smoothing / x.shape[1]
    logp = torch.log_softmax(x, 1)
    return (y * (-logp + epsilon * (1 - logp.exp()))).sum(1).mean()


def jax_poly1_smoothed(x, t):
    x = jnp.moveaxis(x, 1, -1)  # optax's classes are the last axis
    y = jax.nn.one_hot(t, x.shape[-1]) * (1 - SMOOTHING) + SMOOTHING / x.shape[-1]
    return jnp.mean(optax.losses.poly_loss_cross_entropy(x, y, epsilon=1.0))


CASES = [
    _case(
        "softmax_focal_loss 16384x1000",
        logits(16384, 1000),
        F.softmax_focal_loss_forward_backward,
        torch_focal,
        jax_focal,
    ),
    _case(
        "poly1_cross_entropy 16384x1000",
        logits(16384, 1000),
        F.poly1_cross_entropy_forward_backward,
        torch_poly1,
        jax_poly1,
    ),
    # Smoothing reads every class's target weight: poly1's own row kernel, not cross_entropy's.
    _case(
        "poly1_cross_entropy smoothing=0.1 16384x1000",
        logits(16384, 1000),
        F.poly1_cross_entropy_forward_backward,
        torch_poly1_smoothed,
        jax_poly1_smoothed,
        {"label_smoothing": SMOOTHING},
    ),
    # K-dimensional (segmentation layout): vectorised across the contiguous positions.
    _case(
        "poly1_cross_entropy smoothing=0.1 segmentation 16x21x128x128",
        logits(16, 21, 128, 128),
        F.poly1_cross_entropy_forward_backward,
        torch_poly1_smoothed,
        jax_poly1_smoothed,
        {"label_smoothing": SMOOTHING},
    ),
]
