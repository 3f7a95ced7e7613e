"""The adversarial training step and `fit`, the loop every lesson, the command line and the
benchmarks train with:

    history = fit(G, D, loader, epochs=5, run_dir="runs/mnist/dcgan")

`fit` is the classic loop (for each epoch, for each batch: one step) plus what a real run needs:
checkpoints and exact resume, grids, progress, callbacks (`gan_helpers.callbacks`) that watch
it, and optionally a moving average of the generator's weights (`ema=`). What differs between
lessons (the models, the loss, what to show or save) is passed in. Importing this module loads
neither matplotlib nor ipywidgets: the loop runs headless.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoints, checks, interrupts
from .callbacks import (
    AverageGenerator,
    Callback,
    Checkpointer,
    GridSaver,
    HistoryWriter,
    ProgressBar,
)
from .checkpoints import CheckpointWriteError
from .config import native_bf16, seed_everything
from .data import dataset_of
from .errors import NonFiniteLossError, UsageError
from .flow import FLOW_LR, FlowMatching, flow_step
from .models import describe
from .objectives import BCEObjective, Objective
from .run_folder import RunFiles, RunLock, RunWriteError
from .state import History, Stop, TrainState
from .stats import STATS, StepStats, grad_norm


def train_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
               objective: Objective, labels: torch.Tensor | None = None,
               update_g: bool = True) -> torch.Tensor:
    """One adversarial step: update D once, then G once. Returns the step's `STATS` as a tensor.

    A conditional GAN (lesson 06) passes the images' `labels` to both networks. With
    `update_g=False` only D learns (WGAN-GP trains its critic several times per G update).
    """
    cond = () if labels is None else (labels,)
    fake = G(z, *cond)  # one batch of fakes serves both updates

    # 1. Discriminator: real images are labelled 1, generated ones 0. `detach()` stops this
    #    loss from reaching back into the generator. The penalty is 0 except for WGAN-GP.
    opt_d.zero_grad(set_to_none=True)
    real_logits = D(real, *cond)
    fake_logits = D(fake.detach(), *cond)
    loss_d = objective.d_loss(real_logits, fake_logits)
    loss_d = loss_d + objective.penalty(D, real, fake.detach(), *cond)
    loss_d.backward()
    grad_d = grad_norm(D)
    opt_d.step()

    # 2. Generator: make the (just updated) discriminator call the same fakes real.
    #    D is frozen for this pass: only G's weights need gradients.
    if update_g:
        opt_g.zero_grad(set_to_none=True)
        D.requires_grad_(False)
        try:
            loss_g = objective.g_loss(D(fake, *cond))
            loss_g.backward()
        finally:
            D.requires_grad_(True)
        grad_g = grad_norm(G)
        opt_g.step()
    else:  # report the loss G would have had; no gradient was computed
        loss_g = objective.g_loss(fake_logits.detach())
        grad_g = torch.full_like(grad_d, float("nan"))

    return torch.stack([
        loss_d.detach(),
        loss_g.detach(),
        torch.sigmoid(real_logits.detach()).mean(),
        torch.sigmoid(fake_logits.detach()).mean(),
        grad_d,
        grad_g,
    ])


def adam(module: nn.Module, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
         device: torch.device | str | None = None, fused: bool | None = None) -> torch.optim.Adam:
    """Adam for `module` (the DCGAN paper's settings by default). `fused=None`: fused kernels on
    CUDA, where they are faster, not elsewhere (the rule of `SpeedOptions.fused_adam`)."""
    device = torch.device(device) if device is not None else next(module.parameters()).device
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas,
                            fused=SpeedOptions(fused_adam=fused).use_fused_adam(device))


@dataclass
class SpeedOptions:
    """Optional speed-ups of the training loop; the defaults are what measured fastest.

    - `amp="bf16"`: bfloat16 autocast for the forward passes (GPUs with bf16, recent CPUs);
      `amp="auto"`: the same only where bf16 is native (`native_bf16`), never where it is
      emulated;
    - `compile=True`: `torch.compile` both networks (the first steps pay the compile time);
    - `channels_last=True`: channels-last memory format for convolutional networks;
    - `fused_adam`: fused Adam kernels (default: on for CUDA, off elsewhere);
    - `cudnn_benchmark`: let cuDNN pick the fastest convolution algorithms (default: on for CUDA).
    """

    amp: str | None = None
    compile: bool = False
    channels_last: bool = False
    fused_adam: bool | None = None
    cudnn_benchmark: bool | None = None

    def __post_init__(self) -> None:
        if self.amp not in (None, "bf16", "auto"):
            raise ValueError(f"amp must be None, 'bf16' or 'auto', not {self.amp!r}.")

    def use_fused_adam(self, device: torch.device) -> bool | None:
        return (device.type == "cuda" or None) if self.fused_adam is None else self.fused_adam

    def apply(self, G: nn.Module, D: nn.Module | None,
              device: torch.device) -> tuple[nn.Module, nn.Module | None]:
        """Apply the options to the networks (D: None for a model trained alone); return the
        modules the step should call."""
        if (device.type == "cuda" and self.cudnn_benchmark is not False
                and not torch.are_deterministic_algorithms_enabled()):  # config.deterministic()
            torch.backends.cudnn.benchmark = True
        networks = [G] if D is None else [G, D]
        if self.channels_last:
            for net in networks:
                net.to(memory_format=torch.channels_last)
        if self.compile:
            networks = [torch.compile(net) for net in networks]
        return networks[0], networks[1] if D is not None else None

    def batch(self, real: torch.Tensor) -> torch.Tensor:
        if self.channels_last and real.dim() == 4:
            return real.contiguous(memory_format=torch.channels_last)
        return real

    def uses_bf16(self, device: torch.device) -> bool:
        """Whether `autocast` turns bf16 on: `amp="bf16"`, or `"auto"` where bf16 is native."""
        return self.amp == "bf16" or (self.amp == "auto" and native_bf16(device))

    def autocast(self, device: torch.device) -> AbstractContextManager:
        """bf16 autocast where `uses_bf16`; otherwise a context that does nothing."""
        if not self.uses_bf16(device):
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)


# ----------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class FitOptions:
    """`fit`'s rarer options, in one object:

    - `lr_schedule="linear"` decays both learning rates to 0 over the run, `"late-linear"` over
      its second half (`lr_factor`);
    - `settings`: what else defines the run (batch size, a recipe...), recorded and compared;
    - `speed`: optional speed-ups (`SpeedOptions`);
    - `sync_every`: read the losses back from the device every N steps (default: every step on
      the CPU, every 25 on a GPU);
    - `step_fn`: the adversarial step (`train_step`'s signature), for the benchmarks' variants.
    """

    lr_schedule: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    sync_every: int | None = None
    step_fn: Callable[..., torch.Tensor] = train_step

    def __post_init__(self) -> None:  # None: the defaults
        object.__setattr__(self, "speed", self.speed or SpeedOptions())
        object.__setattr__(self, "settings", self.settings or {})


def fit(
    G: nn.Module,
    D: nn.Module | None,
    loader: Iterable,
    epochs: int = 1,
    *,
    objective: Objective | None = None,
    opt_g: torch.optim.Optimizer | None = None,
    opt_d: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool | str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int | None = 0,
    max_steps: int | None = None,
    ema: float | None = None,
    options: FitOptions | None = None,
) -> History:
    """Train `G` against `D` for `epochs` epochs in all (resumed ones count); return the history.

    - `loader` yields `(images, labels)` with images in [-1, 1]: a `TensorLoader` (fast, exact
      resume) or any `DataLoader`. A conditional `G` (one with `num_classes`) gets the labels.
    - `objective`: the non-saturating BCE loss by default. `opt_g`, `opt_d`: `adam(G)`, `adam(D)`
      by default. With an objective's `n_critic` > 1, G learns on every `n_critic`-th step only.
    - `run_dir`: where grids, `checkpoint.pt`, `history.json` and `losses.png` go (nothing is
      written without one). A run folder that holds a run is never replaced without being
      asked: by default (`resume=None`) it is continued exactly, so running a cell again picks
      up where the run stopped (a finished run trains no further and its history comes back at
      once), and one of another dataset, other networks, objective or settings is refused
      (`RunMismatchError`, naming each difference). `resume=True` insists on continuing
      `run_dir/checkpoint.pt` (or the path given); `resume=False` insists on a new run and is
      refused (`RunExistsError`) where one is saved; `overwrite=True` replaces it, deleting
      nothing of the old run until the new one writes its first checkpoint.
    - `max_steps` caps the number of steps (in total); `callbacks` are added to the defaults.
    - Ctrl-C, SIGTERM or `state.request_stop()` stop cleanly after the current step, with a
      checkpoint; only one run at a time may train into a `run_dir`. `history.stop` says why
      training ended (a `Stop`), `history.stop_reason` says it in words.
      A NaN, infinite or diverged loss raises `NonFiniteLossError`, keeping the last good
      checkpoint.
    - `ema`: keep a moving average of G's weights with this decay (e.g. 0.999; off by default;
      see `AverageGenerator`). The grids, the final samples, `EvaluateEvery`'s scores and
      `best.pt` then come from the average, which the checkpoint keeps (a resumed run continues
      it exactly) and `history.G_ema` returns; the decay is part of the run's settings.
    - `options`: the rarer options (`FitOptions`: learning-rate schedule, recorded settings,
      speed-ups, how often to read the losses back, another step function).
    - `D=None` trains G alone, with a step function of its own (`fit_flow`: a flow model).
    """
    options = options or FitOptions()
    if D is None and options.step_fn is train_step:
        raise UsageError("fit needs a discriminator D to train a GAN: fit(G, D, loader, ...). "
                         "A flow model, which trains alone, trains with fit_flow(G, loader, ...).")
    checked = checks.fit_arguments(G, D, loader, epochs, max_steps=max_steps, seed=seed,
                                   sync_every=options.sync_every)  # before any work, in words
    if resume and overwrite:
        raise UsageError("resume continues the run in run_dir and overwrite=True replaces it: "
                         "pick one.")
    if resume is True and run_dir is None:
        raise UsageError("resume=True needs a run_dir (or pass the checkpoint's path as resume=).")
    averaging = AverageGenerator(ema) if ema is not None else None  # a bad decay: refused now
    device = torch.device(device) if device is not None else next(G.parameters()).device
    with RunLock(run_dir) if run_dir is not None else nullcontext():  # one run per folder
        state = _new_state(G, D, loader, objective, opt_g, opt_d, device, run_dir,
                           checked["seed"], checked["epochs"], checked["max_steps"], ema, options)
        state.callbacks = _with_defaults(callbacks, run_dir, progress, averaging)
        source = checkpoints.resume_source(run_dir, resume, overwrite)
        if source is not None:
            checkpoints.restore(state, source, automatic=resume is None)
        state.replacing = overwrite and run_dir is not None and RunFiles(run_dir).holds_run()
        every = checked["sync_every"] or (1 if device.type == "cpu" else 25)
        state.stats = StepStats(state.history, state.objective, state.steps_per_epoch, every,
                                alone=D is None)
        return _train(state, options)


def fit_flow(G: nn.Module, loader: Iterable, epochs: int = 1, *,
             opt_g: torch.optim.Optimizer | None = None, options: FitOptions | None = None,
             **kwargs: Any) -> History:
    """Train a flow-matching model (`flow.FlowGenerator`) alone, with `fit`'s loop: the same
    callbacks, grids, checkpoints, exact resume and history (its loss is `loss_g`, D's
    statistics are NaN). Each step is `flow.flow_step`; `opt_g` is Adam(`FLOW_LR`, betas
    (0.9, 0.999)) by default. Other keyword arguments are `fit`'s."""
    options = options or FitOptions()
    if opt_g is None and isinstance(G, nn.Module):  # (anything else: fit says what G must be)
        device = torch.device(kwargs.get("device") or next(G.parameters()).device)
        opt_g = adam(G, lr=FLOW_LR, betas=(0.9, 0.999), device=device,
                     fused=options.speed.use_fused_adam(device))
    return fit(G, None, loader, epochs, objective=FlowMatching(), opt_g=opt_g,
               options=replace(options, step_fn=flow_step), **kwargs)


def _train(state: TrainState, options: FitOptions) -> History:
    """The steps, from `state.step` to `state.total_steps`, with the callbacks' hooks; Ctrl-C
    and SIGTERM ask for a stop after the current step (a second one interrupts at once)."""
    speed, device, stats = options.speed, state.device, state.stats
    step_G, step_D = speed.apply(state.G, state.D, device)
    steps_begun = False

    def on_signal(signum: int) -> None:
        stopping = state.stop_requested
        state.request_stop(interrupts.SIGNALS[signum], _SIGNAL_STOPS[signum])
        if stopping or not steps_begun:  # no step to finish (before the first), or a second
            raise KeyboardInterrupt

    with interrupts.caught(on_signal):
        try:
            _run_hook(state, "on_fit_start")  # an interrupt here ends at once: no step is lost
            steps_begun = True
            while not state.stop_requested and state.step < state.total_steps:
                state.epoch, start = divmod(state.step, state.steps_per_epoch)
                for real, labels in _batches(state.loader, state.epoch, start):
                    real = speed.batch(real.to(device, non_blocking=True))
                    z = torch.randn(real.shape[0], state.latent_dim, device=device)
                    state.in_step = True
                    with speed.autocast(device):
                        stats.add(options.step_fn(step_G, step_D, state.opt_g, state.opt_d, real,
                                                  z, state.objective,
                                                  **_step_options(state, labels)))
                    for scheduler in state.schedulers:
                        scheduler.step()
                    state.step, state.in_step = state.step + 1, False
                    stats.step_done(state.step, len(real))
                    state.images_per_sec = stats.images_per_sec
                    _run_hook(state, "on_step_end")
                    if state.stop_requested or state.step >= state.total_steps:
                        break
                stats.flush(state.step)
                if state.step % state.steps_per_epoch == 0:
                    _run_hook(state, "on_epoch_end")
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - raised in _end_run
            _record_failure(state, err)
        return _end_run(state)


_SIGNAL_STOPS = {signum: Stop.INTERRUPTED if "interrupted" in text else Stop.TERMINATED
                 for signum, text in interrupts.SIGNALS.items()}


# ----------------------------------------------------------------------------- its pieces


def _new_state(G: nn.Module, D: nn.Module, loader: Iterable, objective: Objective | None,
               opt_g: torch.optim.Optimizer | None, opt_d: torch.optim.Optimizer | None,
               device: torch.device, run_dir: str | os.PathLike[str] | None, seed: int | None,
               epochs: int, max_steps: int | None, ema: float | None,
               options: FitOptions) -> TrainState:
    """A new run's state: networks on the device in training mode, optimizers, the step
    budget, the learning-rate schedule, the seeded fixed noise for the grids, and the run's
    record."""
    G.to(device).train()
    objective = objective if objective is not None else BCEObjective()
    fused = options.speed.use_fused_adam(device)
    opt_g = opt_g or adam(G, device=device, fused=fused)
    if D is not None:  # None: G trains alone (a flow model)
        D.to(device).train()
        opt_d = opt_d or adam(D, device=device, fused=fused)
    steps_per_epoch = len(loader)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise UsageError("The loader yields no batches: is the dataset smaller than a batch? "
                         "Use a smaller batch size (or drop_last=False).")
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps,
                                                                    epochs * steps_per_epoch)
    if seed is not None:
        seed_everything(seed)
    fixed_noise, fixed_labels = _fixed_batch(G, seed, device)
    settings = {"seed": seed, "batch_size": getattr(loader, "batch_size", None),
                "steps_per_epoch": steps_per_epoch, "lr_schedule": options.lr_schedule,
                # the schedule spans the whole run: another length is another run
                "lr_schedule_steps": total if options.lr_schedule else None,
                "ema": ema,  # another decay averages differently: another run
                **_optimizer_settings(opt_g, opt_d), **options.settings}
    record = {"dataset": dataset_of(loader), "G": describe(G),
              "D": describe(D) if D is not None else None,
              "objective": repr(objective), "settings": settings}
    state = TrainState(G, D, opt_g, opt_d, objective, loader, device, fixed_noise, total,
                       steps_per_epoch, record, run_dir=Path(run_dir) if run_dir else None,
                       schedulers=_schedulers(options.lr_schedule,
                                              [o for o in (opt_g, opt_d) if o is not None], total),
                       fixed_labels=fixed_labels)
    state.history.update({k: [] for k in STATS})
    return state


