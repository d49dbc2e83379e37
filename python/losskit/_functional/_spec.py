"""The one place a loss's three entry points are made from its single definition.

A loss is written once, in its family's module, as one function whose first parameter is a
:class:`Call` and whose other parameters are exactly torch's (names, order, defaults,
annotations), with the docstring that states its formula::

    @loss(inputs=2, target="target", grads="Gradients",
          backward="Gradient of :func:`mse_loss`: ...", forward_backward="...")
    def mse_loss(call: Call, input: ArrayLike, target: ArrayLike, size_average: Optional[bool] = None,
                 reduce: Optional[bool] = None, reduction: str = "mean",
                 weight: Optional[ArrayLike] = None) -> Any:
        # (abridged) the docstring: the formula, its derivative, shapes, an example
        reduction = _reduction.parse(size_average, reduce, reduction)
        return call.engine("mse_loss", ("input", "target", "weight"), (input, target, weight), reduction)

:func:`loss` turns that definition into three plain Python functions, generated from source as
:mod:`dataclasses` generates ``__init__`` (real parameters, defaults and annotations, so
``help()``, :func:`inspect.signature` and the argument errors are those of a hand-written
``def``; no per-call binding cost):

* ``NAME(*params)`` calls the body with the forward :class:`Call`;
* ``NAME_backward(grad_output, *params, target_grad=False)``;
* ``NAME_forward_backward(*params[:inputs], grad_output=None, *params[inputs:], target_grad=False)``
  (``grad_output`` follows the first ``inputs`` parameters, as it always has).

The body reads ``call.mode`` (0 forward, 1 backward, 2 forward_backward: the C++ core's modes; 3
is :func:`mean_normalizer`'s, the divisor of ``'mean'`` with nothing computed), ``call.grad_output``
and ``call.target_grad``; :meth:`Call.engine` and :meth:`Call.result` give each mode's return
value. So adding a keyword to a loss (``normalizer=``, ``z_loss=``, ...) is one
parameter in its definition, used in its body; the three functions, their signatures and
``python/losskit/functional.pyi`` (regenerated with ``python -m losskit._functional._stubs``,
checked by ``tests/test_functional_layout.py``) follow.

``target`` says what ``target_grad`` means for the loss: ``"target"`` (a float target with a
gradient, appended when ``target_grad``), ``"label"`` (a label target: ``target_grad=True`` raises
ValueError before any work), ``"none"`` (no target at all, likewise) or ``"body"`` (the body
decides: cross_entropy's target is a label or a probability).

The classes (:mod:`losskit.modules`) pass on each functional keyword their constructor takes
(:attr:`Loss.keywords`), so a class names a keyword only in its constructor.

The generated functions report ``__module__ == "losskit.functional"``: that is where users find
them, where doctests run, and what the stubs describe.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import _convert, _engine
from .._engine import no_target_grad, pack

ArrayLike = Any
Gradients = Union[np.ndarray, Tuple[Optional[np.ndarray], ...]]

PUBLIC_MODULE = "losskit.functional"
FORWARD, BACKWARD, FORWARD_BACKWARD, MEAN_NORMALIZER = 0, 1, 2, 3
_ENGINE_MODES = {BACKWARD: _engine.backward, FORWARD_BACKWARD: _engine.forward_backward}


class Call:
    """Which entry point reached a loss's body, with that call's ``grad_output`` and ``target_grad``."""

    __slots__ = ("mode", "grad_output", "target_grad", "_has_target")

    def __init__(self, mode: int, grad_output: Any = None, target_grad: Any = False, has_target: bool = False) -> None:
        self.mode = mode
        self.grad_output = grad_output
        self.target_grad = target_grad
        self._has_target = has_target

    def result(self, loss: Any, grads: Any) -> Any:
        """The entry point's return value: the loss, the gradients, or both (or, for
        :func:`mean_normalizer`, the divisor the core returned in place of the loss)."""
        if self.mode == MEAN_NORMALIZER:
            return float(loss)
        if self.mode == FORWARD:
            return loss
        if self.mode == BACKWARD:
            return grads
        return loss, grads

    def engine(
        self,
        name: str,
        names: Sequence[str],
        values: Sequence[Any],
        reduction: str,
        grads: Tuple[bool, ...] = (True,),
        **options: Any,
    ) -> Any:
        """One call of :mod:`losskit._engine` in this mode. ``grads`` flags the leading inputs that
        get a gradient; a float target's is appended when ``target_grad``. One gradient is returned
        bare, several as a tuple (API.md)."""
        if self.mode == FORWARD:
            return _engine.forward(name, names, values, reduction, **options)
        if self.mode == MEAN_NORMALIZER:
            return _engine.mean_normalizer(name, names, values, reduction, **options)
        want = tuple(grads) + ((self.target_grad,) if self._has_target else ())
        out: Any = _ENGINE_MODES[self.mode](name, names, values, reduction, self.grad_output, want, **options)
        loss, g = (None, out) if self.mode == BACKWARD else out
        return self.result(loss, pack(g if self.target_grad else g[: len(grads)]))


_FORWARD_CALL = Call(FORWARD)
_MEAN_NORMALIZER_CALL = Call(MEAN_NORMALIZER)


def with_stats(call: Call, value: Any, stats: Dict[str, np.ndarray]) -> Any:
    """A ``return_stats=True`` result (cross_entropy, linear_cross_entropy): ``(loss, stats)``,
    ``(grads, stats)``, or ``(loss, grads, stats)`` for forward_backward."""
    return (*value, stats) if call.mode == FORWARD_BACKWARD else (value, stats)


def warn_size_mismatch(input: ArrayLike, target: ArrayLike) -> None:
    """torch's UserWarning for a target that broadcasts to a different shape (reported at the
    user's line: the warning is raised in a loss body, below its generated entry point)."""
    try:
        mismatch = np.shape(target) != np.shape(input)
    except ValueError:  # a ragged list: the conversion raises the argument's TypeError next
        return
    if mismatch:
        warnings.warn(
            f"Using a target size ({np.shape(target)}) that is different to the input size ({np.shape(input)}). "
            "This will likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=4,
        )


