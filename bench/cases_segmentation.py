"""Benchmark cases of the segmentation family for bench/run.py: losskit's fused forward_backward of
dice_loss / tversky_loss against torch autograd of MONAI's formula (the code MONAI's DiceLoss /
TverskyLoss runs, written with torch ops) and the same formula in jnp under jax.jit, float32, at the
issue's size 16 x 4 x 256 x 256.

Each case's `bytes` is the minimum traffic: the logits read once, the target read once (int64
class indices: N * S * 8 bytes; one-hot: like the input) and the gradient written once."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from _jax import jnp, prepare  # jnp is None without JAX

N, C, H, W = 16, 4, 256, 256


def _torch_formula(x, g, kind, softmax, include_background):
    import torch

    p = torch.softmax(x, 1) if softmax else torch.sigmoid(x)
    if g.dtype == torch.int64:  # monai.networks.one_hot
        g = torch.zeros(p.shape, dtype=p.dtype).scatter_(1, g.unsqueeze(1), 1.0)
    if not include_background:
        g, p = g[:, 1:], p[:, 1:]
    axes = [2, 3]
    tp = torch.sum(p * g, axes)
    if kind == "dice":
        f = 1.0 - (2.0 * tp + 1e-5) / (torch.sum(g, axes) + torch.sum(p, axes) + 1e-5)
    else:
        fp = 0.3 * torch.sum(p * (1 - g), axes)
        fn = 0.7 * torch.sum((1 - p) * g, axes)
        f = 1.0 - (tp + 1e-5) / (tp + fp + fn + 1e-5)
    return torch.mean(f)


def _jnp_formula(kind, softmax, include_background):
    import jax

    def loss(x, g):
        p = jax.nn.softmax(x, axis=1) if softmax else jax.nn.sigmoid(x)
        if g.ndim == 3:
            g = jax.nn.one_hot(g, C, axis=1, dtype=p.dtype)
        if not include_background:
            g, p = g[:, 1:], p[:, 1:]
        axes = (2, 3)
        tp = jnp.sum(p * g, axes)
        if kind == "dice":
            f = 1.0 - (2.0 * tp + 1e-5) / (jnp.sum(g, axes) + jnp.sum(p, axes) + 1e-5)
        else:
            fp = 0.3 * jnp.sum(p * (1 - g), axes)
            fn = 0.7 * jnp.sum((1 - p) * g, axes)
            f = 1.0 - (tp + 1e-5) / (tp + fp + fn + 1e-5)
        return jnp.mean(f)

    return loss


def _case(name: str, kind: str, softmax: bool, include_background: bool, labels: bool) -> Dict[str, Any]:
    kw: Dict[str, Any] = dict(softmax=softmax, sigmoid=not softmax, include_background=include_background)
    kw["to_onehot_y"] = labels
    if kind == "tversky":
        kw.update(alpha=0.3, beta=0.7)

    def losskit_fb(state: Dict[str, Any]) -> Any:
        import losskit.functional as F

        fn = F.dice_loss_forward_backward if kind == "dice" else F.tversky_loss_forward_backward
        return fn(state["x"], state["y"], **kw)

    def setup(rng: np.random.Generator) -> Dict[str, Any]:
        import torch

        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        lab = rng.integers(0, C, (N, H, W))
        y = lab if labels else (lab[:, None] == np.arange(C)[None, :, None, None]).astype(np.float32)
        state: Dict[str, Any] = {
            "x": x,
            "y": y,
            "x_t": torch.from_numpy(x.copy()).requires_grad_(True),
            "y_t": torch.from_numpy(y.copy()),
        }
        loss, grad = losskit_fb(state)
        state["jax"] = prepare(_jnp_formula(kind, softmax, include_background), [0], [x, y], loss, [grad], rtol=1e-3)
        return state

    def torch_fb(state: Dict[str, Any]) -> None:
        x = state["x_t"]
        x.grad = None
        _torch_formula(x, state["y_t"], kind, softmax, include_background).backward()

    target_bytes = N * H * W * 8 if labels else N * C * H * W * 4
    return {
        "name": name,
        "setup": setup,
        "losskit": losskit_fb,
        "torch": torch_fb,
        "jax": lambda state: state["jax"](),
        "bytes": 2 * N * C * H * W * 4 + target_bytes,
    }


CASES: List[Dict[str, Any]] = [
    _case("dice softmax, class indices, no background 16x4x256x256", "dice", True, False, True),
    _case("dice sigmoid, one-hot 16x4x256x256", "dice", False, True, False),
    _case("tversky softmax a=0.3 b=0.7, class indices 16x4x256x256", "tversky", True, True, True),
]
