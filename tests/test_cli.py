"""Tests of ``python -m d2l_resnet train`` and ``bench``: bad input gives a clear error
(exit status 2, a message on stderr naming the option, the value and what is accepted)
before any training; one short real run, read back as data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig

import pytest

from d2l_resnet.extras import cli
from d2l_resnet.extras.bench import TrainBench
from d2l_resnet.extras.cli import build_parser, main
from d2l_resnet.results import read_run


def test_the_installed_command_runs() -> None:
    # `pip install -e .` writes `d2l-resnet` into the environment's scripts folder, from
    # pyproject.toml's [project.scripts]; a wrong module there fails only when it is run.
    command = shutil.which("d2l-resnet", path=sysconfig.get_path("scripts")) or \
        shutil.which("d2l-resnet")
    assert command is not None, "no d2l-resnet command: run `make venv` (pip install -e .)"
    done = subprocess.run([command, "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--profile" in done.stdout


@pytest.mark.parametrize(("argv", "facts"), [
    (["--epochs", "-1"], ["--epochs", "-1", "positive integer"]),
    (["--epochs", "0"], ["--epochs", "0", "positive integer"]),
    (["--lr", "0"], ["--lr", "0.0", "(0, inf)"]),
    (["--lr", "nan"], ["--lr", "nan"]),
    (["--batch-size", "0"], ["--batch-size", "0"]),
    (["--resize", "8"], ["--resize", "8", "17"]),
    (["--seed", "-3"], ["--seed", "-3", "non-negative"]),
    (["--profile", "huge"], ["'huge'", "quick", "course", "d2l"]),
    (["--device", "tpu"], ["'tpu'", "cpu"]),
    (["--device", "cuda:7"], ["cuda:7"]),
    (["--resume"], ["--resume", "--checkpoint"]),
])
def test_train_rejects_bad_values(argv: list[str], facts: list[str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1        # one line
    assert all(fact in err for fact in facts), err


@pytest.mark.parametrize(("argv", "value"), [(["train", "--precision", "fp16"], "fp16"),
                                             (["bench", "train", "--precision", "half"], "half"),
                                             (["bench", "train", "--isa", "avx512"], "avx512")])
def test_unknown_choices_say_what_is_accepted(argv: list[str], value: str, tmp_path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--root", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    accepted = {"fp16": "fp32", "half": "bf16", "avx512": "avx2"}[value]
    assert f"'{value}'" in err and accepted in err, err
    assert list(tmp_path.iterdir()) == []                   # nothing written


def test_train_rejects_a_missing_or_unreadable_checkpoint(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.pt"
    assert main(["train", "--checkpoint", str(missing), "--resume"]) == 2
    assert str(missing) in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_text("this is not a checkpoint")
    assert main(["train", "--checkpoint", str(bad), "--resume"]) == 2
    assert str(bad) in capsys.readouterr().err
    assert bad.read_text() == "this is not a checkpoint"      # left as it was


def test_bench_takes_a_known_target_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["bench", "gpu"])
    assert exit_.value.code == 2
    assert "'gpu'" in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "train", "--steps", "5"])
    assert args.steps == 5


def test_bench_train_out_writes_the_measurements_as_data(tmp_path, monkeypatch,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    measured = TrainBench(batch_size=256, source=150.0, project=450.0,
                          precision="precision fp32 (why)", peak_gflops=100.0,
                          flops_per_example=0.2e9, isa="native (ATen AVX2)")
    monkeypatch.setattr(cli, "bench_train", lambda *args, **kwargs: measured)
    out = tmp_path / "bench_train.json"
    assert main(["bench", "train", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("speedup 3.00x")
    data = json.loads(out.read_text())
    assert data["command"] == f"python -m d2l_resnet bench train --quiet --out {out}"
    assert data["source"] == 150.0 and data["project"] == 450.0
    assert data["speedup"] == pytest.approx(3.0)
    assert data["peak_share"] == pytest.approx(0.9)            # 450 x 0.2 GFLOP of 100
    assert {"processor", "instruction_set", "threads", "torch"} <= set(data["machine"])


def test_bench_train_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "steps" in err and "0" in err


def test_train_runs_checkpoints_resumes_and_writes_its_history(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """One quick epoch on a subset of the real data (seconds), then a resume that has
    nothing left to do and ends with the same history."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    ckpt = tmp_path / "run.pt"
    argv = ["train", "--profile", "quick", "--epochs", "1", "--device", "cpu",
            "--checkpoint", str(ckpt), "--history", str(tmp_path / "run.json")]
    assert main(argv) == 0
    history, run = read_run("run", tmp_path)
    assert history.epochs == [1] and history.test_acc is not None
    assert run["profile"] == "quick" and run["recipe"]["num_epochs"] == 1
    assert run["command"].endswith(" ".join(argv[1:])) and run["minutes"] > 0
    assert run["machine"]["device"] == "cpu"
    out = capsys.readouterr().out
    assert history.final_lines() in out                     # what it printed, as data
    assert ckpt.is_file()
    argv[-1] = str(tmp_path / "resumed.json")
    assert main([*argv, "--resume", "--quiet"]) == 0
    resumed, _ = read_run("resumed", tmp_path)
    assert (resumed.train_loss, resumed.test_acc) == (history.train_loss, history.test_acc)
