"""linear_cross_entropy forward + backward at language-model sizes: time and peak memory.

    python bench/large_vocab.py [--quick] [--vocab 32000,128000] [--tokens 4096] [--hidden 1024]
                                [--reps 3] [--variants NAME,...] [--markdown docs/performance.md]

Each variant runs in its own subprocess, so `resource.getrusage(RUSAGE_SELF).ru_maxrss` is that
variant's peak resident memory alone. float32, all cores for every library. Variants:

* losskit: `losskit.functional.linear_cross_entropy_forward_backward` (chunked; default chunk of
  64 MiB of logits and at least 256 rows); `losskit-rows=K`: the same with chunk_size=K;
* torch-unfused: `torch.nn.functional.linear` + `cross_entropy`, autograd backward;
* torch-lce: `torch.nn.functional.linear_cross_entropy(options=None)` (torch's reference path);
* torch-lce-auto: `options=LinearCrossEntropyOptions()` (chunked, torch's automatic chunk size);
* torch-lce-aspect: `LinearCrossEntropyOptions(chunking_method="aspect_ratio")`;
* torch-lce-rows=K: `LinearCrossEntropyOptions(batch_chunk_size=K)`.

Every variant computes the loss and the gradients of input and linear_weight (no bias). Reported:
median seconds over `--reps` runs after one warm-up, peak RSS (MiB), the extra peak over the RSS
after setup (imports and inputs), and ratios against the fastest torch variant (time) and the
unfused path (peak RSS). The full V = 128000 case costs about 3 TFLOP of GEMMs per run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _markdown import write_section  # noqa: E402

DEFAULT_VARIANTS = [
    "losskit",
    "losskit-rows=512",
    "torch-unfused",
    "torch-lce",
    "torch-lce-auto",
    "torch-lce-aspect",
    "torch-lce-rows=512",
]


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(variant: str, N: int, H: int, V: int, reps: int) -> None:
    """Runs one variant and prints a JSON line with its times and memory."""
    import numpy as np

    threads = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H), dtype=np.float32)
    W = rng.standard_normal((V, H), dtype=np.float32) / np.float32(np.sqrt(H))
    t = rng.integers(0, V, N).astype(np.int64)

    if variant.startswith("losskit"):
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
        import losskit
        import losskit.functional as F

        losskit.set_num_threads(threads)
        chunk = int(variant.split("=", 1)[1]) if "=" in variant else None

        def run():
            loss, (gx, gW, _) = F.linear_cross_entropy_forward_backward(x, W, t, chunk_size=chunk)
            return float(loss)
    else:
        import torch
        import torch.nn.functional as TF

        torch.set_num_threads(threads)
        xt = torch.from_numpy(x).requires_grad_(True)
        Wt = torch.from_numpy(W).requires_grad_(True)
        tt = torch.from_numpy(t)
        options = None
        if variant == "torch-lce-auto":
            options = torch.nn.LinearCrossEntropyOptions()
        elif variant == "torch-lce-aspect":
            options = torch.nn.LinearCrossEntropyOptions(chunking_method="aspect_ratio")
        elif variant.startswith("torch-lce-rows="):
            options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=int(variant.split("=", 1)[1]))
        elif variant not in ("torch-unfused", "torch-lce"):
            raise SystemExit(f"unknown variant {variant!r}")

        def run():
            if variant == "torch-unfused":
                loss = TF.cross_entropy(TF.linear(xt, Wt), tt)
            else:
                loss = TF.linear_cross_entropy(xt, Wt, tt, options=options)
            gx, gW = torch.autograd.grad(loss, [xt, Wt])
            return float(loss)

    setup_rss = _rss_now_mib()
    loss = run()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "variant": variant,
                "V": V,
                "median_s": statistics.median(times),
                "times": times,
                "peak_mib": peak,
                "setup_mib": setup_rss,
                "loss": loss,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="V = 32000 only, one timed run per variant")
    ap.add_argument("--vocab", default="32000,128000")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    ap.add_argument("--markdown", default="", help="also write the table into this markdown file")
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "N", "H", "V", "REPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        v, N, H, V, reps = args.child
        child(v, int(N), int(H), int(V), int(reps))
        return

    vocabs = [32000] if args.quick else [int(v) for v in args.vocab.split(",")]
    reps = 1 if args.quick else args.reps
    variants = args.variants.split(",")
    header = (
        "| variant | V | median s | peak RSS MiB | extra over setup MiB | time / best torch | unfused peak / peak |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    print(f"N = {args.tokens}, H = {args.hidden}, float32, {os.cpu_count()} threads, {reps} timed run(s) each")
    print(header)
    print(rows[1])
    for V in vocabs:
        results = {}
        for variant in variants:
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    variant,
                    str(args.tokens),
                    str(args.hidden),
                    str(V),
                    str(reps),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"{variant} V={V} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        torch_times = [r["median_s"] for k, r in results.items() if k.startswith("torch")]
        best_torch = min(torch_times) if torch_times else float("nan")
        unfused_peak = results.get("torch-unfused", {}).get("peak_mib", float("nan"))
        for variant, r in results.items():
            row = (
                f"| {variant} | {V} | {r['median_s']:.2f} | {r['peak_mib']:.0f} | "
                f"{r['peak_mib'] - r['setup_mib']:.0f} | {r['median_s'] / best_torch:.2f} | "
                f"{unfused_peak / r['peak_mib']:.2f} |"
            )
            rows.append(row)
            print(row, flush=True)
        losses = {k: round(r["loss"], 4) for k, r in results.items()}
        print(f"losses at V={V}: {losses}")

    if args.markdown:
        write_section(
            args.markdown,
            "large_vocab",
            [
                f"N = {args.tokens}, H = {args.hidden}, float32, {os.cpu_count()} threads, "
                f"median of {reps} run(s) after a warm-up, each variant in its own process.",
                "",
            ]
            + rows,
        )


if __name__ == "__main__":
    main()
