"""The errors a user can fix from the message alone, and their one-line display in notebooks.

Every error type of gan_helpers that is about the user's input or files (a missing dataset, a
damaged checkpoint, a run folder of other settings, a diverged run) derives from
`GanHelpersError`. The command line prints these as one line, and so does a notebook
once `gan_helpers` is imported (`brief_in_notebooks`); any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys


class GanHelpersError(Exception):
    """Base of the errors whose message says what to do; shown without a traceback."""


class UsageError(GanHelpersError, ValueError):
    """A function was called with arguments that cannot work (the message says which ones)."""


class UsageTypeError(UsageError, TypeError):
    """An argument of the wrong type (a string for a number, a discriminator for a generator):
    a `UsageError` that is also a `TypeError`, as Python's own type errors are."""


class DeviceUnavailableError(GanHelpersError, RuntimeError):
    """The device asked for does not exist on this machine."""


class NonFiniteLossError(GanHelpersError, FloatingPointError):
    """A loss or gradient norm became NaN, infinite or huge (`stats.DIVERGED`): training
    stopped rather than produce black grids, keeping the last good checkpoint."""


def brief_in_notebooks() -> None:
    """In IPython or Jupyter, show a `GanHelpersError` as one line, `error: message`, instead of a
    traceback (the cell still fails, so "Run all" stops there). Nothing happens elsewhere."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return

    def one_line(shell, etype, value, tb, tb_offset=None):  # IPython's custom_exc signature
        print(f"error: {value}", file=sys.stderr)

    shell.set_custom_exc((GanHelpersError,), one_line)
