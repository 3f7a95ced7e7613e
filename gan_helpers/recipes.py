"""Recipes: a training configuration by value (models, loss, stabilisers, optimisers), built the
same way by lesson 08 and the command line.

    recipe = Recipe(model="dcgan", loss="wgan-gp")       # the paper's settings by default
    parts = recipe.build(device)
    history = fit(parts.G, parts.D, loader, objective=parts.objective, opt_g=parts.opt_g,
                  opt_d=parts.opt_d, callbacks=parts.callbacks)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from . import config
from .callbacks import AnnealNoise, Callback
from .config import seed_everything
from .data import DEFAULT_BATCH_SIZE
from .models import CONDITIONAL, MODELS, DiffAugment, InstanceNoise, build_gan
from .objectives import BCEObjective, Objective, make_objective
from .run_folder import RunFiles
from .training import FitOptions, SpeedOptions, adam, fit


@dataclass
class Parts:
    """What `Recipe.build` returns: the pieces `fit` takes, and the size of the images the
    networks make and judge (the loader must serve that size)."""

    G: nn.Module
    D: nn.Module
    objective: Objective
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    callbacks: list[Callback] = field(default_factory=list)
    image_size: int = 28


@dataclass
class Recipe:
    """One training configuration. `None` means the loss's usual value:

    - learning rates 2e-4 and Adam betas (0.5, 0.999) (the DCGAN paper), or 1e-4 and (0.0, 0.9)
      for WGAN-GP (its paper);
    - the 28x28 DCGAN discriminator's normalisation: BatchNorm, layer norm for WGAN-GP, none with
      spectral normalisation (the MLP's has none; WGAN-GP refuses the 64x64 DCGAN's BatchNorm).

    `label_smoothing=0.9` labels real images 0.9 (one-sided: fakes stay 0); `instance_noise` is
    the starting standard deviation of the noise added to D's inputs, annealed to 0. `width` sets
    both DCGAN networks' base number of channels (default 64), `width_d` the discriminator's
    alone; `ema` keeps a moving average of G's weights with that decay (`fit(ema=...)`; off by
    default); `augment=True` shows D every image translated and cut out (`models.DiffAugment`).
    """

    model: str = "dcgan"
    loss: str = "bce"
    lr_g: float | None = None
    lr_d: float | None = None
    betas: tuple[float, float] | None = None
    d_norm: str | None = None
    spectral_norm: bool = False
    label_smoothing: float | None = None
    instance_noise: float = 0.0
    latent_dim: int = 100
    width: int | None = None
    width_d: int | None = None
    ema: float | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        self.objective()  # unknown losses and impossible combinations fail now, not in training
        if self.d_norm is not None and self.base_model != "dcgan":
            raise ValueError(f"d_norm applies to the DCGAN discriminator only, not {self.model}.")
        if (self.width, self.width_d) != (None, None) and not self.base_model.startswith("dcgan"):
            raise ValueError(f"width applies to the DCGANs only, not {self.model}.")
        if self.wgan and self.base_model == "dcgan64":
            raise ValueError("WGAN-GP needs a critic without BatchNorm, and the 64x64 DCGAN's has "
                             "no other option: use the dcgan or mlp model.")

    @property
    def base_model(self) -> str:
        return CONDITIONAL.get(self.model, self.model)

    @property
    def wgan(self) -> bool:
        return self.loss == "wgan-gp"

    def objective(self) -> Objective:
        objective = make_objective(self.loss)
        if self.label_smoothing is not None:
            if not isinstance(objective, BCEObjective):
                raise ValueError(f"Label smoothing needs a BCE loss (bce or saturating), "
                                 f"not {self.loss}.")
            objective.real_label = self.label_smoothing
        return objective

    def settings(self) -> dict:
        """The values actually used, defaults filled in (recorded in checkpoints)."""
        lr = 1e-4 if self.wgan else 2e-4
        g_kwargs, d_kwargs = {}, {}
        if self.base_model == "dcgan":
            d_kwargs["norm"] = self.d_norm or ("none" if self.spectral_norm else
                                               "layer" if self.wgan else "batch")
        if self.width is not None:  # only then: runs recorded before widths keep their settings
            g_kwargs["width"] = d_kwargs["width"] = self.width
        if self.width_d is not None:
            d_kwargs["width"] = self.width_d
        return {"model": self.model, "objective": repr(self.objective()),
                "lr_g": self.lr_g or lr, "lr_d": self.lr_d or lr,
                "betas": tuple(self.betas or ((0.0, 0.9) if self.wgan else (0.5, 0.999))),
                **({"g_kwargs": g_kwargs} if g_kwargs else {}),
                "d_kwargs": d_kwargs, "spectral_norm": self.spectral_norm,
                "instance_noise": self.instance_noise, "latent_dim": self.latent_dim,
                **({"augment": "translation, cutout"} if self.augment else {})}

    def build(self, device: torch.device | str = "cpu", num_classes: int = 10,
              seed: int | None = None) -> Parts:
        """Fresh networks and optimizers; with `seed`, the global random number generators are
        seeded first, so the networks' initial weights repeat."""
        if seed is not None:
            seed_everything(seed)
        s = self.settings()
        G, D, _ = build_gan(self.model, self.latent_dim, s.get("g_kwargs"), s["d_kwargs"],
                            num_classes=num_classes, spectral_norm=self.spectral_norm)
        callbacks: list[Callback] = []
        if self.augment:
            D = DiffAugment(D)
        if self.instance_noise:
            D = InstanceNoise(D, self.instance_noise)
            callbacks.append(AnnealNoise(D))
        G, D = G.to(device), D.to(device)
        return Parts(G, D, self.objective(), adam(G, s["lr_g"], s["betas"]),
                     adam(D, s["lr_d"], s["betas"]), callbacks, MODELS[self.base_model][2])


