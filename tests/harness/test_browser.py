"""Lessons 04 and 06 in a real browser: JupyterLab on 127.0.0.1, headless Chromium (Playwright).

Runs every cell of a copy of a lesson in smoke mode and checks what a learner sees. Lesson 04: the
dashboard's picture (display handles, not widgets) renders, its samples change while training runs
and its curves appear, and the Stop button ends the run with the stopped status shown. Lesson 06:
the class picker draws new images when another class is chosen and when "New samples" is pressed.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require_browser
from tools import browser
from tools.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LESSON,
    ROOT,
    jupyterlab_server,
    open_and_run_all,
)

LESSON_06 = ROOT / "notebooks" / "06_conditional_gan.ipynb"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.browser

STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'

PICTURE = """img => {
    // The dashboard's picture: a fingerprint of the samples (the left square) and how many
    // pixels of the curves (the rest) are coloured; null until the image has loaded.
    if (!img.complete || !img.naturalWidth) return null;
    const canvas = document.createElement("canvas");
    const [w, h] = [img.naturalWidth, img.naturalHeight];
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    let samples = 0, coloured = 0;
    for (const v of ctx.getImageData(0, 0, h, h).data) samples = (samples * 31 + v) | 0;
    const curves = ctx.getImageData(h, 0, w - h, h).data;
    for (let i = 0; i < curves.length; i += 4) {
        const [r, g, b] = [curves[i], curves[i + 1], curves[i + 2]];
        if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    return {samples, coloured};
}"""


@contextlib.contextmanager
def lesson_page(url: str, lesson: Path, failure_png: str) -> Iterator:
    """A Chromium page with `lesson` open in JupyterLab and Run All started; a screenshot goes to
    test-artifacts/`failure_png` if the test fails."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run_all(page, url, lesson.name)
            yield page
        except BaseException:  # pytest.fail raises a BaseException
            page.screenshot(path=str(ARTIFACTS / failure_png))
            raise
        finally:
            browser.close()


def wait_for_output(page, selector: str, what: str, timeout_ms: int):
    """The first element matching `selector` once a cell shows it; fail at once if a cell fails."""
    target = page.locator(selector).first
    error = page.locator(STDERR)
    target.or_(error).first.wait_for(timeout=timeout_ms)
    if not target.count():
        pytest.fail(f"a cell failed before {what} showed:\n" + error.first.inner_text())
    return target


@contextlib.contextmanager
def jupyterlab(tmp_path: Path, lesson: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """JupyterLab serving a copy of `lesson` (it autosaves into the files it opened) in smoke mode,
    with `env` added; stopping it at the end stops the lesson's kernel, however far it got."""
    require_browser("the browser test")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(lesson, work / lesson.name)
    env = {"GAN_SMOKE": "1", "GAN_RUNS_DIR": str(tmp_path / "runs"), **(env or {})}
    with jupyterlab_server(work, tmp_path, env) as url:
        yield url


def test_dashboard_updates_live_and_stop_works(tmp_path):
    # 6144 training images (48 steps an epoch): time to watch the dashboard and press Stop.
    with jupyterlab(tmp_path, LESSON, {"GAN_SMOKE_IMAGES": "6144"}) as url, \
            lesson_page(url, LESSON, "lesson04_failure.png") as page:
        wait_for_output(page, ".gan-dashboard", "the dashboard", 180_000)
        cell = page.locator(".jp-CodeCell").filter(has=page.locator(".gan-dashboard")).first
        picture = cell.locator(".jp-RenderedImage img").first
        seen: list[int] = []  # the samples' fingerprints, each different from the one before
        coloured = 0
        deadline = time.monotonic() + 120
        while (len(seen) < 3 or not coloured) and time.monotonic() < deadline:
            shown = picture.evaluate(PICTURE) if picture.count() else None
            if shown and (not seen or shown["samples"] != seen[-1]):
                seen.append(shown["samples"])
            coloured = shown["coloured"] if shown else 0
            time.sleep(0.05)
        assert len(seen) >= 3, f"the samples changed {max(len(seen) - 1, 0)} times, not 2"
        assert coloured > 100, "the loss curves did not appear beside the samples"
        cell.locator("button", has_text="Stop").click()
        cell.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lesson04_dashboard_live.png"))
        final = cell.locator(".gan-dashboard-final")
        final.wait_for(timeout=60_000)
        assert "stopped with the Stop button" in final.inner_text(), (
            "training ended before Stop was pressed: " + final.inner_text())
        assert not cell.locator("button", has_text="Stop").count(), "Stop is still shown"
        assert "checkpoint of step" in cell.locator(".gan-dashboard").inner_text()
        cell.locator(".jp-OutputArea").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lesson04_dashboard_stopped.png"))


def test_class_picker_draws_the_chosen_class_on_demand(tmp_path):
    with jupyterlab(tmp_path, LESSON_06) as url, \
            lesson_page(url, LESSON_06, "lesson06_failure.png") as page:
        picker = wait_for_output(page, ".gan-class-picker", "the class picker", 240_000)
        image = picker.locator("img").first
        # The picker's callbacks run in the kernel, which first finishes the cells after it
        # ("Run all": the exercises' solutions train); wait until no cell is queued or running.
        page.wait_for_function(
            "() => ![...document.querySelectorAll('.jp-InputArea-prompt')]"
            ".some(p => p.innerText.includes('*'))", timeout=300_000)

        def rendered_src() -> str:
            page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                   arg=image.element_handle(), timeout=30_000)
            return image.get_attribute("src") or ""

        def changes_from(before: str) -> str:
            page.wait_for_function("([img, before]) => img.src !== before",
                                   arg=[image.element_handle(), before], timeout=30_000)
            return rendered_src()

        first = rendered_src()
        picker.locator("select").select_option(label="Sneaker")
        sneakers = changes_from(first)
        picker.locator("button", has_text="New samples").click()
        changes_from(sneakers)
        picker.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lesson06_class_picker.png"))


@pytest.mark.parametrize("ci", ["", "true", "false"])
def test_missing_browser_fails_in_ci_and_skips_elsewhere(ci, monkeypatch):
    """CI must never skip the browser test silently; a laptop without Chromium may."""
    monkeypatch.setattr(browser, "missing_browser_parts",
                        lambda: ["chromium (apt-get install chromium)"])
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci == "true" else pytest.skip.Exception
    with pytest.raises(expected, match="chromium"):
        require_browser("the browser test")
    monkeypatch.setattr(browser, "missing_browser_parts", lambda: [])
    require_browser("the browser test")  # nothing missing: neither


def test_ci_script_sets_ci():
    script = (ROOT / ".ci" / "run").read_text()
    assert "\nexport CI=true\n" in script
    assert script.index("\nexport CI=true\n") < script.index("\nmake test\n")
