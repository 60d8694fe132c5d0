# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Training on several devices (多GPU训练)
#
# The book's section "Concise Implementation for Multiple GPUs" (多GPU的简洁实现, in the
# chapter on computational performance) trains a ResNet-18 on Fashion-MNIST on one and
# then two GPUs. It uses a "slightly modified" ResNet-18 (a 3x3 stem with stride 1 and
# no max-pooling, where this course keeps the source notebook's 7x7 stem), initializes
# the weights from $\mathcal{N}(0, 0.01^2)$, and wraps the network in `nn.DataParallel`:
# one Python process that, at every step, copies the network to each GPU, splits the
# batch between them, runs the pieces and gathers the results on GPU 0. It trains 10
# epochs at 28x28 with batch 256 and lr 0.1 on one GPU, and with batch 512 and lr 0.2
# on two, scaling both with the number of GPUs.
#
# PyTorch's own documentation recommends `DistributedDataParallel` (DDP) over
# `DataParallel`: one process per device, each with its own copy of the network for the
# whole run, exchanging only gradients. The processes are started by `torchrun`, and
# the same command runs on the CPU of a laptop, on the GPUs of one machine, or on
# several machines. `python -m d2l_resnet train` does all three (the package notices
# that `torchrun` started it; see `d2l_resnet.extras.distributed`). Unlike the book, it keeps
# the *global* batch fixed: with 2 processes each takes half of every batch, so the run
# computes what one process computes, up to rounding (BatchNorm needs care: see below).
#
# This notebook needs no GPU: two CPU processes on one machine talk through `gloo`,
# PyTorch's CPU backend, in the same way as GPUs talk through `nccl`. It
#
# 1. checks numerically what data parallelism computes: the average of the processes'
#    gradients is the gradient of the whole batch,
# 2. shows what BatchNorm does in each process, and how synchronizing it across the
#    processes restores the whole batch's gradient,
# 3. trains with 2 processes and with 1 and plots the curves,
# 4. gives the commands for GPUs and for several machines, and
# 5. measures what the communication costs on this machine.

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import torch
from IPython.display import display

from d2l_resnet import get_profile, show_source
from d2l_resnet.data import InMemoryLoader, load_data_for_profile, load_fashion_mnist_tensors
from d2l_resnet.extras.distributed import SyncBatchNorm2d
from d2l_resnet.extras.launch import run_torchrun, spawn, torchrun_command
from d2l_resnet.extras.parallel import (
    GRADIENT_CASES,
    allreduce_seconds,
    batchnorm_statistics,
    shard_gradient,
    shard_gradients,
    try_sync_batchnorm,
)
from d2l_resnet.model import count_parameters, resnet18
from d2l_resnet.plot import plot_runs
from d2l_resnet.results import read_json, read_run
from d2l_resnet.train import train

profile = get_profile()
images, labels = load_fashion_mnist_tensors(train=True)
X, y = next(iter(InMemoryLoader(images[:16], labels[:16], 16)))  # 16 images, normalized
print(tuple(X.shape), tuple(y.shape))

# %% [markdown]
# ## What data parallelism computes (数据并行)
#
# The loss of a batch of $B$ examples is the mean of their losses, $L = \frac{1}{B}
# \sum_{i=1}^{B} \ell_i$. Split the batch into $W$ shares of $b = B / W$ examples, one
# per process (*rank* $r = 0, \dots, W-1$), and let $L_r$ be the mean loss of share $r$.
# Then
#
# $$L = \frac{1}{W} \sum_{r=0}^{W-1} L_r, \qquad \nabla L = \frac{1}{W}
# \sum_{r=0}^{W-1} \nabla L_r,$$
#
# because a gradient is linear. So each rank computes the gradient of its own share, and
# an **all-reduce** (every rank sends its gradient and receives the sum of all of them)
# followed by a division by $W$ leaves every rank with the gradient of the whole batch.
# Every rank then takes the same optimizer step, so the copies of the network stay
# identical without ever being sent again. DDP does this inside `backward()`: it groups
# the gradients into buckets of about 25 MB and all-reduces each bucket as soon as its
# gradients are ready, while the backward pass goes on with the layers below.
#
# One assumption hides in the formula: that $\ell_i$ depends on example $i$ only. That
# is true in eval mode, where BatchNorm uses its running statistics. The function below
# computes the gradient of a seeded ResNet-18; in a process group, each rank computes it
# on its rows of the batch inside DDP.

# %%
show_source(shard_gradient)

