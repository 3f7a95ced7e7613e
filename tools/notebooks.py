"""Keep the notebooks' shared conventions in one place, and check or fix them.

Every lesson `notebooks/NN_name.ipynb` starts with
1. a markdown cell: `# NN · Title`, a "What you will learn" list and the "Open in Colab" badge;
2. the set-up cell below (on Colab: install gan_helpers from the repository and nothing else;
   Colab's own ipywidgets 7 renders the lessons' core widgets, so its custom widget manager,
   which is for third-party widgets and has broken core ones, is left off);
and is committed without outputs.

The repository's address lives in pyproject.toml ([project.urls] Repository) and nowhere else:

    python tools/notebooks.py --check   # exit 1 and list what is off
    python tools/notebooks.py --fix     # rewrite badges and set-up cells, strip outputs
    python tools/notebooks.py --sync    # copy edited package code into the cells that show it

Cells that start with `# From gan_helpers/<module>.py` show package code; `--sync` replaces each
class and function they define with the package's current definition (a new name a definition
now needs must be added to the cell by hand; tests/harness/test_lesson_sources.py says which).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import sys
import uuid
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SETUP_MARK = "# Set-up"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repo_url() -> str:
    """The repository's address, from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def badge(notebook: str) -> str:
    """The markdown of the "Open in Colab" badge for `notebook` (a file name)."""
    path = repo_url().removeprefix("https://github.com/")
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook})")


def setup_cell() -> str:
    """The source of every notebook's set-up cell.

    On Colab it installs gan_helpers alone (`--no-deps`): the runtime's own torch, ipywidgets and
    the rest stay exactly as they are (upgrading them mid-session can break Colab until a
    restart). A runtime that lacks one of them gets a clear message from `import gan_helpers`.
    A second lesson in the same runtime finds gan_helpers installed and skips the download.
    It does not call `google.colab.output.enable_custom_widget_manager()`: Colab renders the core
    ipywidgets 7 widgets the lessons use without it, and under it core widgets have broken
    (colabtools #3571, colab-cdn-widget-manager #4).
    """
    return f'''{SETUP_MARK}: on Colab, install gan_helpers, and nothing else: Colab's own torch,
# ipywidgets and the rest stay as they are. Elsewhere, `pip install -e .` in the repository did it.
import importlib.util
import subprocess
import sys

REPO = "{repo_url()}"
if "google.colab" in sys.modules and importlib.util.find_spec("gan_helpers") is None:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          f"gan-helpers @ git+{{REPO}}"], capture_output=True, text=True)
    if pip.returncode != 0:
        said = (pip.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"Could not install gan_helpers from {{REPO}} ({{said}}). "
                           "Check that the runtime is connected to the internet and the "
                           "address is right, then run this cell again.") from None'''


COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
"""Notebook metadata that makes Colab open the lesson on a GPU runtime."""


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def problems(path: Path) -> list[str]:
    """What is off in one notebook, as readable lines (empty when all is well)."""
    nb = json.loads(path.read_text())
    cells = nb.get("cells", [])
    found = []
    if not re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name):
        found.append("name is not NN_lower_case.ipynb")
    if len(cells) < 2:
        return found + ["fewer than two cells"]
    head = source(cells[0])
    number = path.name[:2]
    if cells[0]["cell_type"] != "markdown" or not head.startswith(f"# {number} · "):
        found.append(f"first cell is not a markdown title '# {number} · ...'")
    if "what you will learn" not in head.lower():
        found.append("first cell has no 'What you will learn'")
    if badge(path.name) not in head:
        found.append("first cell lacks the Colab badge for this notebook and repository")
    if cells[1]["cell_type"] != "code" or source(cells[1]) != setup_cell():
        found.append("second cell is not the standard set-up cell")
    meta = nb.get("metadata", {})
    if any(meta.get(k) != v for k, v in COLAB_METADATA.items()):
        found.append("metadata does not ask Colab for a GPU runtime")
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            found.append(f"cell {i} has outputs (commit notebooks without outputs)")
            break
    return found + lesson_problems(cells)


MAX_CELL_LINES = 30
BACKSTAGE_RE = re.compile(r"smoke|GAN_SMOKE|config\.pick\(|\bCI\b|pytest|nbmake|tests?/", re.I)
PLACEHOLDER_RE = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|<[a-z]+_[a-z_]+>")
"""A figure left to fill in (`COLLAPSE_STORY`, `<clf_acc>`) in prose, outside code and maths."""
NOT_PROSE_RE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)", re.S)
ENDING = ("## Summary", "## Exercises", "## References")
"""The sections every lesson ends with, in this order."""


