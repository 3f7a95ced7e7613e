"""Image files without pyplot: grids of images (built on `torchvision.utils.make_grid`) as PIL
images, PNG files and PNG bytes (for widgets), and animated GIFs; and the pixel range they all
share, `MEAN` and `STD` (images are floats in [-1, 1]; `denormalize` maps them to [0, 1]).

Training writes its sample grids with this module, so a run needs neither matplotlib nor
ipywidgets; the plots live in `viz`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .run_folder import write_atomic

MEAN, STD = 0.5, 0.5
"""`Normalize(MEAN, STD)` maps [0, 1] to [-1, 1], the range of the generator's tanh output."""


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] back to [0, 1] for display (clamped)."""
    return images.mul(STD).add(MEAN).clamp_(0, 1)


def grid_image(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> Image.Image:
    """A PIL image of a grid of `images` in [-1, 1] (shape `(N, C, H, W)`)."""
    grid = make_grid(denormalize(images.detach().float().cpu()), nrow=nrow, padding=padding,
                     pad_value=1.0)
    array = grid.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1 or (array[..., 0] == array[..., 1]).all():
        array = array[..., 0]
    # Pillow infers the mode from the array ("L" for H x W, "RGB" for H x W x 3 uint8); passing
    # `mode=` is deprecated since Pillow 11.3.
    return Image.fromarray(array)


def enlarge(image: Image.Image, scale: int = 1) -> Image.Image:
    """`image` enlarged `scale` times, each pixel a `scale` x `scale` block (nearest neighbour);
    unchanged for a `scale` of 1 or less."""
    if scale <= 1:
        return image
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    """The PNG file of `image`, as bytes (what an `ipywidgets.Image` shows). Level 1 of 9
    compresses fast: widgets redraw often."""
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=compress_level)
    return buf.getvalue()


def grid_png(images: torch.Tensor, nrow: int = 8, padding: int = 2, *, scale: int = 1,
             size: tuple[int, int] | None = None, resample: int = Image.NEAREST) -> bytes:
    """PNG bytes of `grid_image(images, nrow, padding)`, enlarged `scale` times, or resized to
    `size` (width, height) with `resample` (nearest neighbour: sharp pixels)."""
    img = enlarge(grid_image(images, nrow=nrow, padding=padding), scale)
    return png_bytes(img if size is None else img.resize(size, resample))


def save_grid(images: torch.Tensor, path: str | os.PathLike[str], nrow: int = 8,
              scale: int = 1) -> Path:
    """Save a grid of `images` in [-1, 1] as a PNG (enlarged `scale` times); return the path."""
    return _save(enlarge(grid_image(images, nrow=nrow), scale), path)


def _save(image: Image.Image, path: str | os.PathLike[str], **params) -> Path:
    """Write `image` to `path` (its format from the suffix, PNG by default) atomically: a failed
    write (a full disk, a read-only folder) raises `RunWriteError` and leaves the old file whole."""
    path = Path(path)
    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"),
               **params)
    return write_atomic(path, buffer.getvalue(), what="image")


def make_gif(frames: Sequence[str | os.PathLike[str] | Image.Image], path: str | os.PathLike[str],
             duration_ms: int = 400, scale: int = 2, hold_last_ms: int = 1500) -> Path:
    """Turn PNG frames (paths or PIL images) into an animated GIF with Pillow; return the path."""
    if not frames:
        raise ValueError("make_gif needs at least one frame.")
    images = [f if isinstance(f, Image.Image) else Image.open(f) for f in frames]
    images = [enlarge(im.convert("L"), scale) for im in images]
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    return _save(images[0], path, save_all=True, append_images=images[1:], duration=durations,
                 loop=0)
