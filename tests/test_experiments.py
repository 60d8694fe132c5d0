"""The committed experiments: their runs, their files, and reading them back."""

from __future__ import annotations

import json
import math

import pytest

from d2l_resnet.cli import main
from d2l_resnet.experiments import (
    RECIPE_ROUNDS,
    guard_stop,
    longest_stretch_above,
    lr_runs,
    read_course_log,
    read_results,
    recipe_runs,
    recipe_table,
    source_lr_runs,
    write_results,
)
from d2l_resnet.profiles import get_profile
from d2l_resnet.train import DivergenceGuard


def test_source_lr_runs_record_every_step_of_each_rate_and_seed() -> None:
    rows = source_lr_runs(lrs=(0.9, 0.05), seeds=[3], steps=2)
    assert [(r["lr"], r["seed"], r["step"]) for r in rows] == \
        [(0.9, 3, 1), (0.9, 3, 2), (0.05, 3, 1), (0.05, 3, 2)]
    first = {r["lr"]: float(r["loss"]) for r in rows if r["step"] == 1}
    # The same initial weights and batch: the first losses agree, the rates differ after.
    assert first[0.9] == pytest.approx(first[0.05])
    with pytest.raises(ValueError, match="steps must be at most 234"):
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
    with pytest.raises(FileNotFoundError, match="python -m d2l_resnet experiment nothing"):
        read_results("nothing", tmp_path)


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


def test_the_committed_results_hold_what_the_notebook_reads() -> None:
    for name in ("recipe_round1", "recipe_round2"):
        rows, meta = read_results(name)
        round_ = int(name[-1])
        assert {r["variant"] for r in rows} == set(RECIPE_ROUNDS[round_])
        assert meta["command"].startswith(f"python -m d2l_resnet experiment recipe --round "
                                          f"{round_}")
    rows, meta = read_results("source_lr")
    assert {float(r["lr"]) for r in rows} == {0.9, 0.05}
    assert meta["command"].startswith("python -m d2l_resnet experiment lr")


def test_experiment_command_refuses_unknown_variants(capsys) -> None:
    assert main(["experiment", "recipe", "--variants", "no dropout"]) == 2
    assert "unknown variant(s) 'no dropout' of round 1" in capsys.readouterr().err
    assert main(["experiment", "lr", "--seeds", "0"]) == 2
    assert "--seeds must be a positive integer" in capsys.readouterr().err


LOG = """# a machine
$ python -m d2l_resnet train --profile course
training on cpu, precision fp32 (this CPU has no native bfloat16)
epoch 1, loss 1.233, train acc 0.664, 544 examples/sec, 110 s
epoch 2, loss 0.761, train acc 0.880, 630 examples/sec, 95 s
loss 0.761, train acc 0.880, test acc 0.875
587.5 examples/sec on cpu
"""


def test_a_course_log_is_read_with_its_own_total_time(tmp_path) -> None:
    log = tmp_path / "course.log"
    log.write_text(LOG)
    run = read_course_log(log)
    assert run["command"] == "python -m d2l_resnet train --profile course"
    assert run["precision"].startswith("precision fp32")
    assert (run["epochs"], run["test_acc"], run["examples_per_sec"]) == (2, 0.875, 587.5)
    assert run["minutes"] == pytest.approx(205 / 60)       # no total line: the epochs' sum
    log.write_text(LOG + "2 epochs in 3.6 minutes (training and scoring)\n")
    assert read_course_log(log)["minutes"] == 3.6
    log.write_text(LOG.replace("$ ", ""))
    with pytest.raises(ValueError, match="is not a log of `python -m d2l_resnet train`"):
        read_course_log(log)
