"""A clear error when a package gan_helpers needs is missing (standard library only: it runs
when an import of torch or another requirement has just failed)."""

from __future__ import annotations

import re
from importlib import metadata

# The import name of each requirement whose distribution name differs from it.
IMPORT_NAMES = {"pillow": "PIL", "jupyter-ui-poll": "jupyter_ui_poll"}


def requirements() -> list[str]:
    """The distribution names gan_helpers needs at run time (its extras left out)."""
    try:
        declared = metadata.requires("gan-helpers") or []
    except metadata.PackageNotFoundError:  # a source tree on sys.path without installing it
        declared = []
    names = [re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0] for req in declared
             if "extra ==" not in req]
    return [n for n in names if n]


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
