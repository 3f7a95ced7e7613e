"""gan_helpers: the small package behind the GAN lessons.

Modules, one concern each: `config` (settings from the environment, device, seeds), `data`
(datasets and the fast loader), `models` (also conditional, spectral norm, instance noise),
`objectives` (losses: BCE, hinge, WGAN-GP), `training` (the step, `fit`, callbacks), `recipes`
(a training configuration by value), `checkpoints`, `viz` (grids, curves, GIFs), `dashboard`
(the live training widget), `evaluation` (the classifier and the metrics), `conditional`
(sampling a conditional GAN), `latent` (interpolation and directions in the latent space), `toy`
(the 1-D GAN of lesson 00), `baseline` (the classic step the benchmarks compare with) and
`__main__` (the command line).
"""

from .config import SMOKE, pick, pick_device, seed_everything
from .data import load_dataset, load_tensors, make_loader
from .training import fit

__version__ = "0.1.0"
__all__ = [
    "SMOKE", "pick", "pick_device", "seed_everything",
    "load_dataset", "load_tensors", "make_loader", "fit",
]
