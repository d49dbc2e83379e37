"""losskit.dask on the real engine: the synchronous and threaded schedulers and a distributed
LocalCluster of 2 worker processes (started once for the module). Every loss family against
in-memory losskit (values and gradients, float32 and float64, 'none'/'sum'/'mean', uneven chunks,
ignored targets, class weights, label smoothing), bitwise sameness across schedulers and worker
counts, laziness, and the errors at graph construction and at compute."""

from __future__ import annotations

import inspect
import logging
import pydoc
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pytest

import losskit
import losskit.functional as F
from losskit._functional import _spec, _stubs
from _tools import REQUIRED

try:
    import dask
    import dask.array as da
    import distributed
except ImportError:  # CI installs them (the test extra): there a missing dask fails the module
    if REQUIRED:
        raise
    pytest.skip("needs dask[array] and distributed (pip install 'losskit[dask]')", allow_module_level=True)

import losskit.dask as LD  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# The in-memory warnings of two cases (a broadcast target, kl_div's 'mean'), as torch gives them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using a target size:UserWarning"),
    pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


# ---- the cases: every family, with the keywords that change the divisor ---------------------------

N, C = 11, 5
CHUNKS = (3, 4, 4)  # uneven


def _cases(dtype: str) -> List[Tuple[str, str, Tuple[Any, ...], Dict[str, Any], Dict[int, int]]]:
    """(id, loss, args, kwargs, {position: batch axis} of the arguments passed as dask arrays;
    the others stay NumPy)."""
    r = np.random.default_rng(5)

    def f(*shape: int) -> np.ndarray:
        return r.standard_normal(shape).astype(dtype)

    x, y = f(N, C), f(N, C)
    p = r.uniform(0.1, 0.9, (N, C)).astype(dtype)
    s = np.sign(f(N, C)).astype(dtype)
    t = r.integers(0, C, N)
    t[[1, 6, 7]] = 2  # ignored below
    w = r.uniform(0.5, 2.0, C).astype(dtype)
    z = f(6, N, C)
    log_probs = (z - np.log(np.exp(z.astype(np.float64)).sum(-1, keepdims=True))).astype(dtype)
    input_lengths, target_lengths = r.integers(4, 7, N), r.integers(0, 3, N)
    W, b = f(7, C), f(7)
    ml_target = np.where(r.random((N, C)) < 0.3, -1, r.integers(0, C, (N, C)))

    def boxes(*lead: int) -> np.ndarray:
        xy = f(*lead, 2)
        return np.concatenate([xy, xy + np.abs(f(*lead, 2)) + 0.1], axis=-1).astype(dtype)

    return [
        ("l1_weighted", "l1_loss", (x, y), {"weight": p}, {0: 0, 1: 0}),
        ("mse_broadcast_target", "mse_loss", (x, y[0]), {}, {0: 0}),
        ("huber", "huber_loss", (x, y), {"delta": 0.5}, {0: 0}),
        ("smooth_l1", "smooth_l1_loss", (x, y), {"beta": 0.5}, {0: 0, 1: 0}),
        ("soft_margin", "soft_margin_loss", (x, s), {}, {0: 0}),
        ("bce_weight", "binary_cross_entropy", (p, p[::-1].copy()), {"weight": w}, {0: 0, 1: 0}),
        ("bce_logits_pos_weight", "binary_cross_entropy_with_logits", (x, p), {"pos_weight": w}, {0: 0, 1: 0}),
        ("poisson_full", "poisson_nll_loss", (x, np.abs(y)), {"full": True}, {0: 0}),
        ("gaussian_var_per_row", "gaussian_nll_loss", (x, y, p[:, 0].copy()), {"full": True}, {0: 0, 2: 0}),
        ("kl_div", "kl_div", (np.log(p), p[::-1].copy()), {}, {0: 0}),
        (
            "margin_ranking",
            "margin_ranking_loss",
            (x[:, 0].copy(), y[:, 0].copy(), s[:, 0].copy()),
            {"margin": 0.5},
            {0: 0, 1: 0},
        ),
        ("hinge_embedding", "hinge_embedding_loss", (x, s), {}, {0: 0}),
        (
            "ce_weight_ignore_smoothing",
            "cross_entropy",
            (x, t),
            {"weight": w, "ignore_index": 2, "label_smoothing": 0.1},
            {0: 0, 1: 0},
        ),
        (
            "ce_probabilities",
            "cross_entropy",
            (x, p / p.sum(1, keepdims=True)),
            {"label_smoothing": 0.05},
            {0: 0, 1: 0},
        ),
        ("ce_k_dim", "cross_entropy", (f(N, C, 3), r.integers(0, C, (N, 3))), {"weight": w}, {0: 0}),
        ("nll_weight_ignore", "nll_loss", (x, t), {"weight": w, "ignore_index": 2}, {0: 0}),
        ("multi_margin", "multi_margin_loss", (x, t), {"p": 2, "weight": w}, {0: 0, 1: 0}),
        ("multilabel_margin", "multilabel_margin_loss", (x, ml_target), {}, {0: 0, 1: 0}),
        ("multilabel_soft_margin", "multilabel_soft_margin_loss", (x, (p > 0.5).astype(dtype)), {"weight": w}, {0: 0}),
        ("cosine_embedding", "cosine_embedding_loss", (x, y, s[:, 0].copy()), {"margin": 0.1}, {0: 0, 1: 0}),
        ("triplet_swap", "triplet_margin_loss", (x, y, p), {"swap": True}, {0: 0, 2: 0}),
        ("triplet_cosine", "triplet_margin_with_distance_loss", (x, y, p), {"distance_function": "cosine"}, {0: 0}),
        ("boxes", "generalized_box_iou_loss", (boxes(N, 4), boxes(N, 4)), {}, {0: 0, 1: 0}),
        ("boxes_one_box", "distance_box_iou_loss", (boxes(N, 4), boxes(4)), {}, {0: 0}),
        ("boxes_all_pairs", "complete_box_iou_loss", (boxes(N, 1, 4), boxes(1, 3, 4)), {}, {0: 0, 1: None}),
        (
            "ctc_padded",
            "ctc_loss",
            (log_probs, r.integers(1, C, (N, 2)), input_lengths, target_lengths),
            {},
            {0: 1, 1: 0, 3: 0},
        ),
        (
            "ctc_concatenated",
            "ctc_loss",
            (log_probs, r.integers(1, C, int(target_lengths.sum())), list(input_lengths), target_lengths),
            {"zero_infinity": True},
            {0: 1, 3: 0},
        ),
        (
            "linear_ce",
            "linear_cross_entropy",
            (x, W, r.integers(0, 7, N)),
            {
                "linear_bias": b,
                "weight": r.uniform(0.5, 2.0, 7).astype(dtype),
                "ignore_index": 3,
                "label_smoothing": 0.1,
                "chunk_size": 2,
            },
            {0: 0, 1: None, 2: 0},
        ),
    ]


