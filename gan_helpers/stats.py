"""Each step's statistics: what a step reports (`STATS`), kept on the device and read back in
batches (`StepStats`), and checked for divergence when read (`DIVERGED`, `EXPLODED`,
`loss_limits`): a run whose losses blow up stops, naming the step, instead of drawing blank
grids for hours.
"""

from __future__ import annotations

import math
import time

import torch

from .errors import NonFiniteLossError

STATS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_d", "grad_g")
"""What one step reports, in order: both losses, the mean D(x) and D(G(z)) as probabilities, and
the norm of each network's gradient (NaN for G on steps that update D only)."""

DIVERGED = 1e6
"""A loss or gradient norm beyond this (or NaN, or infinite) means the run has diverged: no
healthy run of this series comes within orders of magnitude of it."""

EXPLODED = 100.0
"""A loss beyond this many times its value for a discriminator that cannot tell (one whose
outputs are all 0), at least this, has exploded: the run diverged. Every objective here is, for
large outputs of D, linear in them (softplus, hinge, Wasserstein), so a loss of L means D's
outputs are about L: for the logistic losses, a non-saturating generator's loss of 100 means
D(G(z)) = e^-100, below the smallest normal float32 (e^-87), a verdict no float can hold; for
the hinge loss, outputs a hundred times its margin. (A critic's losses have no such scale: see
`loss_limits`.) Measured on Fashion-MNIST: healthy and failing runs of lessons 02 to 08 (a dead
generator included) stay below 30; `--lr 10` takes a DCGAN's generator loss past 10^5."""

WATCHED = {"loss_d": "discriminator's loss", "loss_g": "generator's loss",
           "grad_d": "discriminator's gradient norm", "grad_g": "generator's gradient norm"}
"""The statistics checked for divergence, and their names in the message."""


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """The L2 norm of all of `module`'s gradients together (what gradient clipping measures)."""
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def loss_limits(objective) -> dict[str, float]:
    """The largest healthy size of each loss of `objective`: `EXPLODED` times its value for a
    discriminator whose outputs are all 0, at least `EXPLODED`.

    Empty (only `DIVERGED` applies) for a critic (WGAN), whose outputs have no zero: all of them
    may shift by a constant without changing its loss, so the generator's loss, minus the mean
    score of the fakes, has no scale, and the critic's own loss carries a gradient penalty,
    quadratic in its slope, that is large early in healthy runs (up to 54 measured). Empty too
    for an objective that cannot be evaluated on plain outputs."""
    try:
        with torch.no_grad():
            zeros, shifted = torch.zeros(8, 1), torch.full((8, 1), 10.0)
            d0, g0 = float(objective.d_loss(zeros, zeros)), float(objective.g_loss(zeros))
            offset_free = abs(float(objective.d_loss(shifted, shifted)) - d0) < 1e-4
    except Exception:  # noqa: BLE001 - an objective of the caller's that needs other inputs
        return {}
    if offset_free or not (math.isfinite(d0) and math.isfinite(g0)):
        return {}
    return {"loss_d": EXPLODED * max(1.0, abs(d0)), "loss_g": EXPLODED * max(1.0, abs(g0))}


class StepStats:
    """Each step's statistics, kept on the device and read back into `history` every `every`
    steps (reading waits for the device, so on a GPU it is done rarely); checked for divergence
    when read. Also measures the training speed (`images_per_sec`)."""

    def __init__(self, history: dict, objective, steps_per_epoch: int, every: int,
                 alone: bool = False) -> None:
        """`alone`: G trains without a discriminator (a flow model): D's statistics are NaN and
        only G's loss and gradient norm are watched."""
        self.history, self.steps_per_epoch, self.every = history, steps_per_epoch, every
        self.watched = ({k: v for k, v in WATCHED.items() if k.endswith("_g")} if alone
                        else WATCHED)
        self.pending: list[torch.Tensor] = []
        self.tick, self.images, self.images_per_sec = time.perf_counter(), 0, 0.0
        self.limits = loss_limits(objective)

    def add(self, stats: torch.Tensor) -> None:
        self.pending.append(stats)

    def step_done(self, step: int, batch_size: int) -> None:
        """Count step `step`'s images; every `every` steps, read back and measure the speed."""
        self.images += batch_size
        if step % self.every == 0:
            self.flush(step)
            now = time.perf_counter()
            self.images_per_sec = self.images / max(now - self.tick, 1e-9)
            self.tick, self.images = now, 0

    def flush(self, step: int) -> None:
        """Append the pending statistics (up to step `step`) to the history;
        `NonFiniteLossError` at a loss or gradient norm that is NaN, infinite or beyond
        `DIVERGED`, or a loss beyond its `loss_limits` (exploded), naming the step it happened
        at."""
        if not self.pending:
            return
        rows = torch.stack(self.pending).cpu().tolist()
        first = step - len(self.pending) + 1
        self.pending.clear()
        for row in rows:
            for key, value in zip(STATS, row):
                self.history[key].append(value)
        for i, row in enumerate(rows):
            for key, value in zip(STATS, row):
                if key not in self.watched or (key == "grad_g" and math.isnan(value)):
                    continue  # G's gradient norm is NaN on the steps that update D only
                limit = self.limits.get(key, DIVERGED)
                if not abs(value) <= min(limit, DIVERGED):
                    self._diverged(key, value, first + i, limit if abs(value) <= DIVERGED
                                   else None)

    def _diverged(self, key: str, value: float, step: int, limit: float | None) -> None:
        why = (f"exploded past {limit:g}, {EXPLODED:g} times its size for a discriminator that "
               "cannot tell" if limit is not None else "")
        raise NonFiniteLossError(
            f"The {self.watched[key]} became {value:.4g} at step {step} (epoch "
            f"{(step - 1) // self.steps_per_epoch + 1}){': ' + why if why else ''}: "
            "the run diverged. Training stopped so it does not go on producing blank images; "
            "the last good checkpoint, if any, is kept. Train again with a lower learning rate "
            "(in a new run folder), and check the data is in [-1, 1].")