def _fixed_batch(G: nn.Module, seed: int | None,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and a conditional GAN's labels: one class per row of 8) of the grids, the same
    every epoch: seeded apart from training, so a resumed run draws the same grid."""
    num_classes = getattr(G, "num_classes", None)  # a conditional GAN
    n_fixed = 8 * num_classes if num_classes else 64
    fixed_noise = torch.randn(n_fixed, getattr(G, "latent_dim", 100), generator=torch.Generator(
        ).manual_seed(1234 if seed is None else seed + 1234)).to(device)
    fixed_labels = ((torch.arange(n_fixed) // 8) % num_classes).to(device) if num_classes else None
    return fixed_noise, fixed_labels


def _optimizer_settings(opt_g: torch.optim.Optimizer,
                        opt_d: torch.optim.Optimizer | None) -> dict[str, Any]:
    """The optimizers' kind and starting hyperparameters, for the run's record: `lr_g`, `lr_d`
    and `betas` (G's; D's too as `betas_d` when they differ), the names `Recipe.settings` uses.
    A model trained alone (no `opt_d`) records G's only."""
    g = opt_g.param_groups[0]
    found = {"optimizer": type(opt_g).__name__, "lr_g": g.get("initial_lr", g["lr"])}
    if "betas" in g:
        found["betas"] = list(g["betas"])
    if opt_d is None:
        return found
    d = opt_d.param_groups[0]
    found["lr_d"] = d.get("initial_lr", d["lr"])
    if d.get("betas") != g.get("betas"):
        found["betas_d"] = list(d["betas"]) if "betas" in d else None
    return found


LR_SCHEDULES = ("linear", "late-linear")
"""`FitOptions.lr_schedule`'s choices (besides None, constant learning rates)."""


def lr_factor(schedule: str | None, progress: float) -> float:
    """The learning rates' factor when `progress` (0 to 1) of the run is done: "linear" falls
    from 1 to 0 over the whole run; "late-linear" stays 1 over its first half, then falls
    linearly to 0 (warmup-stable-decay without the warm-up); None is always 1. `fit` counts
    progress in steps, the time-to-quality benchmark on its budget's clock."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "late-linear":
        return min(1.0, 2.0 * (1.0 - progress))
    if schedule is None:
        return 1.0
    raise UsageError(f"Unknown lr_schedule {schedule!r}: use None, "
                     f"{' or '.join(repr(s) for s in LR_SCHEDULES)}.")


def _schedulers(lr_schedule: str | None, optimizers: Sequence[torch.optim.Optimizer],
                total: int) -> list:
    lr_factor(lr_schedule, 0.0)  # an unknown schedule fails here, before training
    if lr_schedule is None:
        return []
    return [torch.optim.lr_scheduler.LambdaLR(o, lambda step: lr_factor(lr_schedule, step / total))
            for o in optimizers]


def _with_defaults(callbacks: Sequence[Callback], run_dir: Any, progress: bool,
                   averaging: AverageGenerator | None = None) -> list[Callback]:
    """The moving average of G (so every other callback sees this step's), the progress bar and
    grid saver first, the given callbacks, then the checkpointer (so a checkpoint holds what
    the other callbacks added) and the history writer."""
    if any(isinstance(cb, AverageGenerator) for cb in callbacks):
        raise UsageError("Pass fit(ema=DECAY) rather than an AverageGenerator callback: fit puts "
                         "it before the other callbacks and records its decay with the run.")
    first: list[Callback] = [averaging] if averaging is not None else []
    first += [ProgressBar()] if progress else []
    keys = [cb.state_key for cb in callbacks if type(cb).state_dict is not Callback.state_dict]
    if len(keys) != len(set(keys)):
        raise UsageError(f"Two callbacks keep their state under one name ({sorted(keys)}): give "
                         "one of them another `state_key`.")
    if run_dir is None:
        return first + list(callbacks)
    return [*first, GridSaver(), *callbacks, Checkpointer(), HistoryWriter()]


def _step_options(state: TrainState, labels: torch.Tensor) -> dict[str, Any]:
    """The step's extra arguments: a conditional GAN's labels, and with `n_critic` > 1 whether
    G learns at this step (decided by the step number, so a resumed run keeps the rhythm)."""
    options: dict[str, Any] = {}
    if state.num_classes:
        options["labels"] = labels.to(state.device, non_blocking=True)
    if getattr(state.objective, "n_critic", 1) > 1:
        options["update_g"] = state.updates_g(state.step + 1)
    return options


def _batches(loader: Iterable, epoch: int, start: int) -> Iterator:
    """The batches of `epoch` from batch `start` on (a resumed run starts mid-epoch)."""
    if hasattr(loader, "batches"):  # TensorLoader: the order depends only on (seed, epoch)
        return loader.batches(epoch, start)
    if hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)
    return islice(iter(loader), start, None)


def _run_hook(state: TrainState, hook: str) -> None:
    for cb in state.callbacks:
        getattr(cb, hook)(state)


def _record_failure(state: TrainState, err: BaseException) -> None:
    """Record why training ended and tell the callbacks (`on_exception`)."""
    if isinstance(err, KeyboardInterrupt):  # a second signal: keep what the first one said
        if state.stop is None:
            state.ended(Stop.INTERRUPTED, "interrupted (KeyboardInterrupt)")
    else:
        state.error = err
        if isinstance(err, NonFiniteLossError):
            state.ended(Stop.DIVERGED, str(err))
        else:
            state.ended(Stop.FAILED, f"error: {type(err).__name__}: {err}")
    for cb in state.callbacks:
        try:
            cb.on_exception(state, err)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass


def _end_run(state: TrainState) -> History:
    """Read back the last statistics, call every callback's `on_fit_end` (even if one fails:
    the checkpoint must be written; the checkpointer first, so the others can report the final
    checkpoint), then return the history or raise what ended training."""
    try:
        state.stats.flush(state.step)
    except Exception as err:  # noqa: BLE001 - a NaN found now, or the device failing
        _record_failure(state, err)
    if state.stop is None:
        state.ended(Stop.FINISHED, "finished")
    checkpointers_first = sorted(state.callbacks, key=lambda cb: not isinstance(cb, Checkpointer))
    for cb in checkpointers_first:
        try:
            cb.on_fit_end(state)
        except Exception as err:  # noqa: BLE001 - raised below, after the others have run
            if state.error is None:
                state.error = err
                state.ended(Stop.FAILED, f"error: {type(err).__name__}: {err}")
    state.history.stop, state.history.stop_reason = state.stop, state.stop_reason
    state.history.G_ema = state.G_ema
    if not isinstance(state.error, NonFiniteLossError):
        state.history.samples = state.samples()
    if isinstance(state.error, (CheckpointWriteError, RunWriteError)):
        brief = getattr(state.error, "brief", str(state.error).rstrip("."))
        raise type(state.error)(f"{brief}. {_what_is_kept(state)}") from state.error
    if state.error is not None:
        raise state.error
    return state.history


def _what_is_kept(state: TrainState) -> str:
    """After a file of the run could not be written: which checkpoint is whole, and what next."""
    files, step = state.files, state.history.checkpoint_step
    if files is None:
        return ""
    if state.replacing:
        return (f"Nothing of the new run was saved, and {files.root} still holds the run it was "
                "to replace: free some space (or fix the folder) and train again.")
    if step is None or not files.checkpoint.exists():
        return ("No checkpoint of this run was saved, so there is nothing to resume: free some "
                "space (or fix the folder) and train again.")
    return (f"The checkpoint of step {step:,} in {files.root} is whole (training went on to "
            f"step {state.step:,}): free some space (or fix the folder), then continue "
            "it with fit(..., resume=True) or train --resume.")


