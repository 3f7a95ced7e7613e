"""The speed and dashboard benchmarks run end to end with tiny settings (no timing asserted)."""

from __future__ import annotations

import math

from benchmarks import bench_dashboard, bench_speed


def test_speed_benchmark_runs_and_reports_ratios(tiny_data, capsys):
    results = bench_speed.main(["--models", "mlp", "dcgan", "--steps", "2", "--repeats", "1",
                                "--no-memory", "--device", "cpu"])
    for kind in ("mlp", "dcgan"):
        assert results[kind]["classic"] > 0 and results[kind]["project"] > 0
        assert math.isclose(results[kind]["ratio"],
                            results[kind]["project"] / results[kind]["classic"])
    out = capsys.readouterr().out
    assert "classic img/s" in out and "dcgan" in out


def test_dashboard_benchmark_runs_in_a_kernel(tiny_data, capsys):
    medians = bench_dashboard.main(["--model", "mlp", "--steps", "2", "--repeats", "1",
                                    "--refresh", "0.0", "--limit", "256"])
    assert set(medians) == {"off", "on, refresh 0.0 s"} and all(v > 0 for v in medians.values())
    assert "overhead" in capsys.readouterr().out
