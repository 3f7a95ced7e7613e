"""The loader benchmark: end to end on a tiny dataset (its figures consistent with each other and
with the table it prints), and its median on a clock the test controls (`data.time_loader`'s)."""

from __future__ import annotations

import math
import types

import pytest

from benchmarks import bench_loader
from gan_helpers import data


def test_benchmark_returns_consistent_figures_and_prints_them(tiny_data, capsys):
    results = bench_loader.main(["--limit", "200", "--repeats", "2", "--batch-size", "64"])
    assert set(results) == {"classic", "fast", "ratio"}
    for key in ("classic", "fast"):
        r = results[key]
        assert set(r) == {"batches", "seconds", "batches_per_s"}
        assert r["batches"] == math.ceil(200 / 64)  # the last, partial batch included
        assert r["seconds"] > 0
        assert r["batches_per_s"] == pytest.approx(r["batches"] / r["seconds"], rel=1e-12)
    assert results["ratio"] == pytest.approx(
        results["fast"]["batches_per_s"] / results["classic"]["batches_per_s"], rel=1e-12)

    out = capsys.readouterr().out
    assert "Fashion-MNIST" in out and "200 images" in out and "batch size 64" in out
    assert "median of 2 epoch(s)" in out
    for key in ("classic", "fast"):  # each row shows the figures returned
        r = results[key]
        (row,) = [line for line in out.splitlines() if line.startswith(f"{key}  ")]
        assert row.split()[-3:] == [f"{r['batches']:,}", f"{r['seconds']:.3f}",
                                    f"{r['batches_per_s']:,.0f}"]
    assert out.rstrip().endswith(f"{results['ratio']:.1f}x")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_measure_reports_the_median_epoch(monkeypatch):
    """Three epochs of 4 batches taking 1, 3 and 2 s: the median, 2 s, and 2 batches/s."""
    clock = _FakeClock()
    monkeypatch.setattr(data, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    durations = iter([1.0, 3.0, 2.0])

    class Loader:
        def __iter__(self):
            seconds = next(durations)
            for _ in range(4):
                clock.now += seconds / 4
                yield None, None

    assert bench_loader.measure(Loader(), repeats=3) == {"batches": 4, "seconds": 2.0,
                                                          "batches_per_s": 2.0}


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench_loader.main(["--repeats", "0"])
    with pytest.raises(SystemExit):
        bench_loader.main(["--limit", "0"])
