"""The live dashboard, driven without a browser (tests/test_browser.py drives it in JupyterLab)."""

from __future__ import annotations

from conftest import small_gan, tiny_loader

from gan_helpers import dashboard
from gan_helpers.training import Callback, fit


def test_refreshes_are_throttled_whatever_the_step_rate(widgets_mode):
    G, D = small_gan()
    never = dashboard.Dashboard(refresh_s=1e9)
    fit(G, D, tiny_loader(), epochs=2, progress=False, callbacks=[never])
    assert never.refreshes == 1 + 2 + 1  # the start, each epoch's end, the end
    always = dashboard.Dashboard(refresh_s=0.0, max_overhead=1e9)
    fit(G, D, tiny_loader(), epochs=2, progress=False, callbacks=[always])
    assert always.refreshes == 1 + 16 + 2 + 1
    assert bytes(always.samples.value[:4]) == bytes(always.curves.value[:4]) == b"\x89PNG"
    assert always.progress.value == always.progress.max == 16
    assert "✔ finished" in always.status.value and "step 16/16" in always.status.value


def test_refreshing_takes_at_most_its_share_of_the_time(widgets_mode, monkeypatch):
    clock = iter(range(0, 10_000, 1))  # every call of the clock: one more second

    monkeypatch.setattr(dashboard.time, "monotonic", lambda: float(next(clock)))
    dash = dashboard.Dashboard(refresh_s=0.0, max_overhead=0.1)
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=1, progress=False, callbacks=[dash])
    # Each refresh "takes" 1 s, so the next may come 10 s later: about 1 step in 4 here.
    assert 1 + 8 // 4 <= dash.refreshes <= 1 + 8 // 2 + 2


def test_stop_button_ends_training_after_the_current_step(widgets_mode, tmp_path):
    class ClickStop(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                dash.stop_button.click()

    dash = dashboard.Dashboard(refresh_s=0.0, max_overhead=1e9)
    G, D = small_gan()
    history = fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False,
                  callbacks=[dash, ClickStop()])
    assert len(history["loss_d"]) == 3
    assert history.stop_reason == "stopped with the Stop button"
    assert "■ stopped with the Stop button" in dash.status.value
    assert "checkpoint of step 3 saved" in dash.status.value and dash.stop_button.disabled


def test_plain_script_gets_text_status_lines(capsys):
    G, D = small_gan()
    fit(G, D, tiny_loader(), epochs=2, progress=False, callbacks=[dashboard.Dashboard()])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("epoch 1/2 · step 8/16") and "images/s" in lines[0]
    assert lines[-1].endswith("· finished")


def test_show_widget_draws_the_static_version_outside_a_kernel():
    calls = []
    assert not dashboard.show_widget(lambda: calls.append("widget"), lambda: calls.append("static"))
    assert calls == ["static"]


def test_show_widget_displays_the_widget_in_a_kernel(widgets_mode, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert dashboard.show_widget(lambda: "widget", lambda: "static")
    assert dashboard.show_widget(lambda: "widget", lambda: "static", static_too=True)
    assert shown == ["widget", "widget", "static"]