# %% [markdown]
# Two processes, started by `spawn` from the package (a process cannot run a function
# defined in a notebook cell, so the functions live in `d2l_resnet.extras.parallel`), each with
# 8 of the 16 images. Each computes the gradient three ways, for this section and the
# next: BatchNorm in eval mode, in train mode, and in train mode synchronized. Then the
# same in this process, on all 16 images:

# %%
per_rank = spawn(shard_gradients, X, y, nprocs=2)
alone = {mode: shard_gradient(X, y, train_mode=mode) for mode in (False, True)}
whole = {case: alone[train_mode] for case, (train_mode, _) in GRADIENT_CASES.items()}


def gap(case: str) -> float:
    """Largest difference between rank 0's gradient and the whole batch's, relative to
    the largest entry of the whole batch's."""
    return float((per_rank[0][case] - whole[case]).abs().max() / whole[case].abs().max())


print(f"{whole['eval mode'].numel():,} gradient entries (the parameters of ResNet-18)")
print("both ranks hold the same gradient:", torch.equal(per_rank[0]["eval mode"],
                                                        per_rank[1]["eval mode"]))
print("it equals the whole batch's gradient (to 1e-5 of the largest entry):",
      gap("eval mode") <= 1e-5)
one_share = shard_gradient(X[:8], y[:8], train_mode=False)
print("one share's gradient alone does not:", bool(
    (one_share - whole["eval mode"]).abs().max() > 1e-2 * whole["eval mode"].abs().max()))

# %% [markdown]
# The differences that remain are rounding: the two processes add the same numbers in
# another order.
#
# ## BatchNorm in each process (每个进程中的批量规范化)
#
# In train mode BatchNorm normalizes each channel by the mean and variance of *the batch
# it sees*, and under DDP each process sees only its share. The examples of a share are
# normalized by statistics of that share, so $\ell_i$ depends on which rank example $i$
# landed on, and the averaged gradient is no longer the whole batch's:

# %%
print("train mode: averaged gradient = whole batch's gradient:", gap("train mode") <= 1e-5)

# %% tags=["nbval-ignore-output"]
print(f"largest difference, relative to the largest entry: {gap('train mode'):.2f}")
assert gap("train mode") > 1e-2

# %% [markdown]
# The statistics themselves, for the first BatchNorm of ResNet-18 (64 channels, after
# the 7x7 convolution): the mean each rank computes from its own 8 images differs from
# the mean of all 16, while the mean computed from the *sums* of both ranks (one
# all-reduce of the per-channel sums and sums of squares, and one of the counts) is the
# whole batch's.

# %%
stats = spawn(batchnorm_statistics, X, nprocs=2)
batch = batchnorm_statistics(X)
for name in ("mean", "var"):
    own = max((s[f"own_{name}"] - batch[f"own_{name}"]).abs().max() for s in stats)
    synced = max((s[f"synced_{name}"] - batch[f"own_{name}"]).abs().max() for s in stats)
    size = batch[f"own_{name}"].abs().max()
    print(f"{name}: a rank's own statistic differs from the whole batch's: "
          f"{bool(own > 1e-3 * size)}; the all-reduced one is the whole batch's: "
          f"{bool(synced < 1e-9 * size)}")

# %% [markdown]
# That is what PyTorch's `nn.SyncBatchNorm` does in every BatchNorm layer at every step.
# In this version of PyTorch it needs a GPU (or another accelerator): on CPU tensors
# the layer refuses to run in train mode, and DDP refuses to wrap it.

# %%
outcomes = spawn(try_sync_batchnorm, nprocs=2)[0]
print("SyncBatchNorm alone:", outcomes["layer"])
print("SyncBatchNorm in DDP:", outcomes["ddp"])

# %% [markdown]
# The computation itself needs nothing from a GPU, so the package has its own,
# `SyncBatchNorm2d`: one all-reduce of the per-channel sums in the forward pass, and,
# because autograd differentiates through the all-reduce (the gradient of a sum over
# ranks is a sum over ranks: another all-reduce), one more in the backward pass.
# `python -m d2l_resnet train` under `torchrun` puts it in place of every BatchNorm
# (`nn.SyncBatchNorm` on GPUs): in eval mode, and in a single process, it is plain
# BatchNorm, with the same parameters and buffers.

# %%
show_source(SyncBatchNorm2d.forward)

# %% [markdown]
# With it, the two processes' averaged gradient in train mode is again the whole
# batch's:

# %%
print("train mode, synchronized: averaged gradient = whole batch's gradient:",
      gap("train mode, synchronized") <= 1e-5)

