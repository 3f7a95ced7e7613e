"""A live training dashboard for notebooks: an ipywidgets callback for `fit`, with static fallbacks.

    history = fit(G, D, loader, epochs=5, run_dir=run, callbacks=[Dashboard()], progress=False)

In JupyterLab and Colab it shows, updated in place a few times a second at most: the samples of
the fixed noise batch, the loss and D(x) / D(G(z)) curves, a progress bar, a status line (epoch,
step, images per second) and a Stop button that ends training cleanly after the current step.
Where no widget front end renders it (nbconvert, nbmake, a saved notebook on GitHub) the same
pictures appear once, as a static figure, when training ends; in a plain Python script the status
line is printed at each epoch.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from PIL import Image

from .images import grid_image, grid_png
from .training import Callback, TrainState


def _kernel_shell():
    """The IPython kernel's shell when running in Jupyter, else None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def in_kernel() -> bool:
    """True inside a Jupyter kernel, where widgets can be shown; False in scripts and tests."""
    return _kernel_shell() is not None


def show_widget(build_widget: Callable[[], Any], static: Callable[[], object], *,
                static_too: bool = False) -> bool:
    """Display `build_widget()` inside a Jupyter kernel, where ipywidgets work; elsewhere (a
    script, a test) call `static()` instead, which draws the static version. With `static_too`, a
    kernel also displays what `static()` returns, below the widget: what a viewer without a widget
    front end (a saved notebook, nbconvert) sees. True when the widget was displayed."""
    if not in_kernel():
        static()
        return False
    from IPython.display import display

    display(build_widget())
    if static_too:
        display(static())
    return True


def _ui_events() -> AbstractContextManager:
    """Lets widget clicks reach a busy kernel on ipykernel < 7 (Colab), with jupyter-ui-poll."""
    shell = _kernel_shell()
    if shell is None or not hasattr(shell.kernel, "do_one_iteration"):
        return nullcontext(None)  # ipykernel 7 has no do_one_iteration: see _route_to_subshell
    try:
        from jupyter_ui_poll import ui_events

        return ui_events()
    except Exception:  # noqa: BLE001 - without it only the Stop button is affected
        return nullcontext(None)


