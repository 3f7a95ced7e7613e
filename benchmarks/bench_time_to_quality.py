"""Benchmark: time to quality. The classic-tutorial MLP GAN against this project's GANs and
recipes, each trained for the same wall-clock budget with several seeds, scored by the classifier
FID over time.

* classic baseline (`classic`): the MLP GAN as the classic tutorials write it
  (`benchmarks.baseline`), in its own short loop below: torchvision dataset +
  `ToTensor`/`Normalize` + `DataLoader(batch_size=128, shuffle=True)`
  (`gan_helpers.data.classic_loader`), a discriminator ending in `Sigmoid` with `BCELoss`
  (`ClassicBCE`), Adam 2e-4 / (0.5, 0.999), and the generator run twice per iteration (once for
  the discriminator's step, once more on new noise for its own:
  `classic_step(..., fresh_noise=True)`);
* MLP GAN (`mlp`) and DCGAN (`dcgan`, the DCGAN paper's recipe: 64 channels, batches of 128,
  Adam 2e-4): `gan_helpers.models` trained by `gan_helpers.training.fit` on the fast loader
  (logits + `BCEWithLogitsLoss`, one batch of fakes per step);
* DCGAN + EMA (`dcgan-ema`): the same DCGAN, trained with `fit(ema=EMA_DECAY)` and scored by
  the moving average of its generator's weights (updating the average counts as training time);
* DCGAN, tuned (`tuned`): the tuned recipe as first measured, `FIRST_TUNED` (32 channels,
  batches of 64, Adam 4e-4); `tuned-ema` scores the moving average of its
  generator's weights (decay `EMA_DECAY`); `tuned-bf16` and `tuned-ema-bf16` train with
  `SpeedOptions(amp="auto")`, bfloat16 autocast where the CPU or GPU has native bf16 (the JSON's
  `bf16` says whether it was on); `tuned-ttur` trains G four times slower than D (Adam 1e-4
  against 4e-4: Heusel et al.'s two time-scale update rule);
* levers on the tuned recipe with bf16, measured by name (`--configs`), not in a default run:
  a learning-rate schedule over the budget's clock (`BudgetSchedule`: `-decay` falls linearly to
  0 over the budget, `-late-decay` over its second half), a moving average with a shorter horizon
  (`tuned-ema995`), the hinge loss, Adam 8e-4 or 1.6e-3 (`lr8`, `lr16`), channels-last memory
  format (`cl`), `torch.compile` (its compile time counts in the budget), a wider generator
  (`tuned-g64`: 64 channels against D's 32), a narrower discriminator (`tuned-d16`), batches of
  32, Adam betas (0, 0.99) (`betas0`), differentiable augmentation of D's inputs (`augment`:
  `models.DiffAugment`), and combinations of these (`CONFIGS` lists them all);
* the default (`default`): the package's DCGAN preset on a CPU, `recipes.PRESETS["tuned"]`,
  whatever it is now (today the same as `tuned-lr8`: Adam 8e-4);
* flow matching (`flow`): lesson 09's flow-matching model (`gan_helpers.flow`, a small U-Net
  sampled in 16 Euler steps), trained by `gan_helpers.training.fit_flow` on the same loader: not
  a GAN, measured with the same ruler.

Each configuration runs with the seeds 0 to `--seeds` - 1 (one seed's runs of every configuration
after another's, so a change in the machine's load falls on all of them alike). The clock
(`gan_helpers.callbacks.WallClockBudget`) runs only while a model trains: the generator's weights
are copied at the evaluation times (the copy is not timed) and all of them are scored afterwards
with `gan_helpers.evaluation.score_snapshots` (classifier FID of `--samples` generated images
against the test split, the noise seeded by the run's seed). The table gives, over the seeds, the
mean FID and its spread (min–max; the JSON also has the sample standard deviation) at `--times`; the
time the mean curve needs to reach the baseline's mean FID at the end of the budget (measured on the
grid `--grid` plus `--times`), with how many seeds reach it; and the classes covered at the end.
`--out` receives `results.json` (every number) and `fid_over_time.png` (mean FID against seconds,
with a band from the lowest to the highest seed); after every run, `partial.json` holds the runs
so far, so a run cut short keeps what it measured. `--combine` makes one table, JSON and plot of the
configurations of earlier runs measured alike (a configuration added later, for example).

    python benchmarks/bench_time_to_quality.py --dataset fashion-mnist          # ~2.5 hours
    python benchmarks/bench_time_to_quality.py --configs tuned-hinge --seeds 1   # one lever
    python benchmarks/bench_time_to_quality.py --configs classic,dcgan,tuned --seeds 5
    python benchmarks/bench_time_to_quality.py --combine A/results.json B/results.json --out C
    python benchmarks/bench_time_to_quality.py --budget 60 --times 15,30,60     # a quick look
    python benchmarks/bench_time_to_quality.py --quick                          # seconds: a check
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

if __name__ == "__main__":  # run as a script: benchmarks/ is on the path, the repository is not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baseline import ClassicBCE, ClassicDiscriminator, ClassicGenerator, classic_step
from gan_helpers import config, data
from gan_helpers.callbacks import Callback, WallClockBudget
from gan_helpers.classifier import EPOCHS as CLASSIFIER_EPOCHS
from gan_helpers.classifier import load_classifier
from gan_helpers.evaluation import Evaluator, score_snapshots
from gan_helpers.flow import FLOW_BATCH_SIZE, FLOW_LR, FLOW_STEPS, FLOW_WIDTH, FlowGenerator
from gan_helpers.metrics import N_SAMPLES
from gan_helpers.recipes import PRESETS, TUNED_BATCH_SIZE, Preset, Recipe
from gan_helpers.run_config import add_data_flags
from gan_helpers.state import TrainState
from gan_helpers.timing import Snapshots
from gan_helpers.training import FitOptions, SpeedOptions, fit, fit_flow, lr_factor

BASELINE = "classic MLP (baseline)"
FLOW_NAME = f"Flow matching, U-Net {FLOW_WIDTH}, {FLOW_STEPS} Euler steps, bf16"
FLOW_AMP = "auto"
"""The flow model trains with bf16 autocast where it is native, as the tuned GAN does (and
`FlowGenerator` samples in bf16 there too)."""
EMA_DECAY = 0.999
"""The moving average's decay for the "+ EMA" configurations (ProGAN's; its warm-up,
`ema_decay`, makes it follow the generator closely over the first few thousand steps)."""


@dataclasses.dataclass(frozen=True)
class Config:
    """One configuration: its name in the results and what `fit` trains (a `Preset`: recipe,
    batch size, autocast; None: the classic tutorial's own loop). A batch size of None is
    `--batch-size`. `schedule` scales both learning rates over the budget's clock (`lr_factor`;
    None: the preset's own `lr_schedule`);
    `speed` adds `SpeedOptions` fields (`channels_last`, `compile`) to the preset's autocast.
    `flow=True`: lesson 09's flow-matching model (`train_flow`), not a GAN."""

    name: str
    preset: Preset | None
    schedule: str | None = None
    speed: tuple[tuple[str, bool], ...] = ()
    flow: bool = False

    @property
    def lr_schedule(self) -> str | None:
        """The schedule it trains with: its own, else its preset's."""
        return self.schedule or (self.preset.lr_schedule if self.preset else None)


FIRST_TUNED = Recipe(width=32, lr_g=4e-4, lr_d=4e-4)
"""The tuned recipe as first measured (Adam 4e-4, constant): the `tuned-*` configurations and
their levers start from it, so their names keep meaning what was measured. `recipes.TUNED` is
the recipe the levers led to (`tuned-lr8`); `default` measures it, with its preset."""


def _tuned(**changes: object) -> Preset:
    """The first tuned recipe with `changes`, at its batch size (fp32: add
    `._replace(amp="auto")`)."""
    return Preset(dataclasses.replace(FIRST_TUNED, **changes), TUNED_BATCH_SIZE)


def _lr8(**changes: object) -> Preset:
    """The first tuned recipe at Adam 8e-4 (`recipes.TUNED`'s rates) with `changes`, bf16."""
    return _tuned(lr_g=8e-4, lr_d=8e-4, **changes)._replace(amp="auto")


TUNED_EMA = _tuned(ema=EMA_DECAY)
CONFIGS = {
    "classic": Config(BASELINE, None),
    "mlp": Config("MLP GAN", Preset(Recipe(model="mlp"))),
    "dcgan": Config("DCGAN", Preset(Recipe())),
    "dcgan-ema": Config("DCGAN + EMA", Preset(Recipe(ema=EMA_DECAY))),
    "tuned": Config("DCGAN, tuned", _tuned()),
    "tuned-ema": Config("DCGAN, tuned + EMA", TUNED_EMA),
    "tuned-bf16": Config("DCGAN, tuned, bf16", _tuned()._replace(amp="auto")),
    "tuned-ema-bf16": Config("DCGAN, tuned + EMA, bf16", TUNED_EMA._replace(amp="auto")),
    "tuned-ttur": Config("DCGAN, tuned, TTUR", Preset(dataclasses.replace(FIRST_TUNED, lr_g=1e-4),
                                                      TUNED_BATCH_SIZE)),
    "tuned-decay": Config("DCGAN, tuned, bf16, lr decay", _tuned()._replace(amp="auto"), "linear"),
    "tuned-late-decay": Config("DCGAN, tuned, bf16, late lr decay",
                               _tuned()._replace(amp="auto"), "late-linear"),
    "tuned-ema995": Config("DCGAN, tuned + EMA 0.995, bf16",
                           _tuned(ema=0.995)._replace(amp="auto")),
    "tuned-hinge": Config("DCGAN, tuned, bf16, hinge", _tuned(loss="hinge")._replace(amp="auto")),
    "tuned-lr8-late-decay": Config("DCGAN, tuned, bf16, lr 8e-4, late lr decay",
                                   _lr8(), "late-linear"),
    "tuned-channels-last": Config("DCGAN, tuned, bf16, channels-last",
                                  _tuned()._replace(amp="auto"), speed=(("channels_last", True),)),
    "tuned-compile": Config("DCGAN, tuned, bf16, compiled", _tuned()._replace(amp="auto"),
                            speed=(("compile", True),)),
    "tuned-g64": Config("DCGAN, tuned, bf16, G 64 channels",
                        _tuned(width=64, width_d=32)._replace(amp="auto")),
    "tuned-d16": Config("DCGAN, tuned, bf16, D 16 channels",
                        _tuned(width_d=16)._replace(amp="auto")),
    "tuned-b32": Config("DCGAN, tuned, bf16, batches of 32",
                        _tuned()._replace(amp="auto", batch_size=32)),
    "tuned-lr8": Config("DCGAN, tuned, bf16, lr 8e-4", _lr8()),
    "tuned-lr8-cl": Config("DCGAN, tuned, bf16, lr 8e-4, channels-last",
                           _lr8(), speed=(("channels_last", True),)),
    "tuned-lr8-cl-late-decay": Config("DCGAN, tuned, bf16, lr 8e-4, channels-last, late lr decay",
                                      _lr8(),
                                      "late-linear", (("channels_last", True),)),
    "tuned-lr8-hinge-cl-late-decay": Config(
        "DCGAN, tuned, bf16, lr 8e-4, hinge, channels-last, late lr decay",
        _lr8(loss="hinge"), "late-linear", (("channels_last", True),)),
    "tuned-lr8-hinge": Config("DCGAN, tuned, bf16, lr 8e-4, hinge",
                              _lr8(loss="hinge")),
    "tuned-lr8-hinge-late-decay": Config("DCGAN, tuned, bf16, lr 8e-4, hinge, late lr decay",
                                         _lr8(loss="hinge"), "late-linear"),
    "tuned-lr16-late-decay": Config("DCGAN, tuned, bf16, lr 1.6e-3, late lr decay",
                                    _tuned(lr_g=1.6e-3, lr_d=1.6e-3)._replace(amp="auto"),
                                    "late-linear"),
    "tuned-lr8-ema": Config("DCGAN, tuned + EMA, bf16, lr 8e-4",
                            _lr8(ema=EMA_DECAY)),
    "tuned-lr8-ema995": Config("DCGAN, tuned + EMA 0.995, bf16, lr 8e-4",
                               _lr8(ema=0.995)),
    "tuned-lr8-betas0": Config("DCGAN, tuned, bf16, lr 8e-4, Adam betas (0, 0.99)",
                               _lr8(betas=(0.0, 0.99))),
    "tuned-lr8-g64": Config("DCGAN, tuned, bf16, lr 8e-4, G 64 channels",
                            _lr8(width=64, width_d=32)),
    "tuned-lr8-augment": Config("DCGAN, tuned, bf16, lr 8e-4, DiffAugment",
                                _lr8(augment=True)),
    "tuned-lr8-betas0-ema995": Config("DCGAN, tuned + EMA 0.995, bf16, lr 8e-4, betas (0, 0.99)",
                                      _lr8(betas=(0.0, 0.99), ema=0.995)),
    "tuned-lr8-betas0-ema995-augment": Config(
        "DCGAN, tuned + EMA 0.995, bf16, lr 8e-4, betas (0, 0.99), DiffAugment",
        _lr8(betas=(0.0, 0.99), ema=0.995, augment=True)),
    "default": Config("DCGAN, the default on a CPU (recipes.PRESETS['tuned'])", PRESETS["tuned"]),
    "flow": Config(FLOW_NAME, None, flow=True),
}
"""The configurations `--configs` picks from, by name."""
DEFAULT_CONFIGS = ("classic", "mlp", "dcgan", "dcgan-ema", "tuned", "tuned-ema", "tuned-bf16",
                   "tuned-ema-bf16", "tuned-ttur")
"""The configurations a run without `--configs` measures (the README's table); the others are
levers screened by name."""
DEFAULT_TIMES = (30.0, 60.0, 120.0, 300.0)
DEFAULT_GRID = (10.0, 20.0, 45.0, 90.0, 180.0, 240.0)
FULL = {"budget": 300.0, "seeds": 3, "samples": N_SAMPLES, "batch_size": 128,
        "classifier_epochs": CLASSIFIER_EPOCHS, "classifier_limit": None}
"""The defaults of a real run."""
QUICK = {"budget": 0.5, "seeds": 2, "samples": 100, "batch_size": 64, "classifier_epochs": 1,
         "classifier_limit": 256}
"""`--quick`: every code path in a few seconds (the numbers mean nothing); options given on the
command line win."""


# ----------------------------------------------------------------------------- the budget


class BudgetSchedule(Callback):
    """For `fit`: sets both learning rates to their first value times
    `gan_helpers.training.lr_factor(schedule, t / budget)` before every step, `t` read from the
    budget's own clock (`Snapshots.clock`, paused while snapshots are taken), so the schedule
    ends when the budget does (`fit`'s own `lr_schedule` counts steps, unknown here)."""

    def __init__(self, snapshots: Snapshots, schedule: str) -> None:
        lr_factor(schedule, 0.0)  # an unknown schedule fails here, before training
        self.snapshots, self.schedule = snapshots, schedule
        self.base: list[list[float]] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.optimizers = [opt for opt in (state.opt_g, state.opt_d) if opt is not None]
        self.base = [[g["lr"] for g in opt.param_groups] for opt in self.optimizers]

    def on_step_end(self, state: TrainState) -> None:
        progress = self.snapshots.clock.elapsed() / self.snapshots.times[-1]
        factor = lr_factor(self.schedule, progress)
        for opt, base in zip(self.optimizers, self.base):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * factor


# ----------------------------------------------------------------------------- the trainers


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


def train_project(recipe: Recipe, loader: data.TensorLoader, times: list[float],
                  device: torch.device, seed: int, amp: str | None = None,
                  schedule: str | None = None,
                  speed: Sequence[tuple[str, bool]] = ()) -> tuple[nn.Module, Snapshots]:
    """`recipe` trained by `fit` on the fast loader until the budget is used (`amp` and `speed`:
    see `SpeedOptions`; `schedule`: `lr_factor`); with a moving average (`recipe.ema`), the
    snapshots are of the average. The budget's clock starts before the first step, so a
    compilation's time counts."""
    torch.manual_seed(seed)
    parts = recipe.build(device)
    budget = WallClockBudget(times)
    callbacks = [*parts.callbacks, budget]
    if schedule is not None:
        callbacks.append(BudgetSchedule(budget.snapshots, schedule))
    fit(parts.G, parts.D, loader, epochs=1_000_000, objective=parts.objective, opt_g=parts.opt_g,
        opt_d=parts.opt_d, device=device, callbacks=callbacks, progress=False,
        seed=seed, ema=recipe.ema,
        options=FitOptions(speed=SpeedOptions(amp=amp, **dict(speed))))
    return parts.G, budget.snapshots


def train_flow(loader: data.TensorLoader, times: list[float], device: torch.device,
               seed: int) -> tuple[nn.Module, Snapshots]:
    """Lesson 09's flow-matching model (`FlowGenerator`, `FLOW_WIDTH` channels, sampling in
    `FLOW_STEPS` Euler steps) trained by `fit_flow` until the budget is used."""
    torch.manual_seed(seed)
    G = FlowGenerator()
    budget = WallClockBudget(times)
    fit_flow(G, loader, epochs=1_000_000, device=device, callbacks=[budget], progress=False,
             seed=seed, options=FitOptions(speed=SpeedOptions(amp=FLOW_AMP)))
    return G, budget.snapshots


def trainers(configs: Sequence[str], dataset: str, times: list[float], device: torch.device,
             batch_size: int) -> dict[str, Callable[[int], tuple[nn.Module, Snapshots]]]:
    """For each configuration picked, its name and a function of the seed that trains it. The
    project's configurations share one fast loader per batch size; its order depends on the
    seed."""
    loaders: dict[int, data.TensorLoader] = {}

    def seeded(size: int, seed: int) -> data.TensorLoader:
        if size not in loaders:
            loaders[size] = data.make_loader(dataset, batch_size=size, device=device)
        own = copy.copy(loaders[size])  # the same images, another order
        own.seed, own.epoch = seed, 0
        return own

    def trainer(cfg: Config) -> Callable[[int], tuple[nn.Module, Snapshots]]:
        if cfg.flow:
            return lambda seed: train_flow(seeded(FLOW_BATCH_SIZE, seed), times, device, seed)
        if cfg.preset is None:
            return lambda seed: train_classic(dataset, times, device, seed, batch_size)
        recipe, size, amp = cfg.preset.recipe, cfg.preset.batch_size or batch_size, cfg.preset.amp
        return lambda seed: train_project(recipe, seeded(size, seed), times, device, seed, amp,
                                          cfg.lr_schedule, cfg.speed)

    return {CONFIGS[key].name: trainer(CONFIGS[key]) for key in configs}


# ----------------------------------------------------------------------------- the options


def describe_config(key: str, args: argparse.Namespace, device: torch.device) -> dict:
    """What a configuration trains with, for the JSON (`bf16`: whether autocast was on)."""
    cfg = CONFIGS[key]
    if cfg.flow:
        return {"batch_size": FLOW_BATCH_SIZE, "model": "flow", "width": FLOW_WIDTH,
                "sampling_steps": FLOW_STEPS, "lr_g": FLOW_LR, "betas": [0.9, 0.999],
                "amp": FLOW_AMP, "bf16": SpeedOptions(amp=FLOW_AMP).uses_bf16(device)}
    if cfg.preset is None:
        return {"batch_size": args.batch_size}
    recipe, amp = cfg.preset.recipe, cfg.preset.amp
    settings = {"batch_size": cfg.preset.batch_size or args.batch_size, **recipe.settings(),
                "ema": recipe.ema, "amp": amp, "bf16": SpeedOptions(amp=amp).uses_bf16(device),
                "lr_schedule": cfg.lr_schedule, **dict(cfg.speed)}
    return json.loads(json.dumps(settings))  # as the JSON holds them: tuples as lists


def parse_times(text: str) -> list[float]:
    return sorted({float(t) for t in text.split(",") if t.strip()})


def parse_configs(text: str) -> list[str]:
    """Comma-separated names of `CONFIGS`, in the order given, each once."""
    names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown configuration {', '.join(unknown) or '(none given)'}: pick from "
            f"{', '.join(CONFIGS)} (comma-separated)")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_flags(parser)  # --dataset, --batch-size, --device, --threads: as train's
    parser.add_argument("--configs", type=parse_configs, default=list(DEFAULT_CONFIGS),
                        help=f"comma-separated configurations, from {', '.join(CONFIGS)} "
                             f"(default: {','.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--seeds", type=int, default=None,
                        help="run each configuration with the seeds 0 to SEEDS-1 (default 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="training seconds per run (default 300)")
    parser.add_argument("--times", type=parse_times, default=None,
                        help="comma-separated seconds for the table (default 30,60,120,300, "
                             "those within the budget, and the budget; for a budget under 30 s, "
                             "its half and itself)")
    parser.add_argument("--grid", type=parse_times, default=None,
                        help="extra evaluation seconds for the time-to-reach figure "
                             "(default 10,20,45,90,180,240)")
    parser.add_argument("--samples", type=int, default=None,
                        help=f"generated images per evaluation (default {N_SAMPLES})")
    parser.add_argument("--classifier-epochs", type=int, default=None,
                        help=f"the evaluation classifier's schedule (default {CLASSIFIER_EPOCHS})")
    parser.add_argument("--classifier-limit", type=int, default=None,
                        help="train the evaluation classifier on the first N images only")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json and fid_over_time.png (default: "
                             "runs/DATASET/bench_time_to_quality)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, metavar="RESULTS",
                        help="train nothing: merge the configurations of earlier results.json "
                             "files (same dataset, budget, times and samples; each "
                             "configuration in one file only) into one table, JSON and plot")
    parser.add_argument("--quick", action="store_true",
                        help="a check of every code path in seconds: a 0.5-s budget, 2 seeds, "
                             "100 samples, a classifier trained on 256 images for 1 epoch")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.budget <= 0:
        parser.error("--budget must be positive")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.times is None:
        within = {t for t in DEFAULT_TIMES if t <= args.budget} or {args.budget / 2}
        args.times = sorted(within | {args.budget})
    if args.grid is None:
        args.grid = list(DEFAULT_GRID)
    if not args.times or args.times[-1] > args.budget or args.times[0] <= 0:
        parser.error("--times must be positive and within the budget")
    return args


# ----------------------------------------------------------------------------- the figures


def time_to_reach(curve: list[dict], target: float) -> tuple[float | None, float]:
    """The first evaluated time whose FID is at most `target` (None if never), and the
    evaluated time before it (0 if it is the first): the crossing lies between the two."""
    previous = 0.0
    for point in curve:
        if point["fid"] <= target:
            return point["time"], previous
        previous = point["time"]
    return None, previous


def spread(values: Sequence[float]) -> dict[str, float]:
    """The mean of `values`, their lowest and highest, and their sample standard deviation (0
    for a single value)."""
    values = list(values)
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(runs: list[dict], target: float | None) -> dict:
    """Over one configuration's runs (one per seed, the same evaluation times): the FID's
    `spread` at every evaluated time (`curve`), the steps and the coverage at the end, and the
    time the mean curve needs to reach `target` (with each seed's own)."""
    times = [p["time"] for p in runs[0]["curve"]]
    curve = [{"time": t, **{f"fid_{k}": v for k, v in
                            spread([run["curve"][i]["fid"] for run in runs]).items()}}
             for i, t in enumerate(times)]
    summary = {"curve": curve, "steps": spread([run["steps"] for run in runs]),
               "coverage_at_end": spread([run["curve"][-1]["coverage"] for run in runs]),
               "classes": runs[0]["curve"][-1]["classes"]}
    if target is not None:
        mean_curve = [{"time": p["time"], "fid": p["fid_mean"]} for p in curve]
        summary["time_to_target"], summary["previous_time"] = time_to_reach(mean_curve, target)
        summary["seeds_reaching_target"] = sum(run["time_to_target"] is not None for run in runs)
    return summary


# ----------------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> dict:
    """Train every configuration with every seed, score them, print the table, write the JSON
    and the plot, and return the figures."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dataset = config.dataset_name(args.dataset)
    device = config.pick_device(args.device)
    title = data.dataset_info(dataset).title
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    budget = args.times[-1]
    checkpoints = sorted(set(args.times) | {t for t in args.grid if t < budget})
    seeds = list(range(args.seeds))
    out = args.out or config.runs_dir(dataset=dataset) / "bench_time_to_quality"

    if args.combine:
        results = combine(args.combine)
        dataset = results["dataset"]
        out = args.out or config.runs_dir(dataset=dataset) / "bench_time_to_quality"
        return finish(results, out, data.dataset_info(dataset).title)
    classifier = load_classifier(dataset, epochs=args.classifier_epochs,
                                 limit=args.classifier_limit, device=device)
    evaluator = Evaluator(classifier, dataset, device=device)
    references = evaluator.references(n=args.samples)
    train = trainers(args.configs, dataset, checkpoints, device, args.batch_size)

    results: dict = {"dataset": dataset, "device": str(device),
                     "threads": torch.get_num_threads(), "load_average": load, "budget": budget,
                     "times": args.times, "evaluated_times": checkpoints, "seeds": seeds,
                     "samples": args.samples, "ema_decay": EMA_DECAY,
                     "spread": "min and max over the seeds; std: their sample standard deviation",
                     "classifier_accuracy": classifier.test_accuracy,
                     "references": {k: v.as_dict() for k, v in references.items()},
                     "models": {CONFIGS[key].name: {"config": key,
                                                    "settings": describe_config(key, args, device),
                                                    "runs": []}
                                for key in args.configs}}
    for seed in seeds:
        for name, trainer in train.items():
            print(f"Training {name}, seed {seed}, for {budget:g} s...", flush=True)
            run = score_run(*trainer(seed), evaluator, args.samples, seed)
            results["models"][name]["runs"].append(run)
            out.mkdir(parents=True, exist_ok=True)  # what is measured so far, should it stop
            (out / "partial.json").write_text(json.dumps(results, indent=1))
    return finish(results, out, title)


def finish(results: dict, out: Path, title: str) -> dict:
    """From the runs in `results`: the target, each configuration's summary and table, the
    verdict; then print the table, write the JSON and the plot, and return the figures."""
    target = None
    if BASELINE in results["models"]:
        target = statistics.fmean(r["curve"][-1]["fid"] for r in results["models"][BASELINE]
                                  ["runs"])
    results["target"] = target
    for model in results["models"].values():
        for run in model["runs"]:
            if target is not None:
                run["time_to_target"], run["previous_time"] = time_to_reach(run["curve"], target)
        model["summary"] = summarize(model["runs"], target)
        model["table"] = [p for p in model["summary"]["curve"] if p["time"] in results["times"]]
    results["best"], results["target_met"] = verdict(results)
    print_table(results, title)
    write_results(results, out, title)
    return results


SAME = ("dataset", "device", "budget", "times", "evaluated_times", "seeds", "samples",
        "classifier_accuracy")
"""What the files `--combine` merges must share to be compared."""


def combine(paths: Sequence[Path]) -> dict:
    """The runs of several results.json files as one result (the first file's references; the
    load averages of all); a file that differs in `SAME`, or a configuration in two files, is
    refused."""
    parts = [json.loads(Path(path).read_text()) for path in paths]
    results = {**parts[0], "combined_from": [str(path) for path in paths],
               "load_average": ", ".join(part["load_average"] for part in parts), "models": {}}
    for path, part in zip(paths, parts):
        for key in SAME:
            if part[key] != parts[0][key]:
                raise SystemExit(f"error: {path} has {key} {part[key]!r}, {paths[0]} "
                                 f"{parts[0][key]!r}: only runs measured alike can be combined")
        for name, model in part["models"].items():
            if name in results["models"]:
                raise SystemExit(f"error: {name} is in more than one of the files")
            results["models"][name] = {k: model[k] for k in ("config", "settings", "runs")}
    return results


def score_run(G: nn.Module, snapshots: Snapshots, evaluator: Evaluator, samples: int,
              seed: int) -> dict:
    """One trained run's snapshots scored (not timed): its curve, its steps and its seed."""
    start = time.perf_counter()
    curve = score_snapshots(G, snapshots, evaluator, samples, seed)
    end = curve[-1]
    print(f"  {end['step']:,} steps; {len(curve)} evaluations in "
          f"{time.perf_counter() - start:.0f} s (not counted); final: FID {end['fid']:.2f}, "
          f"coverage {end['coverage']}/{end['classes']}", flush=True)
    return {"seed": seed, "curve": curve, "steps": end["step"]}


def verdict(results: dict) -> tuple[str | None, bool]:
    """This project's configuration whose mean curve reaches the baseline's final FID first (of
    those that reach it together: the lowest final mean FID), and whether it does so within a
    fifth of the budget with every class covered by every seed."""
    candidates = [n for n in results["models"] if n != BASELINE]
    if results["target"] is None or not candidates:
        return None, False
    summaries = {n: results["models"][n]["summary"] for n in candidates}
    best = min(candidates, key=lambda n: (summaries[n]["time_to_target"] or math.inf,
                                          summaries[n]["curve"][-1]["fid_mean"]))
    summary = summaries[best]
    fast = (summary["time_to_target"] is not None
            and summary["time_to_target"] <= results["budget"] / 5)
    return best, fast and summary["coverage_at_end"]["min"] == summary["classes"]


def print_table(results: dict, title: str) -> None:
    budget, target, n = results["budget"], results["target"], len(results["seeds"])
    print()
    print(f"Time to quality on {title}, {results['device']} ({results['threads']} threads, load "
          f"average {results['load_average']} at the start); classifier FID of "
          f"{results['samples']:,} samples against the test split; evaluation classifier test "
          f"accuracy {results['classifier_accuracy']:.2%}. Mean over {n} seed{'s' * (n > 1)} "
          f"(in brackets: the lowest and the highest).")
    for name, ref in results["references"].items():
        print(f"  reference, {name:<21} FID {ref['fid']:8.2f} · coverage "
              f"{ref['coverage']}/{ref['classes']}")
    head = "".join(f"{f'{t:g} s':>24}" for t in results["times"])
    reach = f"time to reach {target:.2f}" if target is not None else "time to reach"
    print(f"\n{'model':<26}{head}{'steps':>9}   {reach:<38}coverage at end")
    for name, model in results["models"].items():
        s = model["summary"]
        fids = "".join(f"{_with_range(p['fid_mean'], p['fid_min'], p['fid_max']):>24}"
                       for p in model["table"])
        cov = s["coverage_at_end"]
        print(f"{name:<26}{fids}{s['steps']['mean']:>9,.0f}   {_reach(s, budget, n):<38}"
              f"{cov['mean']:.1f}/{s['classes']} [{cov['min']}–{cov['max']}]")
    if target is None:
        print("\nTime to reach: needs the classic baseline (add classic to --configs).")
        return
    evaluated = ", ".join(f"{t:g}" for t in results["evaluated_times"])
    print(f"\nTime to reach: the first evaluated time (of {evaluated} s) at which the mean FID "
          f"is at or below the baseline's mean FID at {budget:g} s; seeds: how many reach it "
          "on their own.")
    if results["best"] is not None:
        print(f"Target (this project's best configuration reaches it in at most {budget / 5:g} s "
              f"and every seed ends with every class covered): {results['best']}, "
              f"{'met' if results['target_met'] else 'NOT met'}.")


def _with_range(mean: float, low: float, high: float) -> str:
    """`mean [low–high]`, e.g. `56.01 [50.10–60.20]`."""
    return f"{mean:.2f} [{low:.2f}–{high:.2f}]"


def _reach(summary: dict, budget: float, n: int) -> str:
    if "time_to_target" not in summary:  # no baseline, no target
        return "-"
    seeds = f"; seeds {summary['seeds_reaching_target']}/{n}"
    if summary["time_to_target"] is None:
        return f"not within {budget:g} s{seeds}"
    if summary["previous_time"] == 0:
        return f"{summary['time_to_target']:g} s (first check){seeds}"
    return f"{summary['time_to_target']:g} s (not yet at {summary['previous_time']:g} s){seeds}"


def write_results(results: dict, out: Path, title: str) -> tuple[Path, Path]:
    """`out/results.json` (every number) and `out/fid_over_time.png`; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=1))
    png_path = plot_results(results, out / "fid_over_time.png", title)
    print(f"\nResults: {json_path}; plot: {png_path}")
    return json_path, png_path


def plot_results(results: dict, path: Path, title: str) -> Path:
    """The mean FID of every configuration against training seconds (log scale), with a band
    from the lowest to the highest seed, the baseline's final mean FID dashed."""
    import matplotlib.pyplot as plt  # only now: training and scoring do without it
    from matplotlib.ticker import ScalarFormatter

    from gan_helpers import viz

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, model in results["models"].items():
        curve = model["summary"]["curve"]
        x = [p["time"] for p in curve]
        line, = ax.plot(x, [p["fid_mean"] for p in curve], "o-", markersize=3, label=name)
        ax.fill_between(x, [p["fid_min"] for p in curve], [p["fid_max"] for p in curve],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    if results["target"] is not None:
        ax.axhline(results["target"], color="gray", linestyle="--",
                   label=f"baseline at {results['budget']:g} s")
    n = len(results["seeds"])
    ax.set_title(f"Time to quality, {title} ({results['device']}): mean of {n} seed"
                 f"{'s' * (n > 1)}, band: lowest to highest", fontsize=10)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("classifier FID (lower is better)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())  # 40, 100, 400: not 4x10^1
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return viz.save_figure(fig, path)


if __name__ == "__main__":
    main()
