"""Flow matching (lesson 09): the path, the loss, the Euler sampler, the generator, and training
with `fit_flow`: checkpoints, exact resume, `load_generator`, the command line's `sample` and
`evaluate`."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_helpers import data, models
from gan_helpers.__main__ import main
from gan_helpers.checkpoints import load_checkpoint, load_generator
from gan_helpers.errors import NonFiniteLossError, UsageError, UsageTypeError
from gan_helpers.flow import (
    FlowGenerator,
    VelocityNet,
    euler_sample,
    flow_matching_loss,
    straight_path,
)
from gan_helpers.stats import STATS
from gan_helpers.training import fit, fit_flow
from tests.helpers import StopAt, cli, small_gan, tiny_loader


class Constant(nn.Module):
    """A velocity that is the same everywhere and at every time."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.v.expand_as(x)


def small_flow(seed: int = 0, steps: int = 2) -> FlowGenerator:
    torch.manual_seed(seed)
    return FlowGenerator(width=8, steps=steps)


def test_the_straight_path_starts_at_the_noise_and_ends_at_the_image():
    noise, real = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
    t = torch.tensor([0.0, 0.5, 1.0])
    x_t = straight_path(noise, real, t)
    assert torch.equal(x_t[0], noise[0])
    assert torch.allclose(x_t[1], (noise[1] + real[1]) / 2)
    assert torch.equal(x_t[2], real[2])


def test_the_loss_is_zero_for_the_lines_own_velocity_and_its_mse_otherwise():
    noise, real = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)
    exact = Constant(torch.full((1, 1, 2, 2), 3.0))
    assert flow_matching_loss(exact, real, noise, torch.rand(1)).item() == 0.0
    off = Constant(torch.full((1, 1, 2, 2), 1.0))
    assert flow_matching_loss(off, real, noise, torch.rand(1)).item() == pytest.approx(4.0)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_euler_steps_follow_a_constant_velocity_exactly(steps):
    noise = torch.randn(4, 1, 2, 2)
    v = torch.randn(1, 1, 2, 2)
    assert torch.allclose(euler_sample(Constant(v), noise, steps), noise + v, atol=1e-6)


def test_euler_sampling_calls_the_network_once_a_step_at_equal_times():
    seen = []

    class Recorder(nn.Module):
        def forward(self, x, t):
            seen.append(t[0].item())
            return torch.zeros_like(x)

    euler_sample(Recorder(), torch.zeros(2, 1, 2, 2), 4)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_the_velocity_net_keeps_the_shape_and_depends_on_time():
    net = VelocityNet(width=8).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        a, b = net(x, torch.zeros(2)), net(x, torch.ones(2))
    assert a.shape == x.shape
    assert not torch.allclose(a, b)


def test_the_flow_generator_is_a_generator_the_package_can_rebuild():
    G = small_flow(steps=3)
    assert G.latent_dim == 784
    images = models.generate(G, torch.randn(5, 784))
    assert images.shape == (5, 1, 28, 28)
    record = models.describe(G)
    assert record == {"class": "FlowGenerator",
                      "args": {"width": 8, "channels": 1, "size": 28, "steps": 3}}
    G.steps = 7  # sampling with other steps is recorded as such
    assert models.build_from_record(models.describe(G)).steps == 7


def test_fit_flow_trains_alone_and_reports_its_loss_as_g(tmp_path):
    G = small_flow()
    before = [p.detach().clone() for p in G.parameters()]
    history = fit_flow(G, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False)
    assert history.stop_reason == "finished"
    assert len(history["loss_g"]) == 16
    assert all(math.isfinite(v) and v > 0 for v in history["loss_g"] + history["grad_g"])
    assert all(math.isnan(v) for k in ("loss_d", "d_real", "d_fake", "grad_d")
               for v in history[k])
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["D"] is None and ckpt["opt_d"] is None
    assert ckpt["run"]["D"] is None and ckpt["run"]["objective"] == "FlowMatching()"
    assert ckpt["run"]["settings"]["lr_g"] == 1e-3 and "lr_d" not in ckpt["run"]["settings"]
    assert (tmp_path / "final.png").exists() and (tmp_path / "grids" / "epoch_002.png").exists()
    assert (tmp_path / "losses.png").exists() and (tmp_path / "history.json").exists()


def run_flow_pieces(tmp_path, stops):
    folder = tmp_path / ("straight" if not stops else "pieces")
    for i, stop in enumerate([*stops, None]):
        G = small_flow(seed=100 + i)  # fresh weights: the checkpoint must restore them
        history = fit_flow(G, tiny_loader(), epochs=3, run_dir=folder, max_steps=stop,
                           resume=i > 0, progress=False)
    return G, history


def test_a_resumed_flow_run_ends_bitwise_as_one_straight_run(tmp_path):
    G1, h1 = run_flow_pieces(tmp_path, [])
    G2, h2 = run_flow_pieces(tmp_path, [5, 13])
    for (name, x), (_, y) in zip(G1.state_dict().items(), G2.state_dict().items()):
        assert torch.equal(x, y), name
    assert [h1["loss_g"], h1["grad_g"]] == [h2["loss_g"], h2["grad_g"]]
    assert all(len(h2[k]) == 24 for k in STATS)


def test_a_flow_run_is_not_resumed_as_a_gan(tmp_path):
    fit_flow(small_flow(), tiny_loader(), epochs=1, run_dir=tmp_path, progress=False)
    G, D = small_gan()
    with pytest.raises(Exception, match="D"):
        fit(G, D, tiny_loader(), epochs=2, run_dir=tmp_path, progress=False)


def test_a_stopped_flow_run_leaves_a_checkpoint_that_samples(tmp_path):
    history = fit_flow(small_flow(steps=2), tiny_loader(), epochs=3, run_dir=tmp_path,
                       progress=False, callbacks=[StopAt(5)])
    assert len(history["loss_g"]) == 5
    G, ckpt = load_generator(tmp_path)
    assert isinstance(G, FlowGenerator) and G.steps == 2 and ckpt["step"] == 5
    out = tmp_path / "samples.png"
    done = cli("sample", str(tmp_path), "--n", "8", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_fit_without_a_discriminator_says_to_use_fit_flow():
    G, _ = small_gan()
    with pytest.raises(UsageError, match="fit_flow"):
        fit(G, None, tiny_loader(), progress=False)


def test_fit_flow_refuses_what_is_not_a_network():
    with pytest.raises(UsageTypeError, match="torch.nn.Module"):
        fit_flow("a generator", tiny_loader(), progress=False)


def test_a_flow_model_for_other_images_is_refused_before_training():
    G = FlowGenerator(width=8, size=32)
    with pytest.raises(UsageError, match="28x28"):
        fit_flow(G, tiny_loader(), progress=False)


def test_a_diverging_flow_run_stops_and_names_the_step(tmp_path):
    G = small_flow()
    opt = torch.optim.SGD(G.parameters(), lr=1e6)
    with pytest.raises(NonFiniteLossError, match="generator's"):
        fit_flow(G, tiny_loader(), epochs=3, opt_g=opt, progress=False)


def test_the_command_line_evaluates_a_flow_run(tiny_data, tmp_path, capsys):
    loader = data.make_loader("fashion-mnist", batch_size=64)
    fit_flow(small_flow(), loader, epochs=1, run_dir=tmp_path / "flow", progress=False)
    assert main(["evaluate", str(tmp_path / "flow"), "--n", "64"]) == 0
    table = capsys.readouterr().out
    assert "checkpoint.pt (step 4)" in table and "FID" in table
