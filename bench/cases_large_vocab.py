"""Benchmark case of the large-vocabulary family for bench/run.py: linear_cross_entropy forward +
backward (gradients of input and linear_weight), float32, at a modest size (N = 1024 tokens,
H = 512, V = 32000: about 0.1 TFLOP of GEMMs per call). losskit's chunked forward_backward
against torch's linear_cross_entropy (reference path) + autograd, and against JAX's
optax.losses.softmax_cross_entropy_with_integer_labels of x @ W.T (bench/_jax.py). The full
language-model sizes (N = 4096, H = 1024, V = 32000 and 128000), peak memory and torch's chunking
options are measured by bench/large_vocab.py, each variant in its own process.

`bytes` is the least traffic: input and linear_weight read once, their gradients written once,
the targets read once (the logits are never written to memory by a perfect kernel)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F
from _jax import grads_of, jnp, optax, prepare  # jnp and optax are None without JAX

N, H, V = 1024, 512, 32000


def _setup(rng):
    x = rng.standard_normal((N, H), dtype=np.float32)
    W = rng.standard_normal((V, H), dtype=np.float32) / np.float32(np.sqrt(H))
    t = rng.integers(0, V, N).astype(np.int64)
    xt = torch.from_numpy(x).requires_grad_(True)
    Wt = torch.from_numpy(W).requires_grad_(True)
    ref = F.linear_cross_entropy_forward_backward(x, W, t)
    return (
        x,
        W,
        t,
        xt,
        Wt,
        torch.from_numpy(t),
        prepare(jax_linear_cross_entropy, [0, 1], [x, W, t], ref[0], grads_of(ref)),
    )


def _losskit(state):
    x, W, t = state[:3]
    return F.linear_cross_entropy_forward_backward(x, W, t)


def _torch(state):
    xt, Wt, tt = state[3:6]
    loss = TF.linear_cross_entropy(xt, Wt, tt)
    return torch.autograd.grad(loss, [xt, Wt])


def jax_linear_cross_entropy(x, W, t):
    # What a JAX user writes: the (N, V) logits in full, then optax's cross-entropy; XLA fuses what it can.
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(x @ W.T, t))


CASES: List[Dict[str, Any]] = [
    {
        "name": f"linear_cross_entropy N={N} H={H} V={V}",
        "setup": _setup,
        "losskit": _losskit,
        "torch": _torch,
        "jax": lambda state: state[6](),
        "bytes": 2 * 4 * (N * H + V * H) + 8 * N,
    },
]
