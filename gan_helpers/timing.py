"""A pausable training clock: wall-clock seconds of training, with evaluation time left out; and
snapshots of a generator taken by that clock (a run on a wall-clock budget)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


class Stopwatch:
    """Seconds since `start()` (plus `offset`, e.g. a resumed run's earlier training time),
    not counting the time spent inside `with stopwatch.paused():` blocks."""

    def __init__(self, offset: float = 0.0) -> None:
        self.start(offset)

    def start(self, offset: float = 0.0) -> None:
        """(Re)start the clock at `offset` seconds."""
        self.offset, self._start, self._paused = offset, time.perf_counter(), 0.0

    def elapsed(self) -> float:
        """Training seconds so far: wall-clock time since `start`, less the paused time."""
        return self.offset + time.perf_counter() - self._start - self._paused

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the clock for the duration of the block (evaluating, copying weights)."""
        tick = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - tick


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
