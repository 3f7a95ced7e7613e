"""The live dashboard, driven without a browser (tests/harness/test_browser.py drives it in
JupyterLab).

In a kernel the dashboard shows three display handles (status, picture, Stop button or a note)
and updates them in place; the fixture `live` records what it displays and how it updates it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import sys
import types

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

from gan_helpers import config, dashboard
from gan_helpers.callbacks import Callback
from gan_helpers.display import show_widget
from gan_helpers.training import fit
from tests.helpers import StopAt, small_gan, tiny_loader

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Handle:
    """A fake `IPython.display.DisplayHandle`: keeps what was displayed, then each update."""

    def __init__(self, bundle: dict) -> None:
        self.bundles = [bundle]

    def update(self, bundle: dict, raw: bool = False) -> None:
        assert raw, "the dashboard updates with MIME bundles"
        self.bundles.append(bundle)

    @property
    def now(self) -> dict:
        return self.bundles[-1]


class Shell:
    """A kernel's shell; `old=True`: ipykernel < 7, which needs jupyter-ui-poll for clicks."""

    def __init__(self, old: bool = False) -> None:
        self.kernel = types.SimpleNamespace(**({"do_one_iteration": None} if old else {}))


@pytest.fixture
def live(monkeypatch) -> list[Handle]:
    """Pretend to run in a Jupyter kernel (ipykernel 7); the list gets a `Handle` per display."""
    handles: list[Handle] = []

    def display(bundle, raw=False, display_id=None):
        assert raw and display_id is True, "everything is displayed through a display handle"
        handles.append(Handle(bundle))
        return handles[-1]

    monkeypatch.setattr("gan_helpers.display._kernel_shell", lambda: Shell())
    monkeypatch.setattr("IPython.display.display", display)
    return handles


def png(bundle: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))


def coloured_pixels(image: Image.Image) -> int:
    """How many pixels are clearly not grey: the curves' lines (the samples are grey)."""
    a = np.asarray(image.convert("RGB")).astype(int)
    return int(((a.max(axis=2) - a.min(axis=2)) > 60).sum())


def test_three_handles_are_displayed_once_then_updated_in_place(live):
    G, D = small_gan()
    dash = dashboard.Dashboard(refresh_s=0.0, max_overhead=1e9, title="a <b>GAN</b>")
    button_ids = []

    class SeeButton(Callback):
        def on_step_end(self, state):
            button_ids.append(dash.stop_button.model_id)

    fit(G, D, tiny_loader(96), epochs=2, progress=False, callbacks=[dash, SeeButton()])
    status, picture, controls = live  # displayed at the start, never again
    assert dash.refreshes == 1 + 6 + 2 + 1  # the start, each step, each epoch's end, the end
    assert len(picture.bundles) == 1 + dash.refreshes and len(status.bundles) == 2 + dash.refreshes
    first, last = png(picture.bundles[1]), png(picture.now)
    assert first.height == last.height == dashboard.Dashboard.HEIGHT and first.width > 700
    assert coloured_pixels(first) == 0 < coloured_pixels(last)  # no curves before step 1
    assert picture.now["text/plain"].endswith("step 6")
    html = status.now["text/html"]
    assert "a &lt;b&gt;GAN&lt;/b&gt;" in html and "<progress value='6' max='6'" in html
    assert "<span class='gan-dashboard-final'>✔ finished</span>" in html
    assert "step 6/6" in html and "step 6/6" in status.now["text/plain"]
    assert {controls.bundles[0][WIDGET_VIEW]["model_id"]} == set(button_ids)
    assert dashboard.INTERRUPT_NOTE == controls.bundles[0]["text/plain"]
    assert controls.now == {"text/plain": ""}  # no Stop button once training has ended


def test_refreshes_are_throttled_whatever_the_step_rate(live):
    G, D = small_gan()
    never = dashboard.Dashboard(refresh_s=1e9)
    fit(G, D, tiny_loader(), epochs=2, progress=False, callbacks=[never])
    assert never.refreshes == 1 + 2 + 1  # the start, each epoch's end, the end
    assert len(live[1].bundles) == 1 + 4


def test_refreshing_takes_at_most_its_share_of_the_time(live, monkeypatch):
    clock = iter(range(0, 10_000, 1))  # every call of the clock: one more second

    monkeypatch.setattr(dashboard.time, "monotonic", lambda: float(next(clock)))
    dash = dashboard.Dashboard(refresh_s=0.0, max_overhead=0.1)
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[dash])
    # Each refresh "takes" 1 s, so the next may come 10 s later: about 1 step in 4 here.
    assert 1 + 8 // 4 <= dash.refreshes <= 1 + 8 // 2 + 2


