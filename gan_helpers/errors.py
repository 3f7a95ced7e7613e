"""The errors a user can fix from the message alone.

Every error type of gan_helpers that is about the user's input or files (a missing dataset, a
damaged checkpoint, a run folder of other settings, a diverged run) derives from
`GanHelpersError`. The command line prints these as one line; any other exception is a bug and
keeps its traceback.
"""


class GanHelpersError(Exception):
    """Base of the errors whose message says what to do; shown without a traceback."""


class UsageError(GanHelpersError, ValueError):
    """A function was called with arguments that cannot work (the message says which ones)."""