# %% [markdown]
# It costs two small all-reduces per BatchNorm layer and step (ResNet-18 has 17), each
# of 129 to 1,025 numbers: what they cost is latency, not bandwidth. The running
# statistics that evaluation uses are rank 0's: DDP copies rank 0's buffers to the
# other ranks before every forward pass, and `train` does so once more before scoring,
# so that every rank scores the model that rank 0 saves.
#
# ## Two processes against one (两个进程与一个进程)
#
# The same training with two processes under `torchrun`, and in this process. Both use
# the quick profile (4,096 training and 1,024 test images, 2 epochs), also when this
# notebook runs in the course profile: one run of the course profile takes 5 to 21
# minutes on two cores, by processor (notebook 4, appendix A), and two processes are
# slower. The seed and the global batch are the same; each of the two processes takes 64
# of every 128 examples, with BatchNorm synchronized, and computes with one thread (the
# package shares a machine's cores out among its processes: `threads_per_process`). The
# run writes its history as JSON (`--history`), which is read back here.

# %% tags=["nbval-ignore-output"]
with tempfile.TemporaryDirectory() as folder:
    result = run_torchrun(["-m", "d2l_resnet", "train", "--profile", "quick", "--device", "cpu",
                           "--history", str(Path(folder) / "two.json")], nproc_per_node=2,
                          timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-2000:]
    two_processes, _ = read_run("two", Path(folder))

# %% [markdown]
# Only rank 0 prints, draws and writes the history. Its first line says how many
# processes share the work, and the accuracy is that of the whole test set: each rank
# scores its share of it, and the counts are summed (an all-reduce). Now one process,
# with the same call as in notebook 4, twice: with one thread, as each of the two
# processes had, and with two, all of this machine's cores (if it has two).

# %% tags=["nbval-ignore-output"]
quick = get_profile("quick")
data = load_data_for_profile(quick, device="cpu")
threads = torch.get_num_threads()
one_process = {}
for n in sorted({1, min(2, threads)}):   # 1 thread, then 2 if there are two cores
    torch.set_num_threads(n)
    data.train.load_state_dict({"seed": quick.recipe.seed, "epoch": 0, "batch": 0})
    one_process[n] = train(resnet18(), data.train, data.test, device="cpu",
                           recipe=quick.recipe, progress=False, verbose=n == 1)
torch.set_num_threads(threads)

# %% tags=["nbval-ignore-output"]
runs = {"2 processes x 1 thread": two_processes, "1 process x 1 thread": one_process[1]}
display(plot_runs(runs))
runs[f"1 process x {max(one_process)} threads"] = one_process[max(one_process)]
for label, history in runs.items():
    print(f"{label:>22}: test accuracy {history.test_acc:.3f}; "
          f"{history.train_examples_per_sec:,.0f} training examples/s")
difference = two_processes.test_acc - one_process[1].test_acc
print(f"difference of the test accuracies, 2 processes - 1: {difference:+.3f}")
all_threads = one_process[max(one_process)].train_examples_per_sec
print(f"2 processes / 1 process with {max(one_process)} threads: "
      f"{two_processes.train_examples_per_sec / all_threads:.2f}x examples/s")
assert min(h.test_acc for h in runs.values()) > 0.3
assert abs(difference) < 0.1
if not profile.quick:          # the committed run, as the text below says
    assert two_processes.train_examples_per_sec < all_threads

# %% [markdown]
# The two runs compute the same steps, as checked above for one step, but not in the
# same floating-point order: a gradient computed in two halves and all-reduced is added
# up differently from one computed at once. In the quick profile's two short epochs, at
# a peak learning rate of 0.2, such rounding differences grow from step to step (in
# float32 as in bfloat16), so the curves part within the first epoch and the final test
# accuracies can differ by a point or so, as they do above (exercise 4 tries the same
# with one process and two thread counts). Without synchronized BatchNorm the two
# processes would compute something else: a network normalized over 64 examples at a
# time.
#
# As for speed, the last line above: on this machine the two processes, with one
# thread each, trained slower than one process with two threads. They do the same
# arithmetic on the same two cores, and on top they exchange something at every step:
# the gradients (45 MB), and, for synchronized BatchNorm, the per-channel sums of every
# BatchNorm layer, forward and backward. The last section measures what the gradients'
# exchange costs alone; it is not most of the difference. Every exchange is also a
# point where each process waits for the other, so whenever the system gives a core to
# another program, both wait. Data parallelism pays off when each process has a device
# of its own: a GPU, or a machine.
#
# ## Several GPUs, several machines (多GPU与多机器)
#
# The command does not change with the hardware, only `torchrun`'s options do. Each
# process finds its rank in the environment that `torchrun` sets (`RANK`,
# `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), uses `cuda:LOCAL_RANK` when
# there are GPUs (backend `nccl`) and the CPU otherwise (backend `gloo`, with the cores
# shared out among the processes of the machine), and takes its share of every batch:
# every process draws the same shuffled order of the epoch from the seed and the epoch
# number, so the shares are disjoint and together are exactly the single-process epoch.

