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


def _same_dtype_other_descriptor(a: np.ndarray) -> np.ndarray:
    """`a` as it comes back from pickle: equal dtype, but a descriptor object of its own."""
    import pickle

    b = pickle.loads(pickle.dumps(a))
    assert b.dtype == a.dtype and b.dtype is not a.dtype
    return b


def test_float32_recognised_by_dtype_equality_not_identity():
    """An unpickled float32 array (its dtype equal to, not the same object as, NumPy's float32)
    was sent down the float64 path and refused with "input expected a float64 array". Every
    family's dispatch (element-wise, classification, embedding distances, CTC, large vocabulary)
    must compute it as float32, like the same array made directly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    t = np.array([0, 1, 2, 4])
    lp = np.log(np.full((6, 2, 5), 0.2, np.float32))
    W = rng.standard_normal((7, 5)).astype(np.float32)

    def manhattan(x1, x2):
        d = x1 - x2
        return np.abs(d).sum(-1), lambda g: (np.sign(d) * g[:, None], -np.sign(d) * g[:, None])

    calls = [
        lambda a: F.mse_loss_forward_backward(a, a + 1),
        lambda a: F.cross_entropy_forward_backward(a, t),
        lambda a: F.triplet_margin_loss_forward_backward(a, a + 1, a - 1),
        lambda a: F.triplet_margin_with_distance_loss_forward_backward(a, a + 1, a - 1, distance_function=manhattan),
        lambda a: F.linear_cross_entropy_forward_backward(a, W, t),
    ]
    for call in calls:
        loss, grads = call(x)
        loss2, grads2 = call(_same_dtype_other_descriptor(x))
        assert np.asarray(loss2).dtype == np.float32
        assert np.asarray(loss2).tobytes() == np.asarray(loss).tobytes()
    loss, g = F.ctc_loss_forward_backward(lp, np.array([[1, 2], [3, 3]]), [6, 6], [2, 2])
    loss2, g2 = F.ctc_loss_forward_backward(
        _same_dtype_other_descriptor(lp), np.array([[1, 2], [3, 3]]), [6, 6], [2, 2]
    )
    assert g2.dtype == np.float32 and loss2 == loss
    np.testing.assert_array_equal(g2, g)