def _ids(dtype: str = "float64") -> List[str]:
    return [c[0] for c in _cases(dtype)]


def _dask_args(args: Sequence[Any], lazy: Dict[int, Any]) -> List[Any]:
    """The arguments at the positions of ``lazy`` as dask arrays, cut along their batch axis in
    CHUNKS (a None axis: one chunk); the targets cut differently (losskit.dask rechunks them)."""
    out = list(args)
    for i, axis in lazy.items():
        a = np.asarray(args[i])
        chunks = [(n,) for n in a.shape]
        if axis is not None:
            chunks[axis] = CHUNKS if i == 0 else (6, 5)
        out[i] = da.from_array(a, chunks=tuple(chunks))
    return out


def _reductions(name: str) -> Tuple[str, ...]:
    return ("none", "sum", "mean") + (("batchmean",) if name == "kl_div" else ())


def _flat(result: Any) -> List[Any]:
    """Every array of a (nested) result, in order; None stays None."""
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _flat(r)]
    if isinstance(result, dict):
        return [a for k in sorted(result) for a in _flat(result[k])]
    return [result]


def _close(got: Any, want: Any, dtype: str) -> None:
    # The same per-chunk arithmetic as in memory; only the order of the final additions differs
    # (the chunks' partials added in a tree): float rounding of the result's dtype.
    tol = {"float32": dict(rtol=2e-6, atol=1e-7), "float64": dict(rtol=1e-13, atol=1e-15)}[dtype]
    g, w = _flat(got), _flat(want)
    assert len(g) == len(w)
    for a, b in zip(g, w):
        if b is None:
            assert a is None
            continue
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, **tol)


