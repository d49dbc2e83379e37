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
    fig = plot_curves("L1, MSE, SmoothL1 and Huber (target 0; SmoothL1 = Huber at beta = delta = 1)",
                      X, "input $x$ ($y = 0$)", curves, [{}, {}, {"lw": 3, "alpha": 0.5}, {"ls": "--"}])
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
    return plot_curves("SmoothL1 (solid, gradient clipped at 1) vs Huber (dashed, clipped at delta)", X,
                       "input $x$ ($y = 0$)", curves, styles)


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
        z, "logit $z$",
        [("binary_cross_entropy(sigmoid(z)): log clamped at -100;\n"
          "gradient (chain rule) vanishes once p(1-p) < 1e-12", bce, dbce_dz),
         ("binary_cross_entropy_with_logits(z)", logits, dlogits)],
    )


@figure
def binary_cross_entropy() -> Figure:
    """BCE against the probability p for targets 0, 0.3 and 1."""
    p = np.linspace(0.0, 1.0, 1001)
    curves = [(f"target {t}", *loss_and_grad("binary_cross_entropy", p, np.full_like(p, t)))
              for t in (0.0, 0.3, 1.0)]
    fig = plot_curves("binary_cross_entropy (log clamped at -100, gradient denominator >= 1e-12)", p,
                      "input probability $x$", curves)
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
    for x, label, kw in ((X, "log_input=True: input is log-rate", {}),
                         (rate, "log_input=False: input is the rate", {"log_input": False})):
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
    curves = [(f"var = {v}", *loss_and_grad("gaussian_nll_loss", X, ZERO, np.full_like(X, v)))
              for v in (0.25, 1.0, 4.0)]
    return plot_curves("gaussian_nll_loss (target 0)", X, "input (mean) $x$", curves)


@figure
def kl_div() -> Figure:
    """kl_div, target 0.3: y (log y - x) with x a log-probability."""
    x = np.linspace(-5.0, 0.0, 1001)
    curves = [("log_target=False, y = 0.3", *loss_and_grad("kl_div", x, np.full_like(x, 0.3))),
              ("log_target=True, log y = log 0.3",
               *loss_and_grad("kl_div", x, np.full_like(x, np.log(0.3)), log_target=True))]
    fig = plot_curves("kl_div (pointwise term; 'batchmean' gives the KL divergence)", x,
                      "input log-probability $x$", curves, [{"lw": 3, "alpha": 0.5}, {"ls": "--"}])
    return fig


@figure
def margin_ranking() -> Figure:
    """margin_ranking_loss max(0, -y (x1 - x2) + margin), x2 = 0, y = 1."""
    one = np.ones_like(X)
    curves = [(f"margin = {m}", *loss_and_grad("margin_ranking_loss", X, ZERO, one, margin=m))
              for m in (0.0, 0.5, 1.0)]
    return plot_curves("margin_ranking_loss (y = 1, x2 = 0)", X, "input1 $x_1$", curves)


@figure
def hinge_embedding() -> Figure:
    """hinge_embedding_loss: x for y = 1, max(0, margin - x) for y = -1."""
    x = np.linspace(-1.0, 3.0, 801)
    curves = [("y = 1", *loss_and_grad("hinge_embedding_loss", x, np.ones_like(x))),
              ("y = -1, margin = 1", *loss_and_grad("hinge_embedding_loss", x, -np.ones_like(x))),
              ("y = -1, margin = 2", *loss_and_grad("hinge_embedding_loss", x, -np.ones_like(x), margin=2.0))]
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
        loss, grad = F.cross_entropy_forward_backward(class_logits(S), target, reduction="none",
                                                      label_smoothing=smoothing)
        curves.append((f"label_smoothing = {smoothing}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves("cross_entropy, logits (s, 0, 0), target class 0", S,
                       "target-class logit $s$", curves)


@figure
def multi_margin() -> Figure:
    """multi_margin_loss of (s, 0, 0) with target class 0: sum over rivals of
    max(0, margin - s)^p / C, for p = 1 and 2."""
    target = np.zeros(S.size, np.int64)
    curves = []
    for p, margin in ((1, 1.0), (2, 1.0), (1, 2.0)):
        loss, grad = F.multi_margin_loss_forward_backward(class_logits(S), target, p=p, margin=margin,
                                                          reduction="none")
        curves.append((f"p = {p}, margin = {margin}", np.asarray(loss), np.asarray(grad)[:, 0]))
    return plot_curves("multi_margin_loss, inputs (s, 0, 0), target class 0", S,
                       "target-class score $s$", curves, [{"lw": 3, "alpha": 0.6}, {}, {"ls": "--"}])


# ---- embedding figures ----
# ---- ctc figures ----


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
