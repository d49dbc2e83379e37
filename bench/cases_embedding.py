"""Benchmark cases of the embedding family for bench/run.py.

Each loss at 8192 x 256 and 65536 x 128 float32, losskit's fused forward_backward against torch's
forward + .backward() on the same data (reduction='mean', torch's defaults otherwise).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F

import losskit.functional as LF

SHAPES = [(8192, 256), (65536, 128)]


def _triplet_setup(shape):
    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(3)]
        tensors = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
        return {"np": arrays, "torch": tensors}

    return setup


def _cosine_setup(shape):
    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        x1 = rng.standard_normal(shape, dtype=np.float32)
        x2 = rng.standard_normal(shape, dtype=np.float32)
        t = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=shape[0])
        tensors = [torch.from_numpy(x1.copy()).requires_grad_(True), torch.from_numpy(x2.copy()).requires_grad_(True),
                   torch.from_numpy(t.copy())]
        return {"np": [x1, x2, t], "torch": tensors}

    return setup


def _torch_run(fn: Callable[..., torch.Tensor], **kwargs: Any) -> Callable[[Dict[str, Any]], None]:
    def run(state: Dict[str, Any]) -> None:
        ts = state["torch"]
        loss = fn(*ts, **kwargs)
        # autograd backward into fresh gradients (no accumulation into .grad), as cases_pointwise
        torch.autograd.grad(loss, [t for t in ts if t.requires_grad])

    return run


def _losskit_run(fn: Callable[..., Any], **kwargs: Any) -> Callable[[Dict[str, Any]], None]:
    def run(state: Dict[str, Any]) -> None:
        fn(*state["np"], **kwargs)

    return run


CASES: List[Dict[str, Any]] = []
for n, d in SHAPES:
    elems = n * d * 4  # bytes of one float32 (N, D) array
    CASES.append({
        "name": f"cosine_embedding_loss {n}x{d}",
        "setup": _cosine_setup((n, d)),
        "losskit": _losskit_run(LF.cosine_embedding_loss_forward_backward),
        "torch": _torch_run(F.cosine_embedding_loss),
        "bytes": 2 * elems + n * 4 + 2 * elems,  # x1, x2, target read; two gradients written
    })
    CASES.append({
        "name": f"triplet_margin_loss {n}x{d}",
        "setup": _triplet_setup((n, d)),
        "losskit": _losskit_run(LF.triplet_margin_loss_forward_backward),
        "torch": _torch_run(F.triplet_margin_loss),
        "bytes": 3 * elems + 3 * elems,
    })
    CASES.append({
        "name": f"triplet_margin_with_distance_loss(cosine) {n}x{d}",
        "setup": _triplet_setup((n, d)),
        "losskit": _losskit_run(LF.triplet_margin_with_distance_loss_forward_backward, distance_function="cosine"),
        "torch": _torch_run(F.triplet_margin_with_distance_loss,
                            distance_function=lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1)),
        "bytes": 3 * elems + 3 * elems,
    })
