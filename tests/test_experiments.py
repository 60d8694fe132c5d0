"""The committed experiments: their runs, their files, and reading them back."""

from __future__ import annotations

import json
import math

import pytest
import torch

from d2l_resnet.extras.cli import main
from d2l_resnet.extras.experiments import (
    DEPTH_NETWORKS,
    RECIPE_ROUNDS,
    TTA_VIEWS,
    depth_runs,
    machine,
    recipe_runs,
    source_lr_runs,
    tta_runs,
    write_results,
)
from d2l_resnet.profiles import get_profile
from d2l_resnet.results import (
    guard_stop,
    longest_stretch_above,
    lr_runs,
    read_json,
    read_results,
    read_run,
    recipe_table,
    seed_spread,
)
from d2l_resnet.train import DivergenceGuard


def test_source_lr_runs_record_every_step_of_each_rate_and_seed() -> None:
    rows = source_lr_runs(lrs=(0.9, 0.05), seeds=[3], steps=2)
    assert [(r["lr"], r["seed"], r["step"]) for r in rows] == \
        [(0.9, 3, 1), (0.9, 3, 2), (0.05, 3, 1), (0.05, 3, 2)]
    first = {r["lr"]: float(r["loss"]) for r in rows if r["step"] == 1}
    # The same initial weights and batch: the first losses agree, the rates differ after.
    assert first[0.9] == pytest.approx(first[0.05])
    with pytest.raises(ValueError, match="234"):      # the most steps in one epoch
        source_lr_runs(steps=300)


def test_recipe_runs_score_the_validation_split_every_epoch_and_flips_at_the_end() -> None:
    tiny = get_profile("quick").replace(train_subset=384, test_subset=64, batch_size=128,
                                        num_epochs=2)
    rows = recipe_runs({"a": {}, "b": {"label_smoothing": 0.0}}, seeds=[0], profile=tiny,
                       validation=256, device="cpu")
    assert [(r["variant"], r["epoch"]) for r in rows] == [("a", 1), ("a", 2), ("b", 1),
                                                          ("b", 2)]
    assert [r["val_acc_flip_tta"] == "" for r in rows] == [True, False, True, False]
    assert all(0 <= float(r["val_acc"]) <= 1 for r in rows)
    table = recipe_table(rows)
    assert [t["variant"] for t in table] == ["a", "b"]
    assert table[0]["mean"] == pytest.approx(float(rows[1]["val_acc"]))


def test_a_variant_can_train_its_last_epochs_without_augmentation() -> None:
    tiny = get_profile("quick").replace(train_subset=384, batch_size=128, num_epochs=2)
    rows = recipe_runs({"a": {}, "b": {"plain_epochs": 1}}, seeds=[0], profile=tiny,
                       validation=256, device="cpu")
    loss = {(r["variant"], r["epoch"]): r["train_loss"] for r in rows}
    assert loss["a", 1] == loss["b", 1]         # the same first epoch, flips and all
    assert loss["a", 2] != loss["b", 2]         # the second on other (unflipped) images
    with pytest.raises(ValueError, match="plain_epochs of 'c' must be from 0 to num_epochs - 1"):
        recipe_runs({"c": {"plain_epochs": 2}}, seeds=[0], profile=tiny, validation=256,
                    device="cpu")


def test_tta_runs_score_one_network_per_seed_with_each_set_of_views() -> None:
    tiny = get_profile("quick").replace(train_subset=384, test_subset=64, batch_size=128,
                                        num_epochs=1)
    views = ["image", "flips", "flips, 1-pixel shifts"]
    rows = tta_runs(seeds=[0, 1], views=views, profile=tiny, validation=256, device="cpu")
    assert [(r["seed"], r["views"], r["passes"]) for r in rows] == [
        (0, "image", 1), (0, "flips", 2), (0, "flips, 1-pixel shifts", 10),
        (1, "image", 1), (1, "flips", 2), (1, "flips, 1-pixel shifts", 10)]
    assert all(0 <= float(r["val_acc"]) <= 1 for r in rows)
    # One network per seed, scored with every set: one training time per seed.
    assert len({r["train_seconds"] for r in rows[:3]}) == 1
    with pytest.raises(ValueError, match=r"'crops'.*'flips'"):
        tta_runs(views=["crops"])


