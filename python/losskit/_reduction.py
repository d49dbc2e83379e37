"""The one home of reduction names and of torch's legacy ``size_average``/``reduce`` flags."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Optional

import numpy as np

_LEGACY_WARNING = "size_average and reduce args will be deprecated, please use reduction='{}' instead."


def _legacy_flag(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, (bool, np.bool_, numbers.Integral)):
        raise TypeError(f"{name} expected None or a bool, got {type(value).__name__}")


def legacy_to_reduction(size_average: Optional[bool], reduce: Optional[bool]) -> str:
    """torch's mapping of the deprecated flags to a reduction name, with torch's UserWarning."""
    _legacy_flag("size_average", size_average)
    _legacy_flag("reduce", reduce)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        name = "mean"
    elif reduce:
        name = "sum"
    else:
        name = "none"
    warnings.warn(_LEGACY_WARNING.format(name), UserWarning, stacklevel=3)
    return name


def parse(size_average: Optional[bool], reduce: Optional[bool], reduction: str) -> str:
    """The reduction in force: the legacy flags win when either is given, as in torch.

    The name itself is validated by the C++ core, which names the function in its error.
    """
    if size_average is not None or reduce is not None:
        return legacy_to_reduction(size_average, reduce)
    if not isinstance(reduction, str):
        raise TypeError(f"reduction expected a string, got {type(reduction).__name__}")
    return reduction
