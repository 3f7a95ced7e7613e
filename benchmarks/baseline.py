"""The classic tutorials' GAN training, kept in one place as the baseline the benchmarks measure
against: their MLP models (a discriminator ending in `Sigmoid`), their loss (`nn.BCELoss` on
probabilities) and their training step.

`classic_step` computes the same thing as `gan_helpers.training.train_step`, the slow way: the
generator runs twice per step (once for the discriminator's update, once for its own), the
discriminator's weights get gradients they never use during the generator's update, and gradients
are zeroed by filling them with zeros. It works with either kind of discriminator: the classic one
with `ClassicBCE` (probabilities), or this project's models with `BCEObjective` (logits).

- `benchmarks/bench_speed.py` times it on this project's MLP GAN and DCGAN (logits) and reads
  the losses back every step, as the classic tutorials' loss logging does;
- `benchmarks/bench_time_to_quality.py` trains `ClassicGenerator` and `ClassicDiscriminator` with
  it (`ClassicBCE`, new noise for the generator's update).
"""

from __future__ import annotations

import torch
from torch import nn

from gan_helpers.objectives import Objective


class ClassicGenerator(nn.Module):
    """The classic tutorials' MLP generator: 100 -> 256 -> 512 -> 1024 -> 784, tanh."""

    latent_dim = 100

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(100, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, 784), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z).view(-1, 1, 28, 28)


class ClassicDiscriminator(nn.Module):
    """The classic tutorials' MLP discriminator: 784 -> 1024 -> 512 -> 256 -> 1, sigmoid (so it
    returns probabilities, shape `(N, 1)`, not logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 1024), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(256, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.view(x.size(0), 784))


class ClassicBCE(Objective):
    """The classic tutorials' loss: `nn.BCELoss` on a sigmoid discriminator's probabilities.

    The same maths as `BCEObjective` on the logits, computed the unstable way: `BCELoss` clamps
    its log at -100, so a saturated sigmoid gives a loss of 100 and no gradient.
    """

    def __init__(self) -> None:
        self.criterion = nn.BCELoss()

    def d_loss(self, real_probs: torch.Tensor, fake_probs: torch.Tensor) -> torch.Tensor:
        """BCE(D(x), 1) + BCE(D(G(z)), 0)."""
        return (self.criterion(real_probs, torch.ones_like(real_probs))
                + self.criterion(fake_probs, torch.zeros_like(fake_probs)))

    def g_loss(self, fake_probs: torch.Tensor) -> torch.Tensor:
        """BCE(D(G(z)), 1): the non-saturating generator loss."""
        return self.criterion(fake_probs, torch.ones_like(fake_probs))

    @staticmethod
    def probabilities(outputs: torch.Tensor) -> torch.Tensor:
        """The discriminator's outputs are probabilities already."""
        return outputs


def classic_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
                 objective: Objective, *, fresh_noise: bool = False) -> torch.Tensor:
    """One adversarial step as the classic tutorials write it (same maths as `train_step`).

    The generator's update runs G again, on `z` or, with `fresh_noise=True`, on new noise drawn
    after the discriminator's update. Returns `[loss_d, loss_g, mean D(x), mean D(G(z))]` (the
    D values as probabilities) as a tensor on the training device: nothing is read back here.
    """
    to_probs = getattr(objective, "probabilities", torch.sigmoid)  # logits unless it says not
    # Discriminator
    opt_d.zero_grad(set_to_none=False)
    real_out = D(real)
    fake_out = D(G(z).detach())
    loss_d = objective.d_loss(real_out, fake_out)
    loss_d.backward()
    opt_d.step()
    # Generator: a second forward pass through G
    opt_g.zero_grad(set_to_none=False)
    loss_g = objective.g_loss(D(G(torch.randn_like(z) if fresh_noise else z)))
    loss_g.backward()
    opt_g.step()
    return torch.stack([loss_d.detach(), loss_g.detach(), to_probs(real_out.detach()).mean(),
                        to_probs(fake_out.detach()).mean()])
