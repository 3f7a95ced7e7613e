"""The lessons' web site (tools/site.py, `make site`).

The browser test builds the site from smoke-mode executions of every lesson (cached by hash in
build/site-smoke/executed/: a lesson is executed again only when it or gan_helpers changed),
serves it on 127.0.0.1 and opens every page in headless Chromium (Playwright): no console error,
every image loads, the maths is rendered, no output holds an error, and the lesson, Colab,
download and previous/next links lead where they should. Screenshots go to test-artifacts/.
It is skipped where Chromium or Playwright is missing, except under CI, where it fails instead.
The other tests check the cache, the widgets' pictures and the page hooks on small inputs.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import io
import json
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.helpers import require_browser
from tools import site
from tools.browser import CHROMIUM, CHROMIUM_ARGS, ROOT

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ("index", "02_mlp_gan", "04_live_training")


def _hooks():
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "docs/site/site_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lesson(folder: Path, name: str, code: str, first: str = "# 00 · Tiny\n") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(first), nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


def test_the_key_follows_the_lesson_the_package_the_mode_and_the_dataset(tmp_path):
    lesson = _lesson(tmp_path / "nb", "00_tiny.ipynb", "print(1)")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    package = site.inputs_hash(tmp_path / "pkg")
    key = site.lesson_key(lesson, package, False, "fashion-mnist")
    assert key == site.lesson_key(lesson, package, False, "fashion-mnist")
    assert key != site.lesson_key(lesson, package, True, "fashion-mnist")
    assert key != site.lesson_key(lesson, package, False, "mnist")
    (tmp_path / "pkg" / "a.py").write_text("A = 2\n")
    assert key != site.lesson_key(lesson, site.inputs_hash(tmp_path / "pkg"), False,
                                  "fashion-mnist")
    _lesson(tmp_path / "nb", "00_tiny.ipynb", "print(1)", first="# 00 · Tiny, reworded\n")
    assert key == site.lesson_key(lesson, package, False, "fashion-mnist")  # prose only
    _lesson(tmp_path / "nb", "00_tiny.ipynb", "print(2)")
    assert key != site.lesson_key(lesson, package, False, "fashion-mnist")


def test_a_lesson_is_executed_again_only_when_it_or_the_package_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_DATASET", "fashion-mnist")
    notebooks, package, executed = tmp_path / "nb", tmp_path / "pkg", tmp_path / "executed"
    _lesson(notebooks, "00_tiny.ipynb", "import os\nprint(os.environ.get('GAN_SMOKE'), 6 * 7)")
    package.mkdir()
    (package / "a.py").write_text("A = 1\n")

    def run():
        outcomes = site.execute(executed, True, notebooks=notebooks, package=package)
        return [o.status for o in outcomes]

    assert run() == ["executed"]
    nb = nbformat.read(executed / "00_tiny.ipynb", as_version=4)
    assert nb.cells[1].outputs[0]["text"] == "1 42\n"  # smoke mode: GAN_SMOKE=1 in the kernel
    stamp = nb.metadata[site.META]
    assert stamp["smoke"] and stamp["dataset"] == "fashion-mnist" and stamp["device"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", stamp["executed"])
    assert run() == ["cached"]
    (package / "a.py").write_text("A = 2\n")
    assert run() == ["executed"]
    assert run() == ["cached"]
    _lesson(notebooks, "00_tiny.ipynb", "import os\nprint(os.environ.get('GAN_SMOKE'), 6 * 7)",
            first="# 00 · Tiny, reworded\n")
    assert run() == ["cached"]  # the prose changed, not the code: the new text, the old outputs
    nb = nbformat.read(executed / "00_tiny.ipynb", as_version=4)
    assert nb.cells[0].source == "# 00 · Tiny, reworded\n"
    assert nb.cells[1].outputs[0]["text"] == "1 42\n" and nb.metadata[site.META]["smoke"]
    _lesson(notebooks, "00_tiny.ipynb", "print('changed')")
    assert run() == ["executed"]
    assert nbformat.read(executed / "00_tiny.ipynb", as_version=4).cells[1].outputs[0][
        "text"] == "changed\n"


def test_a_failing_lesson_stops_the_build_naming_it(tmp_path):
    notebooks, package = tmp_path / "nb", tmp_path / "pkg"
    _lesson(notebooks, "03_broken.ipynb", "1 / 0")
    package.mkdir()
    (package / "a.py").write_text("")
    with pytest.raises(site.SiteError, match=r"03_broken.ipynb failed(.|\n)*ZeroDivisionError"):
        site.execute(tmp_path / "executed", True, notebooks=notebooks, package=package)
    assert not (tmp_path / "executed" / "03_broken.ipynb").exists()
    assert (tmp_path / "executed" / "03_broken.failed.ipynb").exists()


@pytest.mark.parametrize("smoke", [False, True])  # `make lessons`'s copies, `make test`'s nbmake's
def test_a_copy_without_a_key_is_taken_when_newer_than_its_inputs(tmp_path, smoke):
    notebooks, package, executed = tmp_path / "nb", tmp_path / "pkg", tmp_path / "executed"
    lesson = _lesson(notebooks, "00_tiny.ipynb", "print('from the site')")
    package.mkdir()
    (package / "a.py").write_text("")
    made = _lesson(executed, "00_tiny.ipynb", "print('from the site')")
    nb = nbformat.read(made, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="from make lessons\n")]
    nbformat.write(nb, made)
    now = time.time()
    os.utime(lesson, (now - 100, now - 100))
    os.utime(package / "a.py", (now - 100, now - 100))
    assert [o.status for o in site.execute(executed, smoke, notebooks=notebooks,
                                           package=package)] == ["adopted"]
    nb = nbformat.read(made, as_version=4)
    assert nb.cells[1].outputs[0]["text"] == "from make lessons\n"
    assert nb.metadata[site.META]["smoke"] == smoke
    assert [o.status for o in site.execute(executed, smoke, notebooks=notebooks,
                                           package=package)] == ["cached"]
    nb.cells[1].source = "print('other code')"  # a copy of other code is executed again
    nb.metadata.pop(site.META)
    nbformat.write(nb, made)
    assert [o.status for o in site.execute(executed, smoke, notebooks=notebooks,
                                           package=package)] == ["executed"]


def _png(width: int, height: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_widgets_become_pictures_of_their_final_state():
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    state = {
        "box": {"model_name": "HBoxModel", "state": {
            "children": ["IPY_MODEL_label", "IPY_MODEL_bar", "IPY_MODEL_image"]}},
        "label": {"model_name": "HTMLModel", "state": {"value": "epoch 1/1: 100%"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 4.0, "max": 4.0}},
        "image": {"model_name": "ImageModel", "state": {"format": "png"},
                  "buffers": [{"path": ["value"], "data": _png(4, 4), "encoding": "base64"}]},
        "knob": {"model_name": "SomeCustomModel", "state": {}},
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {site.WIDGET_STATE: {"state": state}}
    drawn = nbformat.v4.new_output("display_data", {site.WIDGET_VIEW: view, "text/plain": "HBox"})
    unknown = nbformat.v4.new_output("display_data", {
        site.WIDGET_VIEW: {**view, "model_id": "knob"}, "text/plain": "Knob()"})
    nb.cells = [nbformat.v4.new_code_cell("bar", outputs=[drawn, unknown])]
    assert site.flatten_widgets(nb) == 1
    assert "widgets" not in nb.metadata
    page = drawn["data"]["text/html"]
    assert "epoch 1/1: 100%" in page and "<progress value='4.0' max='4.0'>" in page
    assert "data:image/png;base64," in page and site.WIDGET_VIEW not in drawn["data"]
    assert unknown["data"] == {"text/plain": "Knob()"}  # its text stands in for it


def test_the_home_page_facts_come_from_the_lesson():
    first = ("# 02 · A fully connected GAN\n\nTwo networks play a game.\n\n**What you will learn**"
             "\n- a\n\n**Time:** about 6 minutes on a 2-core laptop CPU.\n\n[![Open In Colab]"
             "(x)](y)")
    nb = nbformat.v4.new_notebook()
    early, tagged, late = _png(8, 8), _png(6, 6), _png(5, 5)
    image = functools.partial(nbformat.v4.new_output, "display_data")
    nb.cells = [nbformat.v4.new_markdown_cell(first),
                nbformat.v4.new_code_cell("a", outputs=[image({"image/png": early})]),
                nbformat.v4.new_code_cell("b", outputs=[image({"image/png": late})]),
                nbformat.v4.new_markdown_cell("## Summary"),
                nbformat.v4.new_code_cell("c", outputs=[image({"image/png": _png(3, 3)})])]
    assert site.title_of(nb, "x") == "02 · A fully connected GAN"
    assert site.time_of(nb) == "about 6 minutes on a 2-core laptop CPU."
    assert site.blurb_of(nb) == "Two networks play a game."
    assert site.key_figure(nb) == base64.b64decode(late)  # the last one before the Summary
    nb.cells[1].metadata["tags"] = ["thumbnail"]
    nb.cells[1].outputs[0]["data"]["image/png"] = tagged
    assert site.key_figure(nb) == base64.b64decode(tagged)


@pytest.mark.parametrize("modes, said", [([True, True], "smoke-mode (test) execution"),
                                          ([False, False], "full execution"),
                                          ([False, True], "full or smoke-mode (test) execution")])
def test_the_home_page_says_which_mode_produced_the_pages(modes, said):
    cards = [{"name": f"0{i}_x.ipynb", "page": f"0{i}_x.html", "title": f"0{i} · X", "blurb": "B",
              "time": None, "thumbnail": None,
              "stamp": {"smoke": smoke, "dataset": "fashion-mnist", "device": "CPU",
                        "executed": f"2026-12-01 0{i}:00 UTC"}} for i, smoke in enumerate(modes)]
    line = re.search(r"<p class='site-provenance'>(.*?)</p>", site.home_page(cards)).group(1)
    assert f"Every page shows the outputs of a {said} on Fashion-MNIST on CPU" in line, line


def test_solution_code_is_folded_and_lesson_links_lead_to_pages():
    from bs4 import BeautifulSoup

    hooks = _hooks()
    html = (f"<div class='jp-Cell jp-CodeCell celltag_solution celltag_{hooks.SOLUTION_TAG}'>"
            "<div class='celltoolbar'>solution</div><div class='jp-Cell-inputWrapper'>"
            "<pre># @title Solution 2 (double-click to show the code)\nx = 1</pre></div>"
            "<div class='jp-Cell-outputWrapper'>OUTPUT</div></div>"
            "<div class='jp-Cell jp-CodeCell'><div class='jp-Cell-inputWrapper'><pre>y</pre>"
            "</div></div><a href='04_live_training.ipynb#resume'>l</a>"
            "<a href='../gan_helpers/training.py'>t</a><a href='#top'>t</a>"
            "<a href='https://arxiv.org/abs/1406.2661'>p</a>")
    soup = BeautifulSoup(html, "html.parser")
    assert hooks.fold_solutions(soup) == 1
    details = soup.select("details.site-solution")
    assert len(details) == 1 and details[0].summary.string == "Solution 2: show the code"
    assert "x = 1" in details[0].get_text() and not soup.select(".celltoolbar")
    assert "OUTPUT" not in details[0].get_text()  # the output stays visible, outside
    hooks.rewrite_links(soup, {"04_live_training.html"})
    assert [a["href"] for a in soup.find_all("a")] == [
        "04_live_training.html#resume", f"{site.repo_url()}/blob/main/gan_helpers/training.py",
        "#top", "https://arxiv.org/abs/1406.2661"]


# ------------------------------------------------------------------------- the browser test

@pytest.fixture(scope="module")
def smoke_site(tmp_path_factory):
    """The site built from (cached) smoke-mode executions, served on 127.0.0.1: (url, cards)."""
    require_browser("the site's browser test")
    tmp = tmp_path_factory.mktemp("site")
    executed = site.SMOKE["executed"]
    start = time.monotonic()
    outcomes = site.execute(executed, smoke=True, jobs=int(os.environ.get("GAN_SITE_JOBS", 2)))
    executing = time.monotonic() - start
    cards = site.prepare(executed, tmp / "src")
    site.build_site(tmp / "src", tmp / "site", cards)
    print(f"\nsmoke executions: {[o.status for o in outcomes]} in {executing:.0f} s; "
          f"site built in {time.monotonic() - start - executing:.0f} s")
    handler = functools.partial(Quiet, directory=str(tmp / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cards, executed
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


MATH_READY = "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
MATH_DONE = "() => MathJax.startup.promise.then(() => true)"
BROKEN_IMAGES = """() => Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 100))"""
LINKS = "sel => Array.from(document.querySelectorAll(sel)).map(a => a.getAttribute('href'))"
ERROR_TEXT = re.compile(r"Traceback|\b\w*Error\b")


def _math_in(nb) -> bool:
    return any(c.cell_type == "markdown" and re.search(r"\$[^$\n]*\\[A-Za-z]+", c.source)
               for c in nb.cells)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return response.read()


@pytest.mark.browser
def test_every_page_in_the_browser(smoke_site):
    from playwright.sync_api import sync_playwright

    url, cards, executed = smoke_site
    pages = ["index.html"] + [c["page"] for c in cards]
    math_pages = [c["page"] for c in cards
                  if _math_in(nbformat.read(executed / c["name"], as_version=4))]
    assert math_pages, "no lesson has maths: the maths check would check nothing"
    ARTIFACTS.mkdir(exist_ok=True)
    internal: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i, name in enumerate(pages):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                problems: list[str] = []
                page.on("console", lambda m, pr=problems: m.type == "error" and pr.append(m.text))
                page.on("pageerror", lambda e, pr=problems: pr.append(str(e)))
                page.on("requestfailed", lambda r, pr=problems: pr.append(f"failed: {r.url}"))
                page.on("response", lambda r, pr=problems: r.status >= 400
                        and pr.append(f"{r.status}: {r.url}"))
                page.goto(f"{url}/{name}", wait_until="load")
                if name != "index.html":
                    page.wait_for_function(MATH_READY, timeout=30_000)
                    page.evaluate(MATH_DONE)
                page.wait_for_load_state("networkidle")
                assert problems == [], f"{name}: {problems}"
                assert page.evaluate(BROKEN_IMAGES) == [], f"{name}: images that did not load"
                if name in SCREENSHOTS or name.removesuffix(".html") in SCREENSHOTS:
                    page.screenshot(path=str(ARTIFACTS / f"site_{name.removesuffix('.html')}.png"))
                if name == "index.html":
                    _check_home(page, cards)
                else:
                    _check_lesson(page, cards[i - 1], pages[i - 1],
                                  pages[i + 1] if i + 1 < len(pages) else None,
                                  name in math_pages)
                internal |= {h.split("#")[0] for h in page.evaluate(
                    "() => Array.from(document.links).map(a => a.href)")
                    if h.startswith(url)}
                page.close()
        finally:
            browser.close()
    for link in sorted(internal):  # every link inside the site leads to a file of it
        _fetch(link)


def _check_home(page, cards):
    assert page.evaluate(LINKS, ".site-card h3 a") == [c["page"] for c in cards]
    assert page.evaluate(LINKS, ".site-card a.site-colab") == [
        site.colab_url(c["name"]) for c in cards]
    assert page.evaluate(LINKS, ".site-card a.site-download") == [
        f"notebooks/{c['name']}" for c in cards]
    assert "**" not in page.inner_text(".site-cards"), "markdown left unrendered on a card"
    thumbs = page.locator(".site-card img")
    assert thumbs.count() == len(cards), "a lesson without a thumbnail of its key figure"
    times = page.locator(".site-card .site-time").all_inner_texts()
    assert len(times) == len(cards) and all("minute" in t for t in times), times
    base = page.url.rsplit("/", 1)[0]
    for c in cards:  # the download is the lesson as committed, without outputs
        downloaded = json.loads(_fetch(f"{base}/notebooks/{c['name']}"))
        assert downloaded == json.loads((site.NOTEBOOKS / c["name"]).read_text())


def _check_lesson(page, card, previous: str, following: str | None, has_math: bool):
    name = card["name"]
    outputs = page.locator(".jp-OutputArea-output")
    assert outputs.count() > 0, f"{name}: no outputs"
    for text in page.locator('[data-mime-type="application/vnd.jupyter.stderr"]'
                             ).all_inner_texts():
        assert not ERROR_TEXT.search(text), f"{name}: an error in an output:\n{text[:2000]}"
    assert page.locator(".jp-OutputArea-output img").count() > 0, f"{name}: no figure"
    colab = set(page.evaluate(LINKS, "a[href*='colab.research.google.com']"))
    assert colab == {site.colab_url(name)}, f"{name}: Colab links {colab}"
    assert page.evaluate(LINKS, ".site-lesson-bar a.site-download") == [f"notebooks/{name}"]
    provenance = page.locator(".site-provenance").inner_text()
    assert "smoke mode" in provenance and re.search(r"\d{4}-\d\d-\d\d", provenance), provenance
    assert page.evaluate(LINKS, "a.md-footer__link--prev") == [previous]
    assert page.evaluate(LINKS, "a.md-footer__link--next") == ([following] if following else [])
    notebooks = [h for h in page.evaluate(LINKS, "a[href]") if "://" not in h and ".ipynb" in h]
    assert all(h.startswith("notebooks/") for h in notebooks), notebooks  # lessons: their pages
    assert page.locator("mjx-merror").count() == 0, f"{name}: a formula MathJax cannot draw"
    if has_math:
        assert page.locator("mjx-container svg").count() > 0, f"{name}: maths not drawn"
        raw = [t for t in page.locator(".jp-RenderedMarkdown").all_inner_texts()
               if re.search(r"\$[^$\n]*\\[A-Za-z]+", t)]
        assert raw == [], f"{name}: maths left as TeX: {raw[0][:300]}"
    folded = page.locator("details.site-solution")
    for i in range(folded.count()):
        assert folded.nth(i).get_attribute("open") is None  # solutions start closed
