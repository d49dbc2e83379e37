"""Box IoU losses against torch 2.13: generalized_box_iou_loss, distance_box_iou_loss,
complete_box_iou_loss.

torchvision is not a test dependency (its wheel pins another torch), so the reference is
torchvision.ops' published composition of tensor operations, written with torch ops in
tests/_box_reference.py and differentiated by torch.autograd; the reference itself is checked on
hand-computed boxes first.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import losskit
import losskit.functional as LF
from _box_reference import REFS
from _reference import compare

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]
LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]


# ---- helpers ------------------------------------------------------------------------------------
def random_boxes(rng, lead, dtype, spread=4.0):
    """Boxes (x1, y1, x2, y2) with positive sides, placed so that about half the pairs overlap."""
    xy = rng.uniform(0, spread, size=(*lead, 2))
    wh = rng.uniform(0.2, 3.0, size=(*lead, 2))
    return np.concatenate([xy, xy + wh], axis=-1).astype(dtype)


def check_all(name, b1, b2, rng, reduction="none", eps=1e-7, what=""):
    """Forward, backward (random grad_output) and forward_backward against torch autograd."""
    fwd, bwd, fb = (getattr(LF, name + s) for s in ("", "_backward", "_forward_backward"))
    kwargs = {"reduction": reduction, "eps": eps}
    loss = fwd(b1, b2, **kwargs)
    shape = np.shape(loss)
    go = np.asarray(rng.standard_normal(shape)).astype(b1.dtype)
    grads = bwd(go, b1, b2, **kwargs)
    compare(REFS[name], (b1, b2), kwargs, (0, 1), loss, grads, grad_output=go, what=f"{what} {name}")
    loss2, grads2 = fb(b1, b2, grad_output=go, **kwargs)
    np.testing.assert_array_equal(np.asarray(loss2), np.asarray(loss))
    for g, g2 in zip(grads, grads2):
        np.testing.assert_array_equal(g, g2)
    assert np.asarray(loss).dtype == b1.dtype and grads[0].shape == b1.shape and grads[1].shape == b2.shape
    return loss, grads


def fused_on_threads(name, b1, b2, reduction):
    """forward_backward on 1, 2 and 3 threads: asserts the results bitwise equal, returns one."""
    results = []
    before = losskit.get_num_threads()
    try:
        for n in (1, 2, 3):
            losskit.set_num_threads(n)
            results.append(getattr(LF, name + "_forward_backward")(b1, b2, reduction=reduction))
    finally:
        losskit.set_num_threads(before)
    for loss, (g1, g2) in results[1:]:
        assert loss.tobytes() == results[0][0].tobytes()
        assert g1.tobytes() == results[0][1][0].tobytes() and g2.tobytes() == results[0][1][1].tobytes()
    return results[0]


# ---- the reference on hand-computed boxes --------------------------------------------------------
# [0,0,2,2] and [1,1,3,3]: I = 1, U = 7, enclosing box 3 x 3 (area 9, squared diagonal 18),
# centres (1, 1) and (2, 2) (squared distance 2), same aspect ratio (v = 0).
# [0,0,1,1] and [2,2,3,3]: disjoint, U = 2, enclosing area 9, squared diagonal 18, distance 8.
# [0,0,2,1] and [0,0,1,2]: I = 1, U = 3, enclosing 2 x 2 (diagonal 8), distance 0.5,
# v = 4/pi^2 (atan(1/2) - atan(2))^2.
_V = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2.0)) ** 2
HAND = [
    ([0, 0, 2, 2], [1, 1, 3, 3], {"g": 1 - 1 / 7 + 2 / 9, "d": 1 - 1 / 7 + 2 / 18, "c": 1 - 1 / 7 + 2 / 18}),
    ([0, 0, 1, 1], [2, 2, 3, 3], {"g": 1 + 7 / 9, "d": 1 + 8 / 18, "c": 1 + 8 / 18}),
    (
        [0, 0, 2, 1],
        [0, 0, 1, 2],
        {"g": 1 - 1 / 3 + 1 / 4, "d": 1 - 1 / 3 + 0.5 / 8, "c": 1 - 1 / 3 + 0.5 / 8 + _V * _V / (2 / 3 + _V)},
    ),
    # identical: IoU = 1; with eps = 0 the complete loss's alpha is 0 / 0 (eps is what prevents it)
    ([1, 1, 3, 4], [1, 1, 3, 4], {"g": 0.0, "d": 0.0, "c": math.nan}),
]
_KEY = {"generalized_box_iou_loss": "g", "distance_box_iou_loss": "d", "complete_box_iou_loss": "c"}


@pytest.mark.parametrize("name", LOSSES)
def test_hand_computed(name):
    b1 = np.array([h[0] for h in HAND], np.float64)
    b2 = np.array([h[1] for h in HAND], np.float64)
    expected = np.array([h[2][_KEY[name]] for h in HAND])
    # eps = 0 makes the hand values exact; with the default eps they move by ~1e-7
    ours = getattr(LF, name)(b1, b2, eps=0.0)
    ref = REFS[name](torch.from_numpy(b1), torch.from_numpy(b2), eps=0.0).numpy()
    np.testing.assert_allclose(ref, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def test_hand_computed_gradient():
    # GIoU of [0,0,2,2] against [1,1,3,3] as boxes1's x2 moves: I = (x2 - 1), U = 2 x2 + 4 - I,
    # C = 3 x 3 while x2 < 3. dl/dx2 = -dIoU/dx2 + d((C - U)/C)/dx2 with dIoU/dx2 = (U - I(2 - 1))/U^2
    # = (7 - 1)/49 and d((C - U)/C)/dx2 = -(2 - 1)/9.
    g1, _ = LF.generalized_box_iou_loss_backward(
        np.ones(1), np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 3, 3]]), eps=0.0
    )
    assert g1[0, 2] == pytest.approx(-6 / 49 - 1 / 9, rel=1e-12)


# ---- against torch autograd -------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lead", [(), (0,), (9,), (2, 3)])
def test_matches_torch(rng, name, dtype, reduction, lead):
    check_all(name, random_boxes(rng, lead, dtype), random_boxes(rng, lead, dtype), rng, reduction, what=f"{lead}")


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("eps", [0.0, 1e-3, 1.0])
def test_eps(rng, name, eps):
    check_all(name, random_boxes(rng, (6,), np.float64), random_boxes(rng, (6,), np.float64), rng, "sum", eps)


# Pairs at the edges: identical (every max/min ties: half the gradient each way), shared edges,
# touching (zero intersection, not overlapping), disjoint, zero width / height / area, one box
# inside the other, degenerate boxes (x2 < x1, y2 < y1: accepted, not clamped, as torchvision),
# huge and tiny coordinates, NaN and inf.
EDGE_PAIRS = [
    ([0, 0, 2, 2], [0, 0, 2, 2]),
    ([0, 0, 2, 2], [0, 0, 2, 3]),
    ([0, 0, 1, 1], [1, 0, 2, 1]),
    ([0, 0, 1, 1], [5, 6, 7, 9]),
    ([0, 0, 0, 2], [0, 0, 1, 2]),
    ([0, 0, 2, 0], [1, -1, 3, 1]),
    ([1, 1, 1, 1], [0, 0, 2, 2]),
    ([1, 1, 1, 1], [1, 1, 1, 1]),
    ([0, 0, 4, 4], [1, 1, 2, 3]),
    ([2, 0, 0, 2], [0, 0, 2, 2]),
    ([2, 2, 0, 0], [0, 0, 1, 1]),
    ([0, 3, 2, 1], [1, 0, 3, 4]),
    ([1e6, 1e6, 1e6 + 3, 1e6 + 1], [1e6 + 1, 1e6, 1e6 + 2, 1e6 + 2]),
    ([0, 0, 1e-6, 1e-6], [0, 0, 2e-6, 1e-6]),
    ([np.nan, 0, 1, 1], [0, 0, 1, 1]),
    ([0, 0, 1, 1], [0, 0, np.inf, 1]),
    ([-np.inf, 0, 1, 1], [0, 0, 1, 1]),
]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_pairs(rng, name, dtype):
    b1 = np.array([p[0] for p in EDGE_PAIRS], dtype)
    b2 = np.array([p[1] for p in EDGE_PAIRS], dtype)
    check_all(name, b1, b2, rng, "none", what="edge pairs")
    check_all(name, b2, b1, rng, "none", what="edge pairs swapped")


@pytest.mark.parametrize("name", LOSSES)
def test_degenerate_boxes_not_clamped(name):
    # x2 < x1: a negative width enters the union as torchvision computes it, so the loss differs
    # from that of the box with its corners sorted
    b1, b2 = np.array([[2.0, 0, 0, 2]]), np.array([[0.0, 0, 2, 2]])
    fn = getattr(LF, name)
    assert fn(b1, b2)[0] != pytest.approx(fn(np.array([[0.0, 0, 2, 2]]), b2)[0])


@pytest.mark.parametrize("name", LOSSES)
def test_single_box_and_empty(name):
    fn = getattr(LF, name)
    out = fn(np.array([0.0, 0, 2, 2]), np.array([1.0, 1, 3, 3]))
    assert isinstance(out, np.ndarray) and out.shape == ()
    empty = np.zeros((0, 4), np.float32)
    assert fn(empty, empty).shape == (0,)
    assert fn(empty, empty, reduction="mean") == 0.0  # torchvision's 0.0 * sum, not NaN
    assert fn(empty, empty, reduction="sum") == 0.0
    g1, g2 = getattr(LF, name + "_backward")(1.0, empty, empty, reduction="mean")
    assert g1.shape == (0, 4) and g2.shape == (0, 4)


def test_integer_boxes_are_float64(rng):
    b1 = np.array([[0, 0, 2, 2]])
    b2 = np.array([[1, 1, 3, 3]])
    out = LF.generalized_box_iou_loss(b1, b2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, LF.generalized_box_iou_loss(b1.astype(float), b2.astype(float)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", LOSSES)
def test_half_boxes_read_in_place(name, kind, reduction, rng):
    """16-bit boxes (and grad_output) are read in place and widened exactly: every loss and
    gradient is the float32 boxes' rounded once to the input's dtype (a reduced value within one
    16-bit ulp, its double sum rounded to float32 first), across stage and block boundaries."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from test_low_precision import assert_within_one_ulp

    dtype = np.dtype(ml_dtypes.bfloat16) if kind == "bfloat16" else np.dtype(np.float16)
    b1, b2 = random_boxes(rng, (3, 700), dtype), random_boxes(rng, (3, 700), dtype)
    b1[0, :3] = b2[0, :3]  # identical pairs: the max/min ties
    up1, up2 = b1.astype(np.float32), b2.astype(np.float32)
    fwd, bwd, fb = (getattr(LF, name + s) for s in ("", "_backward", "_forward_backward"))
    value = fwd(b1, b2, reduction=reduction)
    go = np.asarray(rng.uniform(0.5, 1.5, np.shape(value))).astype(dtype)
    grads = bwd(go, b1, b2, reduction=reduction)
    value2, grads2 = fb(b1, b2, grad_output=go, reduction=reduction)
    value32, grads32 = fb(up1, up2, grad_output=go.astype(np.float32), reduction=reduction)
    assert np.asarray(value).dtype == dtype and all(g.dtype == dtype for g in grads + grads2)
    assert np.asarray(value2).tobytes() == np.asarray(value).tobytes()
    if reduction == "none":
        np.testing.assert_array_equal(value, value32.astype(dtype))
    else:
        assert_within_one_ulp(value, value32, dtype, f"{name} {kind} {reduction}")
    for g, g2, g32 in zip(grads, grads2, grads32):
        np.testing.assert_array_equal(g, g32.astype(dtype))
        np.testing.assert_array_equal(g2, g)


