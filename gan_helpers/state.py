"""What a training run knows while `training.fit` runs it: the `TrainState` every callback
receives, the `History` that `fit` returns, and `Stop`, why training ended.

It sits below `checkpoints` (which saves and restores a `TrainState`) and `callbacks` (which
watch it), and imports neither.
"""

from __future__ import annotations

import enum
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import NonFiniteLossError
from .models import generate
from .run_folder import RunFiles
from .stats import StepStats

if TYPE_CHECKING:  # for the annotations only: callbacks imports this module
    from .callbacks import Callback


class Stop(enum.Enum):
    """Why training ended: the value to act on (the command line's exit status is chosen from
    it); `History.stop_reason` says the same in words, with the details."""

    FINISHED = "finished"
    """Every step asked for is done."""
    STOPPED = "stopped"
    """`TrainState.request_stop()`: the dashboard's Stop button, or a callback of the caller's."""
    EARLY_STOPPED = "early stop"
    """`EarlyStopping`: the score stopped improving."""
    INTERRUPTED = "interrupted"
    """Ctrl-C, or Jupyter's interrupt button (SIGINT)."""
    TERMINATED = "terminated"
    """SIGTERM (`kill PID`)."""
    DIVERGED = "diverged"
    """A loss or gradient norm became NaN, infinite or huge (`NonFiniteLossError`)."""
    FAILED = "error"
    """Any other exception, or a file of the run that could not be written."""


class History(dict):
    """Per-step training statistics (`stats.STATS` keys, lists of floats), with how training ended.

    Callbacks may add keys (the evaluation callback adds `"eval"`, a list of dicts)."""

    stop: Stop | None = None
    """Why training ended, as a value."""
    stop_reason: str | None = None
    """Why training ended, in words (what `history.json` records)."""
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
    D: nn.Module | None
    """The discriminator; None for a model trained alone (a flow model: `fit_flow`)."""
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
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
    nothing of it is deleted until this run writes its first file (`checkpoints.claim_folder`)."""
    epoch: int = 0
    """The current epoch, from 0; in `on_epoch_end`, the epoch that just ended."""
    in_step: bool = False
    """True while a step runs: an exception then leaves D updated and G not (see Checkpointer)."""
    images_per_sec: float = 0.0
    stats: StepStats | None = None
    """Each step's statistics, read back from the device every `sync_every` steps (`fit` sets
    it); `checkpoints.build` reads the last ones into `history` first."""
    stop: Stop | None = None
    """Why training ended (or is ending), as a value; `stop_reason` says it in words."""
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

    def request_stop(self, reason: str = "stopped", stop: Stop = Stop.STOPPED) -> None:
        """Ask the loop to stop cleanly after the current step (`reason`: why, in words). The
        first request is the one recorded."""
        if self.stop is None:
            self.stop, self.stop_reason = stop, reason
        self._stop.set()

    def ended(self, stop: Stop, reason: str) -> None:
        """Record why training ended, replacing an earlier reason (an error after a stop)."""
        self.stop, self.stop_reason = stop, reason

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def trained_now(self) -> bool:
        """Whether this call of `fit` has done any step (a finished run resumed does none)."""
        return self.step > self.start_step

    @property
    def whole(self) -> bool:
        """Whether the networks in memory are those of a whole, healthy step: False after a NaN
        or diverged loss, or after an exception in the middle of a step (D updated, G not).
        Nothing is then saved over the last good checkpoint."""
        return not self.in_step and not isinstance(self.error, NonFiniteLossError)

    def samples(self) -> torch.Tensor:
        """The generator's images for the fixed noise batch (in eval mode), on the CPU: those of
        the moving average of its weights when the run keeps one (`sampling_G`)."""
        return generate(self.sampling_G, self.fixed_noise, self.fixed_labels)
