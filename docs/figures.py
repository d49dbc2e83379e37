"""Draw the documentation figures from losskit itself, so they never drift from the code.

    pip install matplotlib            # not a CI dependency
    python docs/figures.py            # writes docs/figures/*.png
    python docs/figures.py --out DIR  # elsewhere (tests/test_figures.py does this)
    python docs/figures.py huber_family bce_clamp   # only some

Every value and every gradient plotted comes from ``losskit.functional.<name>_forward_backward``
with ``reduction='none'`` (gradients with ``grad_output`` = ones), never from a formula written
again here. Each figure is one function registered with ``@figure``; a loss family adds its own
(``cross_entropy``, ``triplet_margin`` ...) the same way, and the family page links
``figures/<name>.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import losskit.functional as F  # noqa: E402

FIGURES: Dict[str, Callable[[], Figure]] = {}


def figure(fn: Callable[[], Figure]) -> Callable[[], Figure]:
    """Register a figure: the PNG is named after the function."""
    FIGURES[fn.__name__] = fn
    return fn


def loss_and_grad(name: str, *inputs: np.ndarray, **kwargs: object) -> Tuple[np.ndarray, np.ndarray]:
    """Per-element loss and the gradient w.r.t. the first input, from losskit."""
    loss, grads = getattr(F, name + "_forward_backward")(*inputs, reduction="none", **kwargs)
    grad = grads[0] if isinstance(grads, tuple) else grads
    return np.asarray(loss), np.asarray(grad)


def two_panels(title: str) -> Tuple[Figure, Axes, Axes]:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    fig.suptitle(title)
    left.set_ylabel("loss $l_n$")
    right.set_ylabel(r"gradient $\partial l_n / \partial x_n$")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.axhline(0, color="black", lw=0.6)
    return fig, left, right


def plot_curves(
    title: str,
    x: np.ndarray,
    xlabel: str,
    curves: Sequence[Tuple[str, np.ndarray, np.ndarray]],
    styles: Sequence[Dict[str, object]] = (),
) -> Figure:
    """Loss (left) and gradient (right) of each curve against x; styles[i] goes to plot()."""
    fig, left, right = two_panels(title)
    for i, (label, loss, grad) in enumerate(curves):
        style = dict(styles[i]) if i < len(styles) else {}
        left.plot(x, loss, label=label, **style)  # type: ignore[arg-type]
        right.plot(x, grad, label=label, **style)  # type: ignore[arg-type]
    for ax in (left, right):
        ax.set_xlabel(xlabel)
    left.legend(fontsize=8)
    return fig


X = np.linspace(-3.0, 3.0, 1201)  # the input; targets are 0 unless stated
ZERO = np.zeros_like(X)


@figure
def regression() -> Figure:
    """l1, mse, smooth_l1 (beta=1) and huber (delta=1) against x - y."""
    curves = [
        ("l1_loss", *loss_and_grad("l1_loss", X, ZERO)),
        ("mse_loss", *loss_and_grad("mse_loss", X, ZERO)),
        ("smooth_l1_loss (beta=1)", *loss_and_grad("smooth_l1_loss", X, ZERO, beta=1.0)),
        ("huber_loss (delta=1)", *loss_and_grad("huber_loss", X, ZERO, delta=1.0)),
    ]
    fig = plot_curves(
        "L1, MSE, SmoothL1 and Huber (target 0; SmoothL1 = Huber at beta = delta = 1)",
        X,
        "input $x$ ($y = 0$)",
        curves,
        [{}, {}, {"lw": 3, "alpha": 0.5}, {"ls": "--"}],
    )
    fig.axes[0].set_ylim(-0.2, 4.5)
    return fig


@figure
def huber_family() -> Figure:
    """SmoothL1 and Huber for several beta/delta: Huber = delta * SmoothL1(beta=delta)."""
    curves, styles = [], []
    for width, color in ((0.5, "C0"), (1.0, "C1"), (2.0, "C2")):
        curves.append((f"smooth_l1 beta={width}", *loss_and_grad("smooth_l1_loss", X, ZERO, beta=width)))
        curves.append((f"huber delta={width}", *loss_and_grad("huber_loss", X, ZERO, delta=width)))
        styles += [{"color": color}, {"color": color, "ls": "--"}]
    return plot_curves(
        "SmoothL1 (solid, gradient clipped at 1) vs Huber (dashed, clipped at delta)",
        X,
        "input $x$ ($y = 0$)",
        curves,
        styles,
    )


@figure
def bce_clamp() -> Figure:
    """BCE on sigmoid(z) against BCE-with-logits on z, target 1, in float32: BCE's log is clamped
    at -100 once sigmoid(z) underflows, and its gradient through the sigmoid vanishes there; the
    logits form stays linear with gradient sigmoid(z) - 1."""
    z = np.linspace(-130.0, 8.0, 2000).astype(np.float32)
    one = np.ones_like(z)
    p = (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)
    bce, dbce_dp = loss_and_grad("binary_cross_entropy", p, one)
    logits, dlogits = loss_and_grad("binary_cross_entropy_with_logits", z, one)
    dbce_dz = dbce_dp.astype(np.float64) * p * (1.0 - p)  # chain rule through sigmoid, for the plot
    return plot_curves(
        "BCE(sigmoid(z)) vs BCE-with-logits(z), target 1, float32",
        z,
        "logit $z$",
        [
            (
                "binary_cross_entropy(sigmoid(z)): log clamped at -100;\n"
                "gradient (chain rule) vanishes once p(1-p) < 1e-12",
                bce,
                dbce_dz,
            ),
            ("binary_cross_entropy_with_logits(z)", logits, dlogits),
        ],
    )


@figure
def binary_cross_entropy() -> Figure:
    """BCE against the probability p for targets 0, 0.3 and 1."""
    p = np.linspace(0.0, 1.0, 1001)
    curves = [(f"target {t}", *loss_and_grad("binary_cross_entropy", p, np.full_like(p, t))) for t in (0.0, 0.3, 1.0)]
    fig = plot_curves(
        "binary_cross_entropy (log clamped at -100, gradient denominator >= 1e-12)", p, "input probability $x$", curves
    )
    fig.axes[1].set_ylim(-30, 30)
    return fig


@figure
def soft_margin() -> Figure:
    """soft_margin_loss log(1 + exp(-y x)) for y = +1 and y = -1."""
    curves = [(f"y = {y:+d}", *loss_and_grad("soft_margin_loss", X, np.full_like(X, y))) for y in (1, -1)]
    return plot_curves("soft_margin_loss", X, "input $x$", curves)


@figure
def poisson_nll() -> Figure:
    """poisson_nll_loss, target 2: exp(x) - y x (log_input) and x - y log(x + eps)."""
    target = np.full_like(X, 2.0)
    rate = np.linspace(0.05, 6.0, 1201)
    fig, left, right = two_panels("poisson_nll_loss, target y = 2")
    for x, label, kw in (
        (X, "log_input=True: input is log-rate", {}),
        (rate, "log_input=False: input is the rate", {"log_input": False}),
    ):
        loss, grad = loss_and_grad("poisson_nll_loss", x, target, **kw)
        left.plot(x, loss, label=label)
        right.plot(x, grad, label=label)
    for ax in (left, right):
        ax.set_xlabel("input $x$")
    left.set_ylim(-3, 12)
    right.set_ylim(-6, 8)
    left.legend(fontsize=8)
    return fig


@figure
def gaussian_nll() -> Figure:
    """gaussian_nll_loss 0.5 (log var + (x - y)^2 / var) for var = 0.25, 1, 4."""
    curves = [
        (f"var = {v}", *loss_and_grad("gaussian_nll_loss", X, ZERO, np.full_like(X, v))) for v in (0.25, 1.0, 4.0)
    ]
    return plot_curves("gaussian_nll_loss (target 0)", X, "input (mean) $x$", curves)


@figure
def kl_div() -> Figure:
    """kl_div, target 0.3: y (log y - x) with x a log-probability."""
    x = np.linspace(-5.0, 0.0, 1001)
    curves = [
        ("log_target=False, y = 0.3", *loss_and_grad("kl_div", x, np.full_like(x, 0.3))),
        (
            "log_target=True, log y = log 0.3",
            *loss_and_grad("kl_div", x, np.full_like(x, np.log(0.3)), log_target=True),
        ),
    ]
    fig = plot_curves(
        "kl_div (pointwise term; 'batchmean' gives the KL divergence)",
        x,
        "input log-probability $x$",
        curves,
        [{"lw": 3, "alpha": 0.5}, {"ls": "--"}],
    )
    return fig


@figure
def margin_ranking() -> Figure:
    """margin_ranking_loss max(0, -y (x1 - x2) + margin), x2 = 0, y = 1."""
    one = np.ones_like(X)
    curves = [(f"margin = {m}", *loss_and_grad("margin_ranking_loss", X, ZERO, one, margin=m)) for m in (0.0, 0.5, 1.0)]
    return plot_curves("margin_ranking_loss (y = 1, x2 = 0)", X, "input1 $x_1$", curves)


@figure
def hinge_embedding() -> Figure:
    """hinge_embedding_loss: x for y = 1, max(0, margin - x) for y = -1."""
    x = np.linspace(-1.0, 3.0, 801)
    curves = [
        ("y = 1", *loss_and_grad("hinge_embedding_loss", x, np.ones_like(x))),
        ("y = -1, margin = 1", *loss_and_grad("hinge_embedding_loss", x, -np.ones_like(x))),
        ("y = -1, margin = 2", *loss_and_grad("hinge_embedding_loss", x, -np.ones_like(x), margin=2.0)),
    ]
    return plot_curves("hinge_embedding_loss", x, "input (distance) $x$", curves)


# ---- classification figures ----
S = np.linspace(-6.0, 6.0, 1201)  # the logit of the target class; the other two logits are 0


def class_logits(s: np.ndarray, classes: int = 3) -> np.ndarray:
    """Rows (s, 0, ..., 0): the target class 0 against classes - 1 rivals at logit 0."""
    x = np.zeros((s.size, classes))
    x[:, 0] = s
    return x


@figure
def cross_entropy() -> Figure:
    """cross_entropy of (s, 0, 0) with target class 0, with and without label smoothing; the
    gradient plotted is the target logit's, softmax(x)_0 - (1 - eps + eps / C)."""
    target = np.zeros(S.size, np.int64)
    curves = []
    for smoothing in (0.0, 0.1, 0.3):
        loss, grad = F.cross_entropy_forward_backward(
            class_logits(S), target, reduction="none", label_smoothing=smoothing
        )
        curves.append((f"label_smoothing = {smoothing}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves("cross_entropy, logits (s, 0, 0), target class 0", S, "target-class logit $s$", curves)


@figure
def multi_margin() -> Figure:
    """multi_margin_loss of (s, 0, 0) with target class 0: sum over rivals of
    max(0, margin - s)^p / C, for p = 1 and 2."""
    target = np.zeros(S.size, np.int64)
    curves = []
    for p, margin in ((1, 1.0), (2, 1.0), (1, 2.0)):
        loss, grad = F.multi_margin_loss_forward_backward(class_logits(S), target, p=p, margin=margin, reduction="none")
        curves.append((f"p = {p}, margin = {margin}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves(
        "multi_margin_loss, inputs (s, 0, 0), target class 0",
        S,
        "target-class score $s$",
        curves,
        [{"lw": 3, "alpha": 0.6}, {}, {"ls": "--"}],
    )


@figure
def nll_loss() -> Figure:
    """nll_loss of log-softmax(s, 0, 0) with target class 0, unweighted and with class weight 2:
    -w_0 log softmax(x)_0; the gradient plotted is d/ds of the composition's nll part,
    -w_0 for the target entry of its input."""
    target = np.zeros(S.size, np.int64)
    x = class_logits(S)
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    curves = []
    for w0 in (1.0, 2.0):
        weight = np.array([w0, 1.0, 1.0])
        loss, grad = F.nll_loss_forward_backward(logp, target, weight=weight, reduction="none")
        curves.append((f"weight of class 0 = {w0}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves("nll_loss on log_softmax(s, 0, 0), target class 0", S, "target-class logit $s$", curves)


@figure
def multilabel_soft_margin() -> Figure:
    """multilabel_soft_margin_loss of one score s against label 1 and label 0 (one class):
    -(y log sigmoid(s) + (1 - y) log sigmoid(-s))."""
    x = S[:, None]
    curves = []
    for label in (1.0, 0.0):
        loss, grad = F.multilabel_soft_margin_loss_forward_backward(x, np.full_like(x, label), reduction="none")
        curves.append((f"label {label:g}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves("multilabel_soft_margin_loss, one class", S, "score $s$", curves)


@figure
def multilabel_margin() -> Figure:
    """multilabel_margin_loss of scores (s, 0, 0) with target set {0}: the hinge
    sum over non-targets j of max(0, 1 - (x_0 - x_j)) / C."""
    target = np.tile(np.array([0, -1, -1], np.int64), (S.size, 1))
    loss, grad = F.multilabel_margin_loss_forward_backward(class_logits(S), target, reduction="none")
    return plot_curves(
        "multilabel_margin_loss, scores (s, 0, 0), target set {0}",
        S,
        "target score $s$",
        [("target set {0}", np.asarray(loss), np.asarray(grad)[:, 0])],
    )


# ---- beyond torch.nn: classification figures ----


@figure
def softmax_focal_loss() -> Figure:
    """softmax_focal_loss of (s, 0, 0) with target class 0 for several gamma (gamma = 0 is
    cross_entropy); the gradient plotted is the target logit's."""
    target = np.zeros(S.size, np.int64)
    curves = []
    for gamma in (0.0, 0.5, 2.0, 5.0):
        loss, grad = loss_and_grad("softmax_focal_loss", class_logits(S), target, gamma=gamma)
        curves.append((f"gamma = {gamma}", loss, grad[:, 0]))
    return plot_curves("softmax_focal_loss, logits (s, 0, 0), target class 0", S, "target-class logit $s$", curves)


@figure
def poly1_cross_entropy() -> Figure:
    """poly1_cross_entropy of (s, 0, 0) with target class 0 for several epsilon (epsilon = 0 is
    cross_entropy); the gradient plotted is the target logit's."""
    target = np.zeros(S.size, np.int64)
    curves = []
    for epsilon in (-1.0, 0.0, 1.0, 2.0):
        loss, grad = loss_and_grad("poly1_cross_entropy", class_logits(S), target, epsilon=epsilon)
        curves.append((f"epsilon = {epsilon}", loss, grad[:, 0]))
    return plot_curves("poly1_cross_entropy, logits (s, 0, 0), target class 0", S, "target-class logit $s$", curves)


# ---- embedding figures ----
THETA = np.linspace(0.0, np.pi, 721)  # the angle between two unit vectors


@figure
def cosine_embedding() -> Figure:
    """cosine_embedding_loss of unit vectors at angle theta: 1 - cos(theta) for y = 1,
    max(0, cos(theta) - margin) for y = -1; the gradient plotted is d l / d x1[1] (x1 = (cos, sin))."""
    x1 = np.stack([np.cos(THETA), np.sin(THETA)], 1)
    x2 = np.tile(np.array([1.0, 0.0]), (THETA.size, 1))
    curves = []
    for y, margin in ((1.0, 0.0), (-1.0, 0.0), (-1.0, 0.5)):
        loss, (g1, _) = F.cosine_embedding_loss_forward_backward(
            x1, x2, np.full(THETA.size, y), margin=margin, reduction="none"
        )
        curves.append((f"y = {y:g}, margin = {margin}", np.asarray(loss), np.asarray(g1)[:, 1]))
    return plot_curves("cosine_embedding_loss, unit vectors at angle theta", THETA, r"angle $\theta$", curves)


D_NEG = np.linspace(0.0, 3.0, 601)  # the anchor-negative distance; the anchor-positive one is 1


def _triplet_inputs() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    anchor = np.zeros((D_NEG.size, 2))
    positive = np.tile(np.array([1.0, 0.0]), (D_NEG.size, 1))
    negative = np.stack([D_NEG, D_NEG], 1) / np.sqrt(2.0)  # diagonal: L1 and L2 distances differ
    return anchor, positive, negative


@figure
def triplet_margin() -> Figure:
    """triplet_margin_loss max(d(a, p) - d(a, n) + margin, 0) with d(a, p) = 1 and the negative
    moved away from the anchor along the diagonal (so p = 1 and p = 2 differ); the gradient plotted
    is d l / d negative[1]."""
    a, pos, neg = _triplet_inputs()
    curves = []
    for p, margin in ((2.0, 1.0), (1.0, 1.0), (2.0, 0.5)):
        loss, (_, _, gn) = F.triplet_margin_loss_forward_backward(a, pos, neg, margin=margin, p=p, reduction="none")
        curves.append((f"p = {p:g}, margin = {margin}", np.asarray(loss), np.asarray(gn)[:, 1]))
    return plot_curves("triplet_margin_loss, d(a, p) = 1", D_NEG, "anchor-negative euclidean distance", curves)


@figure
def triplet_margin_with_distance() -> Figure:
    """triplet_margin_with_distance_loss with the built-in distances, same geometry as
    triplet_margin (anchor at the origin: the cosine distance of a zero vector is 1)."""
    a, pos, neg = _triplet_inputs()
    a = a + np.array([0.0, -1.0])  # off the origin, so the cosine distance varies
    curves = []
    for name in ("euclidean", "squared_euclidean", "cosine"):
        loss, (_, _, gn) = F.triplet_margin_with_distance_loss_forward_backward(
            a, pos, neg, distance_function=name, reduction="none"
        )
        curves.append((name, np.asarray(loss), np.asarray(gn)[:, 1]))
    return plot_curves("triplet_margin_with_distance_loss, margin 1", D_NEG, "negative's offset", curves)


# ---- ctc figures ----
P = np.linspace(0.02, 0.98, 481)  # the probability of the label at every frame


@figure
def ctc() -> Figure:
    """ctc_loss of one label over T frames of two classes (blank, label) whose label probability
    is p at every frame: -log of the sum over alignments; the gradient plotted is torch's
    d l / d log p_label at frame 0 (which includes the log-softmax term, see ctc.md)."""
    curves = []
    for T in (1, 3, 6):
        lp = np.log(np.stack([1 - P, P], -1))[None].repeat(T, 0)  # (T, N, C)
        targets = np.ones((P.size, 1), np.int64)
        loss, grad = F.ctc_loss_forward_backward(
            lp, targets, np.full(P.size, T), np.ones(P.size, np.int64), reduction="none"
        )
        curves.append((f"T = {T}", np.asarray(loss), np.asarray(grad)[0, :, 1]))
    return plot_curves("ctc_loss, one label, label probability p at every frame", P, "$p$", curves)


# ---- contrastive figures ----
ANGLE = np.linspace(0.0, np.pi, 361)  # the angle between a positive pair


@figure
def info_nce() -> Figure:
    """info_nce_loss of four pairs on the unit circle (z2 at 0, 90, 180 and 270 degrees, z1 = z2
    but the first row rotated by the angle theta away from its positive): the first pair's loss
    l_0, and the component of d (sum_n l_n) / d z1[0] along the direction of rotation (positive:
    rotating further raises the loss; it peaks where z1[0] passes the other pairs' z2)."""
    z2 = np.stack([np.cos(np.arange(4) * np.pi / 2), np.sin(np.arange(4) * np.pi / 2)], 1)
    curves = []
    for symmetric, temperature in ((True, 0.1), (True, 0.5), (False, 0.5)):
        loss, grad = [], []
        for theta in ANGLE:
            z1 = z2.copy()
            z1[0] = (np.cos(theta), np.sin(theta))
            l_n, (g1, _) = F.info_nce_loss_forward_backward(
                z1, z2, temperature=temperature, symmetric=symmetric, reduction="none"
            )
            loss.append(l_n[0])
            grad.append(g1[0] @ np.array([-np.sin(theta), np.cos(theta)]))
        label = f"{'symmetric' if symmetric else 'one-sided'}, temperature = {temperature}"
        curves.append((label, np.array(loss), np.array(grad)))
    return plot_curves("info_nce_loss, four pairs, the first rotated by theta", ANGLE, r"angle $\theta$", curves)


# ---- segmentation ----
Q = np.linspace(0.0, 1.0, 401)  # a predicted probability


def overlap_case(q: np.ndarray, background: float) -> Tuple[np.ndarray, np.ndarray]:
    """One sample per q, one channel, 8 positions: the target marks the first 4; the prediction is
    q on them and q * background on the other 4."""
    target = np.zeros((q.size, 1, 8))
    target[:, :, :4] = 1.0
    pred = np.where(target == 1.0, q[:, None, None], q[:, None, None] * background)
    return pred, target


@figure
def dice() -> Figure:
    """dice_loss of one channel whose 4 foreground positions are predicted q (background
    positions 0), plain, Jaccard and squared_pred; the gradient is at a foreground position."""
    pred, target = overlap_case(Q, 0.0)
    curves = []
    for label, kw in (("Dice", {}), ("Jaccard", {"jaccard": True}), ("Dice, squared_pred", {"squared_pred": True})):
        loss, grad = loss_and_grad("dice_loss", pred, target, **kw)
        curves.append((label, loss[:, 0], grad[:, 0, 0]))
    return plot_curves("dice_loss, foreground predicted q, background 0", Q, "$q$", curves)


@figure
def tversky() -> Figure:
    """tversky_loss of one channel predicted q everywhere (4 foreground, 4 background positions):
    alpha weighs the false positives, beta the false negatives; the gradient is at a foreground
    position."""
    pred, target = overlap_case(Q, 1.0)
    curves = []
    for alpha, beta in ((0.5, 0.5), (0.3, 0.7), (0.7, 0.3)):
        loss, grad = loss_and_grad("tversky_loss", pred, target, alpha=alpha, beta=beta)
        curves.append((f"alpha = {alpha}, beta = {beta}", loss[:, 0], grad[:, 0, 0]))
    return plot_curves("tversky_loss, prediction q at every position", Q, "$q$", curves)


# ---- detection figures ----
SHIFT = np.linspace(-4.0, 4.0, 801)  # horizontal offset of a 2 x 1 box against a fixed 2 x 2 box


@figure
def box_iou() -> Figure:
    """The three box IoU losses of a 2 x 1 box (boxes1) sliding horizontally past a fixed 2 x 2
    box (boxes2) at the same height: the gradient plotted is d l / d shift (the sum of the x1 and
    x2 gradients of boxes1). Beyond the overlap the IoU term is flat and only the penalty pulls
    (the generalized loss's enclosing area, the distance loss's centre distance). The complete
    loss adds alpha v to the distance loss: small here (v = 0.04 for ratios 2 and 1), so its
    curve lies almost on the distance loss's."""
    boxes2 = np.tile(np.array([0.0, 0.0, 2.0, 2.0]), (SHIFT.size, 1))
    boxes1 = np.stack([SHIFT, np.zeros_like(SHIFT), SHIFT + 2.0, np.ones_like(SHIFT)], 1)
    curves = []
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        loss, (g1, _) = getattr(F, name + "_forward_backward")(boxes1, boxes2, reduction="none")
        g1 = np.asarray(g1)
        curves.append((name.replace("_box_iou_loss", ""), np.asarray(loss), g1[:, 0] + g1[:, 2]))
    return plot_curves("box IoU losses, a 2 x 1 box sliding past a 2 x 2 box", SHIFT, "horizontal shift", curves)


# ---- the registered element-wise losses ----


@figure
def robust_regression() -> Figure:
    """log_cosh_loss and pseudo_huber_loss (delta 0.5, 1, 2) beside huber_loss (delta 1)."""
    curves = [
        ("log_cosh_loss", *loss_and_grad("log_cosh_loss", X, ZERO)),
        ("pseudo_huber_loss delta=0.5", *loss_and_grad("pseudo_huber_loss", X, ZERO, delta=0.5)),
        ("pseudo_huber_loss delta=1", *loss_and_grad("pseudo_huber_loss", X, ZERO, delta=1.0)),
        ("pseudo_huber_loss delta=2", *loss_and_grad("pseudo_huber_loss", X, ZERO, delta=2.0)),
        ("huber_loss delta=1", *loss_and_grad("huber_loss", X, ZERO, delta=1.0)),
    ]
    return plot_curves(
        "log-cosh and pseudo-Huber: smooth Huber losses (target 0)",
        X,
        "input $x$ ($y = 0$)",
        curves,
        [{"lw": 2}, {}, {}, {}, {"ls": "--", "color": "black", "lw": 0.8}],
    )


@figure
def msle() -> Figure:
    """msle_loss against the prediction for targets 0, 1 and 10."""
    x = np.linspace(-0.95, 20.0, 1201)
    curves = [(f"y = {y:g}", *loss_and_grad("msle_loss", x, np.full_like(x, y))) for y in (0.0, 1.0, 10.0)]
    fig = plot_curves("msle_loss: squared error of log(1 + x)", x, "input $x$", curves)
    fig.axes[0].set_ylim(-0.2, 6.0)
    fig.axes[1].set_ylim(-6.0, 3.0)
    return fig


@figure
def sigmoid_focal() -> Figure:
    """sigmoid_focal_loss against the logit of a positive (y = 1, alpha < 0: unweighted) for
    gamma 0 (binary cross-entropy), 0.5, 1, 2 and 5: the larger gamma, the less a confidently
    right logit contributes."""
    x = np.linspace(-4.0, 6.0, 1201)
    one = np.ones_like(x)
    curves = [
        (f"gamma = {g:g}", *loss_and_grad("sigmoid_focal_loss", x, one, alpha=-1.0, gamma=g))
        for g in (0.0, 0.5, 1.0, 2.0, 5.0)
    ]
    return plot_curves("sigmoid_focal_loss: a positive label (y = 1)", x, "logit $x$", curves)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"figures to draw (default all): {', '.join(FIGURES)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or FIGURES:
        fig = FIGURES[name]()
        path = args.out / f"{name}.png"
        # Fixed metadata so unchanged figures are byte-identical when regenerated.
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
