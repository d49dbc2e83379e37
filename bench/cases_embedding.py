"""Benchmark cases of the embedding family for bench/run.py.

Each loss at 8192 x 256 and 65536 x 128 float32, losskit's fused forward_backward against torch's
forward + .backward() on the same data (reduction='mean', torch's defaults otherwise), and against
JAX with optax's cosine_similarity, triplet_margin_loss and cosine_distance (bench/_jax.py).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

import losskit.functional as LF
from _jax import grads_of, jnp, optax, prepare  # jnp and optax are None without JAX

SHAPES = [(8192, 256), (65536, 128)]


def _triplet_setup(shape, lk: Callable[..., Any], jx: Callable[..., Any]):
    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(3)]
        tensors = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
        ref = lk(*arrays)
        return {"np": arrays, "torch": tensors, "jax": prepare(jx, [0, 1, 2], arrays, ref[0], grads_of(ref))}

    return setup


def _cosine_setup(shape, lk: Callable[..., Any], jx: Callable[..., Any]):
    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        x1 = rng.standard_normal(shape, dtype=np.float32)
        x2 = rng.standard_normal(shape, dtype=np.float32)
        t = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=shape[0])
        tensors = [
            torch.from_numpy(x1.copy()).requires_grad_(True),
            torch.from_numpy(x2.copy()).requires_grad_(True),
            torch.from_numpy(t.copy()),
        ]
        ref = lk(x1, x2, t)
        return {"np": [x1, x2, t], "torch": tensors, "jax": prepare(jx, [0, 1], [x1, x2, t], ref[0], grads_of(ref))}

    return setup


def _torch_run(fn: Callable[..., torch.Tensor], **kwargs: Any) -> Callable[[Dict[str, Any]], Any]:
    def run(state: Dict[str, Any]) -> Any:
        ts = state["torch"]
        loss = fn(*ts, **kwargs)
        # autograd backward into fresh gradients (no accumulation into .grad), as cases_pointwise
        return torch.autograd.grad(loss, [t for t in ts if t.requires_grad])

    return run


def _losskit_run(fn: Callable[..., Any], **kwargs: Any) -> Callable[[Dict[str, Any]], Any]:
    def run(state: Dict[str, Any]) -> Any:
        return fn(*state["np"], **kwargs)

    return run


def _jax_run(state: Dict[str, Any]) -> Any:
    return state["jax"]()


# The JAX versions (called with jnp arrays; reduction 'mean', torch's defaults).
def jax_cosine_embedding_loss(x1, x2, y):
    # torch's margin = 0: 1 - cos where y = 1, max(0, cos) where y = -1; torch adds 1e-12 to the squared norms.
    cos = optax.losses.cosine_similarity(x1, x2, epsilon=1e-12)
    return jnp.mean(jnp.where(y == 1, 1.0 - cos, jnp.maximum(0.0, cos)))


def jax_triplet_margin_loss(a, p, n):
    # margin 1, p = 2. optax adds eps = 1e-6 under the square root, torch to each difference: the
    # two agree to float32 precision on these inputs (checked in setup).
    return jnp.mean(optax.losses.triplet_margin_loss(a, p, n))


def jax_triplet_cosine(a, p, n):
    d_ap, d_an = optax.losses.cosine_distance(a, p), optax.losses.cosine_distance(a, n)
    return jnp.mean(jnp.maximum(d_ap - d_an + 1.0, 0.0))


def _cosine_distance_losskit(a, p, n):
    return LF.triplet_margin_with_distance_loss_forward_backward(a, p, n, distance_function="cosine")


CASES: List[Dict[str, Any]] = []
for n, d in SHAPES:
    elems = n * d * 4  # bytes of one float32 (N, D) array
    CASES.append(
        {
            "name": f"cosine_embedding_loss {n}x{d}",
            "setup": _cosine_setup((n, d), LF.cosine_embedding_loss_forward_backward, jax_cosine_embedding_loss),
            "losskit": _losskit_run(LF.cosine_embedding_loss_forward_backward),
            "torch": _torch_run(F.cosine_embedding_loss),
            "jax": _jax_run,
            "bytes": 2 * elems + n * 4 + 2 * elems,  # x1, x2, target read; two gradients written
        }
    )
    CASES.append(
        {
            "name": f"triplet_margin_loss {n}x{d}",
            "setup": _triplet_setup((n, d), LF.triplet_margin_loss_forward_backward, jax_triplet_margin_loss),
            "losskit": _losskit_run(LF.triplet_margin_loss_forward_backward),
            "torch": _torch_run(F.triplet_margin_loss),
            "jax": _jax_run,
            "bytes": 3 * elems + 3 * elems,
        }
    )
    CASES.append(
        {
            "name": f"triplet_margin_with_distance_loss(cosine) {n}x{d}",
            "setup": _triplet_setup((n, d), _cosine_distance_losskit, jax_triplet_cosine),
            "losskit": _losskit_run(_cosine_distance_losskit),
            "torch": _torch_run(
                F.triplet_margin_with_distance_loss,
                distance_function=lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1),
            ),
            "jax": _jax_run,
            "bytes": 3 * elems + 3 * elems,
        }
    )
