"""What `training.fit` shows to the code that watches it: the `TrainState`, the `Callback` hooks,
and the standard callbacks (progress bar, grids, checkpoints, the run's history file, the
instance-noise schedule, the moving average of the generator's weights).

A callback overrides the hooks it needs. `fit` calls them in this order:

    on_fit_start                      once, after a resumed run's state is restored
    (on_step_end                      after every step
     on_epoch_end)  x epochs          after every complete epoch
    on_exception                      only if an exception ends training
    on_fit_end                        always, however training ends

Callbacks run in the order they are given, after the progress bar and the grid saver and
before the checkpointer, so a checkpoint holds what the other callbacks added; only at the end
does the checkpointer go first, so the others can report the final checkpoint. The moving
average of `fit(ema=...)` (`AverageGenerator`) runs before all of them, so that every other
callback sees the average of the step just done.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import AVERAGE_KEY, CHECKPOINT_FORMAT, rng_state, save_checkpoint
from .errors import GanHelpersError
from .images import save_grid
from .models import generate
from .run_folder import RunFiles, RunWriteError, write_atomic

STATS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_d", "grad_g")
"""What one step reports, in order: both losses, the mean D(x) and D(G(z)) as probabilities, and
the norm of each network's gradient (NaN for G on steps that update D only)."""


class NonFiniteLossError(GanHelpersError, FloatingPointError):
    """A loss or gradient norm became NaN, infinite or huge (`training.DIVERGED`): training
    stopped rather than produce black grids, keeping the last good checkpoint."""


