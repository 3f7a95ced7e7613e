"""Flow matching (lesson 09): a generator that is not trained against a discriminator.

Draw noise `x0` and a real image `x1`, walk the straight line between them,
`x_t = (1 - t) x0 + t x1`, and teach a network the velocity along it, `x1 - x0` (Lipman et al.
2023; rectified flow, Liu et al. 2023). To draw an image, start from noise and follow the learnt
velocity from t = 0 to t = 1 in Euler steps.

    G = FlowGenerator()                # noise (N, 784) -> images in 16 Euler steps, like a GAN's G
    history = fit_flow(G, loader, epochs=3, run_dir="runs/fashion-mnist/flow")

`FlowGenerator` maps noise to images as every generator here does, so grids, `generate`,
`Evaluator`, checkpoints, `sample` and `evaluate` treat it as they treat a GAN's generator;
`training.fit_flow` trains it with `fit`'s loop and callbacks (`flow_step` is its step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import native_bf16
from .stats import grad_norm

FLOW_WIDTH = 16
"""The `VelocityNet`'s channels at full size in lesson 09 and the benchmark: on a 2-core CPU, 16
reached a lower FID in 120 s than 32 (107.6 against 126.9 on Fashion-MNIST, 16 Euler steps)."""
FLOW_BATCH_SIZE = 64
FLOW_LR = 1e-3
"""Adam's learning rate for flow matching (betas (0.9, 0.999)): `training.fit_flow`'s default."""
FLOW_STEPS = 16
"""Euler steps per image when sampling (each one a network evaluation)."""


def straight_path(noise: torch.Tensor, real: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point at time `t` (one per image, in [0, 1]) on the line from `noise` to `real`."""
    t = t.view(-1, *[1] * (real.dim() - 1))
    return (1 - t) * noise + t * real


def flow_matching_loss(velocity: nn.Module, real: torch.Tensor, noise: torch.Tensor,
                       t: torch.Tensor) -> torch.Tensor:
    """The mean squared error between the network's velocity at `x_t` and the line's, `real -
    noise` (the same at every point of a straight line)."""
    x_t = straight_path(noise, real, t)
    return F.mse_loss(velocity(x_t, t).float(), (real - noise).float())


@torch.no_grad()
def euler_sample(velocity: nn.Module, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Follow the velocity from `noise` (t = 0) to t = 1 in `steps` equal Euler steps: one
    network evaluation each."""
    x, dt = noise, 1.0 / steps
    for i in range(steps):
        t = torch.full((len(x),), i * dt, device=x.device)
        x = x + dt * velocity(x, t)
    return x


class TimeEmbedding(nn.Module):
    """The time t in [0, 1] as sines and cosines of `dim // 2` frequencies (as a Transformer
    embeds positions), then a small MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), dim // 2)))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class Block(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU; the time embedding is added between them,
    one number per channel."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.time = nn.Linear(t_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c_out)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = h + self.time(t_emb)[:, :, None, None]
        return F.silu(self.norm2(self.conv2(h)))


class VelocityNet(nn.Module):
    """A small U-Net for 28x28 images: (x_t, t) -> the velocity at x_t, shaped like x_t.

    28x28 -> 14x14 -> 7x7 and back up, each level's features passed across to the way up
    (the U-Net's skip connections), `width` channels at the top and twice that below."""

    def __init__(self, width: int = 32, channels: int = 1):
        super().__init__()
        w, t_dim = width, 4 * width
        self.time = TimeEmbedding(t_dim)
        self.down1 = Block(channels, w, t_dim)                       # 28x28
        self.down2 = Block(w, 2 * w, t_dim)                          # 14x14
        self.mid = Block(2 * w, 2 * w, t_dim)                        # 7x7
        self.lift3 = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2)    # 7x7 -> 14x14
        self.up2 = Block(4 * w, 2 * w, t_dim)                        # 14x14, with down2's
        self.lift2 = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2)    # 14x14 -> 28x28
        self.up1 = Block(3 * w, w, t_dim)                            # 28x28, with down1's
        self.out = nn.Conv2d(w, channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.time(t)
        h1 = self.down1(x, e)
        h2 = self.down2(F.avg_pool2d(h1, 2), e)
        h3 = self.mid(F.avg_pool2d(h2, 2), e)
        u2 = self.up2(torch.cat([self.lift3(h3), h2], dim=1), e)
        u1 = self.up1(torch.cat([self.lift2(u2), h1], dim=1), e)
        return self.out(u1)


class FlowGenerator(nn.Module):
    """A flow-matching model as a generator: noise `(N, C*H*W)` -> images `(N, C, H, W)` in
    `steps` Euler steps along `velocity`. `steps` may change after training (`model_args` records
    it). It samples in bf16 where that is native: on a 2-core CPU with AMX, in half the time, FID
    +0.3 (133.5 against 133.1 for 2,000 samples of Fashion-MNIST, 16 steps)."""

    def __init__(self, width: int = FLOW_WIDTH, channels: int = 1, size: int = 28,
                 steps: int = FLOW_STEPS):
        super().__init__()
        self.image_shape = (channels, size, size)
        self.latent_dim = channels * size * size
        self.steps = steps
        self.width = width
        self.velocity = VelocityNet(width, channels)

    @property
    def model_args(self) -> dict:
        """What rebuilds it (`models.describe`); `steps` as it is now."""
        return dict(width=self.width, channels=self.image_shape[0], size=self.image_shape[1],
                    steps=self.steps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        noise = z.view(-1, *self.image_shape)
        with torch.autocast(z.device.type, torch.bfloat16, enabled=native_bf16(z.device)):
            return euler_sample(self.velocity, noise, self.steps).float()


class FlowMatching:
    """The flow-matching objective, for `fit`'s record of the run (`repr`) and its step
    (`flow_step`): the velocity loss along straight paths."""

    loss = staticmethod(flow_matching_loss)

    def __repr__(self) -> str:
        return "FlowMatching()"


def flow_step(G: FlowGenerator, D: None, opt_g: torch.optim.Optimizer, opt_d: None,
              real: torch.Tensor, z: torch.Tensor, objective: FlowMatching,
              **unused: object) -> torch.Tensor:
    """One flow-matching step, with `train_step`'s signature (so `fit` can run it): the noise is
    `fit`'s `z` as images, the times uniform in [0, 1]. Returns `STATS`: the loss as `loss_g`,
    G's gradient norm as `grad_g`, NaN for what only a discriminator has."""
    t = torch.rand(len(real), device=real.device)
    loss = objective.loss(G.velocity, real, z.view_as(real), t)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    grad_g = grad_norm(G)
    opt_g.step()
    nan = torch.full_like(grad_g, float("nan"))
    return torch.stack([nan, loss.detach(), nan, nan, nan, grad_g])
