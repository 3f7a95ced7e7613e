"""The time-to-quality benchmark: its classic baseline (benchmarks.baseline) trains exactly as
the classic tutorials' loop, its clock leaves the weight copies out, the EMA configurations are
scored by the average, each configuration trains its recipe with its batch size, the figures
over seeds, its options, and a `--quick` run end to end."""

from __future__ import annotations

import json
import math
import statistics
import types

import pytest
import torch
from PIL import Image
from torch import nn

from benchmarks import bench_time_to_quality as bench
from benchmarks.baseline import ClassicBCE, ClassicDiscriminator, ClassicGenerator, classic_step
from gan_helpers import config, timing
from gan_helpers.callbacks import WallClockBudget
from gan_helpers.recipes import TUNED_BATCH_SIZE, Recipe
from gan_helpers.training import native_bf16
from tests.helpers import tiny_loader


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


def test_smoke_mode_shrinks_a_budget_and_keeps_its_proportions(monkeypatch):
    monkeypatch.setattr(config, "SMOKE", False)
    assert config.smoke_times([15, 30, 60]) == [15, 30, 60]
    monkeypatch.setattr(config, "SMOKE", True)
    assert config.smoke_times([15, 30, 60]) == [0.5, 1.0, 2.0]
    assert config.smoke_times([0.25, 0.5]) == [0.25, 0.5]  # short enough already
    assert WallClockBudget([30, 60]).snapshots.times == [1.0, 2.0]


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


@pytest.mark.parametrize("ema", [None, 0.999])
def test_project_snapshots_are_of_the_generator_that_samples(ema):
    """With EMA, the snapshots (so the scores) are the average's weights, not G's."""
    G, snapshots = bench.train_project(Recipe(model="mlp", ema=ema), tiny_loader(), [1e-6],
                                       torch.device("cpu"), seed=0)
    taken = snapshots.taken[-1]
    assert taken["step"] == 1  # the budget is used after the first step: G is as snapshotted
    same = all(torch.equal(v, taken["weights"][k]) for k, v in G.state_dict().items())
    assert same == (ema is None)


def test_budget_schedule_sets_both_learning_rates_from_the_budgets_clock(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    G, D = nn.Linear(2, 2), nn.Linear(2, 2)
    state = types.SimpleNamespace(opt_g=torch.optim.Adam(G.parameters(), lr=4e-4),
                                  opt_d=torch.optim.Adam(D.parameters(), lr=2e-4))
    budget = bench.WallClockBudget([2.0])
    schedule = bench.BudgetSchedule(budget.snapshots, "linear")
    budget.on_fit_start(state)
    schedule.on_fit_start(state)
    clock.now += 0.5
    schedule.on_step_end(state)
    assert state.opt_g.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert state.opt_d.param_groups[0]["lr"] == pytest.approx(1.5e-4)
    with budget.snapshots.clock.paused():  # time spent on snapshots does not count
        clock.now += 100.0
    clock.now += 1.0
    schedule.on_step_end(state)
    assert state.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)  # 1.5 s of 2


def test_project_training_runs_with_a_schedule_and_speed_options():
    G, snapshots = bench.train_project(Recipe(), tiny_loader(), [1e-6], torch.device("cpu"),
                                       seed=0, schedule="linear", speed=(("channels_last", True),))
    assert snapshots.taken[-1]["step"] == 1


def test_every_configuration_is_described_with_its_schedule_and_speed_options():
    args = bench.parse_args([])
    for key, cfg in bench.CONFIGS.items():
        described = bench.describe_config(key, args, torch.device("cpu"))
        if cfg.preset is None:
            continue
        assert described["lr_schedule"] == cfg.lr_schedule, key
        bench.lr_factor(cfg.lr_schedule, 0.5)  # a known schedule
        assert all(described[name] == value for name, value in cfg.speed), key
        cfg.preset.recipe.settings()  # a valid recipe
    assert set(bench.DEFAULT_CONFIGS) < set(bench.CONFIGS)
    flow = bench.describe_config("flow", args, torch.device("cpu"))
    assert (flow["model"], flow["batch_size"], flow["sampling_steps"]) == ("flow", 64, 16)
    # The package's default is the lever measured as tuned-lr8.
    default, lever = bench.CONFIGS["default"], bench.CONFIGS["tuned-lr8"]
    assert (default.preset, default.lr_schedule) == (lever.preset, lever.lr_schedule) == (
        lever.preset, None)
    assert bench.describe_config("default", args, torch.device("cpu"))["lr_g"] == 8e-4
    # A lever's schedule comes from the configuration, or else from its preset.
    scheduled = bench.Config("x", lever.preset._replace(lr_schedule="late-linear"))
    assert scheduled.lr_schedule == "late-linear"
    assert bench.Config("x", scheduled.preset, "linear").lr_schedule == "linear"
    lever = bench.describe_config("tuned-lr8-hinge-cl-late-decay", args, torch.device("cpu"))
    assert (lever["lr_g"], lever["channels_last"], lever["lr_schedule"]) == (8e-4, True,
                                                                           "late-linear")


