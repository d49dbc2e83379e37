"""Fuzz: threads. Any drawn call of any family (valid or not) gives bitwise the same loss and
gradients on 1, 2, 3 and 8 losskit threads (linear_cross_entropy: the loss; its weight
gradients come from NumPy's BLAS), and batches of drawn calls run at once from several Python
threads give exactly their serial results, errors included (the core runs with the GIL released;
each calling thread has its own scratch)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Tuple

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

import losskit
import losskit.functional as F
from _fuzz import Case, attempt, fuzz
from test_fuzz_classification import cross_entropy_cases, margin_cases
from test_fuzz_ctc import ctc_cases
from test_fuzz_embedding import cosine_cases, triplet_cases, triplet_distance_cases
from test_fuzz_large_vocab import lce_cases
from test_fuzz_pointwise import NAMES, pointwise_cases

any_case = st.one_of(
    st.sampled_from(NAMES).flatmap(pointwise_cases),
    st.sampled_from(["cross_entropy", "nll_loss"]).flatmap(cross_entropy_cases),
    st.sampled_from(["multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"]).flatmap(
        margin_cases
    ),
    cosine_cases(),
    triplet_cases(),
    triplet_distance_cases(),
    ctc_cases(),
    lce_cases(),
)


def fused(case: Case) -> Tuple[bool, Any]:
    tg = {"target_grad": True} if case.target_grad else {}
    return attempt(
        getattr(F, case.name + "_forward_backward"), *case.args, grad_output=case.grad_output, **case.kwargs, **tg
    )


def _bits(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_bits(v) for v in x)
    return None if x is None else (np.asarray(x).dtype.str, np.asarray(x).shape, np.asarray(x).tobytes())


def _outcome(r: Tuple[bool, Any], with_grads: bool = True) -> Any:
    ok, res = r
    if not ok:
        return (type(res).__name__, str(res))
    loss, grads = res
    return (_bits(loss), _bits(grads) if with_grads else None)


@fuzz(scale=1.5)
@given(any_case)
def test_fuzz_bitwise_equal_on_any_thread_count(case: Case) -> None:
    with_grads = case.name != "linear_cross_entropy"
    outcomes = []
    for n in (1, 2, 3, 8):
        losskit.set_num_threads(n)
        outcomes.append(_outcome(fused(case), with_grads))
    note(f"{case.name} {case.what}")
    for n, o in zip((2, 3, 8), outcomes[1:]):
        assert o == outcomes[0], f"{case.name} {case.what}: {n} threads differ from 1 thread"


@fuzz(scale=0.5)
@given(st.lists(any_case, min_size=2, max_size=6), st.sampled_from([1, 2, 4]))
def test_fuzz_concurrent_python_threads(cases: List[Case], threads: int) -> None:
    losskit.set_num_threads(threads)
    with_grads = [c.name != "linear_cross_entropy" for c in cases]
    serial = [_outcome(fused(c), g) for c, g in zip(cases, with_grads)]
    jobs = list(range(len(cases))) * 2
    with ThreadPoolExecutor(len(cases)) as pool:
        parallel = list(pool.map(lambda k: (k, _outcome(fused(cases[k]), with_grads[k])), jobs))
    for k, o in parallel:
        assert o == serial[k], f"{cases[k].name} {cases[k].what}: concurrent result differs from the serial one"
