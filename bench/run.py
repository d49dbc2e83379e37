"""losskit against torch, forward + backward, in one process.

    python bench/run.py [--filter TEXT] [--quick] [--markdown docs/performance.md]

Every bench/cases_*.py module contributes CASES: dicts with a name, a setup(rng) building the
inputs once, a `losskit` callable (its fused forward_backward) and a `torch` callable (forward
plus autograd backward on the same data), and `bytes`, the bytes that must move at the least
(each input read once, each gradient written once). Each case is timed at 1 thread and at all
threads; the table reports medians, torch/losskit, and the fraction of the memory-bandwidth floor
reached: floor = bytes / copy bandwidth (measured with torch's multi-threaded copy at the same
thread count), fraction = floor / losskit time (1.0 would be a perfect memory-bound kernel).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np
import torch

import losskit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _markdown import write_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def load_cases(pattern: str) -> List[Dict[str, Any]]:
    cases = []
    for path in sorted(glob.glob(os.path.join(HERE, "cases_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, HERE)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        cases += [c for c in module.CASES if pattern in c["name"]]
    return cases


def median_time(fn: Callable[[], None], budget: float, min_reps: int, max_reps: int) -> float:
    fn()  # warm up (page faults, caches, thread pools)
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(threads: int) -> float:
    """Bytes per second of a large copy (read + write) with torch's threaded copy_."""
    torch.set_num_threads(threads)
    src = torch.ones(64 * 1024 * 1024, dtype=torch.float32)
    dst = torch.empty_like(src)
    t = median_time(lambda: dst.copy_(src), 1.0, 5, 30)
    return 2 * src.numel() * 4 / t


def set_threads(n: int) -> None:
    losskit.set_num_threads(n)
    torch.set_num_threads(n)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, Linux {platform.release()}, Python {platform.python_version()}, "
            f"NumPy {np.__version__}, torch {torch.__version__}, losskit {losskit.__version__} "
            f"(cpu_target={losskit.cpu_target()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filter", default="", help="only cases whose name contains this text")
    ap.add_argument("--quick", action="store_true", help="short timing budget (a smoke run)")
    ap.add_argument("--threads", default="", help="comma-separated thread counts (default: 1 and all)")
    ap.add_argument("--markdown", default="", help="also write the table into this markdown file")
    args = ap.parse_args()

    all_threads = os.cpu_count() or 1
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, all_threads})
    budget, min_reps, max_reps = (0.2, 3, 10) if args.quick else (1.5, 7, 50)
    cases = load_cases(args.filter)
    bandwidth = {n: copy_bandwidth(n) for n in thread_counts}

    header = "| case | threads | losskit ms | torch ms | torch/losskit | floor ms | of floor |"
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    print(machine())
    for n in thread_counts:
        print(f"copy bandwidth at {n} thread(s): {bandwidth[n] / 1e9:.1f} GB/s")
    print(header)
    print(rows[1])
    rng = np.random.default_rng(0)
    for case in cases:
        state = case["setup"](rng)
        for n in thread_counts:
            set_threads(n)
            t_lk = median_time(lambda: case["losskit"](state), budget, min_reps, max_reps)
            t_th = median_time(lambda: case["torch"](state), budget, min_reps, max_reps)
            floor = case["bytes"] / bandwidth[n]
            row = (f"| {case['name']} | {n} | {t_lk * 1e3:.3f} | {t_th * 1e3:.3f} | {t_th / t_lk:.1f}x | "
                   f"{floor * 1e3:.3f} | {floor / t_lk:.2f} |")
            rows.append(row)
            print(row, flush=True)
        state = None  # free this case's inputs before the next one is built

    if args.markdown:
        write_section(args.markdown, "bench",
                      [f"Machine: {machine()}.", ""]
                      + [f"Copy bandwidth at {n} thread(s): {bandwidth[n] / 1e9:.1f} GB/s.  " for n in thread_counts]
                      + [""] + rows)

if __name__ == "__main__":
    main()