def test_summary_gives_the_mean_and_range_over_seeds_and_reaches_on_the_mean_curve():
    runs = [{"curve": [{"time": 1.0, "fid": 10.0, "coverage": 8, "classes": 10},
                       {"time": 2.0, "fid": 6.0, "coverage": 9, "classes": 10}],
             "steps": 20, "time_to_target": None},
            {"curve": [{"time": 1.0, "fid": 14.0, "coverage": 7, "classes": 10},
                       {"time": 2.0, "fid": 4.0, "coverage": 10, "classes": 10}],
             "steps": 30, "time_to_target": 2.0}]
    summary = bench.summarize(runs, target=5.5)
    assert summary["curve"] == [
        {"time": 1.0, "fid_mean": 12.0, "fid_min": 10.0, "fid_max": 14.0,
         "fid_std": pytest.approx(statistics.stdev([10.0, 14.0]))},
        {"time": 2.0, "fid_mean": 5.0, "fid_min": 4.0, "fid_max": 6.0,
         "fid_std": pytest.approx(statistics.stdev([6.0, 4.0]))}]
    assert (summary["time_to_target"], summary["previous_time"]) == (2.0, 1.0)  # mean 5 <= 5.5
    assert summary["seeds_reaching_target"] == 1
    assert summary["coverage_at_end"] == {"mean": 9.5, "min": 9, "max": 10,
                                          "std": pytest.approx(math.sqrt(0.5))}
    assert summary["steps"]["mean"] == 25 and summary["classes"] == 10
    assert "time_to_target" not in bench.summarize(runs, target=None)
    assert bench.spread([3.0])["std"] == 0.0


