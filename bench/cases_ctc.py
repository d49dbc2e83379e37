"""Benchmark cases of the CTC family for bench/run.py: losskit's fused forward_backward against
torch's forward + backward, float32, on the issue's three shapes.

Each case's `bytes` is the minimum traffic: log_probs read once and its gradient written once
(targets and lengths are negligible)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

SHAPES = [
    # name, T, N, C, S
    ("ctc speech-like T=200 N=32 C=40 S=60", 200, 32, 40, 60),
    ("ctc large-vocabulary T=500 N=16 C=5000 S=100", 500, 16, 5000, 100),
    ("ctc long-sequence T=1000 N=8 C=30 S=300", 1000, 8, 30, 300),
]


def _setup(T: int, N: int, C: int, S: int):
    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        import torch

        logits = rng.standard_normal((T, N, C), dtype=np.float32)
        lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        lp = np.ascontiguousarray(lp, dtype=np.float32)
        # Speech-like variety: inputs 80-100% of T, targets 80-100% of S (always alignable).
        il = rng.integers(int(0.8 * T), T + 1, N).astype(np.int64)
        il[0] = T
        tl = rng.integers(int(0.8 * S), S + 1, N).astype(np.int64)
        tl[0] = S
        targets = rng.integers(1, C, (N, S)).astype(np.int64)
        return {
            "lp": lp, "targets": targets, "il": il, "tl": tl,
            "lp_t": torch.from_numpy(lp.copy()).requires_grad_(True),
            "targets_t": torch.from_numpy(targets), "il_t": torch.from_numpy(il), "tl_t": torch.from_numpy(tl),
        }
    return setup


def _losskit(state: Dict[str, Any]) -> None:
    import losskit.functional as F

    F.ctc_loss_forward_backward(state["lp"], state["targets"], state["il"], state["tl"])


def _torch(state: Dict[str, Any]) -> None:
    import torch.nn.functional as TF

    lp = state["lp_t"]
    lp.grad = None
    TF.ctc_loss(lp, state["targets_t"], state["il_t"], state["tl_t"]).backward()


CASES: List[Dict[str, Any]] = [
    {"name": name, "setup": _setup(T, N, C, S), "losskit": _losskit, "torch": _torch, "bytes": 2 * T * N * C * 4}
    for name, T, N, C, S in SHAPES
]
