"""Benchmark: time to quality. The classic-tutorial MLP GAN against this project's MLP GAN and
DCGAN, each trained for the same wall-clock budget, scored by the classifier FID over time.

* classic baseline: the MLP GAN as the classic tutorials write it (`gan_helpers.baseline`), in
  its own short loop below: torchvision dataset + `ToTensor`/`Normalize` +
  `DataLoader(batch_size=128, shuffle=True)` (`gan_helpers.data.classic_loader`), a
  discriminator ending in `Sigmoid` with `BCELoss` (`ClassicBCE`), Adam 2e-4 / (0.5, 0.999), and
  the generator run twice per iteration (once for the discriminator's step, once more on new
  noise for its own: `classic_step(..., fresh_noise=True)`);
* MLP GAN and DCGAN: `gan_helpers.models` trained by `gan_helpers.training.fit` on the fast loader
  (logits + `BCEWithLogitsLoss`, one batch of fakes per step).

The clock (`gan_helpers.timing.Stopwatch`) runs only while a model trains: the generator's
weights are copied at the evaluation
times (the copy is not timed) and all of them are scored afterwards with `gan_helpers.evaluation`
(classifier FID of `--samples` generated images against the test split). The table gives the FID
at `--times`, the time each model needs to reach the baseline's FID at the end of the budget
(measured on the grid `--grid` plus `--times`), and the classes covered at the end.

    python benchmarks/bench_time_to_quality.py --dataset fashion-mnist          # ~20 minutes
    python benchmarks/bench_time_to_quality.py --budget 60 --times 15,30,60     # a quick look
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from torch import nn

from gan_helpers import config, data
from gan_helpers.baseline import ClassicBCE, ClassicDiscriminator, ClassicGenerator, classic_step
from gan_helpers.classifier import EPOCHS as CLASSIFIER_EPOCHS
from gan_helpers.classifier import load_classifier
from gan_helpers.evaluation import Evaluator
from gan_helpers.metrics import N_SAMPLES, Scores
from gan_helpers.models import build_gan
from gan_helpers.timing import Stopwatch
from gan_helpers.training import Callback, TrainState, fit

BASELINE = "classic MLP (baseline)"
DEFAULT_TIMES = (30.0, 60.0, 120.0, 300.0)
DEFAULT_GRID = (10.0, 20.0, 45.0, 90.0, 180.0, 240.0)


# ----------------------------------------------------------------------------- the budget


class Snapshots:
    """Copies the generator's weights each time the clock passes one of `times`; says when the
    budget (the last time) is used."""

    def __init__(self, times: list[float]) -> None:
        self.times = sorted(times)
        self.taken: list[dict] = []
        self.clock = Stopwatch()

    def check(self, G: nn.Module, step: int) -> bool:
        """Take the snapshots that are due; True once the budget is used."""
        elapsed = self.clock.elapsed()
        while len(self.taken) < len(self.times) and elapsed >= self.times[len(self.taken)]:
            with self.clock.paused():
                weights = {k: v.detach().to("cpu", copy=True) for k, v in G.state_dict().items()}
                self.taken.append({"time": self.times[len(self.taken)], "elapsed": elapsed,
                                   "step": step, "weights": weights})
        return len(self.taken) == len(self.times)


class WallClockBudget(Callback):
    """For `fit`: snapshots at `times`, then `request_stop` when the last one is taken."""

    def __init__(self, times: list[float]) -> None:
        self.snapshots = Snapshots(times)

    def on_fit_start(self, state: TrainState) -> None:
        self.snapshots.clock.start()

    def on_step_end(self, state: TrainState) -> None:
        if self.snapshots.check(state.G, state.step):
            state.request_stop(f"wall-clock budget of {self.snapshots.times[-1]:g} s used")


# ----------------------------------------------------------------------------- the baseline


def train_classic(dataset: str, times: list[float], device: torch.device, seed: int,
                  batch_size: int) -> tuple[nn.Module, Snapshots]:
    """The classic tutorials' training loop, run until the budget (the last time) is used."""
    torch.manual_seed(seed)
    loader = data.classic_loader(dataset, batch_size=batch_size)
    generator = ClassicGenerator().to(device)
    discriminator = ClassicDiscriminator().to(device)
    objective = ClassicBCE()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    snapshots = Snapshots(times)
    step = 0
    while True:
        for real, _ in loader:
            real = real.to(device)
            z = torch.randn(real.size(0), ClassicGenerator.latent_dim, device=device)
            # The discriminator on real and generated images, then the generator on new samples.
            classic_step(generator, discriminator, opt_g, opt_d, real, z, objective,
                         fresh_noise=True)
            step += 1
            if snapshots.check(generator, step):
                return generator, snapshots


