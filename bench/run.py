"""losskit against torch and JAX, forward + backward.

    python bench/run.py [--filter TEXT[|TEXT...]] [--quick] [--threads 1,2] [--markdown docs/performance.md]
                        [--section NAME]

Every bench/cases_*.py module contributes CASES: dicts with a name, a setup(rng) building the
inputs once, a `losskit` callable (its fused forward_backward), a `torch` callable (forward plus
autograd backward on the same data), a `jax` callable (bench/_jax.py: the jitted value_and_grad
of optax's loss or of the jnp formula, checked against losskit in setup), and `bytes`, the bytes
that must move at the least (each input read once, each gradient written once).

Each thread count runs in a process of its own (this script again, with --child): XLA sizes its
CPU thread pool once, at start, from the CPUs the process may run on, so a process for n threads
that are fewer than all is pinned to n CPUs (sched_setaffinity, before anything starts a thread)
and losskit and torch are set to n threads. Inside it, for each case, the engines' reps alternate
(losskit, torch, jax, losskit, ...) so load from other processes hits them alike; the table
reports medians, torch/losskit, jax/losskit and the fraction of the memory-bandwidth floor reached:
floor = bytes / copy bandwidth (measured with torch's multi-threaded copy at the same thread
count), fraction = floor / losskit time (1.0 would be a perfect memory-bound kernel). Without jax
and optax installed the jax column shows '-'. With two or more thread counts a second table gives
each case's speedup from the fewest to the most threads and its fraction of the floor at each, for
the thread-scaling section (`--filter 'a|b'` selects several cases, `--section threads` writes
them between markers of their own in the markdown file).
"""

from __future__ import annotations

import os

# A child process for fewer threads than CPUs is pinned here, before numpy, torch or XLA start a
# thread: threads inherit the affinity of the thread that creates them.
if os.environ.get("LOSSKIT_BENCH_CPUS"):
    os.sched_setaffinity(0, {int(c) for c in os.environ["LOSSKIT_BENCH_CPUS"].split(",")})

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List, Optional  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import losskit  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _jax  # noqa: E402
from _markdown import write_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def name_matches(name: str, term: str) -> bool:
    """A filter term matches names containing it; a term ending in '$' only the name itself."""
    return name == term[:-1] if term.endswith("$") else term in name


