"""A live training dashboard for notebooks: a `fit` callback that updates in place.

    history = fit(G, D, loader, epochs=5, run_dir=run, callbacks=[Dashboard()], progress=False)

Inside a Jupyter kernel it shows, redrawn in place a few times a second at most: a status line
(title, progress bar, epoch, step, images per second, losses) and one picture with the samples of
the fixed noise batch beside the loss and D(x) / D(G(z)) curves. Both are IPython *display
handles* (`display(..., display_id=True)`, then `handle.update(...)`): plain HTML and PNG outputs
that JupyterLab, Colab, VS Code and nbconvert all render and update, and that a saved notebook
keeps in their final state. Where ipywidgets can deliver a click to the busy kernel, a Stop button
below ends training cleanly after the current step; the kernel's interrupt (■) does the same
everywhere. In a plain Python script the status line is printed at each epoch.
"""

from __future__ import annotations

import base64
import html
import time
from contextlib import AbstractContextManager

from PIL import Image

from . import config
from .callbacks import Callback
from .display import in_kernel, route_to_subshell, ui_poll, widget_bundle
from .images import grid_image, png_bytes
from .state import TrainState

STOPPED = "stopped with the Stop button"
"""The stop reason the Stop button gives."""

INTERRUPT_NOTE = ("To stop early, interrupt the kernel (■; on Colab: Runtime ▸ Interrupt "
                  "execution): training ends cleanly after the current step.")


