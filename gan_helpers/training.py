"""The adversarial training step, the `fit` loop, and the callbacks that watch it.

One loop serves every lesson, the command line and the benchmarks. What differs between them
(the models, the loss, what to show or save) is passed in, not copied:

    history = fit(G, D, loader, epochs=5, run_dir="runs/dcgan")

Callbacks see a `TrainState` at the start, after every step, after every epoch and at the end
(always, also after an interruption). The defaults: a progress bar, and with a `run_dir` a grid of
samples per epoch and a checkpoint per epoch and at the end.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_module_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import seed_everything
from .models import eval_mode
from .objectives import BCEObjective, Objective
from .viz import save_grid

STATS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_d", "grad_g")
"""What one step reports, in order: both losses, the mean D(x) and D(G(z)) as probabilities, and
the norm of each network's gradient (NaN for G on steps that update D only)."""

CHECKPOINT_FORMAT = "gan-helpers-checkpoint/1"


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite: training stopped rather than produce black grids."""


def grad_norm(module: nn.Module) -> torch.Tensor:
    """The L2 norm of all of `module`'s gradients together (what gradient clipping measures)."""
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


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


@dataclass
class SpeedOptions:
    """Optional speed-ups of the training loop; the defaults are what measured fastest.

    - `amp="bf16"`: bfloat16 autocast for the forward passes (GPUs with bf16, recent CPUs);
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
        if self.amp not in (None, "bf16"):
            raise ValueError(f"amp must be None or 'bf16', not {self.amp!r}.")

    def use_fused_adam(self, device: torch.device) -> bool | None:
        return (device.type == "cuda" or None) if self.fused_adam is None else self.fused_adam

    def prepare(self, G: nn.Module, D: nn.Module,
                device: torch.device) -> tuple[nn.Module, nn.Module]:
        """Apply the options to the networks; return the modules the step should call."""
        if device.type == "cuda" and self.cudnn_benchmark is not False:
            torch.backends.cudnn.benchmark = True
        if self.channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        if self.compile:
            return torch.compile(G), torch.compile(D)
        return G, D

    def batch(self, real: torch.Tensor) -> torch.Tensor:
        if self.channels_last and real.dim() == 4:
            return real.contiguous(memory_format=torch.channels_last)
        return real

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp == "bf16")


class History(dict):
    """Per-step training statistics (`STATS` keys, lists of floats), with how training ended."""

    stop_reason: str | None = None
    run_dir: Path | None = None
    samples: torch.Tensor | None = None
    """The generator's images for the fixed noise batch when training ended."""


@dataclass
class TrainState:
    """Everything the loop knows; callbacks read it and may call `request_stop`."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    objective: Any
    loader: Iterable
    device: torch.device
    fixed_noise: torch.Tensor
    total_steps: int
    steps_per_epoch: int
    run_dir: Path | None = None
    fixed_labels: torch.Tensor | None = None
    """A conditional GAN's labels for the fixed noise: one class per row of 8 in the grids."""
    schedulers: list = field(default_factory=list)
    history: History = field(default_factory=History)
    step: int = 0
    epoch: int = 0
    images_per_sec: float = 0.0
    grids: list[Path] = field(default_factory=list)
    stop_reason: str | None = None
    error: BaseException | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the loop to stop cleanly after the current step."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def samples(self) -> torch.Tensor:
        """The generator's images for the fixed noise batch (in eval mode), on the CPU."""
        cond = () if self.fixed_labels is None else (self.fixed_labels,)
        with eval_mode(self.G):
            return self.G(self.fixed_noise, *cond).cpu()

    def checkpoint(self) -> dict[str, Any]:
        """What a checkpoint holds: enough to resume exactly where training is now."""
        return {
            "format": CHECKPOINT_FORMAT,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "step": self.step,
            "epoch": self.epoch,
            "total_steps": self.total_steps,
            "history": {k: list(v) for k, v in self.history.items()},
            "fixed_noise": self.fixed_noise.cpu(),
            "fixed_labels": None if self.fixed_labels is None else self.fixed_labels.cpu(),
            "rng": rng_state(),
            "meta": dict(self.meta),
        }