# %%
train_args = ["-m", "d2l_resnet", "train", "--profile", "course"]
commands = {
    "2 processes on this machine's CPU":
        torchrun_command(train_args, 2),
    "4 GPUs of one machine (one process each)":
        torchrun_command(train_args, 4),
    "2 machines with 4 GPUs each (run on machine 0, then with --node-rank 1 on machine 1)":
        torchrun_command(train_args, 4, nnodes=2, node_rank=0, master_addr="10.0.0.1",
                         master_port=29500, rdzv_timeout=60),
    "restart all processes (up to 3 times) if one fails, resuming from the checkpoint":
        torchrun_command([*train_args, "--checkpoint", "run.pt"], 2, max_restarts=3),
}
for what, command in commands.items():
    print(f"# {what}\n" + " ".join(["torchrun", *command[3:]]))

# %% [markdown]
# On several machines, `--master-addr` is an address of machine 0 that the others can
# reach and `--master-port` a port open in its firewall. `--rdzv-conf timeout=60` bounds
# how long `torchrun` waits for the other machines (its default is 600 s); after that,
# each process waits at most `D2L_RESNET_DIST_TIMEOUT` seconds (default 60) for the
# others in any exchange, and a process that cannot reach them stops with a message that
# says what to check. `tests/test_distributed.py` runs two "machines" on one, over
# loopback, and then two processes on one machine, one of which it kills in the middle
# of the run: `torchrun --max-restarts` restarts both, they resume from the checkpoint,
# and the run must end with exactly the final metrics of the two "machines", which were
# never interrupted.
#
# To scale up as the book does (a larger global batch with more devices), pass it:
# `--batch-size 512 --lr 0.4` (the course's batch 256 and lr 0.2, both doubled).
# Keeping the global batch, as here, keeps the recipe that was chosen on the validation
# split.
#
# ## What communication costs (通信开销)
#
# Every step, the processes all-reduce their gradients: 11.2 million float32 values, 45
# MB. In a ring all-reduce, a standard algorithm for large tensors, each of the $W$
# processes sends (and receives) $2 \frac{W - 1}{W}$ times that amount, in $2(W-1)$
# rounds: 45 MB each for $W = 2$, 68 MB for 4, approaching 90 MB as $W$ grows. Timed
# alone, on this machine, between two processes:

