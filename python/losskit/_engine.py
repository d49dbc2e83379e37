"""The three calls every loss makes into the C++ core: forward, backward, forward_backward.

Argument conversion only: no arithmetic happens here.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _convert, _core, _reduction


# How each keyword option reaches the core: a float, a bool, or (the distance name) as it is; an
# argument of the wrong kind is a TypeError naming the loss and the argument.
_OPTIONS = {
    "margin": _convert.real,
    "eps": _convert.real,
    "delta": _convert.real,
    "beta": _convert.real,
    "p": _convert.real,
    "log_input": _convert.flag,
    "full": _convert.flag,
    "log_target": _convert.flag,
    "swap": _convert.flag,
    "normalizer": _convert.normalizer,
}


# The losses of this engine whose core reads float16 and bfloat16 in place (the element-wise
# driver, the embedding rows, the box stages); the registered element-wise losses join it when declared
# (_functional._spec.elementwise_loss).
HALF_IN_PLACE = set(
    {
        "l1_loss",
        "mse_loss",
        "huber_loss",
        "smooth_l1_loss",
        "soft_margin_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "poisson_nll_loss",
        "gaussian_nll_loss",
        "kl_div",
        "margin_ranking_loss",
        "hinge_embedding_loss",
        "cosine_embedding_loss",
        "triplet_margin_loss",
        "triplet_margin_with_distance_loss",
        "generalized_box_iou_loss",
        "distance_box_iou_loss",
        "complete_box_iou_loss",
    }
)
# The embedding losses read a broadcast input of a single row in place and sum its gradient in
# double, rounded once. A broadcast over some of several row dimensions ((1, B, D) beside
# (A, B, D)) expands the smaller inputs and sums their full-size gradients: in 16-bit storage that
# would round every row's gradient before the sum, so such calls compute from one float32 copy of
# the first `n` (differentiable) inputs, whose results are rounded once to the input's dtype.
_HALF_ROW_INPUTS = {"cosine_embedding_loss": 2, "triplet_margin_loss": 3, "triplet_margin_with_distance_loss": 3}


def _half_in_place(name: str, values: Sequence[Any]) -> bool:
    if name not in HALF_IN_PLACE:
        return False
    n = _HALF_ROW_INPUTS.get(name)
    if n is None:
        return True
    rows = [np.shape(v)[:-1] for v in values[:n]]
    try:
        full = np.broadcast_shapes(*rows)
    except ValueError:
        return True  # the core names the argument whose shape does not broadcast
    return all(r == full or math.prod(r) == 1 for r in rows)


def _options(name: str, options: Dict[str, Any]) -> Dict[str, Any]:
    for k, v in options.items():
        if k in _OPTIONS:
            options[k] = _OPTIONS[k](name, k, v)
    return options


def forward(name: str, names: Sequence[str], values: Sequence[Any], reduction: str, **options: Any) -> Any:
    options = _options(name, options)
    reduction = _reduction.parse(None, None, reduction)
    _, arrays = _convert.float_inputs(name, names, values, _half_in_place(name, values))
    out = getattr(_core, name)(arrays, reduction, **options)
    return _convert.result(_convert.rounded_to_input(out, values[0]), reduction)


def mean_normalizer(name: str, names: Sequence[str], values: Sequence[Any], reduction: str, **options: Any) -> float:
    """The divisor 'mean' uses for these inputs (the core's NAME_mean_normalizer): the loss's
    checks, nothing computed."""
    options = _options(name, options)
    reduction = _reduction.parse(None, None, reduction)
    _, arrays = _convert.float_inputs(name, names, values)
    return float(getattr(_core, name + "_mean_normalizer")(arrays, reduction, **options))


def _grads(
    name: str,
    mode: str,
    names: Sequence[str],
    values: Sequence[Any],
    reduction: str,
    grad_output: Any,
    want: Sequence[bool],
    options: Dict[str, Any],
) -> Tuple[Optional[np.ndarray], Tuple[Optional[np.ndarray], ...]]:
    options = _options(name, options)
    reduction = _reduction.parse(None, None, reduction)
    want = tuple(w if w is True or w is False else _convert.flag(name, "target_grad", w) for w in want)
    dtype, arrays = _convert.float_inputs(name, names, values, _half_in_place(name, values))
    go = _convert.grad_output_array(name, grad_output, dtype)
    if mode == "backward":
        grads = getattr(_core, name + "_backward")(go, arrays, reduction, tuple(want), **options)
        return None, _convert.rounded_to_input(grads, values[0])
    out, grads = getattr(_core, name + "_forward_backward")(arrays, go, reduction, tuple(want), **options)
    out, grads = _convert.rounded_to_input((out, grads), values[0])
    return _convert.result(out, reduction), grads


def backward(
    name: str,
    names: Sequence[str],
    values: Sequence[Any],
    reduction: str,
    grad_output: Any,
    want: Sequence[bool],
    **options: Any,
) -> Tuple[Optional[np.ndarray], ...]:
    """Gradients of the inputs flagged in `want` (None for the others)."""
    return _grads(name, "backward", names, values, reduction, grad_output, want, options)[1]


def forward_backward(
    name: str,
    names: Sequence[str],
    values: Sequence[Any],
    reduction: str,
    grad_output: Any,
    want: Sequence[bool],
    **options: Any,
) -> Tuple[Any, Tuple[Optional[np.ndarray], ...]]:
    """The loss and the gradients of the inputs flagged in `want`, from one fused pass."""
    return _grads(name, "forward_backward", names, values, reduction, grad_output, want, options)


def no_target_grad(function: str, target_grad: bool) -> None:
    """Losses whose target is a label have no target gradient (API.md)."""
    if _convert.flag(function, "target_grad", target_grad):
        raise ValueError(f"{function}: target_grad expected False (its target is a label with no gradient), got True")


def pack(grads: Sequence[Optional[np.ndarray]]) -> Any:
    """One gradient is returned bare, several as a tuple."""
    return grads[0] if len(grads) == 1 else tuple(grads)
