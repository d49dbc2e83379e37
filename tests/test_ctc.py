"""ctc_loss / CTCLoss against torch 2.13 (forward values and torch.autograd gradients), against a
brute-force enumeration of alignments (independent of torch), and for bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from _reference import compare

REDUCTIONS = ("none", "mean", "sum")
DTYPES = (np.float32, np.float64)


def torch_ctc(log_probs, targets, input_lengths, target_lengths, **kwargs):
    return TF.ctc_loss(log_probs, targets, input_lengths, target_lengths, **kwargs)


def make_case(
    rng,
    T,
    N,
    C,
    S,
    dtype=np.float64,
    blank=0,
    concatenated=False,
    batched=True,
    input_lengths=None,
    target_lengths=None,
    repeats=False,
):
    """log_softmax'ed random log_probs and random labels (never blank). Returns the four
    positional arguments of ctc_loss."""
    shape = (T, N, C) if batched else (T, C)
    logits = rng.standard_normal(shape) * 2.0
    lp = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(dtype)
    labels = np.array([c for c in range(C) if c != blank])
    if target_lengths is None:
        target_lengths = rng.integers(0, S + 1, N)
    target_lengths = np.asarray(target_lengths, dtype=np.int64)
    if input_lengths is None:
        input_lengths = rng.integers(0, T + 1, N)
        input_lengths[0] = T
    input_lengths = np.asarray(input_lengths, dtype=np.int64)
    padded = rng.choice(labels, size=(N, S)) if S > 0 else np.zeros((N, 0), np.int64)
    if repeats and S > 1:
        padded[:, 1] = padded[:, 0]
    for n in range(N):  # padding is never read: fill it with an out-of-range value
        padded[n, target_lengths[n] :] = -1
    if concatenated:
        targets = np.concatenate([padded[n, : target_lengths[n]] for n in range(N)]).astype(np.int64)
    else:
        targets = padded.astype(np.int64)
    return lp, targets, input_lengths, target_lengths


def check_against_torch(args, reduction="mean", blank=0, zero_infinity=False, grad_output=None, what=""):
    """Forward, backward and forward_backward of losskit against torch; the three losskit entry
    points must agree bitwise with each other."""
    kwargs = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss = F.ctc_loss(*args, **kwargs)
    grad = F.ctc_loss_backward(grad_output, *args, **kwargs)
    loss2, grad2 = F.ctc_loss_forward_backward(*args, grad_output=grad_output, **kwargs)
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(loss2), err_msg=f"{what}: forward vs fused")
    np.testing.assert_array_equal(grad, grad2, err_msg=f"{what}: backward vs fused")
    assert grad.shape == np.shape(args[0]) and grad.dtype == np.asarray(args[0]).dtype
    compare(torch_ctc, args, kwargs, (0,), loss, (grad,), grad_output=grad_output, what=what)
    return loss, grad


# ---- the whole keyword surface against torch ---------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("zero_infinity", (False, True))
@pytest.mark.parametrize("concatenated", (False, True))
@pytest.mark.parametrize("batched", (True, False))
def test_matches_torch(dtype, reduction, zero_infinity, concatenated, batched, rng):
    N = 5 if batched else 1
    args = make_case(rng, 12, N, 6, 4, dtype, blank=2, concatenated=concatenated, batched=batched, repeats=True)
    if reduction == "none":
        go = rng.standard_normal(N if batched else ()).astype(dtype)
    else:
        go = np.asarray(0.7, dtype)
    check_against_torch(
        args,
        reduction,
        blank=2,
        zero_infinity=zero_infinity,
        grad_output=go,
        what=f"{dtype.__name__} {reduction} zi={zero_infinity} concat={concatenated} batched={batched}",
    )
    # grad_output omitted means 1 (ones)
    check_against_torch(args, reduction, blank=2, zero_infinity=zero_infinity, what="default grad_output")


@pytest.mark.parametrize("blank", (0, 3, 6))
@pytest.mark.parametrize("dtype", DTYPES)
def test_blank_anywhere(blank, dtype, rng):
    args = make_case(rng, 10, 4, 7, 3, dtype, blank=blank)
    check_against_torch(args, "mean", blank=blank, what=f"blank={blank}")


def test_unbatched_forms(rng):
    """(T, C) log_probs with a concatenated (S,) or padded (1, S) target, lengths as lists,
    tuples, 0-d arrays or Python ints; 'none' gives a 0-d result, as torch does."""
    lp, targets, il, tl = make_case(rng, 8, 1, 5, 3, batched=False, target_lengths=[3], input_lengths=[8])
    concat = targets[0, :3]
    for tg in (concat, targets):
        for lengths in (([8], [3]), ((8,), (3,)), (np.array(8), np.array(3))):
            loss = F.ctc_loss(lp, tg, *lengths, reduction="none")
            assert np.shape(loss) == ()
            check_against_torch(
                (lp, tg, np.asarray(lengths[0]), np.asarray(lengths[1])),
                "none",
                grad_output=np.asarray(1.5),
                what="unbatched",
            )
    np.testing.assert_array_equal(F.ctc_loss(lp, concat, 8, 3), F.ctc_loss(lp, concat, [8], [3]))


@pytest.mark.parametrize("int_dtype", (np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64))
def test_integer_dtypes_lists_tuples(int_dtype, rng):
    lp, tg, il, tl = make_case(rng, 9, 3, 5, 3, target_lengths=[3, 1, 0])
    tg = np.where(tg < 0, 0, tg)  # unsigned dtypes cannot hold the -1 padding
    ref = F.ctc_loss_forward_backward(lp, tg, il, tl, reduction="none")
    for conv in (lambda a: a.astype(int_dtype), lambda a: a.tolist(), lambda a: tuple(a.tolist())):
        got = F.ctc_loss_forward_backward(lp, conv(tg), conv(il), conv(tl), reduction="none")
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    check_against_torch((lp, tg.astype(int_dtype) if int_dtype != np.uint64 else tg, il, tl), "sum")


# ---- edge cases against torch ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_infinity", (False, True))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_edge_lengths(dtype, zero_infinity, reduction, rng):
    """Target length 0, input length 0 (with and without a target), an input too short for its
    target (3 labels with a repeat need 4 steps: infinite loss and NaN gradient unless
    zero_infinity), an input exactly long enough, repeated labels."""
    T, C = 6, 4
    lp = make_case(rng, T, 7, C, 1, dtype)[0]
    targets = np.array([[1, 2, 3], [1, 1, 2], [1, 1, 2], [2, 2, 2], [1, 2, 3], [3, 3, 0], [1, 2, 0]])
    il = np.array([6, 3, 4, 5, 0, 0, 6])
    tl = np.array([0, 3, 3, 3, 0, 2, 2])
    loss, grad = check_against_torch((lp, targets, il, tl), reduction, zero_infinity=zero_infinity, what="edges")
    per = F.ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity)
    assert per[0] == pytest.approx(-lp[:, 0, 0].astype(np.float64).sum(), rel=1e-6)  # the all-blank path
    assert per[4] == 0.0
    assert per[1] == (0.0 if zero_infinity else np.inf)
    assert per[5] == (0.0 if zero_infinity else np.inf)
    assert np.isfinite(per[[0, 2, 3, 4, 6]]).all()
    if not zero_infinity:
        assert np.isnan(grad[:3, 1]).all() and (grad[3:, 1] == 0).all()
    assert (grad[:, 4] == 0).all() and (grad[:, 5] == 0).all()


def test_minus_inf_log_probs_and_exact_fit(rng):
    """A class with probability 0 (log_prob -inf) at some t: torch's gradient is NaN there; the
    loss stays finite."""
    lp, tg, il, tl = make_case(rng, 6, 3, 4, 2, target_lengths=[2, 2, 2], input_lengths=[6, 6, 3])
    lp[1, 0, 3] = -np.inf
    lp[2, 1, tg[1, 0]] = -np.inf
    check_against_torch((lp, tg, il, tl), "none", what="-inf entries")


@pytest.mark.parametrize("where", ["blank", "label", "other"])
def test_nan_log_probs_propagate_as_in_torch(where, rng):
    lp, tg, il, tl = make_case(rng, 7, 2, 5, 2, target_lengths=[2, 2], input_lengths=[7, 7])
    c = {"blank": 0, "label": int(tg[0, 1]), "other": int(({1, 2, 3, 4} - set(tg[0].tolist())).pop())}[where]
    lp[3, 0, c] = np.nan
    for reduction in REDUCTIONS:
        check_against_torch((lp, tg, il, tl), reduction, what=f"NaN at {where}")


def test_nan_and_inf_log_probs_outside_the_reachable_band(rng):
    """torch computes every cell of the alpha and beta rows: an unreachable cell is -inf + NaN or
    -inf + inf = NaN there, and reaches the loss and the gradient. losskit's band trimming skipped
    those cells and returned inf (or finite gradients) where torch gives NaN; a sample with a NaN or
    +inf log-probability now computes whole rows (found by the fuzz campaign)."""
    # the case found: input too short (2 steps for a target needing 4), NaN at t = 1 in a label
    lp = np.log(np.full((4, 1, 3), 1 / 3))
    lp[1, 0, 2] = np.nan
    check_against_torch((lp, np.array([[1, 2, 2]]), np.array([2]), np.array([3])), "none", what="too short + NaN")
    for seed in range(60):
        r = np.random.default_rng(seed)
        T, N, C, S = int(r.integers(1, 8)), int(r.integers(1, 4)), int(r.integers(2, 5)), int(r.integers(0, 5))
        blank = int(r.integers(0, C))
        args = make_case(r, T, N, C, S, blank=blank)
        lp = args[0].copy()
        lp[r.random(lp.shape) < 0.1] = r.choice([np.nan, np.inf, -np.inf])
        for zero_infinity in (False, True):
            check_against_torch(
                (lp,) + args[1:],
                "none",
                blank=blank,
                zero_infinity=zero_infinity,
                grad_output=r.standard_normal(N),
                what=f"seed {seed}",
            )


# ---- threading: large batches, bitwise equality for any thread count ---------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_threaded_matches_torch_and_is_deterministic(dtype, rng):
    T, N, C, S = 120, 16, 20, 30  # about 10^5 cells: well above the serial threshold
    args = make_case(rng, T, N, C, S, dtype, blank=5, repeats=True)
    old = losskit.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 8):
            losskit.set_num_threads(threads)
            for reduction in REDUCTIONS:
                results[threads, reduction] = F.ctc_loss_forward_backward(*args, blank=5, reduction=reduction)
    finally:
        losskit.set_num_threads(old)
    for reduction in REDUCTIONS:
        for threads in (2, 8):
            np.testing.assert_array_equal(results[threads, reduction][0], results[1, reduction][0])
            np.testing.assert_array_equal(results[threads, reduction][1], results[1, reduction][1])
        compare(
            torch_ctc,
            args,
            dict(blank=5, reduction=reduction),
            (0,),
            *results[2, reduction][:1],
            (results[2, reduction][1],),
            what=f"threaded {reduction}",
        )


@pytest.mark.parametrize("target", ["baseline", "avx2", "avx512"])
def test_every_cpu_target(target, rng):
    if target not in losskit._core.available_cpu_targets().split(","):
        pytest.skip(f"{target} not supported here")
    old = losskit.cpu_target()
    args = make_case(rng, 40, 6, 9, 8, np.float32, blank=1, repeats=True)
    try:
        losskit._core.set_cpu_target(target)
        check_against_torch(args, "mean", blank=1, what=target)
    finally:
        losskit._core.set_cpu_target(old)


def test_long_sequence_float32_no_nan(rng):
    """A long, peaked float32 input (log-probabilities down to about -40): computing in double
    keeps the loss and gradient finite and within float32 tolerance of torch's float64."""
    T, N, C, S = 400, 2, 5, 120
    lp, tg, il, tl = make_case(rng, T, N, C, S, np.float32, target_lengths=[120, 60], input_lengths=[400, 300])
    lp = lp.astype(np.float64) * 8.0
    lp = (lp - np.log(np.exp(lp).sum(-1, keepdims=True))).astype(np.float32)
    loss, grad = check_against_torch((lp, tg, il, tl), "sum", what="long float32")
    assert np.isfinite(loss) and np.isfinite(grad).all()


