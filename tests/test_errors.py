"""Bad input: a clear ValueError/TypeError naming the argument, raised by the C++ core before any
work. One table row per case: (function, args, kwargs, exception, message regex)."""

from __future__ import annotations

import numpy as np
import pytest

import losskit
import losskit.functional as F

x = np.ones((3, 4))
y = np.zeros((3, 4))
p = np.full((3, 4), 0.5)

CASES = [
    (F.mse_loss, (x, np.ones((2, 4))), {}, ValueError, r"mse_loss: target expected a shape broadcastable"),
    (
        F.mse_loss,
        (x, y),
        {"reduction": "avg"},
        ValueError,
        r"mse_loss: reduction expected one of 'none', 'mean', 'sum', got 'avg'",
    ),
    (F.mse_loss, (x, y), {"reduction": "batchmean"}, ValueError, r"reduction expected one of 'none', 'mean', 'sum'"),
    (
        F.mse_loss,
        (x, y),
        {"weight": np.ones(4)},
        ValueError,
        r"mse_loss: weight expected the input's shape \(3, 4\), got \(4,\)",
    ),
    (F.l1_loss, (x + 1j, y), {}, TypeError, r"l1_loss: input expected a real .* got complex128"),
    (F.l1_loss, (x, np.array([["a"] * 4] * 3)), {}, TypeError, r"l1_loss: target expected a real"),
    (F.l1_loss, (np.array([object()]), np.ones(1)), {}, TypeError, r"l1_loss: input expected a real"),
    (F.huber_loss, (x, y), {"delta": 0.0}, ValueError, r"huber_loss: delta expected a positive number"),
    (F.smooth_l1_loss, (x, y), {"beta": -1.0}, ValueError, r"smooth_l1_loss: beta expected a non-negative number"),
    (
        F.binary_cross_entropy,
        (x * 2, p),
        {},
        ValueError,
        r"binary_cross_entropy: input expected all elements between 0 and 1",
    ),
    (F.binary_cross_entropy, (np.full(3, np.nan), np.ones(3)), {}, ValueError, r"between 0 and 1"),
    (
        F.binary_cross_entropy,
        (p, np.ones(4)),
        {},
        ValueError,
        r"binary_cross_entropy: target expected the input's shape",
    ),
    # torch 2.13 checks the target's range too, before the input's (found by the fuzz campaign)
    (
        F.binary_cross_entropy,
        (p, p * 3),
        {},
        ValueError,
        r"binary_cross_entropy: target expected all elements between 0 and 1",
    ),
    (
        F.binary_cross_entropy_forward_backward,
        (p, np.full((3, 4), np.nan)),
        {},
        ValueError,
        r"target expected all elements between 0 and 1",
    ),
    (
        F.binary_cross_entropy_backward,
        (1.0, p * 3, -p),
        {},
        ValueError,
        r"binary_cross_entropy: target expected all elements",
    ),
    (F.binary_cross_entropy, (p, p), {"weight": np.ones(3)}, ValueError, r"weight expected a shape broadcastable"),
    (F.binary_cross_entropy_with_logits, (x, p), {"pos_weight": np.ones(3)}, ValueError, r"pos_weight"),
    (F.binary_cross_entropy_with_logits, (x, p[:2]), {}, ValueError, r"target expected the input's shape"),
    (F.gaussian_nll_loss, (x, y, -np.ones((3, 4))), {}, ValueError, r"gaussian_nll_loss: var expected non-negative"),
    (F.gaussian_nll_loss, (x, y, -1.0), {}, ValueError, r"var expected non-negative"),
    (
        F.gaussian_nll_loss,
        (x, y, np.ones((2, 4))),
        {},
        ValueError,
        r"gaussian_nll_loss: var expected the input's shape",
    ),
    (F.gaussian_nll_loss, (x, y, np.ones(4)), {"reduction": "batchmean"}, ValueError, r"reduction"),
    (
        F.gaussian_nll_loss,
        (x, y, np.array(1.0)),
        {},
        ValueError,
        r"gaussian_nll_loss: var expected the input's shape \(3, 4\), .* \(a 0-d var array goes only with a 0-d or "
        r"1-d input; a scalar var is a float\), got \(\)",
    ),
    (F.gaussian_nll_loss_backward, (1.0, x, y, np.array(1.0)), {}, ValueError, r"gaussian_nll_loss: var expected"),
    (
        F.gaussian_nll_loss_forward_backward,
        (x, y, np.array(1.0)),
        {"reduction": "none"},
        ValueError,
        r"gaussian_nll_loss: var expected",
    ),
    (F.gaussian_nll_loss, (x, y, np.ones((1, 1))), {}, ValueError, r"gaussian_nll_loss: var expected .*, got \(1, 1\)"),
    (F.gaussian_nll_loss, (x, y, np.ones((1, 4, 1))), {}, ValueError, r"gaussian_nll_loss: var expected"),
    (
        F.gaussian_nll_loss,
        (np.array(0.5), np.array(0.5), np.ones(1)),
        {},
        ValueError,
        r"gaussian_nll_loss: var expected the input's shape \(\), .*got \(1,\)",
    ),
    (
        F.gaussian_nll_loss,
        (np.ones(4), np.ones(4), np.ones((4, 1))),
        {},
        ValueError,
        r"gaussian_nll_loss: var expected",
    ),
    (
        F.gaussian_nll_loss,
        (x, y, np.ones((0, 1))),
        {"reduction": "none"},
        ValueError,
        r"gaussian_nll_loss: var expected a shape broadcastable to input's \(3, 4\), got \(0, 1\)",
    ),
    (
        F.multi_margin_loss,
        (np.array(0.5), np.array([0, 0])),
        {},
        ValueError,
        r"multi_margin_loss: target expected one class index, shape \(\) or \(1,\), got shape \(2,\)",
    ),
    (
        F.multi_margin_loss,
        (np.array(0.5), np.array([[0]])),
        {},
        ValueError,
        r"multi_margin_loss: target expected one class index",
    ),
    (
        F.multi_margin_loss,
        (np.array(0.5), np.array(1)),
        {},
        ValueError,
        r"multi_margin_loss: target expected class indices in \[0, 1\), got 1",
    ),
    (
        F.multi_margin_loss,
        (np.array(0.5), np.array(0)),
        {"weight": np.ones(2)},
        ValueError,
        r"multi_margin_loss: weight expected .* shape \(1,\), got shape \(2,\)",
    ),
    (
        F.multi_margin_loss_backward,
        (1.0, x, np.array([0])),
        {},
        ValueError,
        r"multi_margin_loss: target expected class indices of shape \(3,\), got shape \(1,\)",
    ),
    (
        F.multilabel_margin_loss,
        (np.array(0.5), np.array([0, -1])),
        {},
        ValueError,
        r"multilabel_margin_loss: target expected one entry \(a class index or -1\), "
        r"shape \(\) or \(1,\), got shape \(2,\)",
    ),
    (
        F.multilabel_margin_loss_forward_backward,
        (np.array(0.5), np.array([[0]])),
        {},
        ValueError,
        r"multilabel_margin_loss: target expected one entry",
    ),
    (
        F.multilabel_margin_loss,
        (np.ones(4), np.array(0)),
        {},
        ValueError,
        r"multilabel_margin_loss: target expected the input's shape \(4,\), got shape \(\)",
    ),
    (
        F.multilabel_margin_loss,
        (np.ones((1, 1)), np.array([0])),
        {},
        ValueError,
        r"multilabel_margin_loss: target expected the input's shape \(1, 1\), got \(1,\)",
    ),
    (
        F.multilabel_margin_loss,
        (np.array(0.5), np.array(1)),
        {},
        ValueError,
        r"multilabel_margin_loss: target expected class indices in \[0, 1\) or -1 padding, got 1",
    ),
    (
        F.kl_div,
        (x, y),
        {"reduction": "max"},
        ValueError,
        r"kl_div: reduction expected one of 'none', 'mean', 'sum', 'batchmean'",
    ),
    (F.margin_ranking_loss, (x, x[0], y), {}, ValueError, r"margin_ranking_loss: .* same number of dimensions"),
    (F.mse_loss_backward, (np.ones(3), x, y), {}, ValueError, r"mse_loss: grad_output expected a scalar"),
    (
        F.mse_loss_backward,
        (np.ones(3), x, y),
        {"reduction": "none"},
        ValueError,
        r"mse_loss: grad_output expected shape \(3, 4\)",
    ),
    # a reduced loss takes a 0-d grad_output only, as torch.autograd (a (1,) array was accepted)
    (
        F.mse_loss_backward,
        (np.ones(1), x, y),
        {},
        ValueError,
        r"mse_loss: grad_output expected a scalar .*got shape \(1,\)",
    ),
    (
        F.triplet_margin_loss_backward,
        (np.ones((1, 1)), x, y, p),
        {},
        ValueError,
        r"triplet_margin_loss: grad_output expected a scalar",
    ),
    (
        F.ctc_loss_backward,
        (np.ones(1), np.zeros((2, 1, 3)), np.array([[1]]), [2], [1]),
        {},
        ValueError,
        r"ctc_loss: grad_output expected a scalar",
    ),
    (F.soft_margin_loss_backward, (1.0, x, y), {"target_grad": True}, ValueError, r"soft_margin_loss: target_grad"),
    (F.mse_loss, (x, y), {"reduction": 3}, TypeError, r"reduction expected a string"),
    # arguments of the wrong kind: a TypeError (or ValueError) naming the argument, not float()'s,
    # NumPy's or pybind11's own message (or an AttributeError / RuntimeError)
    (F.huber_loss, (x, y), {"delta": None}, TypeError, r"huber_loss: delta expected a real number, got NoneType"),
    (
        F.margin_ranking_loss,
        (x, y, p),
        {"margin": "1"},
        TypeError,
        r"margin_ranking_loss: margin expected a real number, got str",
    ),
    (
        F.triplet_margin_loss,
        (x, y, p),
        {"eps": np.ones(2)},
        TypeError,
        r"triplet_margin_loss: eps expected a real number",
    ),
    (F.triplet_margin_loss, (x, y, p), {"swap": np.ones(2)}, TypeError, r"triplet_margin_loss: swap expected a bool"),
    (F.poisson_nll_loss, (x, y), {"full": "yes"}, TypeError, r"poisson_nll_loss: full expected a bool"),
    (F.mse_loss_backward, (None, x, y), {"target_grad": "yes"}, TypeError, r"mse_loss: target_grad expected a bool"),
    (
        F.cross_entropy,
        (x, np.array([0, 1, 2])),
        {"ignore_index": 2**70},
        ValueError,
        r"cross_entropy: ignore_index expected an integer in the int64 range",
    ),
    (
        F.nll_loss,
        (x, np.array([0, 1, 2])),
        {"ignore_index": 1.5},
        TypeError,
        r"nll_loss: ignore_index expected an integer",
    ),
    (
        F.ctc_loss,
        (np.zeros((2, 1, 3)), np.array([[1]]), [2], [1]),
        {"blank": 2**64},
        ValueError,
        r"ctc_loss: blank expected an integer in the int64 range",
    ),
    (
        F.linear_cross_entropy,
        (x, np.ones((5, 4)), np.array([0, 1, 2])),
        {"chunk_size": "a"},
        TypeError,
        r"chunk_size expected a positive number",
    ),
    (F.l1_loss, (None, y), {}, TypeError, r"l1_loss: input expected an array, got None"),
    (F.l1_loss, ([[1.0, 2.0], [3.0]], y), {}, TypeError, r"l1_loss: input expected a real array"),
    (F.l1_loss, (x, y), {"size_average": np.ones(2)}, TypeError, r"size_average expected None or a bool"),
    (F.triplet_margin_with_distance_loss, (x, y, p), {"reduction": None}, TypeError, r"reduction expected a string"),
    (F.kl_div, (x, y), {"reduction": np.ones(2)}, TypeError, r"reduction expected a string"),
    # constructors of the classes that own parameters (and MultiMarginLoss's p check)
    (
        losskit.LinearCrossEntropyLoss,
        (4, 5),
        {"label_smoothing": None},
        TypeError,
        r"LinearCrossEntropyLoss: label_smoothing expected a real number",
    ),
    (
        losskit.LinearCrossEntropyLoss,
        ("x", 5),
        {},
        TypeError,
        r"LinearCrossEntropyLoss: in_features expected an integer",
    ),
    (losskit.LinearCrossEntropyLoss, (4, -5), {}, ValueError, r"num_classes expected a non-negative integer"),
    (losskit.LinearCrossEntropyLoss, (4, 5), {"dtype": "x"}, TypeError, r"dtype expected float32 or float64"),
    (losskit.LinearCrossEntropyLoss, (4, 5), {"rng": "x"}, TypeError, r"rng expected None or a numpy.random.Generator"),
    (losskit.LinearCrossEntropyLoss, (4, 5), {"device": np.ones(2)}, ValueError, r"device expected None or 'cpu'"),
    (
        losskit.AdaptiveLogSoftmaxWithLoss,
        (4, 10, [3, 6]),
        {"div_value": 0},
        ValueError,
        r"div_value expected a positive number",
    ),
    (losskit.AdaptiveLogSoftmaxWithLoss, (4, 10, 3), {}, TypeError, r"cutoffs expected a sequence of integers"),
    (losskit.MultiMarginLoss, (), {"p": np.ones(2)}, TypeError, r"MultiMarginLoss: p expected a real number"),
    # segmentation (tests/test_segmentation.py has the full table)
    (F.dice_loss, (x, y), {}, ValueError, r"dice_loss: input expected an \(N, C, d1, ..., dK\) array with K >= 1"),
    (
        F.dice_loss,
        (p[None], p[None]),
        {"sigmoid": True, "softmax": True},
        ValueError,
        r"dice_loss: softmax expected False",
    ),
    (F.tversky_loss, (p[None], np.zeros((1, 3), np.int64)), {"to_onehot_y": True}, ValueError, r"tversky_loss: target"),
    (
        F.tversky_loss,
        (p[None], np.full((1, 4), 3)),
        {"to_onehot_y": True},
        IndexError,
        r"tversky_loss: target expected",
    ),
    (F.dice_loss, (p[None], p[None]), {"weight": -np.ones(3)}, ValueError, r"dice_loss: weight expected non-negative"),
    # beyond torch.nn: classification
    (
        F.softmax_focal_loss,
        (x, np.array([0, 1, 2])),
        {"gamma": -0.5},
        ValueError,
        r"softmax_focal_loss: gamma expected a finite value >= 0, got -0.5",
    ),
    (
        F.softmax_focal_loss,
        (x, np.array([0, 1, 2])),
        {"alpha": np.ones(3)},
        ValueError,
        r"softmax_focal_loss: alpha expected a weight for each of the 4 classes",
    ),
    (
        F.poly1_cross_entropy,
        (x, np.array([0, 1, 2])),
        {"epsilon": float("nan")},
        ValueError,
        r"poly1_cross_entropy: epsilon expected a finite value, got nan",
    ),
    (
        F.poly1_cross_entropy,
        (x, p),
        {"ignore_index": 2},
        ValueError,
        r"poly1_cross_entropy: ignore_index expected a negative value with class-probability targets",
    ),
]


@pytest.mark.parametrize("fn,args,kwargs,exc,match", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_bad_input(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("where", [0, 300_000, -1])
def test_gaussian_nll_var_check_finds_one_negative_entry_in_any_threads_part(threads, where):
    """The var pre-pass runs on the loss's threads (each part of 2^18 entries or more): one
    negative entry anywhere, in the first, a middle or the last thread's part, is found."""
    import losskit

    losskit.set_num_threads(threads)
    n = 1 << 20
    x = np.zeros(n, np.float32)
    var = np.ones(n, np.float32)
    F.gaussian_nll_loss(x, x, var)  # all non-negative: no error
    var[where] = -0.5
    with pytest.raises(ValueError, match=r"gaussian_nll_loss: var expected non-negative entries, got a negative entry"):
        F.gaussian_nll_loss(x, x, var)
    var[where] = -0.0  # -0 is not negative
    F.gaussian_nll_loss(x, x, var)
