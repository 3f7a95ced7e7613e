"""GAN losses, computed from the discriminator's outputs (logits, or a critic's scores).

`BCEWithLogitsLoss(logit, 1)` equals `BCELoss(sigmoid(logit), 1)` = `-log sigmoid(logit)`, but
computes it as `softplus(-logit)`, which never takes the log of a number rounded to 0.

Every objective has the same four parts, which `training.train_step` uses:
`d_loss(real_out, fake_out)`, `g_loss(fake_out)`, `penalty(D, real, fake, *cond)` (a term added
to the discriminator's loss that needs D itself, e.g. WGAN-GP's gradient penalty; 0 by default)
and `n_critic` (discriminator updates per generator update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Objective:
    """What every GAN loss provides; subclasses override `d_loss` and `g_loss`."""

    n_critic: int = 1
    """Discriminator (critic) updates per generator update."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                *cond: torch.Tensor) -> torch.Tensor | float:
        """A term added to the discriminator's loss that needs D itself; none by default."""
        return 0.0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class BCEObjective(Objective):
    """The original GAN objective with binary cross-entropy on logits.

    - discriminator: real images labelled 1 (or `real_label`, e.g. 0.9 for one-sided label
      smoothing), generated images labelled 0;
    - generator, non-saturating (default): generated images labelled 1, i.e. minimise
      `-log D(G(z))`;
    - generator, `saturating=True`: the minimax original, minimise `log(1 - D(G(z)))`, whose
      gradient vanishes exactly when the discriminator wins (lessons 00 and 08 show it).
    """

    def __init__(self, saturating: bool = False, real_label: float = 1.0) -> None:
        self.saturating = saturating
        self.real_label = real_label

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss: BCE(D(x), 1) + BCE(D(G(z)), 0)."""
        real = F.binary_cross_entropy_with_logits(
            real_logits, torch.full_like(real_logits, self.real_label))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss: BCE(D(G(z)), 1) (non-saturating) or -BCE(D(G(z)), 0) (saturating)."""
        if self.saturating:
            return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class HingeObjective(Objective):
    """The hinge loss of SAGAN and BigGAN: D minimises `relu(1 - D(x)) + relu(1 + D(G(z)))`,
    G minimises `-D(G(z))`."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -fake_out.mean()


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     *cond: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty `E[(||grad_x D(x_hat)||_2 - 1)^2]`, at points `x_hat` on straight lines
    between real and generated images, with interpolation weights drawn uniformly from [0, 1].

    `create_graph=True` keeps the gradient differentiable, so the penalty itself trains D. It is
    computed in full precision (outside any autocast) and through the uncompiled D
    (`torch.compile` does not support this double backward).
    """
    D = getattr(D, "_orig_mod", D)
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    with torch.autocast(real.device.type, enabled=False):
        x_hat = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
        out = D(x_hat, *cond)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WGANGPObjective(Objective):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic maximises
    `D(x) - D(G(z))`, an estimate of the Wasserstein distance if D is 1-Lipschitz, and the
    penalty pulls D's gradient norm towards 1. The paper's settings: `gp_weight=10`,
    `n_critic=5`, Adam(1e-4, betas=(0.0, 0.9)), no BatchNorm in the critic (the penalty is
    per image; use `norm="layer"` or `"none"`)."""

    def __init__(self, gp_weight: float = 10.0, n_critic: int = 5) -> None:
        self.gp_weight = gp_weight
        self.n_critic = n_critic

    def d_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """Minus the Wasserstein estimate: `mean D(G(z)) - mean D(x)`."""
        return fake_scores.mean() - real_scores.mean()

    def g_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return -fake_scores.mean()

    def penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                *cond: torch.Tensor) -> torch.Tensor:
        return self.gp_weight * gradient_penalty(D, real, fake, *cond)


OBJECTIVES = {
    "bce": BCEObjective,
    "saturating": lambda: BCEObjective(saturating=True),
    "hinge": HingeObjective,
    "wgan-gp": WGANGPObjective,
}
"""Objectives by name (the command line's `--loss`)."""


def make_objective(name: str) -> Objective:
    """The objective called `name`: one of `OBJECTIVES`."""
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown loss {name!r}: choose one of {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[name]()