TUNED = Recipe(width=32, lr_g=8e-4, lr_d=8e-4)
"""The DCGAN tuned for quality per second on a CPU: half the channels (about a quarter of the
arithmetic per image) and four times the learning rate; train it with batches of
`TUNED_BATCH_SIZE`. The command line's default on a CPU; the README's "Measuring quality" has
the benchmark that chose it."""
TUNED_BATCH_SIZE = 64
"""The batch size `TUNED` was measured with."""


class Preset(NamedTuple):
    """A recipe with the batch size (None: the caller's default), `SpeedOptions.amp` and
    learning-rate schedule (`FitOptions.lr_schedule`, over the run) it was measured with."""

    recipe: Recipe
    batch_size: int | None = None
    amp: str | None = None
    lr_schedule: str | None = None

    def options(self) -> FitOptions:
        """`fit`'s options for this preset: its bf16 autocast setting and its schedule."""
        return FitOptions(lr_schedule=self.lr_schedule, speed=SpeedOptions(amp=self.amp))


PRESETS = {"paper": Preset(Recipe(), DEFAULT_BATCH_SIZE),
           "tuned": Preset(TUNED, TUNED_BATCH_SIZE, "auto")}
"""The command line's `--recipe`: the DCGAN paper's (`Recipe`'s defaults) and `TUNED`, with
bf16 autocast where it is native (`amp="auto"`). Neither has a learning-rate schedule: the late
decay measured with `TUNED` gained less than the benchmark's noise (README)."""


def default_name(model: str = "dcgan", loss: str = "bce",
                 device: torch.device | str = "cpu") -> str:
    """The preset that fills in what is not given: the tuned one where it was measured best
    (the DCGAN, non-saturating loss, on a CPU), else the paper's (on a GPU none was measured
    yet, so the paper's recipe stays its default)."""
    tuned = model == "dcgan" and loss == "bce" and torch.device(device).type == "cpu"
    return "tuned" if tuned else "paper"


def default_preset(device: torch.device | str = "cpu") -> Preset:
    """The DCGAN preset with the most quality per second measured on `device`'s kind, by name,
    so that a better default found later reaches every lesson that trains with it:

        preset = recipes.default_preset(DEVICE)
        parts = preset.recipe.build(DEVICE)
        loader = data.make_loader(DATASET, batch_size=preset.batch_size, device=DEVICE)
        fit(parts.G, parts.D, loader, opt_g=parts.opt_g, opt_d=parts.opt_d,
            options=preset.options())
    """
    return PRESETS[default_name("dcgan", "bce", device)]

SMOKE_STEPS = 12
"""Steps per run in smoke mode (`run_recipe`): the same code paths, a few steps."""
SMOKE_EVERY = 6
"""At most this many steps between two evaluations in smoke mode (`run_recipe`)."""


@dataclass
class Result:
    """One recipe's run: the trained generator (the moving average of its weights when the
    recipe keeps one), its history and its final scores."""

    name: str
    recipe: Recipe
    G: nn.Module
    history: dict
    scores: Any


def run_recipe(name: str, recipe: Recipe, loader: Any, steps: int, evaluator: Any, *,
               n: int = 2000, every_steps: int | None = None, seed: int = 0,
               device: torch.device | str = "cpu", run_dir: str | os.PathLike[str] | None = None,
               progress: bool = True, extra_callbacks: Sequence[Callback] = ()) -> Result:
    """Train `recipe` for `steps` steps from a seeded start and score it with `evaluator`.

    With `run_dir`, the run is checkpointed there and a finished or interrupted run is resumed,
    not repeated; a run folder holding another recipe or seed is refused (`RunMismatchError`),
    not mixed in.
    `every_steps` adds evaluations during training (`history["eval"]`); `extra_callbacks` go to
    `fit` too. In smoke mode the package trains at most `SMOKE_STEPS` steps and evaluates at
    most every `SMOKE_EVERY` steps (the evaluator shrinks its own samples).
    """
    from .evaluation import EvaluateEvery

    steps = config.smoke_cap(steps, SMOKE_STEPS)
    if every_steps:
        every_steps = config.smoke_cap(every_steps, SMOKE_EVERY)

    files = RunFiles(run_dir) if run_dir is not None else None
    parts = recipe.build(device, seed=seed)
    callbacks = list(parts.callbacks) + list(extra_callbacks)
    if every_steps:
        callbacks.append(EvaluateEvery(evaluator, n=n, every_steps=every_steps, verbose=False))
    epochs = math.ceil(steps / len(loader))
    history = fit(parts.G, parts.D, loader, epochs, objective=parts.objective,
                  opt_g=parts.opt_g, opt_d=parts.opt_d, device=device, run_dir=run_dir,
                  callbacks=callbacks, progress=progress, seed=seed, max_steps=steps,
                  resume=files is not None and files.checkpoint.exists(),
                  ema=recipe.ema, options=FitOptions(settings=recipe.settings()))
    G = history.G_ema if history.G_ema is not None else parts.G  # what it samples from
    return Result(name, recipe, G, history, evaluator.score_generator(G, n=n))