def _route_to_subshell(widget) -> None:
    """Lets clicks on `widget` reach a busy kernel on ipykernel 7 with JupyterLab 4.4 or newer.

    There the front end sends widget messages on a kernel *subshell*, which runs in its own thread
    even while a cell runs; but ipykernel routes a comm's incoming messages to the shell that last
    published on it (the busy main shell). Serve them on the subshell they were sent on instead.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda data, default: default


class Dashboard(Callback):
    """Live samples, curves, progress, status and a Stop button for `fit` (see the module doc).

    `refresh_s` is the least time between two refreshes, whatever the step rate. On a slow machine
    a refresh (sampling the generator, drawing the curves) can take a tenth of a second, so the
    dashboard also waits long enough that refreshing takes at most `max_overhead` of the time.
    """

    def __init__(self, refresh_s: float = 1.0, max_overhead: float = 0.05,
                 title: str = "GAN training") -> None:
        self.refresh_s = refresh_s
        self.max_overhead = max_overhead
        self.title = title
        self.mode = "text"
        self.refreshes = 0
        self._next = 0.0
        self._curves_at = -1
        self._poll = None
        self._events: AbstractContextManager | None = None

    # ------------------------------------------------------------------ set-up
    def on_fit_start(self, state: TrainState) -> None:
        self.state = state
        self.mode = "widgets" if in_kernel() else "text"
        if self.mode == "widgets":
            self._build(state)
            self._events = _ui_events()
            self._poll = self._events.__enter__()
            self.refresh(state)

    def _build(self, state: TrainState) -> None:
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.fig, self.axes = plt.subplots(1, 2, figsize=(7.5, 2.8), dpi=72)
        self.fig.subplots_adjust(left=0.07, right=0.99, bottom=0.17, top=0.9, wspace=0.2)
        plt.close(self.fig)  # drawn into PNG bytes, never shown by pyplot
        self.samples = w.Image(format="png", layout=w.Layout(width="280px", height="280px"))
        self.curves = w.Image(format="png", layout=w.Layout(width="540px"))
        self.progress = w.IntProgress(value=state.step, min=0, max=state.total_steps,
                                      layout=w.Layout(width="60%"))
        self.status = w.HTML()
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="Stop after the current step and save a checkpoint")
        self.stop_button.on_click(lambda _: state.request_stop("stopped with the Stop button"))
        self.widget = w.VBox([
            w.HTML(f"<b>{self.title}</b>"),
            w.HBox([self.samples, self.curves], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.stop_button, self.progress]),
            self.status,
        ])
        self.widget.add_class("gan-dashboard")
        display(self.widget)
        _route_to_subshell(self.stop_button)

    # ------------------------------------------------------------------ updates
    def on_step_end(self, state: TrainState) -> None:
        if time.monotonic() >= self._next:
            self.refresh(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.mode == "widgets":
            self.refresh(state)
        else:
            print(self.status_text(state))

    def refresh(self, state: TrainState) -> None:
        """Redraw everything now (the callbacks call this, throttled as the class doc says)."""
        start = time.monotonic()
        if self.mode != "widgets":
            self._next = start + self.refresh_s
            return
        self.refreshes += 1
        self.samples.value = grid_png(state.samples(), size=(280, 280), resample=Image.BICUBIC)
        if state.history.get("loss_d") and self._curves_at != state.step:
            from .viz import plot_history  # matplotlib: imported only where it draws

            self._curves_at = state.step
            plot_history(state.history, axes=self.axes)
            buf = io.BytesIO()
            self.fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
            self.curves.value = buf.getvalue()
        self.progress.value = state.step
        self.status.value = self.status_text(state)
        if self._poll is not None:
            self._poll(10)  # ipykernel < 7: let a click on Stop reach the kernel
        cost = time.monotonic() - start
        self._next = start + max(self.refresh_s, cost / self.max_overhead)

    def status_text(self, state: TrainState) -> str:
        h = state.history
        losses = (f" · loss D {h['loss_d'][-1]:.3f}, G {h['loss_g'][-1]:.3f}"
                  if h.get("loss_d") else "")
        return (f"epoch {min(state.epoch + 1, state.epochs)}/{state.epochs} · step "
                f"{state.step}/{state.total_steps} · {state.images_per_sec:,.0f} images/s{losses}")

    # ------------------------------------------------------------------ the end
    def on_fit_end(self, state: TrainState) -> None:
        reason = state.stop_reason or "finished"
        step = state.history.checkpoint_step
        saved = f" · checkpoint of step {step} saved" if step is not None else ""
        if self.mode != "widgets":
            print(f"{self.status_text(state)} · {reason}")
            return
        try:
            self.refresh(state)
        finally:
            if self._events is not None:
                self._events.__exit__(None, None, None)
                self._events = self._poll = None
        icon = "✔" if reason == "finished" else "■"
        self.status.value = (f"<span class='gan-dashboard-final'>{icon} {reason}</span> · "
                             f"{self.status_text(state)}{saved}")
        self.stop_button.disabled = True
        self._show_static(state, reason)

    def _show_static(self, state: TrainState, reason: str) -> None:
        """The final samples and curves as a plain figure, for where widgets do not render."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .viz import plot_history

        fig = plt.figure(figsize=(12, 3.6))
        grid_ax = fig.add_axes((0.0, 0.05, 0.26, 0.85))
        grid_ax.imshow(grid_image(state.samples()), cmap="gray", vmin=0, vmax=255)
        grid_ax.set_axis_off()
        grid_ax.set_title(f"step {state.step}: {reason}")
        if state.history.get("loss_d"):
            axes = [fig.add_axes((0.32, 0.15, 0.3, 0.7)), fig.add_axes((0.69, 0.15, 0.3, 0.7))]
            plot_history(state.history, axes=axes)
        display(fig)
        plt.close(fig)
