"""Colab's `google.colab.output`, reduced to the widget-manager switch (the call is recorded)."""

from . import _record


def enable_custom_widget_manager() -> None:
    """On Colab: render third-party widgets. Here: record the call."""
    _record("output.enable_custom_widget_manager")


def disable_custom_widget_manager() -> None:
    """On Colab: back to the built-in widget manager. Here: record the call."""
    _record("output.disable_custom_widget_manager")