def test_half_boxes_are_not_copied(rng):
    """A million bfloat16 box pairs (8 MB; a float32 copy would be 16 MB each): the Python side
    allocates nothing input-sized but the 16-bit results."""
    import tracemalloc

    ml_dtypes = pytest.importorskip("ml_dtypes")
    b1 = random_boxes(rng, (1 << 20,), ml_dtypes.bfloat16)
    b2 = random_boxes(rng, (1 << 20,), ml_dtypes.bfloat16)
    LF.complete_box_iou_loss_forward_backward(b1, b2, reduction="mean")
    tracemalloc.start()
    loss, (g1, g2) = LF.complete_box_iou_loss_forward_backward(b1, b2, reduction="mean")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert g1.dtype == b1.dtype and np.asarray(loss).dtype == b1.dtype
    assert peak < g1.nbytes + g2.nbytes + 1_000_000, peak


# ---- broadcasting ---------------------------------------------------------------------------------
def _broadcast_ref(name):
    """The reference on the broadcast boxes: torch.broadcast_tensors first, so torch.autograd sums
    each broadcast operand's gradient. (torchvision's own operations broadcast only a boxes2 smaller
    than boxes1: its intersection starts as zeros_like(boxes1's x1); where they do, it is this.)"""
    ref = REFS[name]

    def fn(b1, b2, **kwargs):
        lead = torch.broadcast_shapes(b1.shape[:-1], b2.shape[:-1])
        return ref(b1.expand(*lead, 4), b2.expand(*lead, 4), **kwargs)

    return fn


