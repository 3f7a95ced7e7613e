"""Models: shapes, value ranges, logits, and the DCGAN initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.baseline import ClassicDiscriminator, ClassicGenerator
from gan_helpers import models


def linear_widths(module: nn.Module) -> list[int]:
    return [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("kind", sorted(models.MODELS))
def test_shapes_and_ranges(kind):
    torch.manual_seed(0)
    G, D, size = models.build_gan(kind)
    z = torch.randn(4, 100)
    x = G(z)
    assert x.shape == (4, 1, size, size)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x)
    assert logits.shape == (4,)
    assert not isinstance(list(D.modules())[-1], nn.Sigmoid)  # logits, not probabilities
    assert D(torch.full((4, 1, size, size), 5.0)).abs().max() > 0


def test_mlp_sizes_are_the_classic_ones_and_arguments():
    """The lessons' MLP GAN has the classic tutorials' layers (benchmarks.baseline), except that
    D ends in a logit, not a sigmoid."""
    G, D = models.MLPGenerator(), models.MLPDiscriminator()
    assert linear_widths(G) == linear_widths(ClassicGenerator())
    assert linear_widths(D) == linear_widths(ClassicDiscriminator())
    assert linear_widths(G)[-1] == 28 * 28 and linear_widths(D)[-1] == 1
    assert isinstance(list(ClassicDiscriminator().modules())[-1], nn.Sigmoid)
    assert not isinstance(list(D.modules())[-1], nn.Sigmoid)
    assert any(isinstance(m, nn.Dropout) for m in D.modules())
    small = models.MLPGenerator(latent_dim=8, hidden=(16,), batchnorm=True)
    bns = [m for m in small.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(bns) == 1 and bns[0].eps == 1e-5  # not the 0.8 of BatchNorm1d(n, 0.8)
    assert small(torch.randn(3, 8)).shape == (3, 1, 28, 28)


def test_weights_init_gives_the_dcgan_statistics():
    """Convolutions N(0, 0.02) (the paper); BatchNorm scale N(1, 0.02), bias 0 (its code)."""
    torch.manual_seed(0)
    G = models.DCGAN64Generator()
    convs = [m.weight for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    before = torch.cat([w.flatten() for w in convs]).std()
    G.apply(models.weights_init)
    weights = torch.cat([w.detach().flatten() for w in convs])
    assert abs(weights.mean()) < 1e-3 and abs(weights.std() - 0.02) < 1e-3
    assert abs(before - 0.02) > 5e-3  # PyTorch's default init is different: the call matters
    bn = torch.cat([m.weight.detach() for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean() - 1) < 0.01 and abs(bn.std() - 0.02) < 0.01
    assert all((m.bias == 0).all() for m in G.modules() if isinstance(m, nn.BatchNorm2d))


def test_dcgan64_has_two_more_layers_a_side_and_a_4x_wider_widest_layer():
    """What lesson 03 says of the PyTorch tutorial's 64x64 networks against the 28x28 ones."""
    def convolutions(net):
        return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]

    for small, large in [(models.DCGANGenerator(), models.DCGAN64Generator()),
                         (models.DCGANDiscriminator(), models.DCGAN64Discriminator())]:
        assert len(convolutions(large)) == len(convolutions(small)) + 2 == 5
        widest = [max(m.out_channels for m in convolutions(n)) for n in (small, large)]
        assert widest == [128, 512]


def test_build_gan_rejects_unknown_models():
    with pytest.raises(ValueError, match="dcgan64"):
        models.build_gan("resnet")
