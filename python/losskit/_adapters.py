"""What the framework adapters (:mod:`losskit.torch`, :mod:`losskit.jax`) need to know about each
loss beyond its signature: which arguments losskit differentiates. Imports neither framework."""

from __future__ import annotations

from typing import Dict, Tuple

# losskit's gradient outputs, in order, for the losses whose only gradient is not ``input``'s.
_GRADS: Dict[str, Tuple[str, ...]] = {
    "margin_ranking_loss": ("input1", "input2"),
    "cosine_embedding_loss": ("input1", "input2"),
    "triplet_margin_loss": ("anchor", "positive", "negative"),
    "triplet_margin_with_distance_loss": ("anchor", "positive", "negative"),
    "gaussian_nll_loss": ("input", "var"),
    "ctc_loss": ("log_probs",),
    "linear_cross_entropy": ("input", "linear_weight", "linear_bias"),
}

# The losses whose float target losskit differentiates (``target_grad=True``); its gradient
# follows the others.
TARGET_GRAD = frozenset({
    "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "poisson_nll_loss", "gaussian_nll_loss", "kl_div",
    "cross_entropy", "multilabel_soft_margin_loss",
})


def losses() -> Tuple[str, ...]:
    """Every loss of :mod:`losskit.functional`, in its order."""
    from . import functional

    suffix = "_forward_backward"
    return tuple(n[:-len(suffix)] for n in vars(functional) if n.endswith(suffix) and not n.startswith("_"))


def grad_names(name: str, target_grad: bool = False) -> Tuple[str, ...]:
    """The names of the arguments whose gradients ``NAME_backward`` returns, in its order."""
    return _GRADS.get(name, ("input",)) + (("target",) if target_grad else ())


def differentiable(name: str) -> Tuple[str, ...]:
    """Every argument losskit can differentiate for this loss."""
    return grad_names(name, name in TARGET_GRAD)


def by_name(name: str, target_grad: bool, grads: object) -> Dict[str, object]:
    """losskit's gradient result (one array bare, several as a tuple) by argument name."""
    grads = grads if isinstance(grads, tuple) else (grads,)
    return dict(zip(grad_names(name, target_grad), grads))