class History(dict):
    """Per-step training statistics (`STATS` keys, lists of floats), with how training ended.

    Callbacks may add keys (the evaluation callback adds `"eval"`, a list of dicts)."""

    stop_reason: str | None = None
    samples: torch.Tensor | None = None
    """The generator's images for the fixed noise batch when training ended."""
    checkpoint_step: int | None = None
    """The step of the run folder's checkpoint when training ended (None: none written)."""
    final_grid: Path | None = None
    """`final.png`, when training ended well enough to write it."""
    G_ema: nn.Module | None = None
    """The moving average of the generator's weights (`fit(ema=...)`), in eval mode; None
    without one. `samples` and `final.png` come from it."""

    def to_json(self) -> str:
        """The history as JSON, with `stop_reason`; NaN (G's gradient on critic-only steps) is
        written as null, since JSON has no NaN."""
        def finite(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        body = {k: [finite(x) if isinstance(x, float) else x for x in v]
                for k, v in self.items()}
        return json.dumps({"stop_reason": self.stop_reason, **body}, allow_nan=False)


@dataclass
class TrainState:
    """Everything the loop knows. Callbacks read it; they may call `request_stop`, add keys to
    `history`, and change the models (e.g. instance noise), but not the step counters."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    objective: Any
    loader: Any
    device: torch.device
    fixed_noise: torch.Tensor
    total_steps: int
    steps_per_epoch: int
    record: dict[str, Any]
    """What built this run (dataset, networks, objective, settings): saved with every checkpoint,
    and compared with the checkpoint's on resume."""
    run_dir: Path | None = None
    fixed_labels: torch.Tensor | None = None
    """A conditional GAN's labels for the fixed noise: one class per row of 8 in the grids."""
    schedulers: list = field(default_factory=list)
    G_ema: nn.Module | None = None
    """The moving average of G's weights (`fit(ema=...)`: set by `AverageGenerator` before the
    first step), in eval mode; None without one."""
    callbacks: list[Callback] = field(default_factory=list)
    history: History = field(default_factory=History)
    step: int = 0
    """Steps done so far (in all, across resumes)."""
    start_step: int = 0
    """The step this call of `fit` started from (a resumed run's checkpoint step, else 0)."""
    replacing: bool = False
    """True while the run folder still holds the run this one replaces (`fit(overwrite=True)`):
    nothing of it is deleted until this run writes its first file (`claim_folder`)."""
    epoch: int = 0
    """The current epoch, from 0; in `on_epoch_end`, the epoch that just ended."""
    in_step: bool = False
    """True while a step runs: an exception then leaves D updated and G not (see Checkpointer)."""
    images_per_sec: float = 0.0
    sync_stats: Callable[[], None] = lambda: None
    """Reads the statistics still on the device into `history` (`fit` sets it)."""
    stop_reason: str | None = None
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def latent_dim(self) -> int:
        return self.fixed_noise.shape[1]

    @property
    def num_classes(self) -> int | None:
        """A conditional generator's number of classes; None for an unconditional one."""
        return getattr(self.G, "num_classes", None)

    @property
    def sampling_G(self) -> nn.Module:
        """The generator that samples, grids and scores come from: the moving average of G's
        weights when the run keeps one (`fit(ema=...)`), else G itself."""
        return self.G_ema if self.G_ema is not None else self.G

    def updates_g(self, step: int) -> bool:
        """Whether step number `step` (counting from 1) updates G: every step, or only every
        `n_critic`-th with an objective that trains its critic more often (WGAN-GP)."""
        return step % getattr(self.objective, "n_critic", 1) == 0

    @property
    def files(self) -> RunFiles | None:
        return RunFiles(self.run_dir) if self.run_dir is not None else None

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the loop to stop cleanly after the current step."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def samples(self) -> torch.Tensor:
        """The generator's images for the fixed noise batch (in eval mode), on the CPU: those of
        the moving average of its weights when the run keeps one (`sampling_G`)."""
        return generate(self.sampling_G, self.fixed_noise, self.fixed_labels)

    def claim_folder(self) -> None:
        """Before this run writes its first file into a run folder that holds the run it replaces
        (`fit(overwrite=True)`): write this run's checkpoint over the old one (atomically: if that
        fails, the old run is still whole), then delete the rest of the old run (its grids,
        history, metrics, plots, best checkpoint). Does nothing otherwise."""
        if not self.replacing or self.files is None:
            return
        save_checkpoint(self.checkpoint(), self.files.checkpoint)
        self.history.checkpoint_step = self.step
        self.files.clear(keep_checkpoint=True)
        self.replacing = False

    @property
    def trained_now(self) -> bool:
        """Whether this call of `fit` has done any step (a finished run resumed does none)."""
        return self.step > self.start_step

    def checkpoint(self) -> dict[str, Any]:
        """What a checkpoint holds: what built the run, and all it needs to resume exactly
        (`total_steps`, the length the run was asked for, tells a finished run from a stopped
        one: `step < total_steps` was stopped early)."""
        self.sync_stats()
        return {
            "format": CHECKPOINT_FORMAT,
            "run": self.record,
            "total_steps": self.total_steps,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "callbacks": {cb.state_key: saved for cb in self.callbacks
                          if (saved := cb.state_dict())},
            "step": self.step,
            "history": {k: list(self.history[k]) for k in STATS},
            "fixed_noise": self.fixed_noise.cpu(),
            "fixed_labels": None if self.fixed_labels is None else self.fixed_labels.cpu(),
            "rng": rng_state(),
        }


class Callback:
    """Hooks into `fit` (see the module docstring for the order). Every hook receives the
    `TrainState`; override only those you need.

    A callback with state of its own that a resumed run must continue (records, a schedule, a
    clock) returns it from `state_dict` (tensors, numbers, strings, lists, dicts only); the
    checkpoint keeps it under `state_key`, and `load_state_dict` gets it back on resume, before
    `on_fit_start`.
    """

    @property
    def state_key(self) -> str:
        """The name this callback's state is saved under (the class name: one of each kind)."""
        return type(self).__name__

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first step (after a resumed run's state is restored). May set up displays,
        files, or the models' schedule for `state.step`."""

    def on_step_end(self, state: TrainState) -> None:
        """After every step: `state.step` counts it, `state.history` holds its statistics (read
        back from the device every `sync_every` steps, so may lag a few steps on a GPU)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After every complete epoch (`state.epoch` is the one that ended, from 0), before the
        checkpointer saves. Not called for the partial epoch of a stopped run."""

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        """When an exception ends training (a NaN loss, a bug, a second Ctrl-C), before
        `on_fit_end`. `state.in_step` says whether it struck in the middle of a step. The
        exception is raised again after `on_fit_end` (a second Ctrl-C is not)."""

    def on_fit_end(self, state: TrainState) -> None:
        """Always, however training ended: `state.stop_reason` says why, `state.error` holds the
        exception if one ended it. Called for every callback even if one of them fails, after
        the checkpointer has written the final checkpoint (`history.checkpoint_step`)."""

    def state_dict(self) -> dict[str, Any]:
        """This callback's state for the checkpoint (empty: nothing to save)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned, when a run resumes."""


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
        if state.files is not None:
            state.claim_folder()
            path = state.files.grid(state.epoch + 1)
            try:
                save_grid(state.samples(), path, scale=2)
            except OSError as err:
                raise RunWriteError(f"Could not write the grid {path}: "
                                    f"{err.strerror or err}") from err


class Checkpointer(Callback):
    """Writes `checkpoint.pt` after every epoch and when training ends, and `history.json` and
    `final.png` (the fixed noise batch's samples) when it ends.

    The checkpoint on disk is always of a whole, healthy step: after a NaN, infinite or diverged
    loss, or an exception in the middle of a step (D updated, G not), the last good checkpoint is
    kept instead of being overwritten, and the stop reason says which step it holds.
    `history.checkpoint_step` says it too.

    When training ends, each file is tried even if another fails (a full disk, a file size
    limit: `history.json` is small and usually still fits), and the first failure is raised.
    A call of `fit` that did no step (a finished run resumed, an interrupt before the first
    step) writes nothing, and one replacing a run (`fit(overwrite=True)`) that wrote nothing yet
    leaves the old run as it was.
    """

    def __init__(self) -> None:
        self.keep_last = False

    def _save(self, state: TrainState) -> None:
        if state.files is None:
            return
        if state.replacing:
            state.claim_folder()  # writes this checkpoint, then clears the old run
            return
        save_checkpoint(state.checkpoint(), state.files.checkpoint)
        state.history.checkpoint_step = state.step

    def on_epoch_end(self, state: TrainState) -> None:
        self._save(state)

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        self.keep_last = state.in_step or isinstance(error, NonFiniteLossError)

    def on_fit_end(self, state: TrainState) -> None:
        files = state.files
        if files is None:
            return
        if not state.trained_now:  # nothing new: the folder stays as it is
            if files.final.exists() and not state.replacing:
                state.history.final_grid = files.final
            return
        if self.keep_last:
            step = state.history.checkpoint_step
            kept = (f"the checkpoint of step {step} was kept" if step is not None
                    else "no checkpoint was written")
            state.stop_reason = f"{state.stop_reason} ({kept})"
        if state.replacing and self.keep_last:  # nothing of this run was written: keep the old
            state.stop_reason += f"; {files.root} still holds the run it was to replace"
            return
        failed: BaseException | None = None
        if not self.keep_last:
            try:
                if state.replacing or state.history.checkpoint_step != state.step:
                    self._save(state)  # (after a whole epoch, it is saved already)
            except Exception as err:  # noqa: BLE001 - raised below, after history.json
                failed = err
            if failed is None:
                try:
                    state.history.final_grid = save_grid(state.samples(), files.final, scale=2)
                except OSError as err:
                    failed = RunWriteError(f"Could not write the final grid {files.final}: "
                                           f"{err.strerror or err}")
        if state.replacing:  # the first checkpoint could not be written: the old run stays
            if failed is not None:
                raise failed
            return
        if failed is not None and state.error is None:
            state.stop_reason = f"error: {type(failed).__name__}: {failed}"
        state.history.stop_reason = state.stop_reason
        try:
            write_atomic(files.history, state.history.to_json(), "history")
        except RunWriteError as err:
            failed = failed or err
        if failed is not None:
            raise failed


class AnnealNoise(Callback):
    """Lowers an `InstanceNoise` discriminator's `sigma` linearly from its start to 0 over the
    run. The schedule depends on the step only, so a resumed run continues it (the starting
    sigma is part of D's record: resuming with another one is refused)."""

    def __init__(self, noisy_d: nn.Module) -> None:
        self.noisy_d = noisy_d

    def _set(self, state: TrainState) -> None:
        fraction = min(1.0, state.step / max(1, state.total_steps))
        self.noisy_d.sigma = self.noisy_d.start_sigma * (1.0 - fraction)

    on_fit_start = on_step_end = _set


def ema_decay(decay: float, updates: int) -> float:
    """The decay of the moving average at its update number `updates` (from 0): `decay`, but
    lower at the start, min(decay, (1 + t) / (10 + t)), so the random initial weights are soon
    forgotten (0.1 at the first update, 0.5 at the ninth, 0.99 after about 900)."""
    return min(decay, (1 + updates) / (10 + updates))


class AverageGenerator(Callback):
    """Keeps an exponential moving average of the generator's weights (EMA: Karras et al. 2018,
    Yazici et al. 2019), updated after every step that updated G:

        average = d * average + (1 - d) * G,   d = ema_decay(decay, updates so far)

    The averaged generator is a separate copy of G in eval mode, `state.G_ema` (built in
    `on_fit_start` from G as it is then); its buffers (BatchNorm's running statistics) are
    copied from G, not averaged. Its weights and its count of updates are kept in the checkpoint
    (under `checkpoints.AVERAGE_KEY`), so a resumed run continues the average exactly.

    Use `fit(ema=decay)`, which adds it before every other callback and records the decay with
    the run; samples, grids, `EvaluateEvery`'s scores, `best.pt` and the command line's
    `sample` and `evaluate` then use the average.
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"The moving average's decay must be at least 0 and below 1 (e.g. "
                             f"0.999), not {decay}.")
        self.decay = decay
        self.updates = 0
        self.G_ema: nn.Module | None = None
        self._saved: dict[str, Any] | None = None  # a resumed run's average, until on_fit_start

    @property
    def state_key(self) -> str:
        return AVERAGE_KEY

    def on_fit_start(self, state: TrainState) -> None:
        self.G_ema = copy.deepcopy(state.G).eval().requires_grad_(False)
        if self._saved is not None:
            self.G_ema.load_state_dict(self._saved["weights"])
            self.updates, self._saved = self._saved["updates"], None
        state.G_ema = self.G_ema

    def on_step_end(self, state: TrainState) -> None:
        if state.updates_g(state.step):
            self.update(state.G)

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        """Move the average towards `G`'s weights (one update); copy `G`'s buffers."""
        weight = 1.0 - ema_decay(self.decay, self.updates)
        for average, current in zip(self.G_ema.parameters(), G.parameters(), strict=True):
            average.lerp_(current, weight)  # exactly `current` when weight is 1 (decay 0)
        for average, current in zip(self.G_ema.buffers(), G.buffers(), strict=True):
            average.copy_(current)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        if self.G_ema is None:  # not started: keep what a resumed run loaded, if anything
            return self._saved or {}
        return {"decay": self.decay, "updates": self.updates, "weights": self.G_ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved = state
