"""C-contiguous float32/float64 inputs are read in place: no copy in Python, none in the binding."""

from __future__ import annotations

import tracemalloc

import numpy as np

import losskit.functional as F
from losskit import _convert


def test_contiguous_inputs_are_the_same_objects():
    x = np.ones((1000, 100), np.float32)
    _, (x2,) = _convert.float_inputs("f", ("input",), (x,))
    assert x2 is x and x2.__array_interface__["data"][0] == x.__array_interface__["data"][0]


def test_reduced_loss_allocates_nothing_input_sized():
    """A reduced forward on a 64 MB input allocates only small scratch (tracemalloc sees NumPy's
    allocations; the core's own are a few KB of block partials)."""
    x = np.random.default_rng(0).standard_normal(8_000_000)
    y = np.zeros_like(x)
    F.mse_loss(x, y)  # warm up
    tracemalloc.start()
    F.mse_loss(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000, peak


def test_non_contiguous_input_is_copied_once():
    x = np.random.default_rng(0).standard_normal((4000, 1000))[:, ::2]  # 16 MB view, not contiguous
    y = np.zeros(x.shape)
    tracemalloc.start()
    F.mse_loss(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert x.nbytes <= peak < 2 * x.nbytes


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_fused_call_allocates_nothing_in_python():
    """forward_backward allocates its gradient in the core's output cache, nothing else sizable."""
    x = np.random.default_rng(0).standard_normal(4_000_000)
    y = np.zeros_like(x)
    F.mse_loss_forward_backward(x, y)
    tracemalloc.start()
    _, g = F.mse_loss_forward_backward(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000, peak
    assert g.shape == x.shape and not np.shares_memory(g, x)


def test_large_outputs_are_recycled_but_never_shared():
    """A dropped large gradient's buffer serves the next call; live ones never share memory."""
    x = np.random.default_rng(0).standard_normal(2_000_000)
    y = np.zeros_like(x)
    _, g1 = F.mse_loss_forward_backward(x, y)
    _, g2 = F.mse_loss_forward_backward(x, y)
    assert _address(g1) != _address(g2)
    np.testing.assert_array_equal(g1, g2)
    freed = _address(g1)
    del g1
    _, g3 = F.mse_loss_forward_backward(x, y)
    assert _address(g3) == freed
    np.testing.assert_array_equal(g3, g2)
