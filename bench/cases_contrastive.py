"""Benchmark case of the contrastive family for bench/run.py: info_nce_loss forward + backward
(gradients of z1 and z2), float32, at the issue's size N = 8192 pairs, D = 512, CLIP's symmetric
loss with normalisation and temperature 0.07. losskit's blocked forward_backward (64 MiB blocks of
the similarities: 2048 rows, four blocks, so the symmetric gradient recomputes S once: four
N x N x D GEMMs in all) against torch autograd of the formula (F.normalize, a @ b.T / T, the two
F.cross_entropy; three GEMMs, the 256 MiB S and its softmaxes held) and the same formula in jnp
under jax.jit (bench/_jax.py).

`bytes` is the least traffic: z1 and z2 read once, their gradients written once (the
similarities are never written to memory by a perfect kernel); the case is GEMM-bound, so the
fraction of the memory floor says little here."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F
from _jax import grads_of, jnp, prepare  # jnp is None without JAX

N, D, TEMPERATURE = 8192, 512, 0.07


def _setup(rng):
    z1 = rng.standard_normal((N, D), dtype=np.float32)
    z2 = (z1 + rng.standard_normal((N, D), dtype=np.float32)).astype(np.float32)
    t1 = torch.from_numpy(z1).requires_grad_(True)
    t2 = torch.from_numpy(z2).requires_grad_(True)
    ref = F.info_nce_loss_forward_backward(z1, z2, temperature=TEMPERATURE)
    return z1, z2, t1, t2, prepare(jax_info_nce, [0, 1], [z1, z2], ref[0], grads_of(ref))


def _losskit(state):
    z1, z2 = state[:2]
    return F.info_nce_loss_forward_backward(z1, z2, temperature=TEMPERATURE)


def _torch(state):
    t1, t2 = state[2:4]
    a, b = TF.normalize(t1, dim=1), TF.normalize(t2, dim=1)
    S = a @ b.T / TEMPERATURE
    labels = torch.arange(N)
    loss = (TF.cross_entropy(S, labels) + TF.cross_entropy(S.T, labels)) / 2
    return torch.autograd.grad(loss, [t1, t2])


def jax_info_nce(z1, z2):
    # What a JAX user writes (CLIP's pseudocode); optax's ntxent is SimCLR's variant, not this loss.
    a = z1 / jnp.maximum(jnp.linalg.norm(z1, axis=1, keepdims=True), 1e-12)
    b = z2 / jnp.maximum(jnp.linalg.norm(z2, axis=1, keepdims=True), 1e-12)
    S = a @ b.T / TEMPERATURE
    diag = jnp.diagonal(S)
    rows = jax_logsumexp(S, 1) - diag
    cols = jax_logsumexp(S, 0) - diag
    return jnp.mean((rows + cols) / 2)


def jax_logsumexp(x, axis):
    import jax.scipy.special as jsp

    return jsp.logsumexp(x, axis=axis)


CASES: List[Dict[str, Any]] = [
    {
        "name": f"info_nce_loss N={N} D={D}",
        "setup": _setup,
        "losskit": _losskit,
        "torch": _torch,
        "jax": lambda state: state[4](),
        "bytes": 4 * 4 * N * D,
    },
]
