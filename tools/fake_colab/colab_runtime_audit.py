"""Log what a Python process of the Colab-like runtime reads under given folders.

Imported at every start of Python in that environment (`colab_runtime_audit.pth`); does nothing
unless `$COLAB_RUNTIME_AUDIT_LOG` is set. Then an audit hook (PEP 578) appends one line to that
file for every file opened (imports included) and every folder listed under the folders in
`$COLAB_RUNTIME_AUDIT_ROOTS` (separated by `os.pathsep`): `EVENT<TAB>PATH<TAB>PID<TAB>ARGV0`.
A path counts if it is under a root as written or once symlinks are resolved, except that a
resolved path under a folder of `$COLAB_RUNTIME_AUDIT_ALLOW` is let through (the packages the
runtime links to rather than installs).
"""

import os
import sys
import threading

_LOG = os.environ.get("COLAB_RUNTIME_AUDIT_LOG")


def _folders(variable: str) -> tuple[str, ...]:
    return tuple(os.path.realpath(f) for f in os.environ.get(variable, "").split(os.pathsep) if f)


_ROOTS = _folders("COLAB_RUNTIME_AUDIT_ROOTS")
_ALLOW = _folders("COLAB_RUNTIME_AUDIT_ALLOW")
_EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob", "os.chdir"}
_state = threading.local()  # .busy: this thread is inside the hook


def _within(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f + os.sep) for f in folders)


def _under_roots(path: object) -> str | None:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        return None  # a file descriptor, or nothing
    written = os.path.abspath(path)
    if _within(written, _ROOTS):
        return written
    real = os.path.realpath(path)
    if _within(real, _ROOTS) and not _within(real, _ALLOW):
        return real
    return None


def _hook(event: str, args: tuple) -> None:
    if event not in _EVENTS or not args or getattr(_state, "busy", False):
        return
    _state.busy = True  # the hook's own realpath and write must not report themselves
    try:
        full = _under_roots(args[0])
        if full is not None:
            with open(_LOG, "a") as log:
                log.write(f"{event}\t{full}\t{os.getpid()}\t{sys.argv[0] if sys.argv else ''}\n")
    finally:
        _state.busy = False


if _LOG and _ROOTS:
    sys.addaudithook(_hook)
