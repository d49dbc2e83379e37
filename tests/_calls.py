"""A small valid call of every public loss of losskit.functional, shared by the fuzz campaign
(tests/fuzz/) and the leak check (tests/test_leaks.py): BASE[name] is (positional inputs,
keywords) for ``losskit.functional.<name>``; ``<name>_backward`` takes a grad_output first and
``<name>_forward_backward`` the same inputs."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Tuple

import numpy as np

import losskit.functional as F

_r = np.random.default_rng(0)
X = _r.standard_normal((3, 4))
Y = _r.standard_normal((3, 4))
P = _r.uniform(0.1, 0.9, (3, 4))
SIGNS = np.sign(_r.standard_normal((3, 4)))
T = np.array([0, 3, 1])
LP = np.log(np.full((5, 3, 4), 0.25))
BOXES1 = np.array([[0.0, 0, 2, 2], [1, 1, 3, 4], [0, 0, 1, 1]])
BOXES2 = np.array([[1.0, 1, 3, 3], [1, 1, 3, 4], [2, 2, 3, 5]])


def manhattan(x1: Any, x2: Any) -> Any:
    d = x1 - x2
    return np.abs(d).sum(-1), lambda g: (np.sign(d) * np.expand_dims(g, -1), -np.sign(d) * np.expand_dims(g, -1))


# A valid call of every loss (its positional inputs and keywords).
BASE: Dict[str, Tuple[Tuple[Any, ...], Dict[str, Any]]] = {
    "l1_loss": ((X, Y), {"weight": P}),
    "mse_loss": ((X, Y), {}),
    "huber_loss": ((X, Y), {"delta": 0.5}),
    "smooth_l1_loss": ((X, Y), {"beta": 0.5}),
    "soft_margin_loss": ((X, SIGNS), {}),
    "binary_cross_entropy": ((P, P), {"weight": P[0]}),
    "binary_cross_entropy_with_logits": ((X, P), {"pos_weight": P[0]}),
    "poisson_nll_loss": ((X, np.abs(Y)), {"log_input": True, "full": True, "eps": 1e-6}),
    "gaussian_nll_loss": ((X, Y, P), {"full": True, "eps": 1e-6}),
    "kl_div": ((np.log(P), P), {"log_target": False, "reduction": "batchmean"}),
    "margin_ranking_loss": ((X[0], Y[0], SIGNS[0]), {"margin": 0.5}),
    "hinge_embedding_loss": ((X, SIGNS), {"margin": 1.0}),
    "cross_entropy": ((X, T), {"weight": P[0], "ignore_index": 1, "label_smoothing": 0.1}),
    "nll_loss": ((X, T), {"weight": P[0], "ignore_index": 1}),
    "multi_margin_loss": ((X, T), {"p": 2, "margin": 0.5, "weight": P[0]}),
    "multilabel_margin_loss": ((X, np.array([[0, 1, -1, 0], [3, -1, 0, 0], [1, 2, 3, 0]])), {}),
    "multilabel_soft_margin_loss": ((X, (P > 0.5).astype(float)), {"weight": P[0]}),
    "cosine_embedding_loss": ((X, Y, SIGNS[:, 0]), {"margin": 0.1}),
    "triplet_margin_loss": ((X, Y, P), {"margin": 1.0, "p": 2, "eps": 1e-6, "swap": True}),
    "triplet_margin_with_distance_loss": ((X, Y, P), {"distance_function": "cosine", "margin": 1.0, "swap": True}),
    "ctc_loss": (
        (LP, np.array([[1, 2], [3, 3], [1, 0]]), np.array([5, 5, 4]), np.array([2, 2, 1])),
        {"blank": 0, "zero_infinity": True},
    ),
    "linear_cross_entropy": (
        (X, _r.standard_normal((5, 4)), T),
        {
            "linear_bias": P[0, :1].repeat(5),
            "weight": np.ones(5),
            "ignore_index": 1,
            "label_smoothing": 0.1,
            "chunk_size": 2,
        },
    ),
    "info_nce_loss": ((X, Y), {"temperature": 0.5, "symmetric": True, "normalize": True, "block_size": 2}),
    # segmentation
    "dice_loss": (
        (X.reshape(2, 3, 2), np.array([[0, 2], [1, 1]])),
        {"to_onehot_y": True, "softmax": True, "jaccard": True, "weight": P[0, :2], "include_background": False},
    ),
    "tversky_loss": ((P.reshape(2, 3, 2), P.reshape(2, 3, 2)[::-1].copy()), {"alpha": 0.3, "beta": 0.7, "batch": True}),
    # detection
    "generalized_box_iou_loss": ((BOXES1, BOXES2), {"reduction": "mean", "eps": 1e-7}),
    "distance_box_iou_loss": ((BOXES1, BOXES2), {"reduction": "mean", "eps": 1e-3}),
    "complete_box_iou_loss": ((BOXES1, BOXES2), {"reduction": "mean", "eps": 1e-7}),
    # beyond torch.nn: classification
    "softmax_focal_loss": ((X, T), {"gamma": 1.5, "alpha": P[0], "ignore_index": 1}),
    "poly1_cross_entropy": ((X, T), {"epsilon": 0.5, "weight": P[0], "ignore_index": 1, "label_smoothing": 0.1}),
    # registered element-wise losses
    "log_cosh_loss": ((X, Y), {}),
    "pseudo_huber_loss": ((X, Y), {"delta": 0.5}),
    "msle_loss": ((P, np.abs(Y)), {}),
    "sigmoid_focal_loss": ((X, P), {"alpha": -1.0, "gamma": 0.5, "reduction": "mean"}),
}


def public_functions() -> Dict[str, Callable[..., Any]]:
    """Every public function of losskit.functional (the losses and their backward/fused forms);
    mean_normalizer, a query over the losses' arguments, is tested in tests/test_normalizer.py."""
    return {
        n: f
        for n, f in vars(F).items()
        if not n.startswith("_") and inspect.isfunction(f) and f.__module__ == F.__name__ and n != "mean_normalizer"
    }


def entry_points(name: str) -> Tuple[str, ...]:
    return (name, name + "_backward", name + "_forward_backward")


def call(fname: str, name: str) -> Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]:
    """(function, args, kwargs) of entry point `fname` of loss `name` on its BASE inputs."""
    args, kwargs = BASE[name]
    if fname.endswith("_backward") and not fname.endswith("_forward_backward"):
        args = (None,) + tuple(args)
    return getattr(F, fname), tuple(args), dict(kwargs)
