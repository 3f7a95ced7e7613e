"""Training speed: the classic pipeline against this project's loop, side by side in one run.

For the MLP GAN and the 28x28 DCGAN: training images per second of
- classic: torchvision dataset + ToTensor/Normalize + DataLoader(batch_size=128, shuffle=True),
  and the classic step (`benchmarks.baseline.classic_step`: G twice, gradients zeroed by filling,
  on these logit models with `BCEObjective`) with its losses read back every step;
- this project: the fast `TensorLoader` (on the training device) and `fit` with `train_step`;
each the median of several timed repeats after a warm-up, alternating, and the ratio. Also the
peak memory (GPU: allocated by PyTorch; CPU: the process's peak resident set, measured in a fresh
process per row) and, on a GPU, the time for one epoch of 60,000 images. `--explore` also times
the speed options (threads, channels-last, bf16, compile, batch size) on the project loop.

    GAN_DATASET=fashion-mnist .venv/bin/python benchmarks/bench_speed.py [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

if __name__ == "__main__":  # run as a script: benchmarks/ is on the path, the repository is not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baseline import classic_step
from gan_helpers import config, data
from gan_helpers.callbacks import Callback
from gan_helpers.models import build_gan
from gan_helpers.objectives import BCEObjective
from gan_helpers.training import FitOptions, SpeedOptions, fit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_classic(kind: str, loader, device: torch.device, steps: int) -> float:
    """Images per second of the classic pipeline for `steps` steps (after one warm-up step)."""
    G, D, _ = build_gan(kind)
    G.to(device)
    D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    objective, done, start = BCEObjective(), -1, 0.0
    while done < steps:
        for real, _ in loader:
            if done == 0:
                _sync(device)
                start = time.perf_counter()
            real = real.to(device)
            z = torch.randn(real.shape[0], 100, device=device)
            classic_step(G, D, opt_g, opt_d, real, z, objective).tolist()  # read back: a sync
            done += 1
            if done == steps:
                break
    _sync(device)
    return steps * loader.batch_size / (time.perf_counter() - start)


def time_project(kind: str, loader, device: torch.device, steps: int,
                 speed: SpeedOptions | None = None) -> float:
    """Images per second of `fit` for `steps` steps (after warm-up steps, compile included)."""
    G, D, _ = build_gan(kind)
    warm = 3 if not (speed and speed.compile) else 10
    timer = {}

    class Clock(Callback):
        def on_step_end(self, state):
            if state.step == warm:
                _sync(device)
                timer["start"] = time.perf_counter()

    fit(G, D, loader, epochs=10_000, max_steps=warm + steps, device=device, progress=False,
        callbacks=[Clock()], seed=None, options=FitOptions(speed=speed))
    _sync(device)
    return steps * loader.batch_size / (time.perf_counter() - timer["start"])


def peak_memory_mb(kind: str, pipeline: str, device: str, dataset: str | None) -> float:
    """Peak memory of a short run of one pipeline, measured in a fresh process."""
    code = f"""
import resource, torch
from benchmarks.bench_speed import time_classic, time_project
from gan_helpers import data
device = torch.device({device!r})
if {pipeline!r} == "classic":
    time_classic({kind!r}, data.classic_loader({dataset!r}, batch_size=128), device, 10)
else:
    time_project({kind!r}, data.make_loader({dataset!r}, batch_size=128, device=device), device, 10)
if device.type == "cuda":
    print(torch.cuda.max_memory_allocated() / 2**20)
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _loaders(dataset, device, batch_size, limit=None):
    indices = range(limit) if limit else None
    classic = data.classic_loader(dataset, batch_size=batch_size, indices=indices)
    fast = data.make_loader(dataset, batch_size=batch_size, device=device, limit=limit)
    return classic, fast


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--models", nargs="+", default=["mlp", "dcgan"])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--explore", action="store_true", help="also time the speed options")
    args = parser.parse_args(argv)
    device = config.pick_device(args.device)
    classic, fast = _loaders(args.dataset, device, 128, args.limit)
    print(f"Training speed on {device} ({torch.get_num_threads()} threads), "
          f"{data.dataset_info(args.dataset).title}, batch 128, {args.steps} steps per repeat, "
          f"median of {args.repeats}")
    print(f"{'model':<7}{'classic img/s':>15}{'project img/s':>15}{'ratio':>8}"
          f"{'classic MB':>12}{'project MB':>12}" + ("   epoch (60k)" if device.type == "cuda"
                                                      else ""))
    results = {}
    for kind in args.models:
        runs = {"classic": [], "project": []}
        time_project(kind, fast, device, 3)  # warm-up (time_classic warms itself)
        for _ in range(args.repeats):
            runs["classic"].append(time_classic(kind, classic, device, args.steps))
            runs["project"].append(time_project(kind, fast, device, args.steps))
        c, p = statistics.median(runs["classic"]), statistics.median(runs["project"])
        mem = ("-", "-") if args.no_memory else tuple(
            f"{peak_memory_mb(kind, pipe, str(device), args.dataset):,.0f}"
            for pipe in ("classic", "project"))
        line = f"{kind:<7}{c:>15,.0f}{p:>15,.0f}{p / c:>7.2f}x{mem[0]:>12}{mem[1]:>12}"
        if device.type == "cuda":
            line += f"{60_000 / p:>12.2f} s"
        print(line, flush=True)
        results[kind] = {"classic": c, "project": p, "ratio": p / c}

    if args.explore:
        print("\nSpeed options on the project loop (images/s, median):")
        variants = {
            "default": (None, SpeedOptions(), 128),
            "1 thread": (1, SpeedOptions(), 128),
            "channels-last": (None, SpeedOptions(channels_last=True), 128),
            "bf16 autocast": (None, SpeedOptions(amp="bf16"), 128),
            "compile": (None, SpeedOptions(compile=True), 128),
            "batch 64": (None, SpeedOptions(), 64),
            "batch 256": (None, SpeedOptions(), 256),
        }
        threads = torch.get_num_threads()
        loaders = {bs: fast if bs == fast.batch_size else data.make_loader(
            args.dataset, batch_size=bs, device=device, limit=args.limit)
            for bs in {bs for _, _, bs in variants.values()}}  # each batch size loaded once
        for kind in args.models:
            for name, (n_threads, speed, bs) in variants.items():
                loader = loaders[bs]
                torch.set_num_threads(n_threads or threads)
                try:
                    t0 = time.perf_counter()
                    time_project(kind, loader, device, 3, speed)  # warm-up (and compile)
                    warm_s = time.perf_counter() - t0
                    ips = statistics.median(time_project(kind, loader, device, args.steps, speed)
                                            for _ in range(args.repeats))
                    extra = f"  (first run incl. compile {warm_s:.0f} s)" if speed.compile else ""
                    print(f"  {kind:<6}{name:<15}{ips:>10,.0f}{extra}", flush=True)
                except Exception as err:  # noqa: BLE001 - an option this machine lacks
                    ips = float("nan")
                    print(f"  {kind:<6}{name:<15}  failed: {type(err).__name__}: {err}")
                finally:
                    torch.set_num_threads(threads)
                results.setdefault("explore", {})[f"{kind} {name}"] = ips
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