class Callback:
    """Hooks into `fit`. Override the ones you need; all receive the `TrainState`."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None:
        """Called however training ends; `state.stop_reason` says why."""


class ProgressBar(Callback):
    """tqdm progress bars (notebook widgets in Jupyter, text elsewhere): one per epoch."""

    def __init__(self, refresh_every: int = 10) -> None:
        self.refresh_every = refresh_every
        self.bar = None

    def _open(self, state: TrainState) -> None:
        from tqdm.auto import tqdm

        done = state.step - 1 - state.epoch * state.steps_per_epoch  # called after a step
        total = min(state.steps_per_epoch, state.total_steps - state.epoch * state.steps_per_epoch)
        self.bar = tqdm(total=total, initial=done, desc=f"epoch {state.epoch + 1}/{state.epochs}",
                        unit="step", leave=True, dynamic_ncols=True)

    def on_step_end(self, state: TrainState) -> None:
        if self.bar is None:
            self._open(state)
        self.bar.update(1)
        if state.step % self.refresh_every == 0 and state.history.get("loss_d"):
            h = state.history
            self.bar.set_postfix(loss_d=f"{h['loss_d'][-1]:.3f}", loss_g=f"{h['loss_g'][-1]:.3f}",
                                 img_s=f"{state.images_per_sec:,.0f}", refresh=False)

    def on_epoch_end(self, state: TrainState) -> None:
        self.close()

    def on_fit_end(self, state: TrainState) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class GridSaver(Callback):
    """Saves the fixed noise batch's samples as `grids/epoch_NNN.png` after every epoch."""

    def on_epoch_end(self, state: TrainState) -> None:
        if state.run_dir is not None:
            path = state.run_dir / "grids" / f"epoch_{state.epoch + 1:03d}.png"
            state.grids.append(save_grid(state.samples(), path, scale=2))


class Checkpointer(Callback):
    """Writes `checkpoint.pt` after every epoch and when training ends, however it ends.

    After a NaN or infinite loss it keeps the last good checkpoint instead of overwriting it.
    """

    filename = "checkpoint.pt"

    def _save(self, state: TrainState) -> None:
        if state.run_dir is not None:
            save_checkpoint(state.checkpoint(), state.run_dir / self.filename)

    def on_epoch_end(self, state: TrainState) -> None:
        self._save(state)

    def on_fit_end(self, state: TrainState) -> None:
        if not isinstance(state.error, NonFiniteLossError):
            self._save(state)


class AnnealNoise(Callback):
    """Lowers an `InstanceNoise` discriminator's `sigma` linearly from its start to 0 over the
    run (it depends on the step only, so a resumed run continues the same schedule)."""

    def __init__(self, noisy_d: nn.Module) -> None:
        self.noisy_d = noisy_d

    def _set(self, state: TrainState) -> None:
        fraction = min(1.0, state.step / max(1, state.total_steps))
        self.noisy_d.sigma = self.noisy_d.start_sigma * (1.0 - fraction)

    on_fit_start = on_step_end = _set


class _DeferInterrupt:
    """While active, Ctrl-C (or Jupyter's interrupt) asks `state` to stop after the current step,
    so no step is left half done. A second Ctrl-C interrupts at once."""

    def __init__(self, state: TrainState) -> None:
        self.state = state
        self.previous = None

    def _handler(self, signum, frame) -> None:
        if self.state.stop_requested:
            raise KeyboardInterrupt
        self.state.request_stop("interrupted (KeyboardInterrupt)")

    def __enter__(self) -> _DeferInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _batches(loader: Iterable, epoch: int, start: int) -> Iterator:
    if hasattr(loader, "batches"):  # TensorLoader: the order depends only on (seed, epoch)
        return loader.batches(epoch, start)
    if hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)
    return islice(iter(loader), start, None)


def _check_finite(rows: list[list[float]], first_step: int, steps_per_epoch: int) -> None:
    for i, row in enumerate(rows):
        for name, value in zip(("discriminator", "generator"), row[:2]):
            if not math.isfinite(value):
                step = first_step + i
                raise NonFiniteLossError(
                    f"The {name}'s loss became {value} at step {step} (epoch "
                    f"{step // steps_per_epoch + 1}). Training stopped so it does not go on "
                    "producing blank images. Try a lower learning rate, check the data is in "
                    "[-1, 1], or resume from the last checkpoint."
                )


def linear_decay(total_steps: int) -> Callable[[int], float]:
    """A learning-rate factor falling linearly from 1 to 0 over `total_steps` steps."""
    return lambda step: max(0.0, 1.0 - step / total_steps)