def _path_that_returns(K: int) -> tuple:
    """T = 2K steps, target [1, 2, 3], blank 0 (log-probabilities, not normalised). In the first K
    steps a frame of label 3 costs nothing, of 1 or 2 -20, of the blank -40; in the last K label 3
    and the blank cost -50, 1 and 2 nothing. Emitting 1 and 2 at once and holding 3 wins the first
    half (alpha's mass sits there; a prefix holding 1 or 2 lies e^-20t below it) but pays -50 per
    step after: -40 - 50K in all. Holding 1 through the first half, 2 through the second and 3 on
    the last step costs -20K - 50, and wins by e^(30K - 10)."""
    lp = np.zeros((2 * K, 4))
    lp[:K, 0] = -40.0
    lp[:K, 1:3] = -20.0
    lp[K:, 0] = -50.0
    lp[K:, 3] = -50.0
    return lp, np.array([1, 2, 3]), [2 * K], [3]


@pytest.mark.parametrize("K", [20, 60])
def test_a_path_far_below_alpha_comes_back(K):
    """The scaled (linear-space) recursions hold a row's cells to 2^-1400 (about e^-970) of its
    sum; at K = 60 the prefix that later dominates falls below that at t = 49, so scaling would
    lose it (the loss would come out near 50K instead of 20K); the sample must be computed in log
    space, the loss alone too. At K = 20 (e^-400) the scaled recursions keep it. Against torch in
    float64 (log space throughout)."""
    lp, target, il, tl = _path_that_returns(K)
    loss, grad = F.ctc_loss_forward_backward(lp, target, il, tl, reduction="sum")
    t_lp = torch.tensor(lp[:, None, :], requires_grad=True)
    ref = TF.ctc_loss(t_lp, torch.tensor(target[None]), torch.tensor(il), torch.tensor(tl), reduction="sum")
    (ref_grad,) = torch.autograd.grad(ref, [t_lp])
    # the returning path's own log-probability bounds the loss from above
    assert float(loss) <= 20 * K + 50 + 1e-9
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad[:, 0].numpy(), rtol=1e-9, atol=1e-12)
    # the same through the loss alone and the backward alone
    assert F.ctc_loss(lp, target, il, tl, reduction="sum") == loss
    np.testing.assert_array_equal(F.ctc_loss_backward(None, lp, target, il, tl, reduction="sum"), grad)


