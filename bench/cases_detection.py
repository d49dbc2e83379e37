"""Benchmark cases of the detection family for bench/run.py.

Each box IoU loss on 65536 float32 box pairs (reduction='mean'), losskit's fused
forward_backward against torch autograd of torchvision.ops' formula (tests/_box_reference.py,
the tests' reference: torchvision itself is not installed, its wheel pins another torch) and
against the same formula in jnp under jax.jit (optax has no box losses). One more case pairs
every box of one set of 256 with every box of another (a matcher's cost matrix, 65536 pairs):
losskit and jnp broadcast (256, 1, 4) against (256, 4); torch expands both first (its autograd
then sums each box's gradient over its pairs).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Dict, List

import numpy as np
import torch

import losskit.functional as LF
from _jax import grads_of, jnp, prepare  # jnp is None without JAX

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from _box_reference import REFS  # noqa: E402

N = 65536
EPS = 1e-7


M = 256  # the all-pairs case: M x M pairs


def _boxes(rng: np.random.Generator, lead: tuple = (N,)) -> np.ndarray:
    xy = rng.uniform(0, 40, size=(*lead, 2))
    wh = rng.uniform(1, 20, size=(*lead, 2))
    return np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)


# ---- the jnp formulas (torchvision's, as the torch reference) -----------------------------------
def _jnp_parts(b1, b2):
    x1, y1, x2, y2 = (b1[..., k] for k in range(4))
    u1, v1, u2, v2 = (b2[..., k] for k in range(4))
    iw = jnp.minimum(x2, u2) - jnp.maximum(x1, u1)
    ih = jnp.minimum(y2, v2) - jnp.maximum(y1, v1)
    overlap = (iw > 0) & (ih > 0)
    inter = jnp.where(overlap, jnp.where(overlap, iw, 0.0) * jnp.where(overlap, ih, 0.0), 0.0)
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    cw = jnp.maximum(x2, u2) - jnp.minimum(x1, u1)
    ch = jnp.maximum(y2, v2) - jnp.minimum(y1, v1)
    return inter / (union + EPS), union, cw, ch, (x1, y1, x2, y2), (u1, v1, u2, v2)


def jax_giou(b1, b2):
    iou, union, cw, ch, _, _ = _jnp_parts(b1, b2)
    area = cw * ch
    return jnp.mean(1 - (iou - (area - union) / (area + EPS)))


def _jnp_diou(b1, b2):
    iou, _, cw, ch, (x1, y1, x2, y2), (u1, v1, u2, v2) = _jnp_parts(b1, b2)
    dist = ((x2 + x1) / 2 - (u1 + u2) / 2) ** 2 + ((y2 + y1) / 2 - (v1 + v2) / 2) ** 2
    return 1 - iou + dist / (cw**2 + ch**2 + EPS), iou, (x1, y1, x2, y2), (u1, v1, u2, v2)


def jax_diou(b1, b2):
    return jnp.mean(_jnp_diou(b1, b2)[0])


def jax_ciou(b1, b2):
    import jax

    diou, iou, (x1, y1, x2, y2), (u1, v1, u2, v2) = _jnp_diou(b1, b2)
    v = (4 / math.pi**2) * (jnp.arctan((u2 - u1) / (v2 - v1)) - jnp.arctan((x2 - x1) / (y2 - y1))) ** 2
    alpha = jax.lax.stop_gradient(v / (1 - iou + v + EPS))
    return jnp.mean(diou + alpha * v)


JAX = {"generalized_box_iou_loss": jax_giou, "distance_box_iou_loss": jax_diou, "complete_box_iou_loss": jax_ciou}


def _setup(name: str, all_pairs: bool = False) -> Callable[[np.random.Generator], Dict[str, Any]]:
    lk = getattr(LF, name + "_forward_backward")

    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        b1, b2 = (_boxes(rng, (M, 1)), _boxes(rng, (M,))) if all_pairs else (_boxes(rng), _boxes(rng))
        tensors = [torch.from_numpy(b.copy()).requires_grad_(True) for b in (b1, b2)]
        ref = lk(b1, b2, reduction="mean")
        return {"np": [b1, b2], "torch": tensors, "jax": prepare(JAX[name], [0, 1], [b1, b2], ref[0], grads_of(ref))}

    return setup


def _torch_run(name: str) -> Callable[[Dict[str, Any]], Any]:
    ref = REFS[name]

    def run(state: Dict[str, Any]) -> Any:
        b1, b2 = state["torch"]
        if b1.shape != b2.shape:  # torchvision's operations broadcast only a smaller boxes2
            lead = torch.broadcast_shapes(b1.shape[:-1], b2.shape[:-1])
            return torch.autograd.grad(ref(b1.expand(*lead, 4), b2.expand(*lead, 4), reduction="mean"), [b1, b2])
        return torch.autograd.grad(ref(b1, b2, reduction="mean"), [b1, b2])

    return run


def _losskit_run(name: str) -> Callable[[Dict[str, Any]], Any]:
    fn = getattr(LF, name + "_forward_backward")

    def run(state: Dict[str, Any]) -> Any:
        return fn(*state["np"], reduction="mean")

    return run


CASES: List[Dict[str, Any]] = [
    {
        "name": f"{name} {N} boxes",
        "setup": _setup(name),
        "losskit": _losskit_run(name),
        "torch": _torch_run(name),
        "jax": lambda state: state["jax"](),
        "bytes": 4 * N * 4 * 4,  # two box arrays read, two gradients written
    }
    for name in JAX
] + [
    {
        "name": f"generalized_box_iou_loss {M}x{M} pairs",
        "setup": _setup("generalized_box_iou_loss", all_pairs=True),
        "losskit": _losskit_run("generalized_box_iou_loss"),
        "torch": _torch_run("generalized_box_iou_loss"),
        "jax": lambda state: state["jax"](),
        "bytes": 4 * M * 4 * 4,  # the two sets read and their gradients written: compute-bound
    }
]
