"""A clear error when a package gan_helpers needs is missing. It runs when an import of torch or
another requirement has just failed, so it needs only the standard library and `packaging` (a
requirement too: when it is the one missing, it is the one named)."""

from __future__ import annotations

from importlib import metadata

# The import name of each requirement whose distribution name differs from it.
IMPORT_NAMES = {"pillow": "PIL", "jupyter-ui-poll": "jupyter_ui_poll"}


def requirements(distribution: str = "gan-helpers") -> list[str]:
    """The names of the distributions an installed `distribution` needs at run time here: its
    extras left out, and any requirement whose environment marker does not hold here."""
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:
        return ["packaging"]
    try:
        declared = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:  # a source tree on sys.path without installing it
        declared = []
    needed = []
    for line in declared:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needed.append(req.name)
    return needed


def missing() -> list[str]:
    """The requirements that are not installed here."""
    gone = []
    for name in requirements():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            gone.append(name)
    return gone


def missing_requirements_error(err: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error to raise instead of `err`: which packages are missing and how to add them."""
    names = missing() or [err.name or str(err)]
    return ModuleNotFoundError(
        f"gan_helpers needs {', '.join(names)}, which this Python environment lacks. Install "
        f"{'it' if len(names) == 1 else 'them'} with `pip install {' '.join(names)}` (in a "
        "notebook: `%pip install ...`, then restart the kernel), or install the project with "
        "`pip install -e .` from the repository.", name=err.name)