BROADCASTS = [
    ((7, 4), (4,)),  # torchvision's documented (N, 4) against one box
    ((4,), (7, 4)),
    ((7, 4), (1, 4)),
    ((5, 1, 4), (6, 4)),  # all 5 x 6 pairs
    ((1, 6, 4), (5, 1, 4)),
    ((2, 3, 1, 4), (3, 600, 4)),  # 3600 pairs: several stages, the source rows strided
    ((2, 9000, 4), (9000, 4)),  # boxes2's gradient per pair (a block reads 8192 of its boxes)
    ((0, 4), (4,)),  # no pairs: the broadcast box's gradient is 0
    ((3, 0, 4), (1, 1, 4)),
]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_broadcast_against_torch(rng, name, dtype, reduction, shapes):
    """Leading dimensions broadcast as torch's operations do: the unreduced loss has the pairs'
    shape, each gradient its boxes' shape (summed over the pairs that read a box)."""
    s1, s2 = shapes
    b1, b2 = random_boxes(rng, s1[:-1], dtype), random_boxes(rng, s2[:-1], dtype)
    kwargs = {"reduction": reduction}
    fwd, bwd, fb = (getattr(LF, name + s) for s in ("", "_backward", "_forward_backward"))
    loss = fwd(b1, b2, **kwargs)
    pairs = np.broadcast_shapes(s1[:-1], s2[:-1])
    assert np.shape(loss) == (pairs if reduction == "none" else ())
    go = np.asarray(rng.standard_normal(np.shape(loss))).astype(dtype)
    grads = bwd(go, b1, b2, **kwargs)
    assert grads[0].shape == b1.shape and grads[1].shape == b2.shape
    compare(_broadcast_ref(name), (b1, b2), kwargs, (0, 1), loss, grads, grad_output=go, what=f"{shapes}")
    loss2, grads2 = fb(b1, b2, grad_output=go, **kwargs)
    assert np.asarray(loss2).tobytes() == np.asarray(loss).tobytes()
    for g, g2 in zip(grads, grads2):
        assert g.tobytes() == g2.tobytes()
    if reduction == "none":  # the expanded boxes give the same losses
        lead = np.broadcast_shapes(s1[:-1], s2[:-1])
        full = fwd(np.broadcast_to(b1, (*lead, 4)).copy(), np.broadcast_to(b2, (*lead, 4)).copy())
        np.testing.assert_array_equal(loss, full)
    assert LF.mean_normalizer(name, b1, b2, reduction="mean") == float(np.prod(pairs))