# ---- against in-memory losskit --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", _ids())
def test_matches_in_memory(case: str, dtype: str) -> None:
    _, name, args, kwargs, lazy = next(c for c in _cases(dtype) if c[0] == case)
    dargs = _dask_args(args, lazy)
    for reduction in _reductions(name):
        kw = dict(kwargs, reduction=reduction)
        shape = np.shape(getattr(F, name)(*args, **kw))
        go = np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape).astype(dtype) if reduction == "none" else 0.75
        lazy_results = (
            getattr(LD, name)(*dargs, **kw),
            getattr(LD, name + "_forward_backward")(*dargs, **kw),
            getattr(LD, name + "_backward")(go, *dargs, **kw),
        )
        for r in _flat(lazy_results):
            assert r is None or isinstance(r, da.Array)
        got = dask.compute(*lazy_results, scheduler="threads")
        want = (
            getattr(F, name)(*args, **kw),
            getattr(F, name + "_forward_backward")(*args, **kw),
            getattr(F, name + "_backward")(go, *args, **kw),
        )
        _close(got, want, dtype)


def test_gradients_are_chunked_like_their_inputs() -> None:
    _, name, args, kwargs, lazy = next(c for c in _cases("float32") if c[0] == "linear_ce")
    x, W, t = _dask_args(args, lazy)
    loss, (gx, gW, gb) = LD.linear_cross_entropy_forward_backward(x, W, t, **kwargs)
    assert gx.chunks == x.chunks and gW.chunks == ((7,), (C,)) and gb.chunks == ((7,),)
    assert loss.shape == () and loss.dtype == np.float32
    _, name, args, kwargs, lazy = next(c for c in _cases("float32") if c[0] == "ctc_padded")
    lp = _dask_args(args, lazy)[0]
    assert LD.ctc_loss_backward(1.0, lp, *args[1:]).chunks == ((6,), CHUNKS, (C,))
    assert LD.ctc_loss(lp, *args[1:], reduction="none").chunks == (CHUNKS,)
    # A broadcast target's gradient: the sum of the chunks' gradients, one chunk of its shape.
    _, name, (x, y), kwargs, lazy = next(c for c in _cases("float64") if c[0] == "mse_broadcast_target")
    loss, (gx, gy) = LD.mse_loss_forward_backward(da.from_array(x, chunks=4), y, target_grad=True)
    assert gy.chunks == ((C,),)
    _close(
        dask.compute(loss, gx, gy),
        (lambda r: (r[0], *r[1]))(F.mse_loss_forward_backward(x, y, target_grad=True)),
        "float64",
    )


def test_none_with_a_dask_grad_output() -> None:
    _, name, args, kwargs, lazy = next(c for c in _cases("float64") if c[0] == "ce_k_dim")
    go = np.random.default_rng(3).uniform(0.5, 1.5, (N, 3))
    got = LD.cross_entropy_backward(
        da.from_array(go, chunks=(5, 3)), *_dask_args(args, lazy), reduction="none", **kwargs
    )
    np.testing.assert_array_equal(got.compute(), F.cross_entropy_backward(go, *args, reduction="none", **kwargs))


def test_return_stats_are_chunked_like_the_rows() -> None:
    _, name, args, kwargs, lazy = next(c for c in _cases("float32") if c[0] == "ce_weight_ignore_smoothing")
    kw = dict(kwargs, z_loss=1e-3, softcap=5.0, return_stats=True)
    loss, grad, stats = LD.cross_entropy_forward_backward(*_dask_args(args, lazy), **kw)
    assert {k: v.chunks for k, v in stats.items()} == {k: (CHUNKS,) for k in ("lse", "entropy", "correct")}
    _close(dask.compute(loss, grad, stats)[0:3], F.cross_entropy_forward_backward(*args, **kw), "float32")


def test_mean_uses_the_global_normalizer() -> None:
    """The chunks' own means averaged would be wrong here (ignored targets, class weights, uneven
    chunks); losskit.dask divides by the global divisor."""
    _, name, args, kwargs, lazy = next(c for c in _cases("float64") if c[0] == "ce_weight_ignore_smoothing")
    x, t = args
    dx = _dask_args(args, lazy)[0]
    z = LD.mean_normalizer("cross_entropy", dx, t, **kwargs)
    assert z.shape == () and z.dtype == np.float64
    assert z.compute() == F.mean_normalizer("cross_entropy", x, t, **kwargs)
    bounds = np.cumsum((0,) + CHUNKS)
    naive = np.mean([F.cross_entropy(x[a:b], t[a:b], **kwargs) for a, b in zip(bounds[:-1], bounds[1:])])
    exact = LD.cross_entropy(dx, t, **kwargs).compute()
    assert not np.isclose(naive, exact)
    np.testing.assert_allclose(exact, F.cross_entropy(x, t, **kwargs), rtol=1e-14)
    # A normalizer given replaces the global divisor (several dask graphs, one batch).
    np.testing.assert_allclose(
        LD.cross_entropy(dx, t, normalizer=2.5, **kwargs).compute(),
        F.cross_entropy(x, t, normalizer=2.5, **kwargs),
        rtol=1e-14,
    )