def test_python_threads_share_nothing(rng):
    """Concurrent calls from 8 Python threads (the GIL is released in the core; each calling
    thread has its own scratch) give the same results as serial calls."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [make_case(np.random.default_rng(i), 60 + 7 * i, 4, 9, 5 + i, np.float32, blank=i % 9) for i in range(8)]
    serial = [F.ctc_loss_forward_backward(*c, blank=i % 9) for i, c in enumerate(cases)]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda ic: F.ctc_loss_forward_backward(*ic[1], blank=ic[0] % 9), enumerate(cases)))
            for (l0, g0), (l1, g1) in zip(serial, parallel):
                np.testing.assert_array_equal(l0, l1)
                np.testing.assert_array_equal(g0, g1)


def test_non_contiguous_log_probs(rng):
    """A (N, T, C) array transposed to (T, N, C) is made contiguous once and gives the same result."""
    lp, tg, il, tl = make_case(rng, 9, 3, 5, 3)
    strided = np.ascontiguousarray(lp.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not strided.flags.c_contiguous
    for a, b in zip(F.ctc_loss_forward_backward(strided, tg, il, tl), F.ctc_loss_forward_backward(lp, tg, il, tl)):
        np.testing.assert_array_equal(a, b)


def test_large_scratch_is_temporary_and_correct(rng):
    """T x (2S + 11) doubles above 64 MB of scratch are allocated for the call alone: T = 3000,
    S = 1500 needs 72 MB per thread. One sample, long enough and compared with torch float64."""
    T, S, C = 3000, 1500, 4
    lp, tg, il, tl = make_case(rng, T, 1, C, S, np.float64, target_lengths=[S], input_lengths=[T])
    loss, grad = F.ctc_loss_forward_backward(lp, tg, il, tl, reduction="sum")
    ref = TF.ctc_loss(
        torch.from_numpy(lp[:, :, :]).requires_grad_(),
        torch.from_numpy(tg),
        torch.from_numpy(il),
        torch.from_numpy(tl),
        reduction="sum",
    )
    assert np.isfinite(loss)
    assert float(loss) == pytest.approx(ref.item(), rel=1e-9)


# ---- brute force: every alignment, independent of torch -----------------------------------------
def collapse(path, blank):
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def brute_force(lp, target, blank):
    """-log sum over alignments that collapse to target, and torch's gradient convention
    exp(lp) - posterior occupation (the occupation of class c at t is the probability mass of the
    valid alignments with pi_t = c, divided by their total)."""
    T, C = lp.shape
    total = 0.0
    occupation = np.zeros((T, C))
    for path in itertools.product(range(C), repeat=T):
        if collapse(path, blank) == list(target):
            p = math.exp(sum(lp[t, c] for t, c in enumerate(path)))
            total += p
            for t, c in enumerate(path):
                occupation[t, c] += p
    if total == 0.0:
        return math.inf, None
    return -math.log(total), np.exp(lp) - occupation / total


@pytest.mark.parametrize("seed", range(12))
def test_brute_force_alignments(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 7))
    C = int(rng.integers(2, 4))
    blank = int(rng.integers(0, C))
    labels = [c for c in range(C) if c != blank]
    S = int(rng.integers(0, min(T, 3) + 1))
    target = rng.choice(labels, size=S).tolist()
    lp = rng.standard_normal((T, C)) * 1.5
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    expected, expected_grad = brute_force(lp, target, blank)
    loss, grad = F.ctc_loss_forward_backward(lp, np.array(target, np.int64), [T], [S], blank=blank, reduction="sum")
    assert float(loss) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if expected_grad is not None:
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_analytic_two_steps():
    """T = 2, C = 2, target [1]: the alignments (1,1), (0,1), (1,0) collapse to [1], so with
    uniform probabilities p = 3/4 and loss -log(3/4). The occupation of class 1 is 1 at both
    steps... minus the (0,1)/(1,0) mass: P(pi_t = 1) = (1/4 + 1/4)/(3/4) = 2/3, so torch's
    gradient is 1/2 - 1/3 = 1/6 for the blank and 1/2 - 2/3 = -1/6 for the label."""
    lp = np.log(np.full((2, 2), 0.5))
    loss, grad = F.ctc_loss_forward_backward(lp, [1], [2], [1], reduction="sum")
    assert float(loss) == pytest.approx(-math.log(0.75), rel=1e-14)
    np.testing.assert_allclose(grad, [[1 / 6, -1 / 6], [1 / 6, -1 / 6]], rtol=1e-13)


# ---- hypothesis: shapes, lengths, blanks, layouts, dtypes, reductions -------------------------------
@st.composite
def ctc_cases(draw):
    T = draw(st.integers(1, 14))
    N = draw(st.integers(1, 4))
    C = draw(st.integers(2, 7))
    S = draw(st.integers(0, 6))
    blank = draw(st.integers(0, C - 1))
    labels = [c for c in range(C) if c != blank]
    il = draw(st.lists(st.integers(0, T), min_size=N, max_size=N))
    tl = draw(st.lists(st.integers(0, S), min_size=N, max_size=N))
    targets = draw(st.lists(st.lists(st.sampled_from(labels), min_size=S, max_size=S), min_size=N, max_size=N))
    seed = draw(st.integers(0, 2**31))
    dtype = draw(st.sampled_from(DTYPES))
    reduction = draw(st.sampled_from(REDUCTIONS))
    zero_infinity = draw(st.booleans())
    concatenated = draw(st.booleans())
    batched = draw(st.booleans()) if N == 1 else True
    return T, N, C, S, blank, il, tl, targets, seed, dtype, reduction, zero_infinity, concatenated, batched


@given(ctc_cases())
def test_hypothesis_against_torch(case):
    T, N, C, S, blank, il, tl, targets, seed, dtype, reduction, zero_infinity, concatenated, batched = case
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((T, N, C)) * 3.0
    lp = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(dtype)
    padded = np.array(targets, dtype=np.int64).reshape(N, S)
    tg = np.concatenate([padded[n, : tl[n]] for n in range(N)]) if concatenated else padded
    if not batched:
        lp = lp[:, 0]
    go = rng.standard_normal(N if batched else ()).astype(dtype) if reduction == "none" else np.asarray(1.3, dtype)
    check_against_torch(
        (lp, tg.astype(np.int64), np.array(il), np.array(tl)),
        reduction,
        blank=blank,
        zero_infinity=zero_infinity,
        grad_output=go,
        what=str(case[:8]),
    )


@given(
    st.integers(0, 2**31),
    st.integers(40, 90),
    st.integers(4, 8),
    st.integers(2, 30),
    st.integers(0, 1000),
    st.sampled_from(DTYPES),
    st.sampled_from(REDUCTIONS),
)
def test_hypothesis_threaded_against_torch(seed, T, N, S, blank_seed, dtype, reduction):
    """Larger draws, on 2 threads: most cross the serial threshold (16k cells), with lengths
    varying per sample so the dynamic schedule reorders them."""
    rng = np.random.default_rng(seed)
    C = int(rng.integers(3, 30))
    blank = blank_seed % C
    args = make_case(rng, T, N, C, S, dtype, blank=blank, repeats=bool(seed % 2))
    old = losskit.get_num_threads()
    try:
        losskit.set_num_threads(2)
        check_against_torch(args, reduction, blank=blank, what=f"T={T} N={N} C={C} S={S}")
    finally:
        losskit.set_num_threads(old)


@given(st.integers(0, 2**31), st.integers(1, 6), st.integers(2, 3))
def test_hypothesis_brute_force(seed, T, C):
    rng = np.random.default_rng(seed)
    blank = int(rng.integers(0, C))
    labels = [c for c in range(C) if c != blank]
    target = rng.choice(labels, size=int(rng.integers(0, T + 1))).tolist()
    lp = rng.standard_normal((T, C)) * 2.0
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    expected, expected_grad = brute_force(lp, target, blank)
    loss, grad = F.ctc_loss_forward_backward(
        lp, np.array(target, np.int64), [T], [len(target)], blank=blank, reduction="sum"
    )
    if math.isinf(expected):
        assert float(loss) == math.inf and np.isnan(grad).all()
    else:
        assert float(loss) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


# ---- the module ----------------------------------------------------------------------------------
def test_ctc_loss_class(rng):
    args = make_case(rng, 10, 3, 5, 3, np.float32, blank=4)
    crit = losskit.CTCLoss(blank=4, reduction="sum", zero_infinity=True)
    assert repr(crit) == "CTCLoss(blank=4, reduction='sum', zero_infinity=True)"
    with pytest.raises(RuntimeError):
        crit.backward()
    loss = crit(*args)
    grad = crit.backward()
    loss2, grad2 = crit.forward_backward(*args)
    kw = dict(blank=4, reduction="sum", zero_infinity=True)
    np.testing.assert_array_equal(loss, F.ctc_loss(*args, **kw))
    np.testing.assert_array_equal(grad, F.ctc_loss_backward(None, *args, **kw))
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(grad2, grad)
    np.testing.assert_array_equal(crit.backward(2.0), 2.0 * grad)
    with pytest.raises(ValueError, match="target_grad"):
        crit.backward(target_grad=True)
    assert isinstance(loss, np.float32)


def test_no_copy_of_log_probs(rng):
    """A contiguous float32 log_probs is read in place (the gradient is a new array)."""
    lp, tg, il, tl = make_case(rng, 5, 2, 4, 2, np.float32)
    before = lp.copy()
    _, grad = F.ctc_loss_forward_backward(lp, tg, il, tl)
    np.testing.assert_array_equal(lp, before)
    assert not np.shares_memory(grad, lp)


# ---- errors: raised before any work, naming the argument and the sample --------------------------
def _base():
    lp = np.log(np.full((6, 3, 5), 0.2))
    tg = np.array([[1, 2, 3], [1, 1, 0], [4, 0, 0]])
    return lp, tg, np.array([6, 5, 4]), np.array([3, 2, 1])


def _with(**changes):
    lp, tg, il, tl = _base()
    args = dict(log_probs=lp, targets=tg, input_lengths=il, target_lengths=tl)
    args.update(changes)
    return args


ERRORS = [
    (
        _with(input_lengths=np.array([6, -1, 4])),
        ValueError,
        r"input_lengths expected values in \[0, 6\].*got -1 for sample 1",
    ),
    (_with(input_lengths=np.array([6, 5, 7])), ValueError, r"input_lengths .*got 7 for sample 2"),
    (
        _with(target_lengths=np.array([3, -2, 1])),
        ValueError,
        r"target_lengths expected non-negative.*got -2 for sample 1",
    ),
    (
        _with(target_lengths=np.array([3, 4, 1])),
        ValueError,
        r"target_lengths expected values at most 3.*got 4 for sample 1",
    ),
    (
        _with(targets=np.array([1, 2, 3, 1, 1, 4, 4]), target_lengths=np.array([3, 2, 1])),
        ValueError,
        r"targets expected the sum of target_lengths \(6\)",
    ),
    (
        _with(targets=np.array([1, 2, 3, 1]), target_lengths=np.array([3, 2, 1])),
        ValueError,
        r"target_lengths expected lengths summing to the 4 labels.*got 2 for sample 1 after 3 labels",
    ),
    (
        _with(targets=np.array([[1, 2, 3], [1, 0, 0], [4, 0, 0]])),
        ValueError,
        r"targets expected labels other than blank \(0\), got 0 at position 1 of sample 1",
    ),
    (
        _with(targets=np.array([[1, 2, 3], [1, 1, 0], [5, 0, 0]])),
        IndexError,
        r"targets expected labels in \[0, 5\), got 5 at position 0 of sample 2",
    ),
    (_with(targets=np.array([[1, -3, 3], [1, 1, 0], [4, 0, 0]])), IndexError, r"got -3 at position 1 of sample 0"),
    (_with(input_lengths=np.array([6, 5])), ValueError, r"input_lengths expected 3 values"),
    (_with(target_lengths=np.array([3, 2, 1, 1])), ValueError, r"target_lengths expected 3 values"),
    (_with(targets=np.zeros((2, 3), np.int64)), ValueError, r"targets expected a padded \(3, S\)"),
    (_with(targets=np.zeros((3, 3, 1), np.int64)), ValueError, r"targets expected a padded \(N, S\) or concatenated"),
    (_with(log_probs=np.zeros((6, 3, 5, 1))), ValueError, r"log_probs expected a \(T, N, C\)"),
    (_with(log_probs=np.zeros((6,))), ValueError, r"log_probs expected a \(T, N, C\)"),
    (_with(log_probs=np.zeros((0, 3, 5))), ValueError, r"log_probs expected a non-empty"),
    (
        _with(targets=np.array([[1.0, 2, 3], [1, 1, 0], [4, 0, 0]])),
        TypeError,
        r"targets expected an integer array, got float64",
    ),
    (_with(input_lengths=np.array([6.0, 5, 4])), TypeError, r"input_lengths expected an integer array"),
    (_with(target_lengths=[True, True, False]), TypeError, r"target_lengths expected an integer array, got bool"),
    (_with(log_probs=np.zeros((6, 3, 5), complex)), TypeError, r"log_probs expected a real"),
]


@pytest.mark.parametrize("kwargs,exc,pattern", ERRORS)
def test_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.ctc_loss(**kwargs)
    with pytest.raises(exc, match=pattern):
        F.ctc_loss_forward_backward(**kwargs)
    with pytest.raises(exc, match=pattern):
        F.ctc_loss_backward(None, **kwargs)


def test_index_error_is_value_error():
    with pytest.raises(ValueError):
        F.ctc_loss(**_with(targets=np.array([[1, 2, 9], [1, 1, 0], [4, 0, 0]])))
    with pytest.raises(losskit.IndexError):
        F.ctc_loss(**_with(targets=np.array([[1, 2, 9], [1, 1, 0], [4, 0, 0]])))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(blank=5), r"blank expected a class in \[0, 5\), got 5"),
        (dict(blank=-1), r"blank expected a class in \[0, 5\), got -1"),
        (dict(reduction="batchmean"), r"reduction expected one of 'none', 'mean', 'sum'"),
        (dict(reduction="avg"), r"reduction expected one of"),
    ],
)
def test_option_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        F.ctc_loss(*_base(), **kwargs)


def test_grad_output_shape_errors():
    with pytest.raises(ValueError, match="grad_output expected a scalar"):
        F.ctc_loss_backward(np.ones(3), *_base())
    with pytest.raises(ValueError, match=r"grad_output expected shape \(3,\)"):
        F.ctc_loss_backward(np.ones(2), *_base(), reduction="none")


def test_padding_is_not_read():
    """Values past target_length in padded targets (here out of range) are ignored, as in torch."""
    lp, tg, il, tl = _base()
    padded = tg.copy()
    padded[1, 2] = 99
    padded[2, 1:] = -7
    np.testing.assert_array_equal(
        F.ctc_loss(lp, padded, il, tl, reduction="none"), F.ctc_loss(lp, tg, il, tl, reduction="none")
    )


# ---- the C++ API with a caller-owned workspace -----------------------------------------------------
def test_cpp_caller_owned_workspace(tmp_path):
    """Builds tests/cpp_checks/ctc_workspace.cpp against the static core library and runs it: the
    public C++ API with a caller-owned workspace."""
    from _cpp import run_check

    run = run_check("ctc_workspace", tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stdout, run.stderr)