def lesson_problems(cells: list[dict]) -> list[str]:
    """What a learner would trip on: a long code cell, talk of the test machinery, a placeholder
    left in the prose, a missing time estimate, or an ending without summary, exercises with
    solutions, and references."""
    found = []
    if not re.search(r"\*\*Time:\*\*", source(cells[0])):
        found.append("first cell has no '**Time:**' line")
    for i, cell in enumerate(cells[2:], start=2):  # the set-up cell is the standard one
        src = source(cell)
        if cell["cell_type"] == "code" and src.count("\n") + 1 > MAX_CELL_LINES:
            found.append(f"cell {i} has {src.count(chr(10)) + 1} lines (at most {MAX_CELL_LINES})")
        if BACKSTAGE_RE.search(src):
            found.append(f"cell {i} mentions the test machinery: "
                         f"{BACKSTAGE_RE.search(src).group(0)!r}")
        if cell["cell_type"] == "markdown":
            unfilled = PLACEHOLDER_RE.findall(NOT_PROSE_RE.sub(" ", src))
            if unfilled:
                found.append(f"cell {i} has a placeholder left to fill in: {unfilled[0]!r}")
    headings = [line.strip() for cell in cells if cell["cell_type"] == "markdown"
                for line in source(cell).splitlines() if line.startswith("## ")]
    positions = [headings.index(h) if h in headings else -1 for h in ENDING]
    if -1 in positions or positions != sorted(positions) or positions[-1] != len(headings) - 1:
        found.append(f"does not end with the sections {', '.join(ENDING)} in that order")
    if not any("<summary>" in source(c) and "Solution" in source(c) for c in cells):
        found.append("the exercises have no revealable solutions")
    return found


def fix(path: Path) -> None:
    """Rewrite the badge and the set-up cell from pyproject.toml, and strip outputs."""
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    head = source(cells[0])
    head = BADGE_RE.sub(badge(path.name), head) if BADGE_RE.search(head) else (
        head.rstrip("\n") + "\n\n" + badge(path.name))
    cells[0]["source"] = head
    setup = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
             "source": setup_cell()}
    if cells[1]["cell_type"] == "code" and source(cells[1]).startswith(SETUP_MARK):
        cells[1].update(setup)
    else:
        cells.insert(1, setup)
    nb.setdefault("metadata", {}).update(COLAB_METADATA)
    needs_ids = nb.get("nbformat_minor", 0) >= 5  # cell ids are required from nbformat 4.5
    for cell in cells:
        if needs_ids and "id" not in cell:
            cell["id"] = uuid.uuid4().hex[:8]
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        cell.get("metadata", {}).pop("execution", None)
    write_notebook(path, nb)


def write_notebook(path: Path, nb: dict) -> None:
    """Write a notebook as JSON the way Jupyter does (indent 1, UTF-8, final newline)."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


SHOWN_RE = re.compile(r"# From gan_helpers/(\w+)\.py")


def definitions(code: str) -> dict[str, str]:
    """The top-level classes and functions of `code`, by name, as source text."""
    tree = ast.parse(code)
    return {node.name: ast.get_source_segment(code, node) for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


@functools.cache
def package_definitions(module: str) -> dict[str, str]:
    """The classes and functions of `gan_helpers/<module>.py`, by name (read once)."""
    return definitions((ROOT / "gan_helpers" / f"{module}.py").read_text())


def shown_cells(nb: dict) -> list[tuple[dict, str]]:
    """The code cells of notebook `nb` that show package code, as `(cell, module)` pairs."""
    found = []
    for cell in nb["cells"]:
        match = SHOWN_RE.match(source(cell))
        if cell["cell_type"] == "code" and match:
            found.append((cell, match.group(1)))
    return found


def sync(path: Path) -> bool:
    """Replace the package code shown in `path` with the package's current code; True if changed."""
    nb = json.loads(path.read_text())
    changed = False
    for cell, module in shown_cells(nb):
        src = source(cell)
        package = package_definitions(module)
        new = src
        for name, code in definitions(src).items():
            if name in package and code != package[name]:
                new = new.replace(code, package[name])
        if new != src:
            cell["source"], changed = new, True
    if changed:
        write_notebook(path, nb)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite instead of only checking")
    parser.add_argument("--check", action="store_true", help="check (the default)")
    parser.add_argument("--sync", action="store_true",
                        help="copy the package's code into the lesson cells that show it")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    bad = 0
    for path in paths:
        if args.sync and sync(path):
            print(f"{path.name}: shown package code updated")
        if args.fix:
            fix(path)
        for line in problems(path):
            print(f"{path.name}: {line}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