def load_cases(pattern: str) -> List[Dict[str, Any]]:
    cases = []
    for path in sorted(glob.glob(os.path.join(HERE, "cases_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, HERE)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        cases += [c for c in module.CASES if any(name_matches(c["name"], p) for p in pattern.split("|"))]
    return cases


def interleaved_medians(
    fns: Dict[str, Callable[[], Any]], budget: float, min_reps: int, max_reps: int
) -> Dict[str, float]:
    """Median seconds of each callable. After one warm-up call each (page faults, caches, thread
    pools), the reps alternate, one of each per round, so that load from other processes hits
    them alike; rounds run until min_reps and `budget` seconds per callable, at most max_reps."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_reps and (rounds < min_reps or time.perf_counter() - start < budget * len(fns)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: statistics.median(t) for name, t in times.items()}


def copy_bandwidth(threads: int) -> float:
    """Bytes per second of a large copy (read + write) with torch's threaded copy_."""
    torch.set_num_threads(threads)
    src = torch.ones(64 * 1024 * 1024, dtype=torch.float32)
    dst = torch.empty_like(src)
    t = interleaved_medians({"copy": lambda: dst.copy_(src)}, 1.0, 5, 30)["copy"]
    return 2 * src.numel() * 4 / t


def usable_cpus() -> List[int]:
    """The CPUs this process may run on (all of them where the OS has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


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
    return (
        f"{cpu}, {os.cpu_count()} logical cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, torch {torch.__version__}, {_jax.versions()}, losskit {losskit.__version__} "
        f"(cpu_target={losskit.cpu_target()})"
    )


def fmt_ms(t: Optional[float]) -> str:
    return "-" if t is None else f"{t * 1e3:.3f}"


def fmt_ratio(t: Optional[float], t_lk: float) -> str:
    return "-" if t is None else f"{t / t_lk:.1f}x"


HEADER = [
    "| case | threads | losskit ms | torch ms | jax ms | torch/losskit | jax/losskit | floor ms | of floor |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def format_row(r: Dict[str, Any], bandwidth: float) -> str:
    floor = r["bytes"] / bandwidth
    return (
        f"| {r['name']} | {r['threads']} | {fmt_ms(r['losskit'])} | {fmt_ms(r['torch'])} | {fmt_ms(r['jax'])} | "
        f"{fmt_ratio(r['torch'], r['losskit'])} | {fmt_ratio(r['jax'], r['losskit'])} | {floor * 1e3:.3f} | "
        f"{floor / r['losskit']:.2f} |"
    )


def scaling_table(results: List[Dict[str, Any]]) -> List[str]:
    """Speedup of each case from the first thread count to the last (losskit medians), with the
    fraction of the floor at each count (floor from that count's own copy bandwidth)."""
    lo, hi = results[0], results[-1]
    counts = [str(r["threads"]) for r in results]
    lines = [
        f"| case | losskit ms at {' / '.join(counts)} threads | speedup {counts[0]} -> {counts[-1]} | "
        f"of floor at {' / '.join(counts)} |",
        "|---|---:|---:|---:|",
    ]
    for i, row in enumerate(lo["rows"]):
        times = [r["rows"][i]["losskit"] for r in results]
        fractions = [row["bytes"] / r["bandwidth"] / r["rows"][i]["losskit"] for r in results]
        lines.append(
            f"| {row['name']} | {' / '.join(fmt_ms(t) for t in times)} | "
            f"{lo['rows'][i]['losskit'] / hi['rows'][i]['losskit']:.2f}x | "
            f"{' / '.join(f'{f:.2f}' for f in fractions)} |"
        )
    return lines


def child(n: int, pattern: str, quick: bool, out: str) -> None:
    """Times every case at n threads in this process; writes the rows and the context to `out`."""
    budget, min_reps, max_reps = (0.2, 3, 10) if quick else (1.5, 7, 50)
    load_start = os.getloadavg()
    cpus = usable_cpus()
    # XLA's pool has a thread per usable CPU: JAX is timed only where that is n.
    time_jax = _jax.AVAILABLE and len(cpus) == n
    jax_note = (
        "jax timed"
        if time_jax
        else "jax not installed"
        if not _jax.AVAILABLE
        else f"jax not timed (XLA would use {len(cpus)} threads)"
    )
    bandwidth = copy_bandwidth(n)
    print(
        f"{n} thread(s) on CPUs {cpus}: copy bandwidth {bandwidth / 1e9:.1f} GB/s, "
        f"load average {load_start[0]:.2f}, {jax_note}",
        flush=True,
    )
    rows = []
    rng = np.random.default_rng(0)
    for case in load_cases(pattern):
        set_threads(n)
        state = case["setup"](rng)
        fns = {"losskit": lambda: case["losskit"](state), "torch": lambda: case["torch"](state)}
        if time_jax and case.get("jax") is not None:
            fns["jax"] = lambda: case["jax"](state)
        t = interleaved_medians(fns, budget, min_reps, max_reps)
        row = {
            "name": case["name"],
            "threads": n,
            "bytes": case["bytes"],
            "losskit": t["losskit"],
            "torch": t["torch"],
            "jax": t.get("jax"),
        }
        rows.append(row)
        print(format_row(row, bandwidth), flush=True)
        state = None  # free this case's inputs before the next one is built
    with open(out, "w") as f:
        json.dump(
            {
                "threads": n,
                "cpus": cpus,
                "bandwidth": bandwidth,
                "machine": machine(),
                "rows": rows,
                "load": [load_start, os.getloadavg()],
                "jax_note": jax_note,
            },
            f,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--filter",
        default="",
        help="only cases whose name contains this text (or one of several, '|'; a text ending in '$': the name)",
    )
    ap.add_argument("--quick", action="store_true", help="short timing budget (a smoke run)")
    ap.add_argument("--threads", default="", help="comma-separated thread counts (default: 1 and all)")
    ap.add_argument("--markdown", default="", help="also write the table into this markdown file")
    ap.add_argument("--section", default="bench", help="the markers of the markdown section to (re)write")
    ap.add_argument("--child", nargs=2, metavar=("THREADS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), args.filter, args.quick, args.child[1])
        return

    cpus = usable_cpus()
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, len(cpus)})
    print(machine())
    if not _jax.AVAILABLE:
        print(_jax.MISSING)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in thread_counts:
            env = dict(os.environ)
            env.pop("LOSSKIT_BENCH_CPUS", None)
            if n < len(cpus) and hasattr(os, "sched_setaffinity"):
                env["LOSSKIT_BENCH_CPUS"] = ",".join(str(c) for c in cpus[:n])
            out = os.path.join(tmp, f"{n}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), out, "--filter", args.filter]
            subprocess.run(cmd + (["--quick"] if args.quick else []), env=env, check=True)
            with open(out) as f:
                results.append(json.load(f))

    rows = list(HEADER)
    for i in range(len(results[0]["rows"])):
        rows += [format_row(r["rows"][i], r["bandwidth"]) for r in results]
    if len(results) > 1:
        rows += [""] + scaling_table(results)
    print("\n".join(rows))

    if args.markdown:
        context = [f"Machine: {results[0]['machine']}. Run started {started}.", ""]
        for r in results:
            pinned = (
                f"pinned to {len(r['cpus'])} CPU(s) with sched_setaffinity" if r["threads"] < len(cpus) else "all CPUs"
            )
            (l1, l5, l15), end = r["load"]
            context.append(
                f"{r['threads']} thread(s): own process, {pinned}, {r['jax_note']}; copy bandwidth "
                f"{r['bandwidth'] / 1e9:.1f} GB/s; load average {l1:.2f} {l5:.2f} {l15:.2f} at its "
                f"start, {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} at its end.  "
            )
        write_section(args.markdown, args.section, context + [""] + rows)


if __name__ == "__main__":
    main()
