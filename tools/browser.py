"""JupyterLab in headless Chromium: what tests/harness/test_browser.py and tools/readme_pictures.py
share.

`jupyterlab_server` starts JupyterLab on a free port of 127.0.0.1 and stops it by PID;
`open_and_run_all` opens a notebook in it in a Playwright page and starts Run All;
`missing_browser_parts` says what of Chromium and Playwright this machine lacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "04_live_training.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

KERNEL_IDLE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return Boolean(kernel && kernel.status === "idle" && kernel.connectionStatus === "connected");
}"""


def missing_browser_parts() -> list[str]:
    """What driving JupyterLab in Chromium needs and this machine lacks (empty: nothing)."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab_server(work: Path, scratch: Path, env: dict[str, str]) -> Iterator[str]:
    """JupyterLab serving `work` on a free port of 127.0.0.1; yields its URL, then stops it by PID.

    The news and update pop-ups are switched off with a settings override in `scratch`.
    """
    settings = scratch / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = {**os.environ, **env, "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(scratch / "runtime")}
    log_path = scratch / "jupyterlab.log"
    with open(log_path, "w") as log:
        # Started directly (no shell in between), so the PID we keep is the server's.
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
             f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
             "--ServerApp.port_retries=0", "--allow-root"],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/status", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("JupyterLab did not start: "
                                           + log_path.read_text()[-2000:]) from None
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def open_and_run_all(page, url: str, notebook: str) -> None:
    """Open `notebook` in JupyterLab, wait for its kernel, and start Run All (without waiting)."""
    page.goto(f"{url}/lab/tree/{notebook}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    time.sleep(1.0)  # the kernel says idle a moment before it is ready for input
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
