"""Ctrl-C (SIGINT, also Jupyter's interrupt button) and SIGTERM (`kill PID`), handled in one
place: `caught(handler)` routes them to a function while a block runs, and `held()` keeps them
back until a block is done (a checkpoint being written), then raises them again.

Python runs signal handlers in the main thread only, so elsewhere (a training thread) both leave
the signals alone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = {signal.SIGINT: "interrupted (KeyboardInterrupt)", signal.SIGTERM: "terminated (SIGTERM)"}
"""The signals handled, and what they mean in a stop reason."""


@contextmanager
def caught(handler: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call `handler(signum)` instead of their usual
    handlers (which are put back afterwards). The handler may raise (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, frame: handler(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


@contextmanager
def held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done: they are noted meanwhile and raised
    again afterwards, so an interruption never falls between writing a file and putting it in
    place."""
    pending: list[int] = []
    try:
        with caught(pending.append):
            yield
    finally:
        for signum in pending:
            signal.raise_signal(signum)