def no_label_grad(function: str, target_grad: bool) -> None:
    """The triplet losses have no target at all."""
    if _convert.flag(function, "target_grad", target_grad):
        raise ValueError(f"{function}: target_grad expected False (this loss has no target), got True")


_TARGET_CHECKS: Dict[str, Optional[Callable[[str, Any], None]]] = {
    "target": None,
    "body": None,
    "label": no_target_grad,
    "none": no_label_grad,
}


class Loss:
    """A loss's three generated entry points, as :data:`LOSSES` lists them, and ``keywords``: the
    names of its parameters that have a default, in order (what the classes pass on)."""

    def __init__(
        self,
        name: str,
        keywords: Tuple[str, ...],
        forward: Callable[..., Any],
        backward: Callable[..., Any],
        forward_backward: Callable[..., Any],
        impl: Callable[..., Any],
    ) -> None:
        self.name = name
        self.keywords = keywords
        self.impl = impl  # the definition, run by mean_normalizer with its own Call
        self.functions = {name: forward, name + "_backward": backward, name + "_forward_backward": forward_backward}


LOSSES: Dict[str, Loss] = {}  # in definition order: pointwise, classification, embedding, ctc, large_vocab
# The losses declared with ``@elementwise_loss``: one loss per broadcast element of (input, target),
# both differentiable, read in 16-bit in place by the element-wise driver. The engine, the
# framework adapters and losskit.dask read this set, so such a loss needs no line of its own there.
ELEMENTWISE: Set[str] = set()


_P = inspect.Parameter


def _param(name: str, kind: Any, default: Any = _P.empty, annotation: Any = _P.empty) -> inspect.Parameter:
    return _P(name, kind, default=default, annotation=annotation)