def train_project(kind: str, loader: data.TensorLoader, times: list[float],
                  device: torch.device, seed: int) -> tuple[nn.Module, Snapshots]:
    """This project's `kind` GAN trained by `fit` on the fast loader until the budget is used."""
    torch.manual_seed(seed)
    G, D, _ = build_gan(kind)
    budget = WallClockBudget(times)
    fit(G, D, loader, epochs=1_000_000, device=device, callbacks=[budget], progress=False,
        seed=seed)
    return G, budget.snapshots


# ----------------------------------------------------------------------------- the run


def parse_times(text: str) -> list[float]:
    return sorted({float(t) for t in text.split(",") if t.strip()})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=config.DATASETS, default=None,
                        help="dataset (default: $GAN_DATASET, else mnist)")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="training seconds per model (default 300)")
    parser.add_argument("--times", type=parse_times, default=None,
                        help="comma-separated seconds for the table (default 30,60,120,300, "
                             "those within the budget, and the budget)")
    parser.add_argument("--grid", type=parse_times, default=list(DEFAULT_GRID),
                        help="extra evaluation seconds for the time-to-reach figure "
                             "(default 10,20,45,90,180,240)")
    parser.add_argument("--samples", type=int, default=N_SAMPLES,
                        help=f"generated images per evaluation (default {N_SAMPLES})")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(THREADS) first (default: torch's default)")
    parser.add_argument("--classifier-epochs", type=int, default=CLASSIFIER_EPOCHS,
                        help="the evaluation classifier's schedule (tests shorten it)")
    parser.add_argument("--classifier-limit", type=int, default=None,
                        help="train the evaluation classifier on the first N images only")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error("--budget must be positive")
    if args.times is None:
        args.times = sorted({t for t in DEFAULT_TIMES if t <= args.budget} | {args.budget})
    if not args.times or args.times[-1] > args.budget or args.times[0] <= 0:
        parser.error("--times must be positive and within the budget")
    return args


def time_to_reach(curve: list[dict], target: float) -> tuple[float | None, float]:
    """The first evaluated time whose FID is at most `target` (None if never), and the
    evaluated time before it (0 if it is the first): the crossing lies between the two."""
    previous = 0.0
    for point in curve:
        if point["fid"] <= target:
            return point["time"], previous
        previous = point["time"]
    return None, previous


def main(argv: list[str] | None = None) -> dict:
    """Train the three models, score them, print the table, and return the figures."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dataset = config.dataset_name(args.dataset)
    device = config.pick_device(args.device)
    title = data.dataset_info(dataset).title
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    budget = args.times[-1]
    checkpoints = sorted(set(args.times) | {t for t in args.grid if t < budget})

    classifier = load_classifier(dataset, epochs=args.classifier_epochs,
                                 limit=args.classifier_limit, device=device)
    evaluator = Evaluator(classifier, dataset, device=device)
    references = evaluator.references(n=args.samples)

    loader = data.make_loader(dataset, batch_size=args.batch_size, device=device, seed=args.seed)
    trainers = {  # the two project models share the fast loader (its order: seed and epoch)
        BASELINE: lambda: train_classic(dataset, checkpoints, device, args.seed, args.batch_size),
        "MLP GAN": lambda: train_project("mlp", loader, checkpoints, device, args.seed),
        "DCGAN": lambda: train_project("dcgan", loader, checkpoints, device, args.seed),
    }
    results: dict = {"dataset": dataset, "budget": budget, "samples": args.samples,
                     "classifier_accuracy": classifier.test_accuracy,
                     "references": {k: v.as_dict() for k, v in references.items()},
                     "models": {}}
    for name, train in trainers.items():
        print(f"Training {name} for {budget:g} s...", flush=True)
        G, snapshots = train()
        start = time.perf_counter()
        scored = copy.deepcopy(G)
        curve = []
        for snap in snapshots.taken:
            scored.load_state_dict(snap["weights"])
            scores = evaluator.score_generator(scored, n=args.samples, seed=args.seed)
            curve.append({"time": snap["time"], "elapsed": snap["elapsed"], "step": snap["step"],
                          **scores.as_dict()})
        print(f"  {curve[-1]['step']:,} steps; {len(curve)} evaluations in "
              f"{time.perf_counter() - start:.0f} s (not counted); final: "
              f"{Scores.from_dict(curve[-1])}", flush=True)
        results["models"][name] = {"curve": curve, "steps": curve[-1]["step"],
                                   "table": [p for p in curve if p["time"] in args.times]}

    target = results["models"][BASELINE]["curve"][-1]["fid"]
    results["target"] = target
    for run in results["models"].values():
        run["time_to_target"], run["previous_time"] = time_to_reach(run["curve"], target)
        run["coverage_at_end"] = run["curve"][-1]["coverage"]
    best = min((n for n in results["models"] if n != BASELINE),
               key=lambda n: results["models"][n]["time_to_target"] or float("inf"))
    run = results["models"][best]
    fast = run["time_to_target"] is not None and run["time_to_target"] <= budget / 5
    results["best"] = best
    results["target_met"] = fast and run["coverage_at_end"] == run["curve"][-1]["classes"]
    print_table(results, args, title, device, load, references)
    return results


def print_table(results: dict, args: argparse.Namespace, title: str, device: torch.device,
                load: str, references: dict) -> None:
    budget, target = results["budget"], results["target"]
    print()
    print(f"Time to quality on {title}, {device} ({torch.get_num_threads()} threads, load "
          f"average {load} at the start); classifier FID of {args.samples:,} samples against "
          f"the test split; evaluation classifier test accuracy "
          f"{results['classifier_accuracy']:.2%}.")
    for name, ref in references.items():
        print(f"  reference, {name:<21} FID {ref.fid:8.2f} · coverage "
              f"{ref.coverage}/{ref.classes}")
    head = "".join(f"{f'{t:g} s':>9}" for t in args.times)
    print(f"\n{'model':<24}{head}{'steps':>9}   {f'time to reach {target:.2f}':<30}"
          "coverage at end")
    for name, run in results["models"].items():
        fids = "".join(f"{p['fid']:>9.2f}" for p in run["table"])
        if run["time_to_target"] is None:
            reach = f"not within {budget:g} s"
        elif run["previous_time"] == 0:
            reach = f"{run['time_to_target']:g} s (first check)"
        else:
            reach = f"{run['time_to_target']:g} s (not yet at {run['previous_time']:g} s)"
        end = run["curve"][-1]
        print(f"{name:<24}{fids}{run['steps']:>9,}   {reach:<30}"
              f"{end['coverage']}/{end['classes']}")
    evaluated = ", ".join(f"{p['time']:g}" for p in results["models"][BASELINE]["curve"])
    print(f"\nTime to reach: the first evaluated time (of {evaluated} s) at which the model's FID "
          f"is at or below the baseline's FID at {budget:g} s.")
    print(f"Target (this project's best model reaches it in at most {budget / 5:g} s and ends "
          f"with every class covered): {results['best']}, "
          f"{'met' if results['target_met'] else 'NOT met'}.")


if __name__ == "__main__":
    main()
