"""The optional JAX side of bench/run.py: what a JAX user writes for each loss, timed as they run it.

The case modules declare each JAX loss as a plain function of jnp arrays (optax's loss where optax
has one, else the jnp formula of torch's definition), next to the torch one. `prepare` converts
the case's arrays once (jnp.asarray; int64 class indices become int32, JAX's default integer),
wraps the loss in `jax.jit(jax.value_and_grad(loss, argnums))`, runs it once (the compile, so the
warm-up excludes it) and checks its value and gradients against losskit's on the same data, so a
formula that differs from the case's cannot make JAX look faster. Without jax and optax installed
`AVAILABLE` is False, `prepare` returns None and the table shows '-'.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError as exc:  # optional: pip install 'losskit[bench]'
    jax = jnp = optax = None  # type: ignore[assignment]
    MISSING = f"JAX column skipped ({exc}); install it with pip install jax optax"
else:
    # The comparison is CPU against CPU: a jax[cuda] install would otherwise pick the GPU.
    jax.config.update("jax_platforms", "cpu")
    MISSING = ""

AVAILABLE = jax is not None

# float32 agreement asked of the JAX version: the losses are means of up to 16M terms, summed in
# float32 by XLA and in double by losskit.
RTOL = 1e-4


def versions() -> str:
    return f"jax {jax.__version__}, optax {optax.__version__}" if AVAILABLE else "jax not installed"


def prepare(
    loss: Callable[..., Any],
    argnums: Sequence[int],
    arrays: Sequence[np.ndarray],
    ref_value: Any,
    ref_grads: Sequence[np.ndarray],
    rtol: float = RTOL,
) -> Optional[Callable[[], Any]]:
    """Returns a callable that runs the jitted value_and_grad of `loss` on `arrays` and blocks until
    the results are ready, after checking the value and the gradients (of the arguments in
    `argnums`, in that order, in JAX's layout) against losskit's `ref_value` and `ref_grads`, to
    `rtol` (and an absolute `rtol` times the gradient's largest element)."""
    if not AVAILABLE:
        return None
    args = [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a) for a in arrays]
    fn = jax.jit(jax.value_and_grad(loss, argnums=tuple(argnums)))
    value, grads = jax.block_until_ready(fn(*args))
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), rtol=rtol, err_msg="jax loss value")
    assert len(grads) == len(ref_grads), f"jax gives {len(grads)} gradients, losskit {len(ref_grads)}"
    for i, (g, ref) in enumerate(zip(grads, ref_grads)):
        g, ref = np.asarray(g), np.asarray(ref)
        assert g.shape == ref.shape, f"jax gradient {i} has shape {g.shape}, losskit's {ref.shape}"
        # Element-wise gradients near zero have no relative precision: the absolute part is
        # relative to the gradient's largest element. One element in a million may differ: the
        # subgradient at a kink the random data happens to hit (|x - y| at x = y: torch and losskit
        # take 0, JAX 1), not a different formula, which would differ almost everywhere.
        off = np.abs(g - ref) > rtol * np.abs(ref) + rtol * float(np.abs(ref).max(initial=0.0))
        allowed = max(1, ref.size // 10**6)
        assert np.count_nonzero(off) <= allowed, (
            f"jax gradient {i} (argument {argnums[i]}) differs from losskit's at {np.count_nonzero(off)} of {ref.size} "
            f"elements (rtol {rtol}), first at {np.argwhere(off)[0].tolist()}: {g[off][0]} against {ref[off][0]}"
        )
    return lambda: jax.block_until_ready(fn(*args))


def grads_of(result: Any) -> list:
    """losskit's gradients from a forward_backward result (loss, grad or tuple of grads), Nones dropped."""
    grads = result[1] if isinstance(result[1], tuple) else (result[1],)
    return [g for g in grads if g is not None]
