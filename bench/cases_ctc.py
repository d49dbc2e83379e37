"""Benchmark cases of the CTC family for bench/run.py: losskit's fused forward_backward against
torch's forward + backward, float32, on the issue's three shapes, and against JAX's
optax.losses.ctc_loss (bench/_jax.py).

Each case's `bytes` is the minimum traffic: log_probs read once and its gradient written once
(targets and lengths are negligible)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from _jax import jnp, optax, prepare  # jnp and optax are None without JAX

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
        state = {
            "lp": lp,
            "targets": targets,
            "il": il,
            "tl": tl,
            "lp_t": torch.from_numpy(lp.copy()).requires_grad_(True),
            "targets_t": torch.from_numpy(targets),
            "il_t": torch.from_numpy(il),
            "tl_t": torch.from_numpy(tl),
        }
        # optax takes batch-major (N, T, C) log-probabilities and 0/1 paddings instead of lengths:
        # the same data in its own layout, converted once here, as a JAX user would hold it.
        lp_btc = np.ascontiguousarray(lp.transpose(1, 0, 2))
        logit_paddings = (np.arange(T)[None, :] >= il[:, None]).astype(np.float32)
        label_paddings = (np.arange(S)[None, :] >= tl[:, None]).astype(np.float32)
        loss, grad = _losskit(state)
        # Checked at 1e-2: optax runs the recursions in float32 and its gradient differs from
        # float64's by up to 0.14% of the largest element at T = 1000 (torch's float32 by 0.2%;
        # losskit's, which accumulates in double, by 1e-7).
        jax_arrays = [lp_btc, logit_paddings, targets, label_paddings, tl.astype(np.float32)]
        state["jax"] = prepare(jax_ctc_loss, [0], jax_arrays, loss, [grad.transpose(1, 0, 2)], rtol=1e-2)
        return state

    return setup


def _losskit(state: Dict[str, Any]) -> Any:
    import losskit.functional as F

    return F.ctc_loss_forward_backward(state["lp"], state["targets"], state["il"], state["tl"])


def _torch(state: Dict[str, Any]) -> None:
    import torch.nn.functional as TF

    lp = state["lp_t"]
    lp.grad = None
    TF.ctc_loss(lp, state["targets_t"], state["il_t"], state["tl_t"]).backward()


def jax_ctc_loss(lp, logit_paddings, labels, label_paddings, target_lengths):
    # optax applies log_softmax to its input, which leaves normalised log-probabilities unchanged
    # and gives torch's gradient (torch's CTC backward returns the gradient through a
    # log_softmax). reduction='mean': each loss over its target length, then the batch mean.
    losses = optax.losses.ctc_loss(lp, logit_paddings, labels, label_paddings, blank_id=0)
    return jnp.mean(losses / target_lengths)


def _jax(state: Dict[str, Any]) -> Any:
    return state["jax"]()


CASES: List[Dict[str, Any]] = [
    {
        "name": name,
        "setup": _setup(T, N, C, S),
        "losskit": _losskit,
        "torch": _torch,
        "jax": _jax,
        "bytes": 2 * T * N * C * 4,
    }
    for name, T, N, C, S in SHAPES
]
