"""Tests of data-parallel training across processes (``torch.distributed``, gloo, CPU).

Fast tests check the pieces in this process (the shards of an epoch, what torchrun's
environment must hold, the messages). The others start real processes, each with a
bounded wait (no hang can stall the suite): two processes computing one step's
gradient, and ``torchrun`` running ``python -m d2l_resnet train`` in the quick profile on
two processes: on two "machines" over loopback (the reference run), on one machine with
a rank killed and restarted (it must end exactly as the reference did), and fed bad input.
Those start processes and carry the ``slow`` marker (``make test-fast`` leaves them out).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from d2l_resnet.checkpoint import load_checkpoint
from d2l_resnet.data import InMemoryLoader
from d2l_resnet.extras.cli import main
from d2l_resnet.extras.distributed import (
    Launch,
    Session,
    SyncBatchNorm2d,
    _disagreement,
    launched_by_torchrun,
    sync_batchnorm,
    threads_per_process,
    timeout_seconds,
)
from d2l_resnet.extras.launch import free_port, run_torchrun, spawn, torchrun_command
from d2l_resnet.extras.parallel import GRADIENT_CASES, shard_gradient, shard_gradients
from d2l_resnet.profiles import PROFILES
from d2l_resnet.results import read_run

TRAIN = ["-m", "d2l_resnet", "train", "--profile", "quick", "--device", "cpu", "--quiet"]
RUN_TIMEOUT = 300     # seconds for one torchrun of the quick profile (about 30 s when idle)


def _metrics(path: Path) -> dict[str, object]:
    """The per-epoch metrics of a run, from the history it wrote (``--history``)."""
    history, _ = read_run(path.stem, path.parent)
    return {k: getattr(history, k) for k in ("train_loss", "train_acc", "test_acc")}


def _checkpointed(path: Path) -> dict[str, object]:
    h = load_checkpoint(path)["history"]
    return {k: h[k] for k in ("train_loss", "train_acc", "test_acc")}


# -- in this process ---------------------------------------------------------------------------

@pytest.mark.parametrize("world_size", [2, 4])
def test_the_shards_of_an_epoch_are_disjoint_and_make_the_single_process_batches(
        world_size: int) -> None:
    n = 104                                           # 3 batches of 32 and one of 8
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 6, 6), dtype=torch.uint8, generator=gen)
    kwargs: dict[str, Any] = {"shuffle": True, "augment": True, "max_shift": 1, "seed": 3}
    single = list(InMemoryLoader(images, torch.arange(n), 32, **kwargs))
    ranks = [list(InMemoryLoader(images, torch.arange(n), 32, rank=r, world_size=world_size,
                                 **kwargs)) for r in range(world_size)]
    seen: list[int] = []
    for k, (X, y) in enumerate(single):
        shares = [ranks[r][k] for r in range(world_size)]
        assert torch.equal(torch.cat([s[1] for s in shares]), y)   # the batch, in order
        assert torch.equal(torch.cat([s[0] for s in shares]), X)   # augmented alike
        seen += y.tolist()
    assert sorted(seen) == list(range(n))             # disjoint, and they cover the epoch
    assert [len(b[1]) for b in ranks[0]] == [32 // world_size] * 3 + [8 // world_size]


def test_torchrun_environment_is_read_and_checked() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500",
           "TORCHELASTIC_RESTART_COUNT": "3"}
    assert launched_by_torchrun(env) and not launched_by_torchrun({})
    assert Launch.from_env(env) == Launch(1, 2, 1, 2, "10.0.0.1", 29500, 3)
    with pytest.raises(ValueError, match="not MASTER_ADDR, MASTER_PORT; start it with torchrun"):
        Launch.from_env({k: v for k, v in env.items() if not k.startswith("MASTER")})
    with pytest.raises(ValueError, match=r"RANK=2, WORLD_SIZE=2.* are inconsistent"):
        Launch.from_env({**env, "RANK": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        Launch.from_env({**env, "WORLD_SIZE": "two"})


def test_threads_and_timeout_come_from_the_environment_or_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_per_process(2, {}) == max(1, cores // 2)
    assert threads_per_process(cores * 4, {}) == 1
    assert threads_per_process(2, {"D2L_RESNET_THREADS": "3"}) == 3
    assert timeout_seconds({}) == 60 and timeout_seconds({"D2L_RESNET_DIST_TIMEOUT": "2.5"}) == 2.5
    with pytest.raises(ValueError, match="D2L_RESNET_THREADS must be a positive integer"):
        threads_per_process(2, {"D2L_RESNET_THREADS": "0"})
    with pytest.raises(ValueError, match="D2L_RESNET_DIST_TIMEOUT must be a positive number"):
        timeout_seconds({"D2L_RESNET_DIST_TIMEOUT": "-1"})


def test_a_batch_that_the_ranks_cannot_share_equally_is_refused() -> None:
    session = Session(torch.device("cpu"), Launch(0, 3, 0, 3, "127.0.0.1", 1))
    session.check_batch(129)
    with pytest.raises(ValueError, match=r"a batch of 128 examples cannot be shared equally "
                                         r"by 3 processes .* e.g. 126 or 129"):
        session.check_batch(128)


def test_the_ranks_reports_become_one_message() -> None:
    same = {"lr": 0.1, "profile": "quick"}
    assert _disagreement([(None, same), (None, dict(same))]) is None
    assert _disagreement([("bad --lr", same), ("bad --lr", same)]) == "bad --lr"
    assert _disagreement([(None, same), ("no data", same)]) == "rank 1: no data"
    message = _disagreement([(None, same), (None, {**same, "lr": 0.05})])
    assert message is not None
    assert "lr is 0.1 on rank 0, 0.05 on rank 1" in message and "profile" not in message


def test_a_rank_without_master_address_says_what_is_missing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["train", "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "MASTER_ADDR" in err and "MASTER_PORT" in err


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_that_cannot_reach_the_others_fails_in_bounded_time(
        rank: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Rank 0 waits for a rank 1 that never comes; rank 1 finds no rank 0 at the port."""
    env = {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "D2L_RESNET_DIST_TIMEOUT": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    threads = torch.get_num_threads()
    start = time.monotonic()
    assert main(["train", "--profile", "quick", "--device", "cpu"]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"rank {rank} of 2" in err and f"127.0.0.1:{env['MASTER_PORT']}" in err
    assert "--master-addr" in err and "D2L_RESNET_DIST_TIMEOUT" in err
    assert torch.get_num_threads() == threads        # the process is as it was


# -- processes started by spawn -----------------------------------------------------------------

@pytest.mark.slow
def test_averaged_shard_gradients_equal_the_whole_batch_gradient() -> None:
    """Eval-mode BatchNorm makes the network the same function of each example wherever
    it is, and synchronized BatchNorm normalizes every share by the whole batch's
    statistics: then the only difference is the order of floating-point sums. Plain
    train-mode BatchNorm normalizes each share by its own statistics: another gradient."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(8, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)
    per_rank = spawn(shard_gradients, X, y, nprocs=2, timeout=120)
    for case, (train_mode, _) in GRADIENT_CASES.items():
        whole = shard_gradient(X, y, train_mode=train_mode)
        scale = whole.abs().max()
        assert scale > 0
        assert torch.equal(per_rank[0][case], per_rank[1][case])   # the same step everywhere
        gap = (per_rank[0][case] - whole).abs().max()
        if case == "train mode":
            assert gap > 1e-2 * scale, case
        elif case == "eval mode":
            assert gap <= 1e-5 * scale, case
        else:  # the statistics summed in another order, through 18 layers of BatchNorm:
            assert gap <= 1e-4 * scale, case   # 6e-6 natively, 1.1e-5 capped at AVX2
    whole = shard_gradient(X, y, train_mode=False)
    one_share = shard_gradient(X[:4], y[:4], train_mode=False)   # one share alone is not it
    assert (one_share - whole).abs().max() > 1e-2 * whole.abs().max()


def test_synchronized_batchnorm_is_batchnorm_in_one_process_and_in_eval_mode() -> None:
    torch.manual_seed(0)
    plain = torch.nn.BatchNorm2d(3)
    net = sync_batchnorm(torch.nn.Sequential(plain), torch.device("cpu"))
    synced = net[0]
    assert isinstance(synced, SyncBatchNorm2d)
    assert synced.state_dict().keys() == plain.state_dict().keys()
    X = torch.randn(4, 3, 5, 5)
    reference = torch.nn.BatchNorm2d(3)
    assert torch.allclose(synced(X), reference(X), atol=1e-6)        # train mode, alone
    assert torch.allclose(synced.running_var, reference.running_var)
    synced.eval()
    reference.eval()
    assert torch.allclose(synced(X), reference(X), atol=1e-6)


# -- processes started by torchrun ------------------------------------------------------------

@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference: a 2-process run of the quick profile started as two machines over
    loopback (two torchrun launchers, one process each, meeting at node 0's port). Both
    get the same checkpoint path (the "machines" share a disk) and each its own history
    path: rank 0 alone writes."""
    folder = tmp_path_factory.mktemp("unbroken")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "D2L_RESNET_THREADS": "1"}
    nodes = [subprocess.Popen(
        torchrun_command([*TRAIN, "--checkpoint", str(folder / "run.pt"),
                          "--history", str(folder / f"node{r}.json")], 1, nnodes=2,
                         node_rank=r, master_port=port, rdzv_timeout=60),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True) for r in (0, 1)]
    try:
        outputs = [node.communicate(timeout=RUN_TIMEOUT) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-6000:]
    history, run = read_run("node0", folder)
    return {"stdout": [out for out, _ in outputs], "history": history, "run": run,
            "folder": folder, "metrics": _metrics(folder / "node0.json")}


@pytest.mark.slow
def test_a_two_machine_run_ends_with_the_books_final_lines_on_rank_0_alone(
        unbroken: dict[str, Any]) -> None:
    history = unbroken["history"]
    assert unbroken["stdout"] == [history.final_lines() + "\n", ""]   # rank 0 alone printed
    assert history.device == "cpu x 2 processes" and unbroken["run"]["processes"] == 2
    assert len(history.train_loss) == 2
    assert history.test_acc > 0.3              # it learned something
    folder = unbroken["folder"]                # and rank 0 alone wrote
    assert _checkpointed(folder / "run.pt") == unbroken["metrics"]
    assert not (folder / "node1.json").exists()


def _rank_pid(torchrun_pid: int, rank: int) -> int | None:
    """The process id of ``rank`` among torchrun's children (read from its environment)."""
    children = Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children")
    for pid in children.read_text().split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_rank_is_restarted_and_the_run_resumes_to_the_same_metrics(
        unbroken: dict[str, Any], tmp_path: Path) -> None:
    """Two processes on one machine; SIGKILL rank 1 early in epoch 2 (just after the first
    checkpoint): torchrun restarts both processes, which resume from the checkpoint to the
    end of the unbroken run on two machines (one thread per process in both)."""
    ckpt = tmp_path / "run.pt"
    run = subprocess.Popen(
        torchrun_command([*TRAIN[:-1], "--checkpoint", str(ckpt), "--history",
                          str(tmp_path / "run.json")], 2, max_restarts=1),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not ckpt.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ckpt.exists(), "no checkpoint was written"
        assert load_checkpoint(ckpt)["epoch"] == 1
        victim = _rank_pid(run.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, err = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err[-3000:]
    assert "restart 1" in err and str(ckpt) in err
    assert _metrics(tmp_path / "run.json") == unbroken["metrics"]
    assert _checkpointed(ckpt) == unbroken["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize(("options", "facts"), [
    (["--batch-size", "127"], ["127", "2 processes", "126", "128"]),
    (["--batch-size", "2"], ["2 processes", "batch of 2", "BatchNorm"]),
])
def test_bad_input_under_torchrun_gives_one_message_and_writes_nothing(
        options: list[str], facts: list[str], tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    result = run_torchrun([*TRAIN, *options, "--checkpoint", str(ckpt), "--history",
                           str(tmp_path / "run.json")], 2, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]            # one message, from rank 0
    assert all(fact in errors[0] for fact in facts), errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_machines_started_with_different_profiles_are_told_which_setting_differs(
        tmp_path: Path) -> None:
    port = free_port()
    commands = [torchrun_command(["-m", "d2l_resnet", "train", "--profile", profile,
                                  "--device", "cpu", "--quiet"], 1, nnodes=2,
                                 node_rank=r, master_port=port, rdzv_timeout=60)
                for r, profile in enumerate(["quick", "course"])]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for cmd in commands]
    try:
        outputs = [node.communicate(timeout=120) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    assert all(node.returncode != 0 for node in nodes)
    errors = [line for out in outputs for line in out[1].splitlines()
              if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] in outputs[0][1]      # once, from rank 0
    assert "profile is 'quick' on rank 0, 'course' on rank 1" in errors[0]
    epochs = [PROFILES[name].recipe.num_epochs for name in ("quick", "course")]
    assert f"num_epochs is {epochs[0]} on rank 0, {epochs[1]} on rank 1" in errors[0]


@pytest.mark.slow
def test_torchrun_fails_in_bounded_time_when_another_machine_never_comes() -> None:
    """The README's fail-fast command: --rdzv-conf timeout bounds torchrun's own wait."""
    start = time.monotonic()
    result = run_torchrun([*TRAIN], 1, nnodes=2, node_rank=0, master_port=free_port(),
                          rdzv_timeout=3, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - start < 30
    assert "Timed out after" in result.stderr and "1/2 clients joined" in result.stderr
