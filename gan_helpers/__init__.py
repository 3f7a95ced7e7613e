"""gan_helpers: the small package behind the GAN lessons.

Modules, one concern each: `config` (settings from the environment, device, seeds), `data`
(datasets and the fast loader), `models`, `objectives` (losses), `training` (the step, `fit`,
callbacks), `checkpoints`, `viz` (grids, curves, GIFs) and `toy` (the 1-D GAN of lesson 00).
"""

from .config import SMOKE, pick, pick_device, seed_everything
from .data import load_dataset, load_tensors, make_loader
from .training import fit

__version__ = "0.1.0"
__all__ = [
    "SMOKE", "pick", "pick_device", "seed_everything",
    "load_dataset", "load_tensors", "make_loader", "fit",
]
