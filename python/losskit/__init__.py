"""losskit: every PyTorch loss function, forward and backward, in a C++17 core for NumPy.

>>> import numpy as np, losskit
>>> crit = losskit.MSELoss()
>>> loss, grad = crit.forward_backward(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
>>> float(loss), grad.tolist()
(2.5, [1.0, 2.0])
"""

from __future__ import annotations

from . import _core, functional
from ._core import IndexError, get_num_threads, set_num_threads
from ._paths import get_cmake_dir, get_include
from ._version import __version__ as __version__  # re-exported: the one version
from .modules import (
    BCELoss,
    BCEWithLogitsLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MarginRankingLoss,
    MSELoss,
    PoissonNLLLoss,
    SmoothL1Loss,
    SoftMarginLoss,
    # classification classes
    CrossEntropyLoss,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    # embedding classes
    CosineEmbeddingLoss,
    TripletMarginLoss,
    TripletMarginWithDistanceLoss,
    # ctc classes
    CTCLoss,
    # large_vocab classes
    AdaptiveLogSoftmaxWithLoss,
    LinearCrossEntropyLoss,
    # contrastive classes
    InfoNCELoss,
    # segmentation classes
    DiceLoss,
    TverskyLoss,
    # detection classes
    CompleteBoxIoULoss,
    DistanceBoxIoULoss,
    GeneralizedBoxIoULoss,
    # beyond torch.nn: classification classes
    Poly1CrossEntropyLoss,
    SoftmaxFocalLoss,
    # registered element-wise classes
    LogCoshLoss,
    MSLELoss,
    PseudoHuberLoss,
    SigmoidFocalLoss,
)


def cpu_target() -> str:
    """The instruction set chosen at import: ``"avx512"``, ``"avx2"`` or ``"baseline"``
    (``LOSSKIT_CPU_TARGET`` forces a lower one)."""
    return _core.cpu_target()


__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "IndexError",
    "KLDivLoss",
    "L1Loss",
    "MSELoss",
    "MarginRankingLoss",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    # classification names
    "CrossEntropyLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    # embedding names
    "CosineEmbeddingLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    # ctc names
    "CTCLoss",
    # large_vocab names
    "AdaptiveLogSoftmaxWithLoss",
    "LinearCrossEntropyLoss",
    # contrastive names
    "InfoNCELoss",
    # segmentation names
    "DiceLoss",
    "TverskyLoss",
    # detection names
    "CompleteBoxIoULoss",
    "DistanceBoxIoULoss",
    "GeneralizedBoxIoULoss",
    # beyond torch.nn: classification names
    "Poly1CrossEntropyLoss",
    "SoftmaxFocalLoss",
    # registered element-wise names
    "LogCoshLoss",
    "MSLELoss",
    "PseudoHuberLoss",
    "SigmoidFocalLoss",
    "cpu_target",
    "functional",
    "get_cmake_dir",
    "get_include",
    "get_num_threads",
    "set_num_threads",
]