class Dashboard(Callback):
    """Live status, samples, curves and a Stop button for `fit` (see the module doc).

    `refresh_s` is the least time between two refreshes, whatever the step rate (default 1 s). On
    a slow machine a refresh (sampling the generator, drawing the curves) can take a tenth of a
    second, so the dashboard also waits long enough that refreshing takes at most `max_overhead`
    of the time (default 5%). Smoke mode refreshes more often (0.3 s, up to 20%), so a short run
    still shows a few updates.
    """

    HEIGHT = 280
    """The picture's height in pixels: the samples grid is scaled to it, the curves drawn to it."""

    def __init__(self, refresh_s: float | None = None, max_overhead: float | None = None,
                 title: str = "GAN training") -> None:
        self.refresh_s = config.pick(full=1.0, smoke=0.3) if refresh_s is None else refresh_s
        self.max_overhead = (config.pick(full=0.05, smoke=0.2) if max_overhead is None
                             else max_overhead)
        self.title = title
        self.mode = "text"
        self.refreshes = 0
        self.status = self.picture = self.controls = None  # display handles, in a kernel
        self.stop_button = None
        self._next = 0.0
        self._curves_at = -1
        self._curves: Image.Image | None = None
        self._poll = None
        self._events: AbstractContextManager | None = None

    # ------------------------------------------------------------------ set-up
    def on_fit_start(self, state: TrainState) -> None:
        self.mode = "text"
        if in_kernel():
            self._display(state)
            self.mode = "live"  # once the handles exist
            self.refresh(state)

    def _display(self, state: TrainState) -> None:
        """Create the three display handles: status, picture, and the Stop button (or a note)."""
        from IPython.display import display

        self.status = display(self._status_bundle(state), raw=True, display_id=True)
        self.picture = display({"text/plain": "(the samples and curves appear here)"},
                               raw=True, display_id=True)
        events = ui_poll()
        button = self._stop_button(state) if events is not None else None
        if button is None:
            self.controls = display({"text/plain": INTERRUPT_NOTE}, raw=True, display_id=True)
            return
        self.stop_button = button
        self.controls = display(widget_bundle(button, INTERRUPT_NOTE), raw=True,
                                display_id=True)
        route_to_subshell(button)
        self._poll = events.__enter__()
        self._events = events

    def _stop_button(self, state: TrainState):
        try:
            import ipywidgets as w
        except ImportError:
            return None
        button = w.Button(description="Stop", icon="stop", button_style="danger",
                          tooltip="Stop after the current step and save a checkpoint "
                                  "(interrupting the kernel does the same)")
        button.add_class("gan-dashboard-stop")
        button.on_click(lambda _: state.request_stop(STOPPED))
        return button

    # ------------------------------------------------------------------ updates
    def on_step_end(self, state: TrainState) -> None:
        if time.monotonic() >= self._next:
            self.refresh(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.mode == "live":
            self.refresh(state)
        else:
            print(self.status_text(state))

    def refresh(self, state: TrainState) -> None:
        """Redraw everything now (the callbacks call this, throttled as the class doc says)."""
        start = time.monotonic()
        if self.mode != "live":
            self._next = start + self.refresh_s
            return
        self.refreshes += 1
        png = base64.b64encode(png_bytes(self.draw(state))).decode("ascii")
        self.picture.update({"image/png": png, "text/plain": f"samples and curves, step "
                             f"{state.step}"}, raw=True)
        self.status.update(self._status_bundle(state), raw=True)
        if self._poll is not None:
            self._poll(10)  # ipykernel < 7 with jupyter-ui-poll: let a click on Stop arrive
        cost = time.monotonic() - start
        self._next = start + max(self.refresh_s, cost / self.max_overhead)

    def draw(self, state: TrainState) -> Image.Image:
        """The picture: the fixed noise batch's samples, then the curves (redrawn only when the
        step changed)."""
        grid = grid_image(state.samples())
        width = round(grid.width * self.HEIGHT / grid.height)
        grid = grid.resize((width, self.HEIGHT), Image.BICUBIC)
        if self._curves_at != state.step or self._curves is None:
            self._curves_at = state.step
            self._curves = self._draw_curves(state)
        picture = Image.new("RGB", (width + 10 + self._curves.width, self.HEIGHT), "white")
        picture.paste(grid, (0, 0))
        picture.paste(self._curves, (width + 10, 0))
        return picture

    def _draw_curves(self, state: TrainState) -> Image.Image:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .viz import plot_history  # matplotlib: imported only where it draws

        if not hasattr(self, "_fig"):  # no pyplot: nothing is shown at the end of the cell
            self._fig = Figure(figsize=(7.5, self.HEIGHT / 72), dpi=72)
            FigureCanvasAgg(self._fig)
            self._axes = self._fig.subplots(1, 2)
            self._fig.subplots_adjust(left=0.07, right=0.99, bottom=0.15, top=0.91, wspace=0.2)
        plot_history(state.history, axes=self._axes)
        self._fig.canvas.draw()
        return Image.fromarray(np.asarray(self._fig.canvas.buffer_rgba())).convert("RGB")

    def status_text(self, state: TrainState) -> str:
        h = state.history
        losses = (f" · loss D {h['loss_d'][-1]:.3f}, G {h['loss_g'][-1]:.3f}"
                  if h.get("loss_d") else "")
        return (f"epoch {min(state.epoch + 1, state.epochs)}/{state.epochs} · step "
                f"{state.step}/{state.total_steps} · {state.images_per_sec:,.0f} images/s{losses}")

    def _status_bundle(self, state: TrainState, final: str = "",
                       saved: str = "") -> dict[str, str]:
        """The title, a progress bar and the status line, as HTML and as plain text; at the end,
        `final` (a mark and the reason) goes first and `saved` (the checkpoint) last."""
        text = self.status_text(state) + saved
        mark = f"<span class='gan-dashboard-final'>{html.escape(final)}</span> · " if final else ""
        body = (f"<div class='gan-dashboard'><b>{html.escape(self.title)}</b><br>"
                f"<progress value='{state.step}' max='{max(state.total_steps, 1)}' "
                f"style='width: 60%'></progress><br>{mark}"
                f"<span class='gan-dashboard-status'>{html.escape(text)}</span></div>")
        return {"text/html": body,
                "text/plain": f"{self.title}: {final + ' · ' if final else ''}{text}"}

    # ------------------------------------------------------------------ the end
    def on_fit_end(self, state: TrainState) -> None:
        reason = state.stop_reason or "finished"
        step = state.history.checkpoint_step
        saved = f" · checkpoint of step {step} saved" if step is not None else ""
        if self.mode != "live":
            print(f"{self.status_text(state)} · {reason}")
            return
        try:
            self.refresh(state)
        finally:
            if self._events is not None:
                self._events.__exit__(None, None, None)
                self._events = self._poll = None
            self.controls.update({"text/plain": ""}, raw=True)  # no Stop once it has ended
            if self.stop_button is not None:
                self.stop_button.close()
        icon = "✔" if reason == "finished" else "■"
        self.status.update(self._status_bundle(state, f"{icon} {reason}", saved), raw=True)
