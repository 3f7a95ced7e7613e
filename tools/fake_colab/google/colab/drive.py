"""Colab's `google.colab.drive`: `mount` makes `mountpoint/MyDrive` a plain local folder."""

import os

from . import _record


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000,
          readonly: bool = False) -> None:
    """Mount Google Drive at `mountpoint`: here, create `mountpoint/MyDrive`.

    As on Colab, a mountpoint that is already mounted is left alone (with a note), and one that
    already holds other files is refused.
    """
    mountpoint = os.path.expanduser(str(mountpoint))
    my_drive = os.path.join(mountpoint, "MyDrive")
    _record("drive.mount", mountpoint=mountpoint, force_remount=force_remount)
    if os.path.isdir(my_drive) and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f'drive.mount("{mountpoint}", force_remount=True).')
        return
    if os.path.isdir(mountpoint) and os.listdir(mountpoint) and not force_remount:
        raise ValueError("Mountpoint must not already contain files")
    os.makedirs(my_drive, exist_ok=True)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms: int = 86400000) -> None:
    """On Colab: write pending changes to Drive and unmount it. Here: record the call."""
    _record("drive.flush_and_unmount")
