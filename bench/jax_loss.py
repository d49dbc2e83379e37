"""losskit.jax against XLA's own fused loss: the jitted value_and_grad of a loss in JAX.

    python bench/jax_loss.py [--rows 256,1024] [--classes 32000] [--reps 9]

Cases, float32 on the CPU backend: cross_entropy with class indices (optax's
softmax_cross_entropy_with_integer_labels, mean over rows) and huber_loss over the same (rows,
classes) array (optax's huber_loss, mean). Each variant is `jax.jit(jax.value_and_grad(loss))`,
compiled before timing and checked against the other; the reps alternate (losskit.jax, XLA, ...)
so that load from other processes hits them alike; reported are medians. losskit uses its
default thread count, XLA its own thread pool.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List

import numpy as np

import jax
import jax.numpy as jnp
import optax

import losskit.jax as lj

jax.config.update("jax_platforms", "cpu")


def _time(fns: Dict[str, Callable[[], Any]], reps: int) -> Dict[str, float]:
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="256,1024")
    ap.add_argument("--classes", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    print(f"jax {jax.__version__}, optax {optax.__version__}, float32, median of {args.reps}")
    print("| case | rows x classes | losskit.jax (ms) | XLA (ms) | XLA/losskit.jax |")
    print("|---|---|---|---|---|")
    overheads: List[List[str]] = []
    for rows in (int(r) for r in args.rows.split(",")):
        rng = np.random.default_rng(0)
        z = jnp.asarray(rng.standard_normal((rows, args.classes), dtype=np.float32))
        y = jnp.asarray(rng.standard_normal((rows, args.classes), dtype=np.float32))
        t = jnp.asarray(rng.integers(0, args.classes, rows), dtype=jnp.int32)
        cases = {
            "cross_entropy": (
                (z, t),
                lambda a, b: lj.cross_entropy(a, b),
                lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a, b).mean(),
            ),
            "huber_loss": (
                (z, y),
                lambda a, b: lj.huber_loss(a, b),
                lambda a, b: optax.huber_loss(a, b, delta=1.0).mean(),
            ),
        }
        for name, (inputs, ours, xla) in cases.items():
            fns = {k: jax.jit(jax.value_and_grad(f)) for k, f in (("losskit.jax", ours), ("XLA", xla))}
            (v0, g0), (v1, g1) = (jax.block_until_ready(f(*inputs)) for f in fns.values())  # compile
            np.testing.assert_allclose(float(v0), float(v1), rtol=1e-4)
            np.testing.assert_allclose(np.asarray(g0), np.asarray(g1), rtol=1e-4, atol=1e-9)
            ms = _time({k: (lambda f=f: f(*inputs)) for k, f in fns.items()}, args.reps)
            print(
                f"| {name} | {rows} x {args.classes} | {ms['losskit.jax']:.1f} | {ms['XLA']:.1f} "
                f"| {ms['XLA'] / ms['losskit.jax']:.2f} |"
            )
        overheads.append(_callback_overhead(rows, args.classes, z, t, args.reps))
    print()
    print("Where losskit.jax's cross_entropy time goes (value_and_grad, jitted):")
    print(
        "| rows x classes | losskit.jax (ms) | losskit's fused call alone, NumPy (ms) | "
        "callback reading the logits, returning a scalar (ms) | callback returning a logits-sized result (ms) |"
    )
    print("|---|---|---|---|---|")
    for row in overheads:
        print("| " + " | ".join(row) + " |")


def _callback_overhead(rows: int, classes: int, z: Any, t: Any, reps: int) -> List[str]:
    """The jax.pure_callback round trip alone, against losskit's fused cross-entropy on the same
    data: what an XLA FFI custom call (buffers read and written in place) would save."""
    import losskit.functional as lf

    zn, tn = np.asarray(z), np.asarray(t)
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    full = jax.ShapeDtypeStruct(z.shape, jnp.float32)
    reads = jax.jit(lambda a: jax.pure_callback(lambda v: np.float32(0.0), scalar, a))
    writes = jax.jit(lambda a: jax.pure_callback(lambda v: np.empty(full.shape, np.float32), full, a).sum())
    ours = jax.jit(jax.value_and_grad(lambda a, b: lj.cross_entropy(a, b)))
    s = jnp.float32(0.0)
    fns = {
        "losskit.jax": lambda: ours(z, t),
        "core": lambda: lf.cross_entropy_forward_backward(zn, tn),
        "reads": lambda: reads(z),
        "writes": lambda: writes(s),
    }
    for f in fns.values():
        jax.block_until_ready(f())
    ms = _time(fns, reps)
    return [f"{rows} x {classes}"] + [f"{ms[k]:.1f}" for k in ("losskit.jax", "core", "reads", "writes")]


if __name__ == "__main__":
    main()
