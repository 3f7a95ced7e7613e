"""Showing things in a notebook: a widget where a Jupyter kernel can show one, a static picture
elsewhere, and clicks that reach a kernel busy running a cell.

    show_widget(picker.build_widget, picker.show_static)   # the widget in Jupyter, else static

`in_kernel()` tells a Jupyter kernel (widgets can be shown) from a script or a test; `show_widget`
displays the widget there and draws the static version elsewhere. `ui_poll`, `route_to_subshell`
and `widget_bundle` are for a widget used while a cell still runs (the live dashboard's Stop
button). This module imports nothing of the package, and IPython, ipywidgets and
jupyter-ui-poll only when it needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any


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


def ui_poll() -> AbstractContextManager | None:
    """How widget clicks reach a kernel busy running a cell (training), or None when they cannot.

    ipykernel 7 (no `do_one_iteration`) serves them on a subshell (see `route_to_subshell`);
    older kernels (Colab) need jupyter-ui-poll, an optional extra, to poll for them. Outside a
    kernel, a context that does nothing.
    """
    shell = _kernel_shell()
    if shell is None or not hasattr(shell.kernel, "do_one_iteration"):
        return nullcontext(None)
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:
        return None
    return ui_events()


def route_to_subshell(widget) -> None:
    """Lets clicks on `widget` reach a busy kernel on ipykernel 7 with JupyterLab 4.4 or newer.

    There the front end sends widget messages on a kernel *subshell*, which runs in its own thread
    even while a cell runs; but ipykernel routes a comm's incoming messages to the shell that last
    published on it (the busy main shell). Serve them on the subshell they were sent on instead.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda data, default: default


def widget_bundle(widget, text: str) -> dict[str, Any]:
    """What displaying `widget` sends (the same in ipywidgets 7 and 8), with `text` for front
    ends that render no widgets; displayed through a handle, so it can be replaced later."""
    view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    return {"text/plain": text, "application/vnd.jupyter.widget-view+json": view}
