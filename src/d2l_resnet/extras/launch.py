"""Starting the processes of a data-parallel run on this machine, with a bounded wait.

- :func:`run_torchrun` runs a command under ``torchrun`` (``python -m
  torch.distributed.run``, the same program) as a subprocess and returns its output:
  how ``bench ddp``, notebook 06 and the tests start ``python -m d2l_resnet train`` on
  several processes. :func:`torchrun_command` is the command line it runs.
- :func:`spawn` runs a function of the package in several new processes joined into a
  ``gloo`` process group, and returns what each returned: notebook 06's small
  experiments (the function must live in a module: each process imports it anew).
- :func:`free_port` finds a TCP port for the processes to meet at.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from d2l_resnet.checks import check_positive_int
from d2l_resnet.extras.distributed import threads_per_process

__all__ = ["free_port", "run_torchrun", "spawn", "torchrun_command"]


def free_port() -> int:
    """A TCP port of this machine that is free now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(args: Sequence[str], nproc_per_node: int = 2, *, nnodes: int = 1,
                     node_rank: int = 0, master_addr: str = "127.0.0.1",
                     master_port: int | None = None, max_restarts: int = 0,
                     rdzv_timeout: int | None = None) -> list[str]:
    """The ``torchrun`` command line that runs ``args`` (e.g. ``["-m", "d2l_resnet",
    "train"]``) on ``nproc_per_node`` processes.

    With one machine and no ``master_port`` it is ``--standalone`` (torchrun picks a free
    port); otherwise ``--nnodes``, ``--node-rank``, ``--master-addr`` and
    ``--master-port``, the static rendezvous that machine 0 hosts.

    Args:
        args: What each process runs, after ``python``.
        nproc_per_node: Processes on this machine.
        nnodes: Machines in the run.
        node_rank: This machine's number, 0 to ``nnodes`` - 1.
        master_addr: The address of machine 0.
        master_port: A free port on machine 0.
        max_restarts: How often torchrun restarts all processes when one fails.
        rdzv_timeout: Seconds to wait for the other machines (``--rdzv-conf
            timeout=``; torchrun's default is 600).
    """
    check_positive_int("nproc_per_node", nproc_per_node)
    check_positive_int("nnodes", nnodes)
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1 and master_port is None:
        cmd.append("--standalone")
    else:
        if master_port is None:
            raise ValueError("a run on several machines needs master_port: a free port of "
                             "machine 0 (e.g. free_port() there)")
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank),
                "--master-addr", master_addr, "--master-port", str(master_port)]
    cmd += ["--nproc-per-node", str(nproc_per_node)]
    if max_restarts:
        cmd += ["--max-restarts", str(max_restarts)]
    if rdzv_timeout is not None:
        cmd += ["--rdzv-conf", f"timeout={rdzv_timeout}"]
    return [*cmd, *args]


def run_torchrun(args: Sequence[str], nproc_per_node: int = 2, *, timeout: float = 600,
                 env: Mapping[str, str] | None = None, **options: Any
                 ) -> subprocess.CompletedProcess[str]:
    """Run :func:`torchrun_command` and wait for it, at most ``timeout`` seconds.

    The processes inherit this environment (plus ``env``), with ``OMP_NUM_THREADS`` set
    to the threads each will use unless it is set already (torchrun otherwise sets 1 and
    warns). Output is captured, as text.

    Args:
        args: What each process runs, after ``python`` (e.g. ``["-m", "d2l_resnet",
            "train", "--profile", "quick"]``).
        nproc_per_node: Processes on this machine.
        timeout: Seconds to wait; then torchrun and its processes are killed.
        env: Environment variables to add.
        **options: The other arguments of :func:`torchrun_command`.

    Raises:
        TimeoutError: If the run takes longer than ``timeout``.
    """
    cmd = torchrun_command(args, nproc_per_node, **options)
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("OMP_NUM_THREADS",
                        str(threads_per_process(nproc_per_node, full_env)))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # torchrun and every process it started
        proc.communicate()
        raise TimeoutError(f"torchrun did not finish within {timeout:g} s: "
                           f"{' '.join(cmd)}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _spawned(index: int, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any], nprocs: int, port: int, folder: str,
             timeout: float) -> None:
    """One process of :func:`spawn`: join the group, run ``fn``, save its result, leave."""
    torch.set_num_threads(threads_per_process(nprocs))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=index,
                            world_size=nprocs,
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        torch.save(fn(*args, **kwargs), Path(folder) / f"{index}.pt")
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], *args: Any, nprocs: int = 2, timeout: float = 120,
          **kwargs: Any) -> list[Any]:
    """Run ``fn(*args, **kwargs)`` in ``nprocs`` new processes joined into a ``gloo`` process group
    on this machine; return the result of each, by rank.

    Each process uses its share of the cores (:func:`threads_per_process`). ``fn`` must
    be importable by name (defined in a module, not in a notebook cell), and its result
    travels through a file written with ``torch.save``: return tensors and plain values.

    Raises:
        TimeoutError: If the processes take longer than ``timeout`` seconds (they are
            killed).
        torch.multiprocessing.ProcessRaisedException: If ``fn`` raised in a process
            (with its traceback).
    """
    check_positive_int("nprocs", nprocs)
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(_spawned, args=(fn, args, kwargs, nprocs, free_port(),
                                                     folder, timeout),
                                     nprocs=nprocs, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                    process.join()
                raise TimeoutError(f"{nprocs} processes of {fn.__name__} did not finish "
                                   f"within {timeout:g} s")
        return [torch.load(Path(folder) / f"{rank}.pt", weights_only=False)
                for rank in range(nprocs)]