def test_depth_runs_train_each_network_alike_and_record_epochs_and_points() -> None:
    per_epoch, curves = depth_runs(["plain-20", "ResNet-20"], seeds=[0], train_subset=256,
                                   num_epochs=2, batch_size=64, validation=128, device="cpu")
    assert [(r["network"], r["epoch"]) for r in per_epoch] == [
        ("plain-20", 1), ("plain-20", 2), ("ResNet-20", 1), ("ResNet-20", 2)]
    assert all(0 <= float(r["train_err"]) <= 1 and 0 <= float(r["val_acc"]) <= 1
               for r in per_epoch)
    # Four batches an epoch: a point after each, two epochs, two networks.
    assert [float(r["epoch"]) for r in curves[:4]] == [0.25, 0.5, 0.75, 1.0]
    assert len(curves) == 2 * 2 * 4
    with pytest.raises(ValueError, match="'VGG-16'"):
        depth_runs(["VGG-16"])


def test_the_depth_networks_are_the_papers_family() -> None:
    params = {name: sum(p.numel() for p in build().parameters())
              for name, build in DEPTH_NETWORKS.items() if name.endswith(("20", "56", "110"))}
    # He et al. 2015, Table 6: 0.27M, 0.85M and 1.7M parameters (our stage transitions
    # add two 1x1 projections, a few thousand parameters).
    assert round(params["ResNet-20"] / 1e6, 2) == 0.27
    assert round(params["ResNet-56"] / 1e6, 2) == 0.86
    assert round(params["ResNet-110"] / 1e6, 1) == 1.7
    assert params["plain-56"] < params["ResNet-56"]          # no projections