def test_options_full_quick_and_configs(capsys):
    full = bench.parse_args([])
    assert full.configs == ["classic", "mlp", "dcgan", "dcgan-ema", "tuned", "tuned-ema",
                            "tuned-bf16", "tuned-ema-bf16", "tuned-ttur"]
    assert full.seeds == 3
    assert full.budget == 300 and full.times == [30, 60, 120, 300] and full.samples == 5000
    quick = bench.parse_args(["--quick"])
    assert (quick.budget, quick.times, quick.seeds, quick.samples) == (0.5, [0.25, 0.5], 2, 100)
    assert quick.classifier_limit == 256 and quick.classifier_epochs == 1
    mixed = bench.parse_args(["--quick", "--seeds", "1", "--budget", "2",
                              "--configs", "dcgan-ema, dcgan,dcgan-ema"])
    assert (mixed.seeds, mixed.budget, mixed.times) == (1, 2, [1.0, 2.0])  # the options win
    assert mixed.configs == ["dcgan-ema", "dcgan"]
    unknown = ("unknown configuration gan: pick from classic, mlp, dcgan, dcgan-ema, tuned, "
               "tuned-ema, tuned-bf16, tuned-ema-bf16, tuned-ttur")
    for args, message in ((["--configs", "dcgan,gan"], unknown),
                          (["--seeds", "0"], "--seeds must be at least 1")):
        with pytest.raises(SystemExit) as exit_:
            bench.parse_args(args)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_quick_run_writes_every_number_and_the_plot(tiny_data, tmp_path, capsys):
    out = tmp_path / "bench"
    results = bench.main(["--quick", "--out", str(out)])
    assert json.loads((out / "results.json").read_text()) == results  # every number, as JSON
    partial = json.loads((out / "partial.json").read_text())  # written after the last run too

    def measured(models):  # what each run measured (the summary adds its time to the target)
        return {name: [{k: run[k] for k in ("seed", "curve", "steps")} for run in model["runs"]]
                for name, model in models.items()}

    assert measured(partial["models"]) == measured(results["models"])
    assert list(results["models"]) == ["classic MLP (baseline)", "MLP GAN", "DCGAN",
                                       "DCGAN + EMA", "DCGAN, tuned", "DCGAN, tuned + EMA",
                                       "DCGAN, tuned, bf16", "DCGAN, tuned + EMA, bf16",
                                       "DCGAN, tuned, TTUR"]
    settings = {m["config"]: m["settings"] for m in results["models"].values()}
    assert settings["classic"] == {"batch_size": 64}  # --quick's batch size
    assert settings["dcgan"]["batch_size"] == 64 and "g_kwargs" not in settings["dcgan"]
    tuned, averaged = settings["tuned"], settings["tuned-ema"]
    assert tuned["batch_size"] == TUNED_BATCH_SIZE == averaged["batch_size"]
    assert tuned["g_kwargs"] == {"width": 32} and tuned["lr_d"] == 4e-4 and tuned["ema"] is None
    assert averaged["ema"] == bench.EMA_DECAY and averaged["g_kwargs"] == {"width": 32}
    assert not tuned["bf16"] and settings["tuned-bf16"]["amp"] == "auto"
    assert settings["tuned-bf16"]["bf16"] == native_bf16("cpu")  # on only where native
    assert (settings["tuned-ttur"]["lr_g"], settings["tuned-ttur"]["lr_d"]) == (1e-4, 4e-4)
    assert results["seeds"] == [0, 1] and results["ema_decay"] == bench.EMA_DECAY
    for model in results["models"].values():
        runs = model["runs"]
        assert [run["seed"] for run in runs] == [0, 1]
        for run in runs:
            assert [p["time"] for p in run["curve"]] == [0.25, 0.5]
            assert all(math.isfinite(p["fid"]) and p["step"] >= 1 for p in run["curve"])
        for i, point in enumerate(model["summary"]["curve"]):
            fids = [run["curve"][i]["fid"] for run in runs]
            assert point["fid_mean"] == pytest.approx(sum(fids) / 2)
            assert point["fid_min"] == min(fids) <= point["fid_mean"] <= max(fids)
            assert point["fid_max"] == max(fids)
        assert [p["time"] for p in model["table"]] == [0.25, 0.5]
        assert 1 <= model["summary"]["coverage_at_end"]["mean"] <= 10
    baseline = results["models"]["classic MLP (baseline)"]["runs"]
    assert results["target"] == pytest.approx(sum(r["curve"][-1]["fid"] for r in baseline) / 2)

    plot = Image.open(out / "fid_over_time.png")
    assert plot.format == "PNG" and plot.width >= 600 and plot.height >= 300
    colours = plot.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 10  # lines and bands were drawn
    printed = capsys.readouterr().out
    assert "DCGAN + EMA" in printed and "time to reach" in printed
    assert "Mean over 2 seeds" in printed and str(out / "results.json") in printed


def test_without_the_baseline_there_is_no_time_to_reach(tiny_data, tmp_path, capsys):
    results = bench.main(["--quick", "--seeds", "1", "--configs", "dcgan-ema",
                          "--out", str(tmp_path)])
    assert list(results["models"]) == ["DCGAN + EMA"] and results["target"] is None
    assert results["best"] is None and not results["target_met"]
    assert "needs the classic baseline" in capsys.readouterr().out
    assert (tmp_path / "fid_over_time.png").exists()


def test_the_flow_model_races_on_the_same_ruler(tiny_data, tmp_path, capsys):
    results = bench.main(["--quick", "--seeds", "1", "--configs", "flow", "--out", str(tmp_path)])
    (run,) = results["models"][bench.FLOW_NAME]["runs"]
    assert [point["time"] for point in run["curve"]] == [0.25, 0.5]
    assert run["steps"] >= 1 and math.isfinite(run["curve"][-1]["fid"])
    assert results["models"][bench.FLOW_NAME]["settings"]["model"] == "flow"


