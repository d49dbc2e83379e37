"""Train a small two-layer NumPy network with a losskit loss, and print the loss falling.

    python examples/train_numpy.py

A synthetic binary classification task (two interleaved spirals, 2 features): the network is
plain NumPy (matrix products and a tanh), the loss and its gradient come from losskit's fused
BCEWithLogitsLoss.forward_backward, the optimiser is plain gradient descent with momentum.
"""

from __future__ import annotations

import time

import numpy as np

import losskit


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = rng.uniform(0.5, 3.5 * np.pi, n)
    label = rng.integers(0, 2, n)
    radius = t / (3.5 * np.pi)
    angle = t + np.pi * label
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + rng.normal(0, 0.02, (n, 2))
    return x.astype(np.float32), label.astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = spirals(10_000, rng)
    hidden = 64
    w1 = (rng.standard_normal((2, hidden)) * 1.0).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = (rng.standard_normal((hidden, 1)) / np.sqrt(hidden)).astype(np.float32)
    b2 = np.zeros(1, np.float32)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]
    criterion = losskit.BCEWithLogitsLoss()
    lr, momentum = 0.5, 0.9

    start = time.perf_counter()
    for step in range(1, 1001):
        h = np.tanh(x @ w1 + b1)
        logits = (h @ w2 + b2)[:, 0]
        loss, grad_logits = criterion.forward_backward(logits, y)
        g_out = grad_logits[:, None]  # backpropagate through the two layers by hand
        g_h = (g_out @ w2.T) * (1 - h * h)
        grads = [x.T @ g_h, g_h.sum(0), h.T @ g_out, g_out.sum(0)]
        for p, v, g in zip(params, velocity, grads):
            v *= momentum
            v -= lr * g
            p += v
        if step == 1 or step % 100 == 0:
            accuracy = float(np.mean((logits > 0) == (y > 0.5)))
            print(f"step {step:5d}  loss {float(loss):.4f}  accuracy {accuracy:.3f}")
    elapsed = time.perf_counter() - start
    print(
        f"trained 1000 steps on {len(x)} points in {elapsed:.2f} s "
        f"({losskit.cpu_target()}, {losskit.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