@pytest.mark.parametrize("shapes", [((300, 1), (200,)), ((2, 9000), (9000,))], ids=["per_block", "per_pair"])
@pytest.mark.parametrize("name", LOSSES)
def test_broadcast_gradient_threads_bitwise(rng, name, shapes):
    """A broadcast box's gradient is summed in a fixed order (per reduction block and box, then the
    blocks in order; or per pair where the blocks read many boxes): bitwise the same on any thread
    count."""
    b1, b2 = random_boxes(rng, shapes[0], np.float32, 40.0), random_boxes(rng, shapes[1], np.float32, 40.0)
    fused_on_threads(name, b1, b2, "sum")


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_broadcast_half_boxes(rng, kind):
    """16-bit boxes broadcast in place; a broadcast box's summed gradient is the float32 one
    rounded once."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(ml_dtypes.bfloat16) if kind == "bfloat16" else np.dtype(np.float16)
    b1, b2 = random_boxes(rng, (40, 1), dtype), random_boxes(rng, (30,), dtype)
    value, grads = LF.complete_box_iou_loss_forward_backward(b1, b2, reduction="none")
    value32, grads32 = LF.complete_box_iou_loss_forward_backward(
        b1.astype(np.float32), b2.astype(np.float32), reduction="none"
    )
    np.testing.assert_array_equal(value, value32.astype(dtype))
    for g, g32 in zip(grads, grads32):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, g32.astype(dtype))


# ---- threads, normalizer, classes ----------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
def test_threads_bitwise_and_large(rng, name):
    # 40000 boxes: five reduction blocks, enough to run on several threads
    b1, b2 = random_boxes(rng, (40000,), np.float32, 40.0), random_boxes(rng, (40000,), np.float32, 40.0)
    loss, grads = fused_on_threads(name, b1, b2, "mean")
    compare(REFS[name], (b1, b2), {"reduction": "mean"}, (0, 1), loss, grads, what="40000 boxes")


@pytest.mark.parametrize("name", LOSSES)
def test_normalizer(rng, name):
    b1, b2 = random_boxes(rng, (10,), np.float64), random_boxes(rng, (10,), np.float64)
    fn, fb = getattr(LF, name), getattr(LF, name + "_forward_backward")
    assert LF.mean_normalizer(name, b1, b2, reduction="mean") == 10.0
    total = LF.mean_normalizer(name, b1[:3], b2[:3], reduction="mean") + LF.mean_normalizer(
        name, b1[3:], b2[3:], reduction="mean"
    )
    parts = fn(b1[:3], b2[:3], reduction="mean", normalizer=total) + fn(
        b1[3:], b2[3:], reduction="mean", normalizer=total
    )
    assert parts == pytest.approx(fn(b1, b2, reduction="mean"), rel=1e-14)
    _, (g1, _) = fb(b1[:3], b2[:3], reduction="mean", normalizer=total)
    _, (full, _) = fb(b1, b2, reduction="mean")
    np.testing.assert_allclose(g1, full[:3], rtol=1e-14)
    with pytest.raises(ValueError, match="normalizer"):
        fn(b1, b2, reduction="none", normalizer=2.0)


@pytest.mark.parametrize(
    "cls, name",
    [
        (losskit.GeneralizedBoxIoULoss, "generalized_box_iou_loss"),
        (losskit.DistanceBoxIoULoss, "distance_box_iou_loss"),
        (losskit.CompleteBoxIoULoss, "complete_box_iou_loss"),
    ],
)
def test_classes(rng, cls, name):
    b1, b2 = random_boxes(rng, (5,), np.float64), random_boxes(rng, (5,), np.float64)
    crit = cls()
    assert repr(crit) == f"{cls.__name__}(reduction='none', eps=1e-07)"
    np.testing.assert_array_equal(crit(b1, b2), getattr(LF, name)(b1, b2))
    g = crit.backward()
    ref = getattr(LF, name + "_backward")(np.ones(5), b1, b2)
    np.testing.assert_array_equal(g[0], ref[0])
    crit = cls(reduction="sum", eps=1e-3)
    loss, grads = crit.forward_backward(b1, b2)
    assert loss == getattr(LF, name)(b1, b2, reduction="sum", eps=1e-3)


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize(
    "b1, b2, exc, pattern",
    [
        (np.zeros((3, 5)), np.zeros((3, 5)), ValueError, r"boxes1 expected boxes of shape \(\.\.\., 4\).*\(3, 5\)"),
        (np.zeros((3, 4)), np.zeros((3, 3)), ValueError, r"boxes2 expected boxes of shape \(\.\.\., 4\)"),
        (np.zeros((3, 4)), np.zeros((2, 4)), ValueError, r"boxes2 expected boxes whose leading dimensions broadcast"),
        (np.zeros((2, 3, 4)), np.zeros((2, 1, 2, 4)), ValueError, r"boxes2 expected .*\(2, 3, 4\).*\(2, 1, 2, 4\)"),
        (np.zeros(()), np.zeros(()), ValueError, r"boxes1 expected boxes of shape"),
        (np.zeros((3, 4), complex), np.zeros((3, 4)), TypeError, r"boxes1 expected a real"),
        (np.zeros((3, 4)), np.array([["a"] * 4] * 3), TypeError, r"boxes2 expected a real"),
    ],
)
def test_errors(name, b1, b2, exc, pattern):
    for call in (
        lambda: getattr(LF, name)(b1, b2),
        lambda: getattr(LF, name + "_backward")(np.ones(3), b1, b2),
        lambda: getattr(LF, name + "_forward_backward")(b1, b2),
    ):
        with pytest.raises(exc, match=f"{name}: {pattern}"):
            call()


@pytest.mark.parametrize("name", LOSSES)
def test_bad_reduction_and_grad_output(name):
    b = np.zeros((2, 4))
    with pytest.raises(ValueError, match="reduction"):
        getattr(LF, name)(b, b, reduction="batchmean")
    with pytest.raises(ValueError, match="grad_output"):
        getattr(LF, name + "_backward")(np.ones(3), b, b)
    with pytest.raises(ValueError, match="grad_output"):
        getattr(LF, name + "_backward")(np.ones(2), b, b, reduction="sum")