def test_each_configuration_trains_its_recipe_with_its_batch_size(monkeypatch):
    calls, loaders = [], []

    def make_loader(dataset, batch_size, device):
        loaders.append(tiny_loader(batch_size=batch_size))
        return loaders[-1]

    monkeypatch.setattr(bench.data, "make_loader", make_loader)
    monkeypatch.setattr(bench, "train_project", lambda recipe, loader, times, device, seed, amp, *_:
                        calls.append((recipe, loader.seed, loader.batch_size, amp)))
    train = bench.trainers(["mlp", "dcgan", "dcgan-ema", "tuned", "tuned-ema", "tuned-bf16"],
                           "fashion-mnist", [1.0], torch.device("cpu"), batch_size=32)
    assert list(train) == ["MLP GAN", "DCGAN", "DCGAN + EMA", "DCGAN, tuned",
                           "DCGAN, tuned + EMA", "DCGAN, tuned, bf16"]
    for trainer in train.values():
        trainer(2)
    assert calls == [(Recipe(model="mlp"), 2, 32, None), (Recipe(), 2, 32, None),
                     (Recipe(ema=bench.EMA_DECAY), 2, 32, None),
                     (bench.FIRST_TUNED, 2, TUNED_BATCH_SIZE, None),
                     (Recipe(width=32, lr_g=4e-4, lr_d=4e-4, ema=bench.EMA_DECAY), 2,
                      TUNED_BATCH_SIZE, None), (bench.FIRST_TUNED, 2, TUNED_BATCH_SIZE, "auto")]
    assert [loader.batch_size for loader in loaders] == [32, TUNED_BATCH_SIZE]  # one per size
    assert all(loader.seed == 0 for loader in loaders)  # each seed trains on a copy


def test_combine_merges_the_configurations_of_earlier_runs(tiny_data, tmp_path, capsys):
    def run(name, *args):
        return bench.main(["--quick", "--seeds", "1", *args, "--out", str(tmp_path / name)])

    baseline, tuned = run("a", "--configs", "classic"), run("b", "--configs", "tuned")
    assert tuned["target"] is None
    files = [str(tmp_path / name / "results.json") for name in ("a", "b")]
    both = bench.main(["--combine", *files, "--out", str(tmp_path / "ab")])
    assert list(both["models"]) == ["classic MLP (baseline)", "DCGAN, tuned"]
    assert both["target"] == baseline["target"] and both["combined_from"] == files
    runs = both["models"]["DCGAN, tuned"]["runs"]
    assert [p["fid"] for p in runs[0]["curve"]] == [
        p["fid"] for p in tuned["models"]["DCGAN, tuned"]["runs"][0]["curve"]]
    assert "time_to_target" in runs[0] and "seeds_reaching_target" in (
        both["models"]["DCGAN, tuned"]["summary"])
    assert json.loads((tmp_path / "ab" / "results.json").read_text()) == both
    assert (tmp_path / "ab" / "fid_over_time.png").exists()
    assert "DCGAN, tuned" in capsys.readouterr().out

    with pytest.raises(SystemExit, match="DCGAN, tuned is in more than one of the files"):
        bench.main(["--combine", files[1], files[1], "--out", str(tmp_path / "bb")])
    run("c", "--configs", "dcgan", "--budget", "0.4")
    with pytest.raises(SystemExit, match="has budget 0.4"):
        bench.main(["--combine", files[0], str(tmp_path / "c" / "results.json"),
                    "--out", str(tmp_path / "ac")])


def test_verdict_takes_the_first_to_reach_the_target_and_breaks_ties_by_the_final_fid():
    def model(reach, final, lowest_coverage=10):
        return {"summary": {"time_to_target": reach, "curve": [{"fid_mean": final}],
                            "coverage_at_end": {"min": lowest_coverage}, "classes": 10}}

    models = {bench.BASELINE: model(300.0, 100.0), "a": model(45.0, 36.0),
              "b": model(30.0, 39.0), "c": model(30.0, 37.0), "d": model(None, 35.0)}
    results = {"target": 100.0, "budget": 300.0, "models": models}
    assert bench.verdict(results) == ("c", True)
    models["c"] = model(30.0, 37.0, lowest_coverage=9)  # a seed lost a class
    assert bench.verdict(results) == ("c", False)
    results["models"] = {bench.BASELINE: model(300.0, 100.0), "a": model(90.0, 50.0)}
    assert bench.verdict(results) == ("a", False)  # later than a fifth of the budget