def test_defaults_refresh_faster_in_smoke_mode_and_given_values_win(monkeypatch):
    monkeypatch.setattr(config, "SMOKE", False)
    full = dashboard.Dashboard()
    assert (full.refresh_s, full.max_overhead) == (1.0, 0.05)
    monkeypatch.setattr(config, "SMOKE", True)
    smoke = dashboard.Dashboard()
    assert (smoke.refresh_s, smoke.max_overhead) == (0.3, 0.2)
    assert (dashboard.Dashboard(2.0, 0.1).refresh_s, dashboard.Dashboard(2.0, 0.1).max_overhead) \
        == (2.0, 0.1)


def test_stop_button_ends_training_after_the_current_step(live, tmp_path):
    class ClickStop(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                dash.stop_button.click()

    dash = dashboard.Dashboard(refresh_s=0.0, max_overhead=1e9)
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False,
                  callbacks=[dash, ClickStop()])
    assert len(history["loss_d"]) == 3
    assert history.stop_reason == dashboard.STOPPED == "stopped with the Stop button"
    status, picture, controls = live
    assert "■ stopped with the Stop button</span>" in status.now["text/html"]
    assert "checkpoint of step 3 saved" in status.now["text/plain"]
    assert picture.now["text/plain"].endswith("step 3")  # the final picture: the last step
    assert controls.now == {"text/plain": ""} and dash.stop_button.comm is None  # closed


def test_kernel_interrupt_stops_cleanly_and_says_so(live, tmp_path):
    dash = dashboard.Dashboard(refresh_s=1e9)
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False,
                  callbacks=[dash, StopAt(5, "sigint")])
    assert len(history["loss_d"]) == 5 and history.stop_reason.startswith("interrupted")
    assert f"■ {history.stop_reason}</span>" in live[0].now["text/html"]
    assert "checkpoint of step 5 saved" in live[0].now["text/html"]


def test_without_ipywidgets_a_note_says_how_to_stop(live, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # importing it fails
    dash = dashboard.Dashboard(refresh_s=1e9)
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[dash])
    status, picture, controls = live
    assert dash.stop_button is None
    assert controls.bundles[0] == {"text/plain": dashboard.INTERRUPT_NOTE}
    assert "✔ finished" in status.now["text/html"] and "image/png" in picture.now


def test_old_kernels_poll_for_clicks_with_jupyter_ui_poll_and_work_without_it(live, monkeypatch):
    monkeypatch.setattr("gan_helpers.display._kernel_shell", lambda: Shell(old=True))
    monkeypatch.setitem(sys.modules, "jupyter_ui_poll", None)  # not installed: no Stop button
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[dashboard.Dashboard(1e9)])
    assert WIDGET_VIEW not in live[2].bundles[0] and "✔ finished" in live[0].now["text/plain"]

    polls, exits = [], []

    @contextlib.contextmanager
    def ui_events():
        yield polls.append
        exits.append(True)

    monkeypatch.setitem(sys.modules, "jupyter_ui_poll", types.SimpleNamespace(ui_events=ui_events))
    live.clear()
    dash = dashboard.Dashboard(refresh_s=1e9)
    fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[dash])
    assert WIDGET_VIEW in live[2].bundles[0] and dash.stop_button is not None
    assert polls == [10] * dash.refreshes and exits == [True]


def test_plain_script_gets_text_status_lines(capsys):
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=2, progress=False, callbacks=[dashboard.Dashboard()])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("epoch 1/2 · step 8/16") and "images/s" in lines[0]
    assert lines[-1].endswith("· finished")


KERNEL_CODE = """
from gan_helpers import data, models
from gan_helpers.dashboard import Dashboard
from gan_helpers.training import fit
G, D, _ = models.build_gan("mlp")
loader = data.make_loader(batch_size=64, limit=128)
history = fit(G, D, loader, epochs=2, progress=False, callbacks=[Dashboard(1e9, title="kernel")])
"""


def test_a_saved_notebook_keeps_the_final_status_and_picture(tiny_data):
    """In a real kernel, as nbconvert runs it: the outputs saved are the handles' last state."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(KERNEL_CODE)])
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    status, picture, controls = nb.cells[0].outputs  # nothing else: no static copy, no figure
    assert "✔ finished" in status["data"]["text/html"]
    assert "step 4/4" in status["data"]["text/plain"]
    image = png(picture["data"])
    assert image.height == dashboard.Dashboard.HEIGHT and coloured_pixels(image) > 0
    assert controls["data"] == {"text/plain": ""}


def test_show_widget_draws_the_static_version_outside_a_kernel():
    calls = []
    assert not show_widget(lambda: calls.append("widget"), lambda: calls.append("static"))
    assert calls == ["static"]


def test_show_widget_displays_the_widget_in_a_kernel(widgets_mode, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert show_widget(lambda: "widget", lambda: "static")
    assert show_widget(lambda: "widget", lambda: "static", static_too=True)
    assert shown == ["widget", "widget", "static"]