# %% tags=["nbval-ignore-output"]
num_params = count_parameters(resnet18())
seconds = spawn(allreduce_seconds, num_params, repeats=5, nprocs=2)[0]
allreduce = sorted(seconds)[len(seconds) // 2]
step = quick.data.batch_size / two_processes.train_examples_per_sec
print(f"all-reduce of {num_params:,} float32 values ({4 * num_params / 1e6:.0f} MB): "
      f"{1000 * allreduce:.0f} ms (median of 5)")
print(f"a training step of the 2-process run: {1000 * step:.0f} ms; the all-reduce "
      f"alone is {100 * allreduce / step:.0f}% of it")
assert 0 < allreduce < 0.5 * step

# %% [markdown]
# Between two processes of one machine the "network" is a copy through memory; between
# machines it is the network: at 10 Gbit/s (1.25 GB/s), the 45 MB that each of two
# machines sends per step for ResNet-18 take about 36 ms, whatever the GPUs' speed. DDP
# hides part of it by overlapping the buckets' all-reduces with the backward pass, which
# is why a step whose computation takes longer than its communication scales well and a
# short one does not. The book makes the same point: unlike LeNet, ResNet-18 computes
# long enough per step, relative to the time its parameters take to synchronize, for two
# GPUs to pay off.
#
# `python -m d2l_resnet bench ddp` measures the whole step: in one process with all the
# threads, and in two processes as `train` runs them, with BatchNorm per process (no
# BatchNorm all-reduces), and with no communication at all (DDP's `no_sync`), beside
# the gradients' all-reduce timed alone. The difference between the first and the last
# of the two-process steps is what communication costs in a real step, waiting
# included. Its output on a 2-core AMD EPYC, in float32, is committed as
# `results/bench_ddp.json`:

# %%
bench = read_json("bench_ddp")
one, many = bench["one"], bench["many"]
batch = one["batch_size"]
rows = {f"1 process x {one['threads']} threads": one["step_s"],
        f"2 processes x {many['threads']} thread, as train runs them": many["step_s"],
        "2 processes, BatchNorm per process": many["plain_bn_step_s"],
        "2 processes, no communication (no_sync)": many["compute_step_s"]}
for label, seconds in rows.items():
    print(f"{label:<48}{batch / seconds:>7,.0f} examples/s{1000 * seconds:>7,.0f} ms/step")
print(f"gradients' all-reduce timed alone: {100 * bench['allreduce_share']:.0f}% of a "
      f"2-process step; all communication, waiting included: "
      f"{100 * bench['communication_share']:.0f}%")
print(f"({bench['command']}; {bench['machine']['processor']}, {bench['date']})")
assert bench["communication_share"] > 2 * bench["allreduce_share"]

# %% [markdown]
# The gradients' all-reduce is a small part of what the two processes lose: without
# synchronized BatchNorm's exchanges (third row) a step is much faster than with them,
# and without any communication (last row) faster still. What costs is not the 45 MB but
# the number of times the two processes must meet in every step, and the waiting at
# each meeting on cores that other work shares.
#
# ## Summary (小结)
#
# - Data parallelism splits each batch among processes; the average of their gradients
#   (an all-reduce) is the gradient of the whole batch, as checked above to rounding.
# - `DistributedDataParallel` runs one process per device and all-reduces gradients in
#   buckets during the backward pass; `torchrun` starts the processes, the same way on a
#   CPU, on GPUs and across machines.
# - In train mode BatchNorm couples the examples of a batch: per process it normalizes
#   by the statistics of the process's share, and the step is no longer the whole
#   batch's. Synchronized BatchNorm all-reduces the statistics (PyTorch's
#   `nn.SyncBatchNorm` on GPUs, the package's `SyncBatchNorm2d` on CPUs too), and the
#   step is again the whole batch's.
# - Only rank 0 prints and saves; evaluation covers the test set once across ranks.
# - Communication is paid every step: the gradients' all-reduce (each process sends
#   $2\frac{W-1}{W}$ times the 45 MB of ResNet-18's gradients) and synchronized
#   BatchNorm's small exchanges, at each of which the processes wait for each other. On
#   two CPU cores there is nothing to gain: the processes share the cores that one
#   process would use.
#
# ## Exercises (练习)
#
# 1. Train the quick profile with 1, 2 and 4 processes (`--nproc-per-node 4`). What
#    stays the same from one to the next, and what changes in the computation?
# 2. The book doubles the batch and the learning rate with the number of GPUs. With 4
#    processes and the quick profile (batch 128, lr 0.2), compare `--batch-size 128`
#    with `--batch-size 512 --lr 0.8`. Which one computes the same steps as one
#    process, and which one takes fewer steps per epoch?
# 3. `bench ddp` reports the all-reduce time alone and the step with and without it.
#    Why can the step with the all-reduce take less than the step without it plus the
#    all-reduce time?
# 4. Train the quick profile in one process twice, with `torch.set_num_threads(1)` and
#    with `torch.set_num_threads(2)`, and compare the final lines. What differs between
#    the two runs, and how does that compare with the difference between one process and
#    two above?
#
# <details>
# <summary>Answers</summary>
#
# 1. The same: the examples of every step, their order and augmentation (each process
#    takes its share of the same shuffled epoch), the learning rate of every step, and,
#    with synchronized BatchNorm, the statistics. What changes: each process computes
#    on 128, 64 or 32 examples, the gradients are all-reduced among 2 or 4 processes,
#    and the sums are added in another order, so the last digits differ.
# 2. `--batch-size 128` keeps the steps of one process (each rank takes 32 examples);
#    `--batch-size 512 --lr 0.8` takes a quarter of the steps with a larger rate (the
#    linear scaling rule of Goyal et al. 2017), a different recipe that may need
#    warm-up to match the accuracy.
# 3. DDP starts the all-reduce of a bucket while the backward pass is still computing
#    the gradients of earlier layers, so the two overlap.
# 4. Only the order in which the threads add up partial sums differs, so any difference
#    in the final lines is rounding, grown over the steps. It is the same kind of
#    difference as between one process and two with synchronized BatchNorm; how large it
#    is after two epochs depends on the machine and on chance, not on a defect.
#
# </details>

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