def test_nothing_counted_and_empty_give_nan_as_in_memory() -> None:
    x = np.random.default_rng(0).standard_normal((N, C)).astype(np.float32)
    t = np.full(N, -100)
    loss, grad = dask.compute(*LD.cross_entropy_forward_backward(da.from_array(x, chunks=4), t))
    assert np.isnan(loss) and loss.dtype == np.float32 and not grad.any()
    loss, grad = dask.compute(*LD.mse_loss_forward_backward(da.from_array(x[:0], chunks=4), x[:0]))
    assert np.isnan(loss) and grad.shape == (0, C)


def test_unbatched_inputs_are_one_task() -> None:
    x = np.array([1.0, 2.0, 0.5])
    got = LD.cross_entropy_forward_backward(da.from_array(x), 2, label_smoothing=0.1)
    _close(dask.compute(*got), F.cross_entropy_forward_backward(x, 2, label_smoothing=0.1), "float64")


# ---- laziness and memory ---------------------------------------------------------------------------


def test_nothing_runs_before_compute_and_the_divisor_never_reads_the_input() -> None:
    made: List[int] = []

    def make(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        made.append(block_info[None]["chunk-location"][0])
        return np.ones(block.shape, np.float32)

    x = da.zeros((N, C), chunks=(3, C), dtype=np.float32).map_blocks(make, dtype=np.float32)
    t = np.arange(N) % C
    loss, grad = LD.cross_entropy_forward_backward(x, t, ignore_index=0)
    z = LD.mean_normalizer("cross_entropy", x, t, ignore_index=0)
    assert made == []
    assert z.compute(scheduler="sync") == F.mean_normalizer("cross_entropy", np.ones((N, C)), t, ignore_index=0)
    assert made == []  # the divisor reads the targets only
    loss.compute(scheduler="sync")
    assert sorted(made) == [0, 1, 2, 3]  # each input chunk made once


# ---- the same bits everywhere ---------------------------------------------------------------------


def test_bitwise_the_same_on_every_scheduler_and_worker_count(client: Any) -> None:
    """Every case, 'mean' (the two-phase graph) and 'sum', value and gradients: the distributed
    cluster (2 processes), the synchronous scheduler and the threaded one with 1 and 4 workers give
    the same bits, and match in-memory losskit."""
    for _, name, args, kwargs, lazy in _cases("float32"):
        dargs = _dask_args(args, lazy)
        lazy_results = [
            getattr(LD, name + "_forward_backward")(*dargs, **dict(kwargs, reduction=r)) for r in ("mean", "sum")
        ]
        results = [
            dask.compute(*lazy_results, scheduler="sync"),
            dask.compute(*lazy_results, scheduler="threads", num_workers=1),
            dask.compute(*lazy_results, scheduler="threads", num_workers=4),
            client.compute(lazy_results, sync=True),
        ]
        first = _flat(results[0])
        for other in results[1:]:
            for a, b in zip(first, _flat(other)):
                assert (a is None and b is None) or np.asarray(a).tobytes() == np.asarray(b).tobytes(), name
        want = [getattr(F, name + "_forward_backward")(*args, **dict(kwargs, reduction=r)) for r in ("mean", "sum")]
        _close(results[3], want, "float32")


def test_distributed_custom_distance_function(client: Any) -> None:
    """A Python callable (a closure: cloudpickle ships it to the worker processes)."""
    scale = 2.0

    def manhattan(a: np.ndarray, b: np.ndarray) -> Any:
        d = a - b
        return scale * np.abs(d).sum(-1), lambda g: (
            scale * np.sign(d) * g[..., None],
            -scale * np.sign(d) * g[..., None],
        )

    a, p, n = (np.random.default_rng(i).standard_normal((N, 4)) for i in range(3))
    got = LD.triplet_margin_with_distance_loss_forward_backward(
        da.from_array(a, chunks=4), p, n, distance_function=manhattan
    )
    want = F.triplet_margin_with_distance_loss_forward_backward(a, p, n, distance_function=manhattan)
    _close(client.compute(list(got), sync=True), want, "float64")


# ---- errors ----------------------------------------------------------------------------------------

_X = np.zeros((N, C), np.float32)
_T = np.arange(N) % C


def _dx(a: np.ndarray = _X, chunks: Any = 4) -> Any:
    return da.from_array(a, chunks=chunks)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: LD.cross_entropy(_dx(), _T[:5]), ValueError, r"target expected 11 entries along its batch axis 0"),
        (lambda: LD.mse_loss(_dx(), _dx(_X[:5])), ValueError, r"target expected 11 entries"),
        (lambda: LD.cross_entropy(_dx(), _T, weight=np.ones(3)), ValueError, r"weight expected a weight for each"),
        (lambda: LD.nll_loss(_dx(), _T.astype(np.float32)), TypeError, r"target expected an integer array"),
        (lambda: LD.cross_entropy(_dx(), _T, reduction="avg"), ValueError, r"reduction expected"),
        (lambda: LD.cross_entropy(_dx().astype(complex), _T), TypeError, r"input expected a real"),
        (lambda: LD.linear_cross_entropy(_dx(), np.ones((3, 4)), _T), ValueError, r"in_features"),
        (lambda: LD.nll_loss_forward_backward(_dx(), _T, target_grad=True), ValueError, r"target_grad expected False"),
        (lambda: LD.cross_entropy(_dx(), _T, normalizer=-1.0), ValueError, r"normalizer"),
        (lambda: LD.cross_entropy(_dx()[_dx()[:, 0] > 0], _T), ValueError, r"input has unknown chunk sizes"),
        (
            lambda: LD.ctc_loss(_dx(np.zeros((4, N, C))), np.ones((N, 2), int), [4] * N, [2] * 10),
            ValueError,
            r"target_lengths expected 11 entries",
        ),
        (lambda: LD.mean_normalizer("cross_entropy", _dx(), _T, reduction="sum"), ValueError, r"reduction"),
        (lambda: LD.mean_normalizer("no_such_loss", _dx()), ValueError, r"name expected one of"),
    ],
)
def test_bad_input_raises_when_the_graph_is_built(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_bad_values_raise_at_compute_and_lose_nothing_else(client: Any) -> None:
    t = _T.copy()
    t[9] = 7
    bad = LD.cross_entropy(_dx(), t)  # the values are in the tasks: checked there
    good = LD.cross_entropy(_dx(), _T)
    with pytest.raises(losskit.IndexError, match=r"cross_entropy: target expected class indices in \[0, 5\)"):
        bad.compute(scheduler="sync")
    with pytest.raises(IndexError, match=r"target expected class indices"):
        client.compute(bad, sync=True)
    assert client.compute(good, sync=True) == F.cross_entropy(_X, _T)


# ---- the generated functions -----------------------------------------------------------------------


def test_every_loss_has_its_dask_functions_with_the_functional_signatures() -> None:
    for loss in _spec.LOSSES.values():
        for fname, fn in loss.functions.items():
            mine = getattr(LD, fname)
            assert inspect.signature(mine) == inspect.signature(fn), fname
            assert mine.__module__ == "losskit.dask"
    text = pydoc.render_doc(LD.cross_entropy_forward_backward, renderer=pydoc.plaintext)
    assert "label_smoothing" in text and "grad_output" in text and "chunked along the batch" in text


def test_committed_stub_is_current() -> None:
    # The stub is rendered from losskit.functional's signatures, which the test above shows are
    # losskit.dask's (mypy.stubtest agrees, but takes ~50 s analysing all of dask: run it by hand,
    # docs/contributing.md).
    committed = (REPO / "python" / "losskit" / "dask.pyi").read_text()
    assert committed == _stubs.dask_stub_source(), "run: PYTHONPATH=python python -m losskit._functional._stubs"


def test_import_losskit_never_imports_dask() -> None:
    code = (
        "import sys, losskit, losskit.functional, losskit.modules; "
        "bad = [m for m in ('dask', 'distributed') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doctests() -> None:
    import doctest

    failures, tried = doctest.testmod(LD, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_distributed_md_examples() -> None:
    import doctest

    result = doctest.testfile(
        str(REPO / "docs" / "distributed.md"), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 10 and result.failed == 0
