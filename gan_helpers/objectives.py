"""GAN losses, computed from the discriminator's logits.

`BCEWithLogitsLoss(logit, 1)` equals `BCELoss(sigmoid(logit), 1)` = `-log sigmoid(logit)`, but
computes it as `softplus(-logit)`, which never takes the log of a number rounded to 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BCEObjective:
    """The original GAN objective with binary cross-entropy on logits.

    - discriminator: real images labelled 1 (or `real_label`, e.g. 0.9 for one-sided label
      smoothing), generated images labelled 0;
    - generator, non-saturating (default): generated images labelled 1, i.e. minimise
      `-log D(G(z))`;
    - generator, `saturating=True`: the minimax original, minimise `log(1 - D(G(z)))`, whose
      gradient vanishes exactly when the discriminator wins (lesson 00 plots both).
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

    def __repr__(self) -> str:
        return f"BCEObjective(saturating={self.saturating}, real_label={self.real_label})"