def _define(
    name: str,
    params: List[inspect.Parameter],
    call: str,
    check: Optional[Callable[[str, Any], None]],
    returns: str,
    doc: Optional[str],
    impl: Callable[..., Any],
    call_args: str,
) -> Callable[..., Any]:
    """Compile ``def name(params): check(loss, target_grad); return impl(call, call_args)`` with the
    real default objects."""
    namespace: Dict[str, Any] = {"_impl": impl, "_Call": Call, "_FORWARD_CALL": _FORWARD_CALL, "_check": check}
    rendered, star = [], False
    for p in params:
        if p.kind is _P.KEYWORD_ONLY and not star:
            rendered.append("*")
            star = True
        if p.default is _P.empty:
            rendered.append(p.name)
        else:
            namespace["_d_" + p.name] = p.default
            rendered.append(f"{p.name}=_d_{p.name}")
    body = f"    _check({impl.__name__!r}, target_grad)\n" if check is not None else ""
    source = f"def {name}({', '.join(rendered)}):\n{body}    return _impl({call}, {call_args})\n"
    exec(compile(source, f"<losskit.functional.{name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    fn.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not _P.empty}
    fn.__annotations__["return"] = returns
    fn.__doc__ = doc
    fn.__module__ = PUBLIC_MODULE
    fn.__qualname__ = name
    return fn


def loss(
    *, inputs: int, target: str, grads: str, backward: str, forward_backward: str, elementwise: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a loss's three entry points from its one definition (see the module docstring).

    ``inputs``: how many leading parameters precede ``grad_output`` in ``NAME_forward_backward``;
    ``target``: ``"target"``, ``"label"``, ``"none"`` or ``"body"``; ``grads``: the annotation of
    the gradients ``NAME_backward`` returns; ``backward``, ``forward_backward``: their docstrings;
    ``elementwise``: a loss of the element-wise registry (:data:`ELEMENTWISE`).
    Returns the forward function (``NAME``); all three are registered in :data:`LOSSES`.
    """
    if target not in _TARGET_CHECKS:
        raise ValueError(f"target expected one of {sorted(_TARGET_CHECKS)}, got {target!r}")

    def make(impl: Callable[..., Any]) -> Callable[..., Any]:
        name = impl.__name__
        params = list(inspect.signature(impl).parameters.values())[1:]  # without `call`
        if any(p.kind not in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY) for p in params) or any(
            p.kind is not _P.POSITIONAL_OR_KEYWORD for p in params[:inputs]
        ):
            raise TypeError(f"{name}: a loss takes named parameters, its first {inputs} positional")
        call_args = ", ".join(p.name if p.kind is _P.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}" for p in params)
        has_target = target == "target"
        # After the label check target_grad is known to be false; the body gets False.
        tg = "target_grad" if target in ("target", "body") else "False"
        last_kind = _P.KEYWORD_ONLY if any(p.kind is _P.KEYWORD_ONLY for p in params) else _P.POSITIONAL_OR_KEYWORD
        target_grad = _param("target_grad", last_kind, False, "bool")
        annotations = impl.__annotations__
        check = _TARGET_CHECKS[target]

        forward_fn = _define(
            name, params, "_FORWARD_CALL", None, annotations.get("return", "Any"), impl.__doc__, impl, call_args
        )
        backward_fn = _define(
            name + "_backward",
            [_param("grad_output", _P.POSITIONAL_OR_KEYWORD, annotation="ArrayLike"), *params, target_grad],
            f"_Call({BACKWARD}, grad_output, {tg}, {has_target})",
            check,
            grads,
            backward,
            impl,
            call_args,
        )
        forward_backward_fn = _define(
            name + "_forward_backward",
            [
                *params[:inputs],
                _param("grad_output", _P.POSITIONAL_OR_KEYWORD, None, "Optional[ArrayLike]"),
                *params[inputs:],
                target_grad,
            ],
            f"_Call({FORWARD_BACKWARD}, grad_output, {tg}, {has_target})",
            check,
            f"Tuple[Any, {grads}]",
            forward_backward,
            impl,
            call_args,
        )
        keywords = tuple(p.name for p in params if p.default is not _P.empty)
        LOSSES[name] = Loss(name, keywords, forward_fn, backward_fn, forward_backward_fn, impl)
        if elementwise:
            ELEMENTWISE.add(name)
            _engine.HALF_IN_PLACE.add(name)
        return forward_fn

    return make


def elementwise_loss(impl: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`loss` for a loss of the element-wise registry (``LOSSKIT_REGISTERED_POINTWISE``):
    ``(input, target)``, both differentiable, the gradients' docstrings written from its name."""
    name = impl.__name__
    return loss(
        inputs=2,
        target="target",
        grads="Gradients",
        backward=f"Gradient of :func:`{name}`: ``grad_input``, or ``(grad_input, grad_target)``.",
        forward_backward=f":func:`{name}` and :func:`{name}_backward` in one fused pass.",
        elementwise=True,
    )(impl)


def mean_normalizer(name: str, *inputs: Any, **kwargs: Any) -> float:
    r"""The divisor that ``reduction='mean'`` (``'batchmean'`` for :func:`kl_div`) uses for this
    call of the loss ``name``, without computing the loss.

    ``inputs`` and ``kwargs`` are the loss's own arguments (``mean_normalizer("cross_entropy", x, t,
    weight=w, ignore_index=0)``); every check of the loss runs (class indices too). With
    :math:`D` this divisor and :math:`\sum_n l_n` the summed losses of the call,

    .. math:: \ell_\text{mean} = \frac{1}{D} \sum_n l_n,\qquad
        \ell(\text{normalizer}=Z) = \frac{1}{Z} \sum_n l_n

    so for a batch cut into parts :math:`B_1, \dots, B_K` (micro-batches, or processes),
    :math:`\sum_k \ell(B_k, \text{normalizer}=\sum_j D(B_j))` is the whole batch's mean, and so
    are the summed gradients. :math:`D` is the number of elements of the (broadcast) loss; the sum
    of the class weights of the counted targets for ``cross_entropy`` / ``nll_loss`` /
    ``linear_cross_entropy`` with class indices (their number without weights; ignored targets
    do not count), the number of positions for probability targets; the weight sum for ``l1_loss``
    and ``mse_loss`` with ``weight`` (``huber_loss`` and ``binary_cross_entropy`` keep the element
    count, as torch does); the batch size for ``kl_div``'s ``'batchmean'``, for ``ctc_loss`` (whose
    ``'mean'`` first divides each sample by its target length) and for the row losses
    (margins, ``multilabel_soft_margin_loss``, the embedding losses). It is computed by the
    C++ core on the loss's own code path, so it is bitwise the divisor the loss uses; weights are
    summed in double. ``reduction`` other than ``'mean'``/``'batchmean'`` raises ValueError.

    >>> x, t = np.zeros((4, 3)), np.array([0, 2, -100, 1])
    >>> mean_normalizer("cross_entropy", x, t, weight=np.array([1.0, 2.0, 4.0]))
    7.0
    >>> total = mean_normalizer("cross_entropy", x[:1], t[:1]) + mean_normalizer("cross_entropy", x[1:], t[1:])
    >>> parts = cross_entropy(x[:1], t[:1], normalizer=total) + cross_entropy(x[1:], t[1:], normalizer=total)
    >>> bool(np.isclose(parts, cross_entropy(x, t)))
    True
    """
    fn = "mean_normalizer"
    loss_def = LOSSES.get(name) if isinstance(name, str) else None
    if loss_def is None:
        raise ValueError(f"{fn}: name expected one of {sorted(LOSSES)}, got {name!r}")
    if "normalizer" in kwargs:
        raise TypeError(
            f"{fn}: normalizer is not an argument here (mean_normalizer returns the divisor that a normalizer replaces)"
        )
    return float(loss_def.impl(_MEAN_NORMALIZER_CALL, *inputs, **kwargs))


mean_normalizer.__module__ = PUBLIC_MODULE