def fit(
    G: nn.Module,
    D: nn.Module,
    loader: Iterable,
    epochs: int = 1,
    *,
    objective: Any = None,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    opt_g: torch.optim.Optimizer | None = None,
    opt_d: torch.optim.Optimizer | None = None,
    lr_schedule: str | None = None,
    device: torch.device | str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int | None = 0,
    max_steps: int | None = None,
    resume: bool | str | os.PathLike[str] = False,
    step_fn: Callable[..., torch.Tensor] = train_step,
    n_fixed: int | None = None,
    sync_every: int | None = None,
    meta: dict[str, Any] | None = None,
    speed: SpeedOptions | None = None,
) -> History:
    """Train `G` against `D` for `epochs` epochs in all (resumed ones count); return the history.

    - `loader` yields `(images, labels)` with images in [-1, 1]: a `TensorLoader` (fast, exact
      resume) or any `DataLoader`.
    - `objective` defaults to the non-saturating BCE loss; Adam(`lr`, `betas`) unless optimizers
      are given; `lr_schedule="linear"` decays both learning rates to 0 over the run. With an
      objective's `n_critic` > 1, G learns on every `n_critic`-th step only.
    - A conditional `G` (one with `num_classes`) gets the loader's labels, as does `D`.
    - `n_fixed`: how many samples the grids show (default 64, or 8 per class).
    - `run_dir`: where grids and `checkpoint.pt` go (nothing is written without one).
      `resume=True` continues from `run_dir/checkpoint.pt` (or from the path given) exactly.
    - `max_steps` caps the number of steps (in total); `callbacks` are added to the defaults.
    - Ctrl-C or `state.request_stop()` stop cleanly after the current step, with a checkpoint.
      A NaN or infinite loss raises `NonFiniteLossError`, keeping the last good checkpoint.
    - `speed`: the optional speed-ups (`SpeedOptions`); `sync_every` reads the losses back from
      the device every N steps (default: every step on the CPU, every 25 on a GPU).
    """
    device = torch.device(device) if device is not None else next(G.parameters()).device
    objective = objective if objective is not None else BCEObjective()
    run_dir = Path(run_dir) if run_dir is not None else None
    speed = speed or SpeedOptions()
    G.to(device).train()
    D.to(device).train()
    fused = speed.use_fused_adam(device)
    opt_g = opt_g or torch.optim.Adam(G.parameters(), lr=lr, betas=betas, fused=fused)
    opt_d = opt_d or torch.optim.Adam(D.parameters(), lr=lr, betas=betas, fused=fused)
    step_G, step_D = speed.prepare(G, D, device)

    steps_per_epoch = len(loader)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ValueError("The loader yields no batches: is the dataset smaller than a batch?")
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps,
                                                                    epochs * steps_per_epoch)
    schedulers = []
    if lr_schedule == "linear":
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, linear_decay(total))
                      for o in (opt_g, opt_d)]
    elif lr_schedule is not None:
        raise ValueError(f"Unknown lr_schedule {lr_schedule!r}: use None or 'linear'.")

    if seed is not None:
        seed_everything(seed)
    latent_dim = getattr(G, "latent_dim", 100)
    num_classes = getattr(G, "num_classes", None)  # a conditional GAN
    n_critic = getattr(objective, "n_critic", 1)
    n_fixed = n_fixed or (8 * num_classes if num_classes else 64)
    fixed_noise = torch.randn(n_fixed, latent_dim, generator=torch.Generator().manual_seed(
        1234 if seed is None else seed + 1234)).to(device)
    fixed_labels = None
    if num_classes:
        fixed_labels = ((torch.arange(n_fixed) // 8) % num_classes).to(device)
    state = TrainState(G, D, opt_g, opt_d, objective, loader, device, fixed_noise, total,
                       steps_per_epoch, run_dir=run_dir, schedulers=schedulers, meta=meta or {},
                       fixed_labels=fixed_labels)
    state.history.update({k: [] for k in STATS})
    state.history.run_dir = run_dir

    if resume:
        _restore(state, Path(resume) if not isinstance(resume, bool) else
                 _default_checkpoint(run_dir))
        state.total_steps = max(state.total_steps, state.step)

    all_callbacks: list[Callback] = [ProgressBar()] if progress else []
    if run_dir is not None:
        all_callbacks.append(GridSaver())
    all_callbacks += list(callbacks)
    if run_dir is not None:  # last, so a checkpoint holds what the other callbacks added
        all_callbacks.append(Checkpointer())
    sync_every = sync_every or (1 if device.type == "cpu" else 25)

    pending: list[torch.Tensor] = []

    def flush() -> None:
        if not pending:
            return
        rows = torch.stack(pending).cpu().tolist()
        first = state.step - len(pending)
        pending.clear()
        for row in rows:
            for key, value in zip(STATS, row):
                state.history[key].append(value)
        _check_finite(rows, first, steps_per_epoch)

    for cb in all_callbacks:
        cb.on_fit_start(state)
    try:
        with _DeferInterrupt(state):
            while state.step < state.total_steps and not state.stop_requested:
                state.epoch = state.step // steps_per_epoch
                start = state.step - state.epoch * steps_per_epoch
                tick, ticked = time.perf_counter(), 0
                for real, labels in _batches(loader, state.epoch, start):
                    real = speed.batch(real.to(device, non_blocking=True))
                    z = torch.randn(real.shape[0], latent_dim, device=device)
                    extra: dict[str, Any] = {}
                    if num_classes:
                        extra["labels"] = labels.to(device, non_blocking=True)
                    if n_critic > 1:
                        extra["update_g"] = (state.step + 1) % n_critic == 0
                    with speed.autocast(device):
                        pending.append(step_fn(step_G, step_D, opt_g, opt_d, real, z, objective,
                                               **extra))
                    for s in schedulers:
                        s.step()
                    state.step += 1
                    ticked += real.shape[0]
                    if state.step % sync_every == 0:
                        flush()
                        now = time.perf_counter()
                        state.images_per_sec = ticked / max(now - tick, 1e-9)
                        tick, ticked = now, 0
                    for cb in all_callbacks:
                        cb.on_step_end(state)
                    if state.stop_requested or state.step >= state.total_steps:
                        break
                flush()
                if state.step % steps_per_epoch == 0:
                    for cb in all_callbacks:
                        cb.on_epoch_end(state)
    except NonFiniteLossError as err:
        state.error, state.stop_reason = err, str(err)
    except KeyboardInterrupt:
        state.stop_reason = "interrupted (KeyboardInterrupt)"
    except Exception as err:  # noqa: BLE001 - recorded, checkpointed, then raised again
        state.error, state.stop_reason = err, f"error: {type(err).__name__}: {err}"
    finally:
        try:
            flush()
        except NonFiniteLossError as err:
            state.error, state.stop_reason = err, str(err)
        if state.stop_reason is None:
            state.stop_reason = "finished"
        _fit_end(all_callbacks, state)
    state.history.stop_reason = state.stop_reason
    if not isinstance(state.error, NonFiniteLossError):
        state.history.samples = state.samples()
    if state.error is not None:
        state.error.history = state.history  # type: ignore[attr-defined]
        raise state.error
    return state.history


def _fit_end(callbacks: Sequence[Callback], state: TrainState) -> None:
    """Call every callback's `on_fit_end`, even if one fails (the checkpoint must be written)."""
    failure: BaseException | None = None
    for cb in callbacks:
        try:
            cb.on_fit_end(state)
        except Exception as err:  # noqa: BLE001 - raised below, after the others have run
            failure = failure or err
    if failure is not None and state.error is None:
        state.error = failure


def _default_checkpoint(run_dir: Path | None) -> Path:
    if run_dir is None:
        raise ValueError("resume=True needs a run_dir (or pass the checkpoint's path as resume=).")
    return run_dir / Checkpointer.filename


def _restore(state: TrainState, path: Path) -> None:
    """Load a checkpoint into `state` so training continues exactly where it stopped."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint of gan_helpers.")
    load_module_state(state.G, ckpt["G"], "generator", path)
    load_module_state(state.D, ckpt["D"], "discriminator", path)
    try:
        state.opt_g.load_state_dict(ckpt["opt_g"])
        state.opt_d.load_state_dict(ckpt["opt_d"])
        for sched, saved in zip(state.schedulers, ckpt["schedulers"]):
            sched.load_state_dict(saved)
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"Optimizer state in {path} does not fit: {err}") from err
    state.step, state.epoch = ckpt["step"], ckpt["epoch"]
    state.history.update({k: list(v) for k, v in ckpt["history"].items()})
    for key in STATS:  # a checkpoint from before a statistic existed: pad with NaN
        missing = len(state.history["loss_d"]) - len(state.history[key])
        state.history[key][:0] = [math.nan] * max(0, missing)
    state.fixed_noise = ckpt["fixed_noise"].to(state.device)
    if ckpt.get("fixed_labels") is not None:
        state.fixed_labels = ckpt["fixed_labels"].to(state.device)
    set_rng_state(ckpt["rng"])
    state.meta = {**ckpt.get("meta", {}), **state.meta}
