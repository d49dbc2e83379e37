"""cross_entropy over logits larger than this machine's memory, on a dask LocalCluster.

    python bench/dask_scale.py [--size 32GiB] [--classes 32000] [--chunk 128MiB] [--workers 2]
                               [--memory-limit 3GiB] [--markdown docs/performance.md]

The logits (float32, ``--size`` of them, ``--classes`` per row) and the class-index targets (1 in
16 ignored) are generated lazily, chunk by chunk, inside the workers: nothing of that size ever
exists at once. ``losskit.dask.cross_entropy_forward_backward`` with ``'mean'`` (so first the
global divisor, from the targets alone) gives the loss and the logits' gradient; the gradient is
reduced to ``sum(grad**2)`` (one ``vdot`` per chunk, no temporary), so each chunk's gradient is
consumed as it is made.

Reported: wall time and throughput (GB/s of logits) of the cluster (``--workers`` processes, one
thread each, ``--memory-limit`` each), against in-memory losskit on one chunk in this process:
the loss alone (1 thread, and all threads), and the same work as one task chain of the cluster
(make the chunk, the loss and gradient, reduce it) on 1 thread, times the number of workers
(the cluster's ideal). The peak resident memory of each worker is its ``ru_maxrss``
(fresh workers), which must be a few chunks, not the data; the machine's own total is checked too.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
from _markdown import write_section  # noqa: E402

IGNORE_EVERY = 16


def _bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size like 32GiB, got {text!r}")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def make_logits(block: np.ndarray, block_info: Any = None) -> np.ndarray:
    """One chunk of logits from its own seed: a random row offset plus a random class profile
    (one write pass: drawing every logit at random costs several times the loss itself)."""
    i = block_info[None]["chunk-location"][0]
    rng = np.random.default_rng([7, i])
    rows, classes = block.shape
    return np.add.outer(
        rng.random(rows, dtype=np.float32), (rng.random(classes, dtype=np.float32) - np.float32(0.5)) * np.float32(8)
    )


def make_targets(block: np.ndarray, classes: int, block_info: Any = None) -> np.ndarray:
    i = block_info[None]["chunk-location"][0]
    t = np.random.default_rng([8, i]).integers(0, classes, block.shape[0])
    t[::IGNORE_EVERY] = -100
    return t


def grad_square_sum(g: np.ndarray) -> np.ndarray:
    flat = g.reshape(-1)
    return np.full((1,) * g.ndim, np.vdot(flat, flat), np.float64)


def _median_seconds(fn: Any, reps: int) -> Tuple[float, float]:
    """Median wall and CPU seconds (the CPU time does not count the time other jobs of the shared
    machine took from us)."""
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def in_memory(rows: int, classes: int, reps: int) -> Dict[str, Tuple[float, float]]:
    """Seconds per chunk in this process: the loss alone (1 and all threads), and one task chain."""
    import losskit
    import losskit.functional as F

    x = make_logits(np.empty((rows, classes), np.float32), {None: {"chunk-location": (0, 0)}})
    t = make_targets(np.empty((rows, 1)), classes, {None: {"chunk-location": (0, 0)}})
    out: Dict[str, Tuple[float, float]] = {}
    before = losskit.get_num_threads()
    try:
        for threads in (1, os.cpu_count() or 1):
            losskit.set_num_threads(threads)
            out[f"loss_{threads}"] = _median_seconds(lambda: F.cross_entropy_forward_backward(x, t), reps)
        losskit.set_num_threads(1)

        def chain() -> None:
            xi = make_logits(np.empty((rows, classes), np.float32), {None: {"chunk-location": (1, 0)}})
            ti = make_targets(np.empty((rows, 1)), classes, {None: {"chunk-location": (1, 0)}})
            _, g = F.cross_entropy_forward_backward(xi, ti, normalizer=1.0)
            grad_square_sum(g)

        out["chain_1"] = _median_seconds(chain, reps)
    finally:
        losskit.set_num_threads(before)
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _worker_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def on_cluster(size: int, classes: int, chunk: int, workers: int, memory_limit: int) -> Dict[str, Any]:
    import dask.array as da
    import distributed

    import losskit.dask as LD

    rows = size // (4 * classes)
    chunk_rows = max(1, chunk // (4 * classes))
    logits = da.empty((rows, classes), dtype=np.float32, chunks=(chunk_rows, classes)).map_blocks(
        make_logits, dtype=np.float32
    )
    targets = da.empty((rows,), dtype=np.int64, chunks=(chunk_rows,)).map_blocks(make_targets, classes, dtype=np.int64)
    loss, grad = LD.cross_entropy_forward_backward(logits, targets)
    grad_sq = grad.map_blocks(grad_square_sum, chunks=(1, 1), dtype=np.float64).sum()
    sampled: List[float] = []
    spilled: List[float] = [0.0]
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        cpu0 = client.run(_worker_cpu_seconds)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        futures = client.compute([loss, grad_sq])
        while not all(f.done() for f in futures):  # the workers' current RSS, as the scheduler sees it
            time.sleep(1.0)
            metrics = [w["metrics"] for w in client.scheduler_info()["workers"].values()]
            sampled.append(max((m["memory"] for m in metrics), default=0) / 2**20)
            spilled.append(sum(m.get("spilled_bytes", {}).get("disk", 0) for m in metrics) / 2**20)
        value, total = client.gather(futures)
        seconds = time.perf_counter() - t0
        cpu = sum(client.run(_worker_cpu_seconds).values()) - sum(cpu0.values())
        load = (load0 + os.getloadavg()[0]) / 2
        peaks = client.run(_worker_peak_mib)
        idle = client.run(_rss_mib)
        restarted = len(client.scheduler_info()["workers"]) != workers
    return {
        "rows": rows,
        "chunk_rows": chunk_rows,
        "chunks": len(logits.chunks[0]),
        "seconds": seconds,
        "cpu": cpu,
        "load": load,
        "spilled_mib": max(spilled),
        "loss": float(value),
        "grad_sq": float(total),
        "peak_mib": sorted(peaks.values()),
        "idle_mib": sorted(idle.values()),
        "sampled_max_mib": max(sampled, default=0.0),
        "restarted": restarted,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=_bytes, default=_bytes("32GiB"), help="bytes of float32 logits")
    ap.add_argument("--classes", type=int, default=32000)
    ap.add_argument("--chunk", type=_bytes, default=_bytes("128MiB"), help="bytes of logits per chunk")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", type=_bytes, default=_bytes("3GiB"), help="per worker")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--markdown", help="write the result into this file's dask_scale section")
    args = ap.parse_args()

    chunk_rows = max(1, args.chunk // (4 * args.classes))
    base = in_memory(chunk_rows, args.classes, args.reps)
    run = on_cluster(args.size, args.classes, args.chunk, args.workers, args.memory_limit)
    chunk_gb = chunk_rows * args.classes * 4 / 1e9
    data_gb = run["rows"] * args.classes * 4 / 1e9
    threads = os.cpu_count() or 1

    def row(what: str, wall: float, cpu: float, gb: float) -> str:
        return f"| {what} | {wall:.2f} | {gb / wall:.3f} | {cpu:.2f} | {gb / cpu:.3f} |"

    lines = [
        f"{data_gb / 1.073741824:.1f} GiB of float32 logits ({run['rows']} rows x {args.classes} classes, "
        f"{run['chunks']} chunks of {run['chunk_rows']} rows = {chunk_gb * 1e3 / 1.048576:.0f} MiB), "
        f"made lazily in the workers; `losskit.dask.cross_entropy_forward_backward` with `'mean'` (1 target "
        f"in {IGNORE_EVERY} ignored: the global divisor first), the gradient reduced to `sum(grad**2)`. "
        f"LocalCluster of {args.workers} worker processes x 1 thread, memory limit "
        f"{args.memory_limit / 2**30:.1f} GiB each, on this {threads}-core machine with "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB of RAM, shared with "
        f"other jobs while measured (load average {run['load']:.0f} during the cluster run): wall times "
        "are mostly other jobs' time; CPU seconds (the workers', or this process's) are the cost. "
        f"Medians of {args.reps} for the in-memory rows; one cluster run.",
        "",
        "| what | wall s | GB/s (wall) | CPU s | GB per CPU s |",
        "|---|---|---|---|---|",
        row(
            "cluster: the whole array (make, loss + gradient, reduce; divisor first)",
            run["seconds"],
            run["cpu"],
            data_gb,
        ),
        row("in memory, one chunk: loss + gradient, 1 thread", *base["loss_1"], chunk_gb),
        row(f"in memory, one chunk: loss + gradient, {threads} threads", *base[f"loss_{threads}"], chunk_gb),
        row(
            "in memory, one chunk: a cluster task chain (make, loss + gradient, reduce), 1 thread",
            *base["chain_1"],
            chunk_gb,
        ),
        "",
        f"Peak resident memory per worker (`ru_maxrss`): "
        f"{', '.join(f'{p:.0f} MiB' for p in run['peak_mib'])} "
        f"({max(run['peak_mib']) * 1.048576 / (chunk_gb * 1e3):.1f} chunks; the data is "
        f"{data_gb / chunk_gb:.0f} chunks); the largest worker memory the scheduler saw while running: "
        f"{run['sampled_max_mib']:.0f} MiB; after the run: "
        f"{', '.join(f'{p:.0f} MiB' for p in run['idle_mib'])}. Most spilled to disk at once (sampled): "
        f"{run['spilled_mib']:.0f} MiB. Workers restarted: {'yes' if run['restarted'] else 'no'}. "
        f"loss = {run['loss']:.6f}, sum(grad**2) = {run['grad_sq']:.6e}.",
    ]
    print("\n".join(lines))
    if args.markdown:
        write_section(args.markdown, "dask_scale", ["### losskit.dask: data larger than memory", ""] + lines)


if __name__ == "__main__":
    main()
