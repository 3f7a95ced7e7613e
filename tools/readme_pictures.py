"""Make the README's pictures from a full run of lesson 04 in a real browser.

Runs lesson 04 in full mode in JupyterLab (headless Chromium, driven by tools/browser.py as in
tests/harness/test_browser.py), takes a screenshot of the live dashboard when the first training
run ends, and copies the run's GIF.
Writes docs/dashboard.png and docs/training.gif (or into `--out DIR`) and prints the status line
and the training time.

    GAN_DATASET=fashion-mnist .venv/bin/python tools/readme_pictures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script: tools/ is on the path, the repository (where `tools.*`
    sys.path.insert(0, str(ROOT))  # and gan_helpers are) is not

from tools.browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    LESSON,
    jupyterlab_server,
    open_and_run_all,
)


def main(argv: list[str] | None = None) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from gan_helpers.images import make_gif

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the pictures go")
    docs = parser.parse_args(argv).out
    docs.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="readme-pictures-"))
    work, runs = scratch / "work", scratch / "runs"
    work.mkdir()
    shutil.copy(LESSON, work / LESSON.name)
    env = {"GAN_SMOKE": "", "GAN_RUNS_DIR": str(runs)}
    with jupyterlab_server(work, scratch, env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.monotonic()
        open_and_run_all(page, url, LESSON.name)
        page.locator(".gan-dashboard").first.wait_for(timeout=300_000)
        # The dashboard's cell: its outputs are the status, the picture and the Stop button.
        cell = page.locator(".jp-CodeCell").filter(has=page.locator(".gan-dashboard")).first
        cell.locator(".gan-dashboard-final").wait_for(timeout=3_600_000)
        minutes = (time.monotonic() - start) / 60
        status = cell.locator(".gan-dashboard").inner_text().replace("\n", " ")
        outputs = cell.locator(".jp-OutputArea")
        outputs.scroll_into_view_if_needed()
        outputs.screenshot(path=str(scratch / "dashboard.png"))
        gif_cell = page.locator(".jp-OutputArea-output img[src^='data:image/gif']")
        gif_cell.wait_for(timeout=1_800_000)
        browser.close()
    Image.open(scratch / "dashboard.png").save(docs / "dashboard.png", optimize=True)
    from gan_helpers import config

    lesson_runs = runs / config.dataset_name() / "04_live_training"  # runs are kept by dataset
    grids = sorted((lesson_runs / "grids").glob("epoch_*.png"))
    make_gif(grids, docs / "training.gif", duration_ms=500, scale=1)  # small, for the README
    print(f"dashboard: {status}; first run took {minutes:.1f} min incl. kernel start")
    for name in ("dashboard.png", "training.gif"):
        print(f"{docs / name}: {(docs / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
