"""Generators and discriminators: the MLP GAN, the 28x28 DCGAN, the 64x64 DCGAN, `weights_init`,
their conditional variants (lesson 06), spectral normalisation and instance noise (lesson 08),
and differentiable augmentation of D's inputs (`DiffAugment`).

Every generator maps noise `(N, latent_dim)` to images `(N, 1, H, W)` in [-1, 1] (tanh).
Every discriminator maps images to one *logit* per image `(N,)`: the probability is its sigmoid,
and the loss is `BCEWithLogitsLoss`, which computes sigmoid and BCE together, stably.
Conditional networks take the class labels `(N,)` as a second argument: `G(z, y)`, `D(x, y)`.
The lessons show these classes cell by cell; `tests/harness/test_lesson_sources.py` keeps the two
equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import checks
from .flow import FlowGenerator


class MLPGenerator(nn.Module):
    """Fully connected generator: noise -> 256 -> 512 -> 1024 -> 784 pixels, tanh output."""

    def __init__(self, latent_dim: int = 100, hidden: Sequence[int] = (256, 512, 1024),
                 image_shape: tuple[int, int, int] = (1, 28, 28), batchnorm: bool = False):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, image_shape
        self.model_args = dict(latent_dim=latent_dim, hidden=list(hidden),  # what rebuilds it
                               image_shape=list(image_shape), batchnorm=batchnorm)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))  # not BatchNorm1d(h, 0.8): that sets eps=0.8
            layers.append(nn.LeakyReLU(0.2))
            width = h
        layers += [nn.Linear(width, image_shape[0] * image_shape[1] * image_shape[2]), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator: 784 pixels -> 1024 -> 512 -> 256 -> one logit."""

    def __init__(self, hidden: Sequence[int] = (1024, 512, 256),
                 image_shape: tuple[int, int, int] = (1, 28, 28), dropout: float = 0.3):
        super().__init__()
        self.model_args = dict(hidden=list(hidden), image_shape=list(image_shape), dropout=dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = image_shape[0] * image_shape[1] * image_shape[2]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class DCGANGenerator(nn.Module):
    """DCGAN generator for 28x28: noise -> 7x7 -> 14x14 -> 28x28 with transposed convolutions."""

    def __init__(self, latent_dim: int = 100, width: int = 64, channels: int = 1):
        super().__init__()
        self.latent_dim = latent_dim
        self.model_args = dict(latent_dim=latent_dim, width=width, channels=channels)
        self.net = nn.Sequential(
            # (N, latent_dim, 1, 1) -> (N, 2w, 7, 7): a 7x7 kernel on a 1x1 input
            nn.ConvTranspose2d(latent_dim, width * 2, 7, 1, 0, bias=False),
            nn.BatchNorm2d(width * 2),
            nn.ReLU(True),
            # (N, 2w, 7, 7) -> (N, w, 14, 14): stride 2 doubles the size
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            # (N, w, 14, 14) -> (N, 1, 28, 28)
            nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The discriminator's normalisation: `"batch"` (DCGAN), `"layer"` or `"none"`.

    WGAN-GP's penalty is computed per image, which BatchNorm breaks by mixing the images of a
    batch: its critic uses layer normalisation or none. Spectral normalisation needs none.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)  # one group: normalise over (C, H, W) of each image
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {norm!r}: use 'batch', 'layer' or 'none'.")


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for 28x28: strided convolutions 28 -> 14 -> 7, then one logit."""

    def __init__(self, width: int = 64, channels: int = 1, norm: str = "batch"):
        super().__init__()
        self.model_args = dict(width=width, channels=channels, norm=norm)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),  # -> (N, w, 14, 14)
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),  # -> (N, 2w, 7, 7)
            norm_layer(norm, width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, 1, 7, 1, 0, bias=False),  # -> (N, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class DCGAN64Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator: noise -> 4 -> 8 -> 16 -> 32 -> 64x64 images."""

    def __init__(self, latent_dim: int = 100, width: int = 64, channels: int = 1):
        super().__init__()
        self.latent_dim = latent_dim
        self.model_args = dict(latent_dim=latent_dim, width=width, channels=channels)
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(w * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 8, w * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(w * 2, w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(True),
            nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGAN64Discriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator for 64x64 images, returning a logit."""

    def __init__(self, width: int = 64, channels: int = 1):
        super().__init__()
        self.model_args = dict(width=width, channels=channels)
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, w * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 2, w * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 4, w * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w * 8, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run `module` in eval mode (BatchNorm's running statistics, no dropout) and without
    gradients inside the block; its training mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def generate(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int = 500) -> torch.Tensor:
    """`G`'s images for latent vectors `z` `(..., d)` (and a conditional `G`'s `labels`, shaped
    like `z` without its last dimension): `(..., C, H, W)` on the CPU, clamped to [-1, 1].

    Eval mode (BatchNorm uses its running statistics, so one image does not depend on the others
    in its batch), no gradients, `batch_size` images at a time (memory stays flat); `G`'s training
    mode is restored afterwards. The one way the package draws samples from a generator.
    """
    G = checks.generator("G", G)
    z = checks.latent("z", z, getattr(G, "latent_dim", None))
    batch_size = checks.positive_int("batch_size", batch_size)
    device = next(G.parameters()).device
    flat = z.reshape(-1, z.shape[-1])
    flat_labels = None if labels is None else labels.reshape(-1)
    out = []
    with eval_mode(G):
        for i in range(0, len(flat), batch_size):
            cond = () if flat_labels is None else (flat_labels[i:i + batch_size].to(device),)
            out.append(G(flat[i:i + batch_size].to(device), *cond).clamp(-1, 1).cpu())
    images = torch.cat(out)
    return images.view(*z.shape[:-1], *images.shape[1:])


def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation: convolution weights ~ N(0, 0.02), as the paper does for all weights;
    BatchNorm weight ~ N(1, 0.02) and bias 0, as its reference code and the PyTorch tutorial do.

    Use it as `model.apply(weights_init)`.
    """
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class ConditionalGenerator(nn.Module):
    """`G(z, y)`: the label's learned embedding is joined to the noise, and the pair goes through
    an unconditional generator of kind `kind` (`"mlp"` or `"dcgan"`) with a wider input."""

    def __init__(self, kind: str = "dcgan", latent_dim: int = 100, num_classes: int = 10,
                 embed_dim: int | None = None, **kwargs):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.model_args = dict(kind=kind, latent_dim=latent_dim, num_classes=num_classes,
                               embed_dim=embed_dim, **kwargs)
        embed_dim = embed_dim or num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.net = MODELS[kind][0](latent_dim=latent_dim + embed_dim, **kwargs)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """`D(x, y)` by projection (Miyato & Koyama, 2018): `head(phi(x)) + <embed(y), phi(x)>`.

    `phi` is an unconditional discriminator of kind `kind` without its last layer, `head` that
    layer. The first term asks "is this a real image?", the second "...of class y?".
    """

    def __init__(self, kind: str = "dcgan", num_classes: int = 10, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.model_args = dict(kind=kind, num_classes=num_classes, **kwargs)
        _, d_cls, size = MODELS[kind]
        base = d_cls(**kwargs)
        self.features, self.head = base.net[:-1], base.net[-1]
        shape = kwargs.get("image_shape") or (kwargs.get("channels", 1), size, size)
        with eval_mode(self.features):
            n_features = self.features(torch.zeros(1, *shape)).numel()
        self.embed = nn.Embedding(num_classes, n_features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        projection = (self.embed(labels) * h.flatten(1)).sum(dim=1)
        return self.head(h).view(-1) + projection


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., 2018) on every convolution, linear layer and
    embedding (the projection's, too) of `module`, in place: each weight, as a matrix, is divided
    by its largest singular value (estimated by one step of power iteration per training forward
    pass), so no layer stretches its input by much more than 1 and the discriminator cannot become
    arbitrarily steep. Apply it after `weights_init`, which cannot reach the weights afterwards."""
    layers = [m for m in module.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding))]
    for layer in layers:
        nn.utils.parametrizations.spectral_norm(layer)
    return module


class InstanceNoise(nn.Module):
    """Wraps a discriminator so that, while training, it sees every input (real and generated)
    with Gaussian noise of standard deviation `sigma` added (Sonderby et al., 2016).

    Noise makes the two distributions overlap, so D cannot separate them perfectly and G keeps
    a gradient. `training.AnnealNoise` lowers `sigma` to 0 over the run.
    """

    def __init__(self, D: nn.Module, sigma: float = 0.1):
        super().__init__()
        self.D, self.sigma, self.start_sigma = D, sigma, sigma
        self.model_args = dict(D=describe(D), sigma=sigma)

    def forward(self, x: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        if self.training and self.sigma > 0:
            x = x + self.sigma * torch.randn_like(x)
        return self.D(x, *cond)


class DiffAugment(nn.Module):
    """Wraps a discriminator so that, while training, every image it judges (real and
    generated, in D's step and in G's) is first shifted by up to `translation` of its size (the
    border filled with the background, -1) and has a random square of `cutout` of its size
    blanked (to 0): differentiable augmentation (Zhao et al., 2020). Both are differentiable,
    so G's gradient passes through them. It is a remedy for a D that learns a small training set
    by heart; in the 300-s benchmark on a CPU (about 15 passes over 60,000 images) it only
    slowed training (README, "Quality per second").
    """

    def __init__(self, D: nn.Module, translation: float = 0.125, cutout: float = 0.5):
        super().__init__()
        self.D, self.translation, self.cutout = D, translation, cutout
        self.model_args = dict(D=describe(D), translation=translation, cutout=cutout)

    def forward(self, x: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = cut_out(translate(x, self.translation), self.cutout)
        return self.D(x, *cond)


def translate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Each image of `x` `(N, C, H, W)` shifted by its own random whole number of pixels, up to
    `ratio` of its size each way; what comes in at the border is background (-1)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    padded = nn.functional.pad(x, (sx, sx, sy, sy), value=-1.0)
    dy = torch.randint(0, 2 * sy + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * sx + 1, (n, 1), device=x.device)
    rows = torch.arange(h, device=x.device) + dy  # (N, H): the rows each image keeps
    cols = torch.arange(w, device=x.device) + dx
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cut_out(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Each image of `x` `(N, C, H, W)` with a square of `ratio` of its size, at a random place
    (it may stick out of the image), set to 0."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(size_y // 2), h - size_y // 2, (n, 1, 1), device=x.device)
    left = torch.randint(-(size_x // 2), w - size_x // 2, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] - top
    cols = torch.arange(w, device=x.device)[None, None, :] - left
    inside = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)  # (N, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


MODELS = {
    "mlp": (MLPGenerator, MLPDiscriminator, 28),
    "dcgan": (DCGANGenerator, DCGANDiscriminator, 28),
    "dcgan64": (DCGAN64Generator, DCGAN64Discriminator, 64),
}
"""Model families by name: `(generator class, discriminator class, image size)`."""

CONDITIONAL = {"cmlp": "mlp", "cdcgan": "dcgan"}
"""Conditional model families by name, and the unconditional family each one extends."""

GENERATORS = {cls.__name__: cls for cls in (MLPGenerator, DCGANGenerator, DCGAN64Generator,
                                            ConditionalGenerator, FlowGenerator)}
"""The generator classes a checkpoint's record can name, by class name."""


def describe(module: nn.Module) -> dict[str, Any]:
    """What built `module`: `{"class": its class name, "args": its constructor's arguments}`.

    The networks of this module keep their arguments in `model_args` (as nanoGPT's checkpoints
    keep `model_args`), so a checkpoint can rebuild them without guessing from weight shapes.
    A network that does not (your own class) is described by its class name alone. Spectral
    normalisation, added after construction, is recorded too.
    """
    record: dict[str, Any] = {"class": type(module).__name__}
    if hasattr(module, "model_args"):
        record["args"] = dict(module.model_args)
    if any(parametrize.is_parametrized(m) for m in module.modules()):
        record["spectral_norm"] = True
    return record


def build_from_record(record: dict[str, Any]) -> nn.Module:
    """A new generator from `describe`'s record (fresh weights): the class it names, called with
    the arguments it lists. `ValueError` if the record names no generator of this module."""
    cls = GENERATORS.get(record.get("class", ""))
    if cls is None or "args" not in record:
        raise ValueError(f"The record {record} names no generator of gan_helpers.models that can "
                         f"be rebuilt (known: {', '.join(GENERATORS)}).")
    return cls(**record["args"])


def build_gan(kind: str, latent_dim: int = 100, g_kwargs: dict | None = None,
              d_kwargs: dict | None = None, *, num_classes: int = 10,
              spectral_norm: bool = False) -> tuple[nn.Module, nn.Module, int]:
    """Build `(generator, discriminator, image_size)` by name: `mlp`, `dcgan`, `dcgan64`, or
    the conditional `cmlp` and `cdcgan` (label embedding in G, projection D, `num_classes`).

    The DCGANs get `weights_init`. `g_kwargs` and `d_kwargs` go to the two constructors;
    `spectral_norm=True` adds spectral normalisation to the discriminator (after the init).
    """
    base = CONDITIONAL.get(kind, kind)
    if base not in MODELS:
        raise ValueError(f"Unknown model {kind!r}: choose one of "
                         f"{', '.join([*MODELS, *CONDITIONAL])}.")
    g_cls, d_cls, size = MODELS[base]
    if kind in CONDITIONAL:
        G = ConditionalGenerator(base, latent_dim, num_classes, **(g_kwargs or {}))
        D = ProjectionDiscriminator(base, num_classes, **(d_kwargs or {}))
    else:
        G = g_cls(latent_dim=latent_dim, **(g_kwargs or {}))
        D = d_cls(**(d_kwargs or {}))
    if base.startswith("dcgan"):
        G.apply(weights_init)
        D.apply(weights_init)
    if spectral_norm:
        add_spectral_norm(D)
    return G, D, size
