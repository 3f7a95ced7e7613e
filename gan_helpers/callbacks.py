"""The `Callback` hooks `training.fit` calls, and the standard callbacks, each with one job:
the progress bar, the grids, the checkpoint, the history file, the instance-noise schedule, the
moving average of the generator's weights, and a wall-clock budget with snapshots. (The
`TrainState` they receive is in `state`; scoring, keeping the best checkpoint, early stopping and
the metrics file are in `evaluation`.)

A callback overrides the hooks it needs. `fit` calls them in this order:

    on_fit_start                      once, after a resumed run's state is restored
    (on_step_end                      after every step
     on_epoch_end)  x epochs          after every complete epoch
    on_exception                      only if an exception ends training
    on_fit_end                        always, however training ends

With a run folder, `fit` lists them so: the moving average of `fit(ema=...)` (so every other
callback sees the average of the step just done), the progress bar, the grid saver, the given
callbacks, then the checkpointer (so a checkpoint holds what the others added) and the history
writer. Only at the end does the checkpointer go first, so the others can report the final
checkpoint, and the history writer last, so `history.json` says how everything ended.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch
from torch import nn

from . import checkpoints, config
from .images import save_grid
from .run_folder import RunWriteError, write_atomic
from .state import TrainState
from .timing import Snapshots


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
    """Saves the fixed noise batch's samples as `grids/epoch_NNN.png` after every epoch, and as
    `final.png` when training ends with its last step checkpointed (a NaN loss or an
    interrupted step leaves none)."""

    def on_epoch_end(self, state: TrainState) -> None:
        if state.files is not None:
            checkpoints.claim_folder(state)  # a run replacing another: its first file
            self._save(state, state.files.grid(state.epoch + 1))

    def on_fit_end(self, state: TrainState) -> None:
        files = state.files
        if files is None:
            return
        if not state.trained_now:  # nothing new: the folder stays as it is
            if files.final.exists() and not state.replacing:
                state.history.final_grid = files.final
            return
        if not state.replacing and state.history.checkpoint_step == state.step:
            state.history.final_grid = self._save(state, files.final, "final grid")

    @staticmethod
    def _save(state: TrainState, path, what: str = "grid"):
        try:
            return save_grid(state.samples(), path, scale=2)
        except OSError as err:
            raise RunWriteError(f"Could not write the {what} {path}: "
                                f"{err.strerror or err}") from err


class Checkpointer(Callback):
    """Writes `checkpoint.pt` (`checkpoints.write`) after every epoch and when training ends.

    The checkpoint on disk is always of a whole, healthy step: after a NaN, infinite or diverged
    loss, or an exception in the middle of a step (D updated, G not: `TrainState.whole`), the
    last good checkpoint is kept instead of being overwritten, and the stop reason says which
    step it holds (so does `history.checkpoint_step`). A call of `fit` that did no step (a
    finished run resumed, an interrupt before the first step) writes nothing, and one
    replacing a run (`fit(overwrite=True)`) that wrote nothing yet leaves the old run as it was.
    """

    def on_epoch_end(self, state: TrainState) -> None:
        if state.files is not None:
            checkpoints.write(state)

    def on_fit_end(self, state: TrainState) -> None:
        if state.files is None or not state.trained_now:
            return
        if not state.whole:
            step = state.history.checkpoint_step
            kept = (f"the checkpoint of step {step} was kept" if step is not None
                    else "no checkpoint was written")
            state.stop_reason = f"{state.stop_reason} ({kept})"
            if state.replacing:  # nothing of this run was written: keep the old one
                state.stop_reason += f"; {state.files.root} still holds the run it was to replace"
        elif state.replacing or state.history.checkpoint_step != state.step:
            checkpoints.write(state)  # (after a whole epoch, it is saved already)


class HistoryWriter(Callback):
    """Writes the run's history when training ends: `history.json` (every step's statistics,
    any evaluations, and the stop reason), then its loss curves, `losses.png`.

    It runs last, so the history says how everything ended (a checkpoint that could not be
    written included). Nothing is written by a call of `fit` that did no step, or by a run
    replacing another that wrote nothing yet. A plot that cannot be drawn is one line of
    warning: it never hides what ended training.
    """

    def on_fit_end(self, state: TrainState) -> None:
        files = state.files
        if files is None or not state.trained_now or state.replacing:
            return
        state.history.stop_reason = state.stop_reason
        write_atomic(files.history, state.history.to_json(), "history")
        try:
            from . import viz  # matplotlib, only now: the loop itself runs headless

            viz.save_history_plot({k: v for k, v in state.history.items() if k != "eval"},
                                  files.losses)
        except Exception as err:  # noqa: BLE001 - a plot never hides the run's own outcome
            print(f"warning: {files.losses} not written: {type(err).__name__}: {err}",
                  file=sys.stderr)


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
    `on_fit_start` from G as it is then); its floating-point buffers (BatchNorm's running
    statistics) are averaged the same way, as timm's `ModelEmaV2` and `AveragedModel(...,
    use_buffers=True)` do, so they describe the averaged network rather than the trained one;
    integer buffers (the count of batches) are copied. Its weights and its count of updates
    are kept in the checkpoint (under its `state_key`, which the checkpoint names as its
    `average`), so a resumed run continues the average exactly.

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
        """Move the average towards `G`'s weights and statistics (one update)."""
        weight = 1.0 - ema_decay(self.decay, self.updates)
        for average, current in zip(self.G_ema.parameters(), G.parameters(), strict=True):
            average.lerp_(current, weight)  # exactly `current` when weight is 1 (decay 0)
        for average, current in zip(self.G_ema.buffers(), G.buffers(), strict=True):
            if average.is_floating_point():  # BatchNorm's statistics: averaged like the weights
                average.lerp_(current, weight)
            else:  # its count of batches
                average.copy_(current)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        if self.G_ema is None:  # not started: keep what a resumed run loaded, if anything
            return self._saved or {}
        return {"decay": self.decay, "updates": self.updates, "weights": self.G_ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved = state


class WallClockBudget(Callback):
    """Trains for a wall-clock budget: snapshots (`timing.Snapshots`) at `times` seconds of the
    generator that samples (the moving average of its weights with `fit(ema=...)`), then
    `request_stop` when the last one is taken. Its clock starts before the first step (a
    compilation's time counts) and pauses while a snapshot is copied. The time-to-quality
    benchmark and lesson 09 race their models with it; `evaluation.score_snapshots` scores them.
    In smoke mode the times shrink together (`config.smoke_times`).
    """

    def __init__(self, times: list[float]) -> None:
        self.snapshots = Snapshots(config.smoke_times(list(times)))

    def on_fit_start(self, state: TrainState) -> None:
        self.snapshots.clock.start()

    def on_step_end(self, state: TrainState) -> None:
        if self.snapshots.check(state.sampling_G, state.step):
            state.request_stop(f"wall-clock budget of {self.snapshots.times[-1]:g} s used")
