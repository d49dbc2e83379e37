"""Benchmark cases of the classification losses: fused forward_backward against torch forward +
autograd backward, float32, and against JAX (optax's loss or the jnp formula of torch's
definition, bench/_jax.py). `bytes` is the least traffic: logits (and float targets) read once, the
gradient written once (class indices are counted too)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F
from _jax import grads_of, jax, jnp, optax, prepare  # jax, jnp and optax are None without JAX


def _case(
    name: str,
    make: Callable[[Any], Tuple[np.ndarray, np.ndarray]],
    lk: Callable[..., Any],
    th: Callable[..., Any],
    jx: Callable[..., Any],
    kwargs: Dict[str, Any] = None,
) -> Dict[str, Any]:
    kwargs = dict(kwargs or {})

    def setup(rng):
        x, t = make(rng)
        xt = torch.from_numpy(x).requires_grad_(True)
        tt = torch.from_numpy(t)
        th_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        ref = lk(x, t, **kwargs)
        return x, t, xt, tt, th_kwargs, prepare(jx, [0], [x, t], ref[0], grads_of(ref))

    def run_losskit(state):
        x, t = state[0], state[1]
        return lk(x, t, **kwargs)

    def run_torch(state):
        _, _, xt, tt, th_kwargs, _ = state
        loss = th(xt, tt, **th_kwargs)
        return torch.autograd.grad(loss, [xt])

    x0, t0 = make(np.random.default_rng(0))
    nbytes = 2 * x0.nbytes + t0.nbytes
    return {
        "name": name,
        "setup": setup,
        "losskit": run_losskit,
        "torch": run_torch,
        "jax": lambda state: state[5](),
        "bytes": nbytes,
    }


def logits(N: int, C: int, *spatial: int):
    def make(rng):
        x = rng.standard_normal((N, C, *spatial), dtype=np.float32)
        t = rng.integers(0, C, (N, *spatial)).astype(np.int64)
        return x, t

    return make


def probabilities(N: int, C: int):
    def make(rng):
        x = rng.standard_normal((N, C), dtype=np.float32)
        y = rng.random((N, C), dtype=np.float32)
        y /= y.sum(axis=1, keepdims=True)
        return x, y

    return make


def multilabel(N: int, C: int):
    def make(rng):
        x = rng.standard_normal((N, C), dtype=np.float32)
        y = (rng.random((N, C)) < 0.1).astype(np.float32)
        return x, y

    return make


# The JAX versions (called with jnp arrays, class indices as int32; reduction 'mean').
def jax_cross_entropy(axis: int = -1) -> Callable[..., Any]:
    return lambda x, t: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(x, t, axis=axis))


def jax_cross_entropy_smoothed(x, t):
    # torch's label_smoothing=0.1 is the cross-entropy against (1 - 0.1) one_hot + 0.1 / C.
    return jnp.mean(optax.losses.softmax_cross_entropy(x, optax.smooth_labels(jax.nn.one_hot(t, x.shape[-1]), 0.1)))


# The extras case: softcap 30 (Gemma 2's final-logit cap), PaLM's z_loss 1e-4, and the statistics.
EXTRAS = {"z_loss": 1e-4, "softcap": 30.0, "return_stats": True}


def torch_cross_entropy_extras(x, t, z_loss, softcap, return_stats):
    # The composed expression; the statistics computed alongside (detached), as losskit returns them.
    xc = softcap * torch.tanh(x / softcap)
    lse = torch.logsumexp(xc, dim=1)
    if return_stats:
        with torch.no_grad():
            p = torch.softmax(xc, 1)
            _ = (lse, -(p * torch.log_softmax(xc, 1)).sum(1), x.argmax(1) == t)
    return TF.cross_entropy(xc, t) + z_loss * (lse**2).mean()


def jax_cross_entropy_extras(x, t):
    xc = EXTRAS["softcap"] * jnp.tanh(x / EXTRAS["softcap"])
    lse = jax.nn.logsumexp(xc, axis=-1)
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(xc, t) + EXTRAS["z_loss"] * lse**2)


def jax_cross_entropy_probabilities(x, y):
    return jnp.mean(optax.losses.softmax_cross_entropy(x, y))


def jax_nll_loss(x, t):
    return -jnp.mean(jnp.take_along_axis(x, t[:, None], axis=1))


def jax_multi_margin_loss(x, t):
    # torch's p = 1, margin = 1: sum over i != y of max(0, 1 - x[y] + x[i]), over C. optax's
    # multiclass_hinge_loss is Crammer-Singer's max over i, another loss.
    x_y = jnp.take_along_axis(x, t[:, None], axis=1)
    margins = jnp.where(jax.nn.one_hot(t, x.shape[1], dtype=bool), 0.0, jnp.maximum(0.0, 1.0 - x_y + x))
    return jnp.mean(jnp.sum(margins, axis=1) / x.shape[1])


def jax_multilabel_soft_margin_loss(x, y):
    # torch's mean over classes, then over samples: the mean of every element's logistic loss.
    return jnp.mean(optax.losses.sigmoid_binary_cross_entropy(x, y))


CASES = [
    _case(
        "cross_entropy 8192x1000",
        logits(8192, 1000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy(),
    ),
    _case(
        "cross_entropy 2048x32000",
        logits(2048, 32000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy(),
    ),
    _case(
        "cross_entropy 512x128000",
        logits(512, 128000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy(),
    ),
    _case(
        "cross_entropy 4x256000",
        logits(4, 256000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy(),
    ),
    _case(
        "cross_entropy 2048x32000 label_smoothing=0.1",
        logits(2048, 32000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy_smoothed,
        kwargs={"label_smoothing": 0.1},
    ),
    # Issue 11's target: all extras on at most 1.15x the plain 2048x32000 case above.
    _case(
        "cross_entropy 2048x32000 z_loss+softcap+stats",
        logits(2048, 32000),
        F.cross_entropy_forward_backward,
        torch_cross_entropy_extras,
        jax_cross_entropy_extras,
        kwargs=EXTRAS,
    ),
    _case(
        "cross_entropy probabilities 8192x1000",
        probabilities(8192, 1000),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy_probabilities,
    ),
    _case(
        "cross_entropy segmentation 16x21x128x128",
        logits(16, 21, 128, 128),
        F.cross_entropy_forward_backward,
        TF.cross_entropy,
        jax_cross_entropy(axis=1),
    ),
    _case("nll_loss 8192x1000", logits(8192, 1000), F.nll_loss_forward_backward, TF.nll_loss, jax_nll_loss),
    _case(
        "multi_margin_loss 8192x1000",
        logits(8192, 1000),
        F.multi_margin_loss_forward_backward,
        TF.multi_margin_loss,
        jax_multi_margin_loss,
    ),
    _case(
        "multilabel_soft_margin_loss 8192x1000",
        multilabel(8192, 1000),
        F.multilabel_soft_margin_loss_forward_backward,
        TF.multilabel_soft_margin_loss,
        jax_multilabel_soft_margin_loss,
    ),
]
