"""One training run of the command line, resolved once: its flags, declared in one place and
shared with the benchmarks (`add_data_flags`, `add_recipe_flags`), and `RunConfig`, the frozen
result, checked in one place (`RunConfig.from_args`) and passed down.

    config = RunConfig.from_args(build_parser().parse_args(argv))   # or UsageError, in words
    parts = config.recipe.build(config.device, seed=config.seed)
    loader = make_loader(config.dataset, batch_size=config.batch_size, ...)

What a flag leaves out comes from the recipe's preset (`recipes.PRESETS`: `paper`, or `tuned`
where it was measured best), then from the package's defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checks, config
from .errors import UsageError
from .models import CONDITIONAL, MODELS
from .objectives import OBJECTIVES
from .recipes import PRESETS, Preset, Recipe, default_name

TRAIN_IMAGES = 60_000
"""The size of the training split of MNIST and of Fashion-MNIST."""


# ----------------------------------------------------------------------------- argument types


def number(kind: type, low: float, low_ok: bool = True, high: float | None = None):
    """An argparse type: a finite `kind` (int or float) at least `low` (above it if not
    `low_ok`), at most `high`; anything else (NaN and infinity too) is refused with the allowed
    range (`checks.out_of_range`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        problem = checks.out_of_range(value, low, high, low_ok=low_ok)
        if problem == "it is not a finite number":
            raise argparse.ArgumentTypeError(
                f"{text} is not a finite number: it must be "
                f"{checks.range_text(low, high, low_ok=low_ok)}")
        if problem:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {problem}")
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE = number(int, 1)
NON_NEGATIVE = number(int, 0)
RATE = number(float, 0.0, low_ok=False, high=100.0)  # 100: lesson 08's divergence on purpose
BETA = number(float, 0.0, high=0.9999)
DECAY = number(float, 0.0, high=0.9999)
LABEL = number(float, 0.5, low_ok=False, high=1.0)
SIGMA = number(float, 0.0, high=10.0)  # 10x the images' range already drowns them
SEED = number(int, 0, high=checks.SEED_MAX)


def device(text: str) -> torch.device:
    """An argparse type: a device that exists here (cpu, cuda, cuda:1, mps; any case)."""
    try:
        return config.pick_device(text)
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ----------------------------------------------------------------------------- the flags


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """The flags of what trains where, shared by `train` and the benchmarks: --dataset,
    --batch-size, --device, --threads."""
    p.add_argument("--dataset", choices=config.DATASETS, default=None,
                   help="default: $GAN_DATASET, else mnist")
    p.add_argument("--batch-size", type=POSITIVE, default=None,
                   help="default: the recipe's (128 for paper, 64 for tuned)")
    p.add_argument("--device", type=device, default=None,
                   help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--threads", type=POSITIVE, default=None, help="CPU threads for PyTorch")


def add_recipe_flags(t: argparse.ArgumentParser) -> None:
    """The flags of `Recipe`'s fields (and --recipe, the preset that fills in the others)."""
    t.add_argument("--model", choices=[*MODELS, *CONDITIONAL], default="dcgan",
                   help="cmlp and cdcgan are conditional (lesson 06)")
    t.add_argument("--recipe", choices=list(PRESETS), default=None,
                   help="the DCGAN's defaults. paper: the DCGAN paper's (64 channels, batches of "
                        "128, lr 2e-4); tuned: the most quality per second measured on a CPU (32 "
                        "channels, batches of 64, lr 8e-4, --amp auto). Default: tuned for "
                        "--model dcgan with --loss bce on a CPU, else paper; options given win")
    t.add_argument("--width", type=POSITIVE, default=None,
                   help="the DCGANs' base number of channels (default 64; 32 with --recipe tuned)")
    t.add_argument("--lr", type=RATE, default=None,
                   help="Adam's learning rate (default 2e-4; 1e-4 with --loss wgan-gp; 8e-4 with "
                        "--recipe tuned)")
    t.add_argument("--betas", type=BETA, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's betas (default 0.5 0.999; 0.0 0.9 with --loss wgan-gp)")
    t.add_argument("--latent-dim", type=POSITIVE, default=100)
    t.add_argument("--ema", type=DECAY, default=None, metavar="DECAY",
                   help="keep a moving average of G's weights with this decay (e.g. 0.999) and "
                        "draw grids, scores and samples from it; 0: off (default)")
    st = t.add_argument_group("objective and stabilisers (lesson 08)")
    st.add_argument("--loss", choices=list(OBJECTIVES), default="bce",
                    help="bce: non-saturating (default); saturating: the minimax original; "
                         "hinge; wgan-gp: gradient penalty 10, 5 critic steps per G step")
    st.add_argument("--d-norm", choices=["batch", "layer", "none"], default=None,
                    help="the DCGAN discriminator's normalisation (default: batch; layer with "
                         "wgan-gp; none with --spectral-norm)")
    st.add_argument("--spectral-norm", action="store_true",
                    help="spectral normalisation on the discriminator's layers")
    st.add_argument("--label-smoothing", type=LABEL, default=None, metavar="LABEL",
                    help="one-sided label smoothing: label real images LABEL (0.5 < LABEL <= 1)")
    st.add_argument("--instance-noise", type=SIGMA, default=0.0, metavar="SIGMA",
                    help="add Gaussian noise of std SIGMA to D's inputs, annealed to 0")


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class RunConfig:
    """Everything one `train` command runs with, every default filled in."""

    recipe: Recipe
    recipe_name: str
    dataset: str
    device: torch.device
    seed: int
    batch_size: int
    epochs: int
    out: Path
    resume: bool = False
    overwrite: bool = False
    amp: str | None = None
    compile: bool = False
    channels_last: bool = False
    threads: int | None = None
    sync_every: int | None = None
    lr_schedule: str | None = None
    limit: int | None = None
    max_steps: int | None = None
    eval_every: int = 0
    eval_samples: int = 5000
    early_stop: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        """Check the options together, the `GAN_*` variables (`config.check_environment`) and
        the run folder's state; `UsageError` says what is allowed. Nothing is written."""
        if args.resume and args.overwrite:
            raise UsageError("--resume continues the run in OUT and --overwrite replaces it: "
                             "pick one")
        dataset = config.dataset_name(args.dataset)  # the one place it is resolved
        chosen_device = config.check_environment(device=args.device, check_dataset=False)
        name = args.recipe or default_name(args.model, args.loss, chosen_device)
        if name == "tuned" and args.model != "dcgan":
            raise UsageError(f"--recipe tuned is the dcgan model's; for --model {args.model} "
                             "leave --recipe out (or use paper)")
        preset = PRESETS[name]
        batch_size = args.batch_size or preset.batch_size
        images = min(args.limit or TRAIN_IMAGES, TRAIN_IMAGES)
        if batch_size > images:
            raise UsageError(f"--batch-size {batch_size} is larger than the {images:,} training "
                             "images: use a smaller batch (or a larger --limit)")
        lr = args.lr or preset.recipe.lr_g
        ema = preset.recipe.ema if args.ema is None else args.ema or None  # 0: off
        try:
            recipe = Recipe(model=args.model, loss=args.loss, lr_g=lr, lr_d=lr,
                            betas=tuple(args.betas) if args.betas else None, d_norm=args.d_norm,
                            spectral_norm=args.spectral_norm,
                            label_smoothing=args.label_smoothing,
                            instance_noise=args.instance_noise, latent_dim=args.latent_dim,
                            width=args.width or preset.recipe.width, ema=ema)
        except ValueError as err:
            raise UsageError(str(err)) from None
        out = args.out or config.runs_dir(dataset=dataset) / args.model
        _check_folder(out, args.resume, args.overwrite)
        return cls(recipe, name, dataset, chosen_device, args.seed, batch_size, args.epochs, out,
                   resume=args.resume, overwrite=args.overwrite,
                   amp=None if args.amp == "off" else args.amp or preset.amp,
                   compile=args.compile, channels_last=args.channels_last, threads=args.threads,
                   sync_every=args.sync_every, lr_schedule=_schedule(args.lr_schedule, preset),
                   limit=args.limit,
                   max_steps=args.max_steps, eval_every=args.eval_every or (
                       1 if args.early_stop else 0),
                   eval_samples=args.eval_samples, early_stop=args.early_stop)

    def settings(self) -> dict:
        """What defines the run beyond its networks and loader, recorded with it (a resumed
        run must match)."""
        return {**self.recipe.settings(), "limit": self.limit}


def _schedule(asked: str | None, preset: Preset) -> str | None:
    """`--lr-schedule`: as asked ("none": constant), else the preset's."""
    return preset.lr_schedule if asked is None else None if asked == "none" else asked


def _check_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """--resume needs a checkpoint in OUT; a run there needs --resume or --overwrite."""
    checkpoint = out / "checkpoint.pt"
    if resume and not checkpoint.exists():
        raise UsageError(f"--resume, but there is no checkpoint at {checkpoint}")
    if checkpoint.exists() and not (resume or overwrite):
        raise UsageError(f"{out} already holds a run: add --resume to continue it, --overwrite "
                         "to replace it, or choose another --out")

