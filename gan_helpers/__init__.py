"""gan_helpers: the small package behind the GAN lessons.

Modules, one concern each: `config` (settings from the environment, device, seeds), `errors` (the
errors a user can fix), `data` (datasets and the fast loader), `models` (also conditional, spectral
norm, instance noise), `objectives` (losses: BCE, hinge, WGAN-GP), `training` (the step and `fit`),
`callbacks` (the hooks `fit` calls: progress, grids, checkpoints), `checkpoints` (saving, loading,
the run record), `run_folder` (file names, the write check, the lock), `timing` (the pausable
training clock), `recipes` (a training configuration by value), `images` (grids, PNGs and GIFs,
without pyplot), `viz` (the matplotlib plots: grids, curves, quality), `dashboard` (the live
training widget), `metrics` (FID, IS, coverage, confidence), `classifier` (the evaluation
classifier, trained once and cached), `evaluation` (scoring images and generators, also during
training), `conditional` (sampling a conditional GAN), `latent` (interpolation and directions in
the latent space), `toy` (the 1-D GAN of lesson 00) and `__main__` (the command line). The classic
tutorials' models and step, which the benchmarks compare with, are in `benchmarks/baseline.py`.
"""

try:
    from .config import SMOKE, pick, pick_device, seed_everything
    from .data import load_dataset, load_tensors, make_loader
    from .errors import brief_in_notebooks
    from .training import fit
except ModuleNotFoundError as err:  # say which requirements this environment lacks, and how
    from ._requirements import missing_requirements_error

    raise missing_requirements_error(err) from None

__version__ = "0.1.0"
brief_in_notebooks()
__all__ = [
    "SMOKE", "pick", "pick_device", "seed_everything",
    "load_dataset", "load_tensors", "make_loader", "fit",
]
