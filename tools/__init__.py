"""Maintenance tools (`python tools/<name>.py`); a package so tests can import `tools.browser`."""
