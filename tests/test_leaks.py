"""Leak check: many calls of every entry point keep the process's resident memory flat.

Each public loss's forward, _backward and _forward_backward (on tests/_calls.py's small inputs),
calls that raise (a ValueError for a bad shape, a TypeError for a bad dtype, an IndexError for an
out-of-range class, the ctc_loss ValueErrors of the pre-pass), every loss class's forward /
backward / forward_backward, and the recycled-output path of large results. After a warm-up, RSS
(/proc/self/statm) may grow by less than BOUND over LOSSKIT_LEAK_CALLS calls of each: a leak of
a result array, an exception object or a C++ buffer per call shows as growth proportional to the
number of calls.

    LOSSKIT_LEAK_CALLS   calls per entry point (default 10**4, about 25 s on 2 cores; CI sets 10**5)
    LOSSKIT_LEAK_REPORT=1  print each check's growth (run with -s)
"""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

import losskit
import losskit.functional as F
from _calls import BASE, X, call, entry_points

CALLS = int(os.environ.get("LOSSKIT_LEAK_CALLS", str(10**4)))
BOUND = 2 << 20  # bytes; measured growth without a leak: 0 to 124 KiB. A leak of 21 bytes a call
#                  exceeds it at 10^5 calls (210 at the default 10^4: any leaked array or exception)

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_flat(fn: Callable[[], Any], what: str, calls: int = CALLS) -> None:
    """Runs fn a tenth of `calls` times to warm up, then `calls` times; RSS must not grow by BOUND."""
    for _ in range(max(100, calls // 10)):
        fn()
    gc.collect()
    before = rss()
    for _ in range(calls):
        fn()
    gc.collect()
    grown = rss() - before
    if os.environ.get("LOSSKIT_LEAK_REPORT"):
        print(f"\nleak check {what}: {grown} bytes over {calls} calls")
    assert grown < BOUND, f"{what}: RSS grew by {grown / 2**20:.1f} MiB over {calls} calls"


def expecting(exc: type, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], None]:
    """A call that must raise `exc` (checked on every call, so an error path that stops raising fails)."""

    def run() -> None:
        try:
            fn(*args, **kwargs)
        except exc:
            return
        raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")

    return run


@pytest.fixture(autouse=True)
def _quiet_and_two_threads() -> Any:
    losskit.set_num_threads(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's 'mean' and size mismatch warnings on every call
        yield


@pytest.mark.parametrize("name", sorted(BASE))
def test_entry_points_do_not_leak(name: str) -> None:
    for fname in entry_points(name):
        fn, args, kwargs = call(fname, name)
        assert_flat(lambda: fn(*args, **kwargs), fname)


# Calls that raise, one or more per family: the exception, its message and any partial work
# must all be released.
ERRORS: List[Tuple[str, type, Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = [
    ("shape", ValueError, F.mse_loss, (X, np.ones((2, 4))), {}),
    ("dtype", TypeError, F.l1_loss_forward_backward, (X.astype(complex), X), {}),
    ("reduction", ValueError, F.huber_loss_backward, (1.0, X, X), {"reduction": "avg"}),
    ("bce range", ValueError, F.binary_cross_entropy_forward_backward, (X, X), {}),
    ("keyword kind", TypeError, F.triplet_margin_loss, (X, X, X), {"margin": None}),
    ("class index", IndexError, F.cross_entropy_forward_backward, (X, np.array([0, 9, 1])), {}),
    ("class index", IndexError, F.nll_loss_backward, (1.0, X, np.array([0, -3, 1])), {}),
    ("target dtype", TypeError, F.multi_margin_loss, (X, np.array([0.0, 1.0, 1.0])), {}),
    (
        "ctc length",
        ValueError,
        F.ctc_loss_forward_backward,
        (np.zeros((5, 2, 4)), np.array([[1, 2], [3, 3]]), [5, 7], [2, 2]),
        {},
    ),
    ("ctc label", IndexError, F.ctc_loss, (np.zeros((5, 2, 4)), np.array([[1, 9], [3, 3]]), [5, 5], [2, 2]), {}),
    (
        "ctc blank",
        ValueError,
        F.ctc_loss_backward,
        (None, np.zeros((5, 2, 4)), np.array([[1, 0], [3, 3]]), [5, 5], [2, 2]),
        {},
    ),
    (
        "lce target",
        IndexError,
        F.linear_cross_entropy_forward_backward,
        (X, np.ones((5, 4)), np.array([0, 5, 1])),
        {"chunk_size": 1},
    ),
    ("lce chunk", ValueError, F.linear_cross_entropy, (X, np.ones((5, 4)), np.array([0, 1, 1])), {"chunk_size": 0}),
    (
        "callable distance",
        TypeError,
        F.triplet_margin_with_distance_loss_forward_backward,
        (X, X, X),
        {"distance_function": lambda a, b: np.zeros(3)},
    ),
    ("grad_output", ValueError, F.cosine_embedding_loss_backward, (np.ones(2), X, X, np.ones(3)), {}),
    (
        "segmentation label",
        IndexError,
        F.dice_loss_forward_backward,
        (X.reshape(1, 3, 4), np.array([[0, 1, 7, 2]])),
        {"to_onehot_y": True},
    ),
]


@pytest.mark.parametrize("what,exc,fn,args,kwargs", ERRORS, ids=[f"{e[2].__name__}-{e[0]}" for e in ERRORS])
def test_raising_calls_do_not_leak(what: str, exc: type, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
    assert_flat(expecting(exc, fn, *args, **kwargs), f"{fn.__name__} ({what})")


CLASS_CALLS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "L1Loss": ("l1_loss", {}),
    "MSELoss": ("mse_loss", {}),
    "HuberLoss": ("huber_loss", {"delta": 0.5}),
    "SmoothL1Loss": ("smooth_l1_loss", {"beta": 0.5}),
    "SoftMarginLoss": ("soft_margin_loss", {}),
    "BCELoss": ("binary_cross_entropy", {}),
    "BCEWithLogitsLoss": ("binary_cross_entropy_with_logits", {}),
    "PoissonNLLLoss": ("poisson_nll_loss", {"full": True}),
    "GaussianNLLLoss": ("gaussian_nll_loss", {}),
    "KLDivLoss": ("kl_div", {"reduction": "batchmean"}),
    "MarginRankingLoss": ("margin_ranking_loss", {"margin": 0.5}),
    "HingeEmbeddingLoss": ("hinge_embedding_loss", {}),
    "CrossEntropyLoss": ("cross_entropy", {"label_smoothing": 0.1}),
    "NLLLoss": ("nll_loss", {}),
    "MultiMarginLoss": ("multi_margin_loss", {"p": 2}),
    "MultiLabelMarginLoss": ("multilabel_margin_loss", {}),
    "MultiLabelSoftMarginLoss": ("multilabel_soft_margin_loss", {}),
    "CosineEmbeddingLoss": ("cosine_embedding_loss", {}),
    "TripletMarginLoss": ("triplet_margin_loss", {"swap": True}),
    "TripletMarginWithDistanceLoss": ("triplet_margin_with_distance_loss", {"distance_function": "cosine"}),
    "CTCLoss": ("ctc_loss", {"zero_infinity": True}),
    "DiceLoss": ("dice_loss", {"to_onehot_y": True, "softmax": True, "jaccard": True}),
    "TverskyLoss": ("tversky_loss", {"alpha": 0.3, "beta": 0.7}),
    # beyond torch.nn: classification
    "SoftmaxFocalLoss": ("softmax_focal_loss", {"gamma": 0.5}),
    "Poly1CrossEntropyLoss": ("poly1_cross_entropy", {"label_smoothing": 0.1}),
    # registered element-wise classes
    "LogCoshLoss": ("log_cosh_loss", {}),
    "PseudoHuberLoss": ("pseudo_huber_loss", {"delta": 0.5}),
    "MSLELoss": ("msle_loss", {}),
    "SigmoidFocalLoss": ("sigmoid_focal_loss", {"gamma": 1.5}),
}


@pytest.mark.parametrize("name", sorted(CLASS_CALLS))
def test_classes_do_not_leak(name: str) -> None:
    fname, kwargs = CLASS_CALLS[name]
    crit = getattr(losskit, name)(**kwargs)
    inputs = BASE[fname][0]

    def step() -> None:
        crit(*inputs)
        crit.backward()
        crit.forward_backward(*inputs)

    assert_flat(step, name, max(1, CALLS // 3))


def test_parameter_owning_classes_do_not_leak() -> None:
    rng = np.random.default_rng(0)
    lce = losskit.LinearCrossEntropyLoss(4, 6, bias=True, chunk_size=2, rng=rng)
    asm = losskit.AdaptiveLogSoftmaxWithLoss(4, 12, [3, 7], div_value=2.0, rng=rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    t = rng.integers(0, 6, 5)

    def step() -> None:
        lce(x, t)
        lce.backward()
        lce.forward_backward(x, t)
        asm(x, t)
        asm.backward()

    assert_flat(step, "LinearCrossEntropyLoss / AdaptiveLogSoftmaxWithLoss", max(1, CALLS // 10))


def test_large_recycled_outputs_do_not_leak() -> None:
    """Results of 4 MiB and more come from the output cache (docs/api.md): dropped ones go back
    to it, kept ones never share memory; neither may grow the process."""
    x = np.random.default_rng(0).standard_normal(1 << 20)
    y = np.zeros_like(x)
    kept: List[Any] = []

    def step() -> None:
        _, g = F.mse_loss_forward_backward(x, y)
        kept.append(g)  # two alive at a time: one cached buffer cannot serve both
        if len(kept) > 2:
            kept.pop(0)

    assert_flat(step, "mse_loss_forward_backward, 8 MiB gradients", max(20, CALLS // 100))
