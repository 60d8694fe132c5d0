"""Tests of ``python -m d2l_resnet train`` and ``bench``: bad input gives a clear error
(exit status 2, a message on stderr) before any training; one short real run.
"""

from __future__ import annotations

import re

import pytest

from d2l_resnet.cli import build_parser, main


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "-1"], "--epochs must be a positive integer"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--lr", "0"], "--lr must be a number in (0, inf), got 0.0 (the book uses 0.05)"),
    (["--lr", "nan"], "--lr must be a number in (0, inf)"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--resize", "8"], "--resize must be at least 17"),
    (["--seed", "-3"], "--seed must be a non-negative integer"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cuda:7"], "device 'cuda:7' is not available"),
    (["--resume"], "--resume needs --checkpoint"),
])
def test_train_rejects_bad_values(argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize("argv", [["train", "--precision", "fp16"],
                                  ["bench", "train", "--precision", "half"],
                                  ["bench", "train", "--isa", "avx512"]])
def test_unknown_choices_say_what_is_accepted(argv: list[str], tmp_path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--root", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(r"invalid choice: '\w+' \(choose from '?\w+'?, '?\w+'?", err), err
    assert list(tmp_path.iterdir()) == []                   # nothing written


def test_train_rejects_a_missing_or_unreadable_checkpoint(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--checkpoint", str(tmp_path / "none.pt"), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_text("this is not a checkpoint")
    assert main(["train", "--checkpoint", str(bad), "--resume"]) == 2
    assert "cannot read the checkpoint" in capsys.readouterr().err


def test_bench_takes_a_known_target_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["bench", "gpu"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "train", "--steps", "5"])
    assert args.steps == 5


def test_bench_train_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", "--steps", "0"]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err


def test_train_runs_checkpoints_and_resumes(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """One quick epoch on a subset of the real data (seconds), then a resume that has
    nothing left to do and reports the same final line."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    ckpt = tmp_path / "run.pt"
    argv = ["train", "--profile", "quick", "--epochs", "1", "--device", "cpu",
            "--checkpoint", str(ckpt)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"training on cpu, precision (fp32|bf16) \(.+\)", out[0])
    assert re.fullmatch(r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}", out[-2])
    assert re.fullmatch(r"\d+\.\d examples/sec on cpu", out[-1])
    assert ckpt.is_file()
    assert main([*argv, "--resume", "--quiet"]) == 0
    resumed = capsys.readouterr().out.splitlines()
    assert resumed[0] == out[-2]
