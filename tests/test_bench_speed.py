"""The speed and dashboard benchmarks, end to end with tiny settings: the figures they return are
consistent with each other, with what they print and with the steps asked for (no timing is
asserted); the images-per-second arithmetic on a clock the test controls."""

from __future__ import annotations

import json
import types

import pytest
import torch

from benchmarks import bench_dashboard, bench_speed
from gan_helpers import data


def test_speed_benchmark_times_the_steps_asked_for_and_reports_consistent_ratios(
        tiny_data, capsys, monkeypatch):
    classic_calls, fit_runs = [], []
    real_step, real_fit = bench_speed.classic_step, bench_speed.fit

    def counting_step(*args, **kwargs):
        classic_calls.append(args[4].shape[0])  # the batch size of `real`
        return real_step(*args, **kwargs)

    def recording_fit(*args, **kwargs):
        history = real_fit(*args, **kwargs)
        fit_runs.append((kwargs["max_steps"], len(history["loss_d"])))
        return history

    monkeypatch.setattr(bench_speed, "classic_step", counting_step)
    monkeypatch.setattr(bench_speed, "fit", recording_fit)
    results = bench_speed.main(["--models", "mlp", "dcgan", "--steps", "2", "--repeats", "1",
                                "--no-memory", "--device", "cpu"])

    # Per model: the project's warm-up run (3 + 3 steps), then one timed repeat of each
    # pipeline: the classic one (1 warm-up step + 2), the project (3 warm-up steps + 2).
    assert len(classic_calls) == 2 * (1 + 2) and set(classic_calls) == {128}
    assert fit_runs == [(6, 6), (5, 5)] * 2  # every step asked for ran, no more

    assert set(results) == {"mlp", "dcgan"}  # no "explore" without --explore
    out = capsys.readouterr().out
    for kind in ("mlp", "dcgan"):
        r = results[kind]
        assert set(r) == {"classic", "project", "ratio"}
        assert r["classic"] > 0 and r["project"] > 0
        assert r["ratio"] == pytest.approx(r["project"] / r["classic"], rel=1e-12)
        (row,) = [line for line in out.splitlines() if line.startswith(f"{kind} ")]
        assert row.split() == [kind, f"{r['classic']:,.0f}", f"{r['project']:,.0f}",
                               f"{r['ratio']:.2f}x", "-", "-"]
    assert "classic img/s" in out and "median of 1" in out and "2 steps per repeat" in out
    assert json.loads(out.strip().splitlines()[-1]) == results  # the JSON line is the result


class _TickingClock:
    """`perf_counter` that advances one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_images_per_second_is_timed_steps_times_batch_over_seconds(tiny_data, monkeypatch):
    """With a clock that reads one second later at each call, timing from the first timed step
    to the end gives exactly steps x batch size images per second; the classic loader is
    iterated again when the timed steps need more than one epoch of it."""
    monkeypatch.setattr(bench_speed, "time", types.SimpleNamespace(
        perf_counter=_TickingClock().perf_counter))
    device = torch.device("cpu")
    classic = data.classic_loader(batch_size=64, indices=range(128))  # 2 batches an epoch
    assert bench_speed.time_classic("mlp", classic, device, steps=3) == 3 * 64
    fast = data.make_loader(batch_size=64, device=device)
    assert bench_speed.time_project("mlp", fast, device, steps=2) == 2 * 64


def test_dashboard_benchmark_runs_in_a_kernel_and_prints_what_it_returns(tiny_data, capsys):
    medians = bench_dashboard.main(["--model", "mlp", "--steps", "2", "--repeats", "1",
                                    "--refresh", "0.0", "--limit", "256"])
    assert set(medians) == {"off", "on, refresh 0.0 s"} and all(v > 0 for v in medians.values())
    out = capsys.readouterr().out
    assert "mlp, 2 steps a run, median of 1" in out
    for name, value in medians.items():
        (row,) = [line for line in out.splitlines() if line.startswith(name + " ")]
        overhead = 100 * (1 - value / medians["off"])
        assert row.split()[-2:] == [f"{value:,.0f}", f"{overhead:.1f}%"]
    assert "0.0%" in [line for line in out.splitlines() if line.startswith("off ")][0]
