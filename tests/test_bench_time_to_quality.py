"""The time-to-quality benchmark's parts: its classic baseline (gan_helpers.baseline) trains
exactly as the classic tutorials' loop, its clock leaves the weight copies out, and the
time-to-reach figure. (The benchmark end to end: tests/test_evaluation.py.)"""

from __future__ import annotations

import types

import pytest
import torch
from conftest import tiny_loader
from torch import nn

from benchmarks import bench_time_to_quality as bench
from gan_helpers import timing
from gan_helpers.baseline import ClassicBCE, ClassicDiscriminator, ClassicGenerator, classic_step


def classic_tutorial_loop(G, D, opt_g, opt_d, batches):
    """The classic tutorials' loop, written out as they write it (the benchmark's own loop
    before it used `classic_step`): the reference."""
    criterion = nn.BCELoss()
    for real in batches:
        n = real.size(0)
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        opt_d.zero_grad()
        fake = G(torch.randn(n, 100)).detach()
        loss_d = criterion(D(real), ones) + criterion(D(fake), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = G(torch.randn(n, 100))
        loss_g = criterion(D(fake), ones)
        loss_g.backward()
        opt_g.step()


def test_classic_step_trains_exactly_as_the_classic_tutorials_loop():
    batches = [real for real, _ in tiny_loader(n=96, batch_size=32).batches(0)]
    results = []
    for use_step in (False, True):
        torch.manual_seed(0)
        G, D = ClassicGenerator(), ClassicDiscriminator()
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        if use_step:
            stats = [classic_step(G, D, opt_g, opt_d, real, torch.randn(real.size(0), 100),
                                  ClassicBCE(), fresh_noise=True) for real in batches]
        else:
            classic_tutorial_loop(G, D, opt_g, opt_d, batches)
        results.append({**G.state_dict(), **{f"D.{k}": v for k, v in D.state_dict().items()}})
    for name, value in results[0].items():
        assert torch.equal(value, results[1][name]), name  # the same random draws, in order
    stats = torch.stack(stats)
    assert stats.shape == (3, 4) and torch.isfinite(stats).all()
    assert ((stats[:, 2:] > 0) & (stats[:, 2:] < 1)).all()  # D's outputs are probabilities


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _SlowToCopy(nn.Module):
    """A generator whose weights take `clock_seconds` (on the fake clock) to copy."""

    def __init__(self, clock: _FakeClock, clock_seconds: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))
        self.clock, self.clock_seconds = clock, clock_seconds

    def state_dict(self, *args, **kwargs):
        self.clock.now += self.clock_seconds
        return super().state_dict(*args, **kwargs)


def test_snapshots_leave_the_time_spent_copying_weights_out(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    budget = bench.WallClockBudget([1.0, 2.0])
    clock.now = 50.0
    budget.on_fit_start(None)  # the clock starts with training, not when the budget is made
    snapshots, G = budget.snapshots, _SlowToCopy(clock, clock_seconds=10.0)

    clock.now = 50.5
    assert not snapshots.check(G, step=1) and snapshots.taken == []
    clock.now = 51.5
    assert not snapshots.check(G, step=2)  # takes the 1-s snapshot, which costs 10 s
    clock.now += 0.7  # 0.7 s more of training: 2.2 s in all, the 10 s of copying left out
    assert snapshots.check(G, step=3)  # the 2-s snapshot: the budget is used
    assert [(s["time"], s["step"]) for s in snapshots.taken] == [(1.0, 2), (2.0, 3)]
    assert [s["elapsed"] for s in snapshots.taken] == pytest.approx([1.5, 2.2])
    assert isinstance(snapshots.clock, timing.Stopwatch)


def test_train_classic_takes_every_snapshot_and_stops_at_the_budget(tiny_data):
    G, snapshots = bench.train_classic("fashion-mnist", [0.05, 0.1], torch.device("cpu"),
                                       seed=0, batch_size=64)
    assert isinstance(G, ClassicGenerator)
    assert [s["time"] for s in snapshots.taken] == [0.05, 0.1]
    assert all(s["elapsed"] >= s["time"] for s in snapshots.taken)
    assert 1 <= snapshots.taken[0]["step"] <= snapshots.taken[1]["step"]
    assert set(snapshots.taken[-1]["weights"]) == set(G.state_dict())


def test_time_to_reach_gives_the_first_time_at_or_below_the_target_and_the_one_before():
    curve = [{"time": 10.0, "fid": 9.0}, {"time": 20.0, "fid": 5.0}, {"time": 30.0, "fid": 4.0}]
    assert bench.time_to_reach(curve, 5.0) == (20.0, 10.0)
    assert bench.time_to_reach(curve, 9.5) == (10.0, 0.0)
    assert bench.time_to_reach(curve, 1.0) == (None, 30.0)
