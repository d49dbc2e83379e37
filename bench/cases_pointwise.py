"""Benchmark cases of the element-wise losses: 16M float32 elements (memory-bound) and 4K (call
overhead), fused forward_backward against torch forward + autograd backward."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F

LARGE = 16 * 1024 * 1024
SMALL = 4096


def _case(name: str, n: int, make: Callable[[Any, int], List[np.ndarray]], diff: List[int],
          lk: Callable[..., Any], th: Callable[..., Any]) -> Dict[str, Any]:
    def setup(rng):
        arrays = make(rng, n)
        tensors = [torch.from_numpy(a).requires_grad_(i in diff) for i, a in enumerate(arrays)]
        return arrays, tensors

    def run_torch(state):
        _, tensors = state
        loss = th(*tensors)
        torch.autograd.grad(loss, [tensors[i] for i in diff])

    nbytes = (len(make(np.random.default_rng(0), 1)) + len(diff)) * 4 * n  # inputs read + grads written
    return {"name": f"{name} {'16M' if n == LARGE else '4K'}", "setup": setup,
            "losskit": lambda state: lk(*state[0]), "torch": run_torch, "bytes": nbytes}


def normal(rng, n):
    return rng.standard_normal(n, dtype=np.float32)


def sign(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def prob(rng, n):
    return rng.uniform(0.01, 0.99, n).astype(np.float32)


SPECS = [
    ("l1_loss", lambda r, n: [normal(r, n), normal(r, n)], F.l1_loss_forward_backward, TF.l1_loss),
    ("mse_loss", lambda r, n: [normal(r, n), normal(r, n)], F.mse_loss_forward_backward, TF.mse_loss),
    ("huber_loss", lambda r, n: [normal(r, n), normal(r, n)], F.huber_loss_forward_backward, TF.huber_loss),
    ("smooth_l1_loss", lambda r, n: [normal(r, n), normal(r, n)], F.smooth_l1_loss_forward_backward, TF.smooth_l1_loss),
    ("soft_margin_loss", lambda r, n: [normal(r, n), sign(r, n)], F.soft_margin_loss_forward_backward, TF.soft_margin_loss),
    ("binary_cross_entropy", lambda r, n: [prob(r, n), prob(r, n)], F.binary_cross_entropy_forward_backward,
     TF.binary_cross_entropy),
    ("binary_cross_entropy_with_logits", lambda r, n: [normal(r, n), prob(r, n)],
     F.binary_cross_entropy_with_logits_forward_backward, TF.binary_cross_entropy_with_logits),
    ("poisson_nll_loss", lambda r, n: [normal(r, n), prob(r, n)], F.poisson_nll_loss_forward_backward, TF.poisson_nll_loss),
    ("gaussian_nll_loss", lambda r, n: [normal(r, n), normal(r, n), prob(r, n)],
     lambda x, y, v: F.gaussian_nll_loss_forward_backward(x, y, v), TF.gaussian_nll_loss),
    ("kl_div", lambda r, n: [np.log(prob(r, n)), prob(r, n)],
     lambda x, y: F.kl_div_forward_backward(x, y, reduction="batchmean"),
     lambda x, y: TF.kl_div(x, y, reduction="batchmean")),
    ("margin_ranking_loss", lambda r, n: [normal(r, n), normal(r, n), sign(r, n)],
     F.margin_ranking_loss_forward_backward, TF.margin_ranking_loss),
    ("hinge_embedding_loss", lambda r, n: [np.abs(normal(r, n)), sign(r, n)], F.hinge_embedding_loss_forward_backward,
     TF.hinge_embedding_loss),
]

# Differentiated arguments, as torch differentiates them in training: the input(s) only.
DIFF = {"margin_ranking_loss": [0, 1], "gaussian_nll_loss": [0, 2]}

CASES = [
    _case(name, n, make, DIFF.get(name, [0]), lk, th)
    for n in (LARGE, SMALL)
    for name, make, lk, th in SPECS
]
