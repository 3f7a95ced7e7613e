"""The classic tutorials' training step, kept as the baseline the benchmarks measure against.

It computes the same thing as `training.train_step`, the slow way: the generator runs twice per
step (once for the discriminator's update, once for its own), the discriminator's weights get
gradients they never use during the generator's update, gradients are zeroed by filling them
with zeros, and each loss is read back with `.item()` every step.
"""

from __future__ import annotations

import torch
from torch import nn

from .objectives import BCEObjective


def plain_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
               objective: BCEObjective) -> torch.Tensor:
    """One adversarial step as the classic tutorials write it (same maths as `train_step`)."""
    # Discriminator
    opt_d.zero_grad(set_to_none=False)
    real_logits = D(real)
    fake_logits = D(G(z).detach())
    loss_d = objective.d_loss(real_logits, fake_logits)
    loss_d.backward()
    opt_d.step()
    # Generator: a second forward pass through G
    opt_g.zero_grad(set_to_none=False)
    loss_g = objective.g_loss(D(G(z)))
    loss_g.backward()
    opt_g.step()
    stats = [loss_d.item(), loss_g.item(), torch.sigmoid(real_logits).mean().item(),
             torch.sigmoid(fake_logits).mean().item()]
    return torch.tensor(stats)