def test_results_are_written_atomically_and_read_back(tmp_path, monkeypatch) -> None:
    rows = [{"lr": 0.9, "seed": 0, "step": 1, "loss": "2.5"}]
    write_results("demo", rows, {"command": "x"}, tmp_path)
    assert read_results("demo", tmp_path) == ([{"lr": "0.9", "seed": "0", "step": "1",
                                                "loss": "2.5"}], {"command": "x"})

    def broken_dumps(*_args, **_kwargs) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", broken_dumps)
    with pytest.raises(OSError, match="disk full"):
        write_results("demo", [{"lr": 1, "seed": 1, "step": 1, "loss": "9"}], {}, tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.csv", "demo.json"]
    assert read_results("demo", tmp_path)[0][0]["loss"] == "2.5"      # the old, whole
    with pytest.raises(FileNotFoundError, match="experiment depth"):
        read_results("depth", tmp_path)


def test_reading_the_lr_runs_and_what_the_guard_would_do() -> None:
    rows = [{"lr": "0.9", "seed": "0", "step": str(i + 1), "loss": str(v)}
            for i, v in enumerate([3.0, 80.0, 9.0, 2.0, 7.0, 7.0, 7.0, 1.0])]
    rows += [{"lr": "0.9", "seed": "1", "step": "1", "loss": "nan"}]
    runs = lr_runs(rows)
    assert list(runs) == [(0.9, 0), (0.9, 1)] and math.isnan(runs[0.9, 1][0])
    assert longest_stretch_above(runs[0.9, 0], 4.6) == 3
    assert longest_stretch_above([5.0, float("nan"), 5.0], 4.6) == 1
    assert guard_stop(runs[0.9, 0], DivergenceGuard(0.9, window=4)) is None
    assert guard_stop(runs[0.9, 0], DivergenceGuard(0.9, window=3)) == 7
    assert guard_stop(runs[0.9, 1], DivergenceGuard(0.9)) == 1


def test_the_committed_results_hold_what_the_notebooks_read() -> None:
    for round_ in RECIPE_ROUNDS:
        rows, meta = read_results(f"recipe_round{round_}")
        assert {r["variant"] for r in rows} == set(RECIPE_ROUNDS[round_])
        assert meta["command"].startswith(f"python -m d2l_resnet experiment recipe --round "
                                          f"{round_}")
    rows, meta = read_results("tta")          # every set of views on each seed's network
    assert [(r["seed"], r["views"]) for r in rows] == [
        (str(seed), views) for seed in range(4) for views in TTA_VIEWS]
    assert meta["command"] == "python -m d2l_resnet experiment tta --seeds 4"
    assert all(int(r["passes"]) == (1 + len(TTA_VIEWS[r["views"]][1])) * 2 for r in rows
               if r["views"] != "image")
    rows, meta = read_results("source_lr")
    assert {float(r["lr"]) for r in rows} == {0.9, 0.05}
    assert meta["command"].startswith("python -m d2l_resnet experiment lr")
    rows, meta = read_results("depth")
    assert {"plain-20", "ResNet-20", "plain-56", "ResNet-56", "plain-18",
            "ResNet-18"} <= {r["network"] for r in rows}
    assert meta["command"].startswith("python -m d2l_resnet experiment depth")
    for name in ("course_cpu_native", "course_cpu_avx2", "course_cpu_zen3", "course_cpu_zen3_b"):
        history, run = read_run(name)
        assert history.test_acc is not None and len(history.epochs) == \
            run["recipe"]["num_epochs"]
        assert run["command"] == f"python -m d2l_resnet train --history results/{name}.json"
    # The same CPU model hours apart, 20.8 and 14.8 minutes: the same run, epoch by epoch.
    first, second = (read_run(name)[0] for name in ("course_cpu_zen3", "course_cpu_zen3_b"))
    for metric in ("train_loss", "train_acc", "test_acc", "points"):
        assert getattr(first, metric) == getattr(second, metric), metric
    assert first.epoch_time != second.epoch_time
    for name in ("bench_train_zen3", "bench_train_zen3_b"):
        bench = read_json(name)
        assert bench["command"] == f"python -m d2l_resnet bench train --out results/{name}.json"
        assert bench["speedup"] == pytest.approx(bench["project"] / bench["source"])
        assert bench["peak_share"] == pytest.approx(
            bench["project"] * bench["flops_per_example"] / 1e9 / bench["peak_gflops"])


def test_experiment_command_refuses_unknown_variants_and_counts(capsys) -> None:
    assert main(["experiment", "recipe", "--variants", "no dropout"]) == 2
    err = capsys.readouterr().err
    assert "'no dropout'" in err and "round 1" in err and "'lr 0.2'" in err
    assert main(["experiment", "lr", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "0" in err


def test_the_machine_records_each_runs_threads_when_runs_share_the_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert machine("cpu")["threads"] == torch.get_num_threads()
    assert machine("cpu", jobs=2)["threads"] == 4        # 8 cores, 2 runs at a time
    assert machine("cpu", jobs=3)["threads"] == 2
    assert machine("cpu", jobs=16)["threads"] == 1
    assert machine("cpu", jobs=2)["cpus"] == 8


def test_the_seed_spread_pools_the_pairs_of_runs() -> None:
    table = [{"val_acc": [0.90, 0.92]}, {"val_acc": [0.93, 0.93]}, {"val_acc": [0.91]}]
    # (0.02^2 / 2 + 0) / 2 = 0.0001: a standard deviation of 0.01.
    assert seed_spread(table) == pytest.approx(0.01)
    # Four seeds around 0.92 add 0.01^2 * 4 over 3 degrees of freedom: (0.0002 + 0.0004)
    # / (1 + 1 + 3) = 0.00012.
    table.append({"val_acc": [0.91, 0.93, 0.91, 0.93]})
    assert seed_spread(table) == pytest.approx(math.sqrt(0.00012))
    with pytest.raises(ValueError, match="two seeds"):
        seed_spread([{"val_acc": [0.9]}])
