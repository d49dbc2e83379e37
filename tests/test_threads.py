"""Threads: reduced values are bitwise identical on 1, 2 and 8 OpenMP threads; 8 Python threads
calling the same loss at once each get the right answer (the GIL is released around kernels)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import losskit
import losskit.functional as F


CASES = [
    ("mse_loss", lambda x, y: F.mse_loss_forward_backward(x, y)),
    (
        "binary_cross_entropy_with_logits",
        lambda x, y: F.binary_cross_entropy_with_logits_forward_backward(x, 1 / (1 + np.exp(-y))),
    ),
    ("huber_loss", lambda x, y: F.huber_loss_forward_backward(x, y, reduction="sum")),
    ("kl_div", lambda x, y: F.kl_div_forward_backward(x, np.abs(y), reduction="batchmean")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,call", CASES, ids=[c[0] for c in CASES])
def test_bitwise_equal_across_thread_counts(name, call, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3_000_001).astype(dtype)  # not a multiple of the block size
    y = rng.standard_normal(3_000_001).astype(dtype)
    results = []
    for n in (1, 2, 8):
        losskit.set_num_threads(n)
        loss, grad = call(x, y)
        results.append((np.asarray(loss).tobytes(), grad.tobytes()))
    assert results[0] == results[1] == results[2]


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="set_num_threads"):
        losskit.set_num_threads(0)
    losskit.set_num_threads(3)
    assert losskit.get_num_threads() == 3


def test_eight_python_threads_at_once():
    rng = np.random.default_rng(2)
    inputs = [(rng.standard_normal(200_000), rng.standard_normal(200_000)) for _ in range(8)]
    expected = [F.smooth_l1_loss_forward_backward(x, y, beta=0.5) for x, y in inputs]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(5):
            results[i] = F.smooth_l1_loss_forward_backward(*inputs[i], beta=0.5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (loss, grad), (eloss, egrad) in zip(results, expected):
        assert loss == eloss
        np.testing.assert_array_equal(grad, egrad)
