"""A pausable training clock: wall-clock seconds of training, with evaluation time left out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


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
