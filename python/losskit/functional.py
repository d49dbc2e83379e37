r"""Every loss of ``torch.nn.functional`` (PyTorch 2.13) for NumPy arrays, forward and backward.

Each loss ``NAME`` comes with

* ``NAME(*inputs, **kwargs)``: torch's arguments, defaults and meaning; returns a NumPy scalar for
  reduced losses and an array for ``reduction='none'``;
* ``NAME_backward(grad_output, *inputs, **kwargs, target_grad=False)``: the gradient that
  ``torch.autograd`` gives for the same call (``grad_output=None`` means 1, or ones);
* ``NAME_forward_backward(*inputs, grad_output=None, target_grad=False, **kwargs)``: both, from
  one fused pass over the data: ``(loss, gradients)``.

Notation follows torch's documentation: :math:`x` the input, :math:`y` the target, :math:`w` a
weight, :math:`N` the number of elements (or the batch size), and

.. math::
    \ell(x, y) = L = \{l_1,\dots,l_N\}^\top,\qquad
    \ell(x, y) = \begin{cases} L & \text{reduction='none'}\\
    \operatorname{mean}(L) & \text{reduction='mean'}\\ \operatorname{sum}(L) & \text{reduction='sum'}
    \end{cases}

Every loss with a ``'mean'`` reduction also takes ``normalizer=None`` (keyword-only): given, ``'mean'``
(and ``'batchmean'``) divide by it instead of their own divisor, which :func:`mean_normalizer`
returns without computing the loss. Summing ``NAME(part, normalizer=Z)`` over the parts of a batch,
with ``Z`` the sum of the parts' ``mean_normalizer``, gives the whole batch's mean and gradients
(gradient accumulation, several processes: docs/training.md).

The mean of an empty input is NaN and its sum 0, as in torch. Reduced values are accumulated in
double in a fixed blocked order, so they are bitwise the same on any number of threads (and a
float32 result can be more exact than torch's float32 one).
"""

# The losses are defined in losskit/_functional/, one module per family as in cpp/src/<family>
# (pointwise, classification, embedding, ctc, large_vocab). Each is written once, with torch's
# parameters; losskit/_functional/_spec.py makes its NAME, NAME_backward and NAME_forward_backward
# from that one definition, and they are bound here, where users and the doctests find them.
# Static type checkers read functional.pyi, generated from these functions
# (python -m losskit._functional._stubs; tests/test_functional_layout.py keeps it current).

from __future__ import annotations

# Names this module has always held besides the losses (the doctests run in its namespace).
import warnings  # noqa: F401
from typing import Any, Optional, Tuple, Union  # noqa: F401

import numpy as np  # noqa: F401

from ._engine import no_target_grad, pack  # noqa: F401
from ._functional._spec import ArrayLike, Gradients  # noqa: F401
from ._functional import _spec
from ._functional._spec import mean_normalizer  # noqa: F401

for _loss in _spec.LOSSES.values():
    globals().update(_loss.functions)
del _loss, _spec
