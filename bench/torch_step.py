"""A CPU training step of a small torch model whose head is a 32000-class softmax, with the loss
from losskit.torch against torch.nn.functional.cross_entropy.

    python bench/torch_step.py [--batch 256,1024] [--classes 32000] [--hidden 512] [--reps 7]
                               [--threads N]

The model: Linear(hidden, hidden) + GELU, then the head Linear(hidden, classes); one step is
zero_grad, forward, cross_entropy ('mean', class-index targets), backward, SGD step, in float32.
Both variants run on the same model and data, their reps alternating (losskit, torch, losskit, ...)
so that load from other processes hits them alike; reported are the median step times, the median
time of the loss alone (forward + backward on the step's logits), and torch/losskit. torch and
losskit use the same thread count (default: torch's).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch

import losskit
import losskit.torch.functional as LTF


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", default="256,1024", help="comma-separated batch sizes")
    ap.add_argument("--classes", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="threads for torch and losskit (default: torch's)")
    args = ap.parse_args()
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    losskit.set_num_threads(threads)
    losses: Dict[str, Callable[..., torch.Tensor]] = {
        "losskit": LTF.cross_entropy,
        "torch": torch.nn.functional.cross_entropy,
    }
    print(f"threads {threads}, hidden {args.hidden}, classes {args.classes}, float32, median of {args.reps}")
    print(
        "| batch | losskit step (ms) | torch step (ms) | torch/losskit | losskit loss (ms) | torch loss (ms) "
        "| torch/losskit |"
    )
    print("|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batch.split(",")):
        g = torch.Generator().manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(args.hidden, args.hidden), torch.nn.GELU(), torch.nn.Linear(args.hidden, args.classes)
        )
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        x = torch.randn(batch, args.hidden, generator=g)
        t = torch.randint(0, args.classes, (batch,), generator=g)
        step_times: Dict[str, List[float]] = {k: [] for k in losses}
        loss_times: Dict[str, List[float]] = {k: [] for k in losses}
        # Both losses on the same logits first: the same value and gradient.
        z0 = model(x).detach()
        ref = [z0.clone().requires_grad_() for _ in losses]
        vals = [fn(z, t) for fn, z in zip(losses.values(), ref)]
        for v in vals:
            v.backward()
        torch.testing.assert_close(vals[0], vals[1])
        torch.testing.assert_close(ref[0].grad, ref[1].grad)
        for rep in range(args.reps + 1):  # the first rep warms up
            for name, fn in losses.items():
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                logits = model(x)
                loss = fn(logits, t)
                loss.backward()
                opt.step()
                t1 = time.perf_counter()
                z = logits.detach().requires_grad_()
                t2 = time.perf_counter()
                fn(z, t).backward()
                t3 = time.perf_counter()
                if rep:
                    step_times[name].append(t1 - t0)
                    loss_times[name].append(t3 - t2)
        s = {k: 1e3 * statistics.median(v) for k, v in step_times.items()}
        lt = {k: 1e3 * statistics.median(v) for k, v in loss_times.items()}
        print(
            f"| {batch} | {s['losskit']:.1f} | {s['torch']:.1f} | {s['torch'] / s['losskit']:.2f} "
            f"| {lt['losskit']:.1f} | {lt['torch']:.1f} | {lt['torch'] / lt['losskit']:.2f} |"
        )


if __name__ == "__main__":
    main()
