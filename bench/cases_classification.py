"""Benchmark cases of the classification losses: fused forward_backward against torch forward +
autograd backward, float32. `bytes` is the least traffic: logits (and float targets) read once, the
gradient written once (class indices are counted too)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as TF

import losskit.functional as F


def _case(name: str, make: Callable[[Any], Tuple[np.ndarray, np.ndarray]], lk: Callable[..., Any],
          th: Callable[..., Any], target_is_float: bool = False, kwargs: Dict[str, Any] = None) -> Dict[str, Any]:
    kwargs = dict(kwargs or {})
    shape_bytes: List[int] = []

    def setup(rng):
        x, t = make(rng)
        shape_bytes[:] = [x.nbytes, t.nbytes]
        xt = torch.from_numpy(x).requires_grad_(True)
        tt = torch.from_numpy(t)
        th_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        return x, t, xt, tt, th_kwargs

    def run_losskit(state):
        x, t = state[0], state[1]
        lk(x, t, **kwargs)

    def run_torch(state):
        _, _, xt, tt, th_kwargs = state
        loss = th(xt, tt, **th_kwargs)
        torch.autograd.grad(loss, [xt])

    x0, t0 = make(np.random.default_rng(0))
    nbytes = 2 * x0.nbytes + t0.nbytes
    return {"name": name, "setup": setup, "losskit": run_losskit, "torch": run_torch, "bytes": nbytes}


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


CASES = [
    _case("cross_entropy 8192x1000", logits(8192, 1000), F.cross_entropy_forward_backward, TF.cross_entropy),
    _case("cross_entropy 2048x32000", logits(2048, 32000), F.cross_entropy_forward_backward, TF.cross_entropy),
    _case("cross_entropy 512x128000", logits(512, 128000), F.cross_entropy_forward_backward, TF.cross_entropy),
    _case("cross_entropy 4x256000", logits(4, 256000), F.cross_entropy_forward_backward, TF.cross_entropy),
    _case("cross_entropy 2048x32000 label_smoothing=0.1", logits(2048, 32000), F.cross_entropy_forward_backward,
          TF.cross_entropy, kwargs={"label_smoothing": 0.1}),
    _case("cross_entropy probabilities 8192x1000", probabilities(8192, 1000), F.cross_entropy_forward_backward,
          TF.cross_entropy),
    _case("cross_entropy segmentation 16x21x128x128", logits(16, 21, 128, 128), F.cross_entropy_forward_backward,
          TF.cross_entropy),
    _case("nll_loss 8192x1000", logits(8192, 1000), F.nll_loss_forward_backward, TF.nll_loss),
    _case("multi_margin_loss 8192x1000", logits(8192, 1000), F.multi_margin_loss_forward_backward,
          TF.multi_margin_loss),
    _case("multilabel_soft_margin_loss 8192x1000", multilabel(8192, 1000),
          F.multilabel_soft_margin_loss_forward_backward, TF.multilabel_soft_margin_loss),
]
