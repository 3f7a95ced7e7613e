"""MkDocs hooks of the lessons' site (mkdocs.yml names this file; tools/site.py runs the build).

On each lesson page: the code of solution cells is folded into a <details> the reader opens
(the notebooks hide it too: Colab's form view, JupyterLab's hidden input), and links between
lessons (`04_live_training.ipynb`) lead to their pages, links to other files of the repository
to GitHub.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools.notebooks import repo_url  # noqa: E402

SOLUTION_TAG = "site-collapsed-input"  # set by tools/site.py on solution cells
LESSON_LINK = re.compile(r"^(?:\.{1,2}/)*(?:notebooks/)?(\d\d_[\w-]+)\.ipynb(#.*)?$")
TITLE = re.compile(r"#\s*@title\s+(.+?)\s*(?:\(double-click[^)]*\))?\s*$")


def fold_solutions(soup: BeautifulSoup) -> int:
    """Wrap the input of every solution cell in a closed <details>; returns how many."""
    count = 0
    for cell in soup.select(f"div.jp-CodeCell.celltag_{SOLUTION_TAG}"):
        wrapper = cell.select_one("div.jp-Cell-inputWrapper")
        if wrapper is None:
            continue
        code = cell.select_one("pre")
        first = code.get_text().lstrip().splitlines()[0] if code and code.get_text().strip() else ""
        m = TITLE.match(first)
        label = f"{m.group(1)}: show the code" if m else "Show the solution's code"
        details = soup.new_tag("details", attrs={"class": "site-solution"})
        summary = soup.new_tag("summary")
        summary.string = label
        wrapper.wrap(details)
        details.insert(0, summary)
        for toolbar in cell.select("div.celltoolbar"):  # the tag names are for authors
            toolbar.decompose()
        count += 1
    return count


def rewrite_links(soup: BeautifulSoup, pages: set[str]) -> None:
    """Lesson links to their pages; other relative links (files of the repository) to GitHub."""
    repo = repo_url()
    for a in soup.find_all("a", href=True):
        href = a["href"]
        if re.match(r"^([a-z][\w+.-]*:|#|/)", href) or href.startswith(("assets/", "notebooks/")):
            continue
        m = LESSON_LINK.match(href)
        if m and f"{m.group(1)}.html" in pages:
            a["href"] = f"{m.group(1)}.html{m.group(2) or ''}"
        elif not href.endswith(".html"):
            path = posixpath.normpath(posixpath.join("notebooks", href))
            a["href"] = f"{repo}/blob/main/{path}"


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    soup = BeautifulSoup(html, "html.parser")
    fold_solutions(soup)
    pages = {f.dest_uri for f in files.documentation_pages()}
    rewrite_links(soup, pages)
    return str(soup)
