"""The command line: ``python -m d2l_resnet COMMAND``.

Commands:
    data    find Fashion-MNIST, verify it and say where it came from.
    train   train ResNet-18 with a profile's recipe; the book's final lines. Under
            ``torchrun``, one rank of a data-parallel run.
    bench   measure: ``bench data`` (the two data loaders), ``bench train`` (training),
            ``bench ddp`` (one process vs several under torchrun).
    experiment  regenerate a committed result: ``experiment lr``, ``experiment recipe``,
            ``experiment depth``.

Each command has an ``_add_<command>`` function that declares its arguments and a
handler that runs it; ``main`` returns the exit status. Every option is checked here,
before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from d2l_resnet.checkpoint import load_checkpoint, write_atomically
from d2l_resnet.checks import check_known, check_positive_int
from d2l_resnet.data import load_data_for_profile, prepare_fashion_mnist
from d2l_resnet.devices import AVX2_CAPS, PRECISIONS
from d2l_resnet.extras.bench import TrainBench, bench_data, bench_train, format_bench_data
from d2l_resnet.extras.bench_ddp import DdpBench, bench_ddp, ddp_worker, report_line
from d2l_resnet.extras.distributed import (
    is_main,
    launched_by_torchrun,
    on_main,
    process_group,
    train_data_parallel,
)
from d2l_resnet.extras.experiments import (
    DEFAULT_DEPTH_NETWORKS,
    DEPTH_NETWORKS,
    RECIPE_ROUNDS,
    STEM_NETWORKS,
    machine,
    run_experiment,
)
from d2l_resnet.model import MIN_SIZE, resnet18
from d2l_resnet.profiles import Profile, get_profile
from d2l_resnet.train import History, train

__all__ = ["build_parser", "main"]

ISAS = ("native", "avx2")


def _add_data(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "data", help="find, verify and unpack Fashion-MNIST; say where it came from",
        description="Find Fashion-MNIST (--root, $D2L_RESNET_DATA, the project's data/ "
                    "folder, /usr/share/datasets/fashion-mnist, torchvision's download), "
                    "verify its sizes and checksums, and unpack it into data/.")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding the four files (gz or not) or FashionMNIST/raw")
    p.add_argument("--no-download", action="store_true",
                   help="do not try torchvision's download as the last resort")
    p.set_defaults(handler=_run_data)


def _run_data(args: argparse.Namespace) -> int:
    source = prepare_fashion_mnist(args.root, download=not args.no_download)
    print(source.report())
    return 0


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "bench", help="measure the data loaders (data), training (train) or data-parallel "
                      "training (ddp)",
        description="Benchmarks: figures to read and report, not tests with thresholds.")
    which = p.add_subparsers(dest="bench", required=True, metavar="{train,data,ddp}")
    _add_bench_train(which)
    _add_bench_data(which)
    _add_bench_ddp(which)


def _add_bench_train(which: argparse._SubParsersAction) -> None:
    p = which.add_parser(
        "train", help="the source training pipeline vs the project's training step",
        description="Training examples per second of the source notebook's pipeline (its "
                    "DataLoader, fp32, plain SGD) and of the project's training step (the "
                    "course recipe, in the precision it picks), side by side at 28x28 with "
                    "the same model and batch size, and the machine's matmul GFLOP/s; the "
                    "speed-up on the last line. One to four minutes on 2 CPU cores.")
    p.add_argument("--batch-size", type=int, default=256, help="examples per step (256)")
    p.add_argument("--steps", type=int, default=20, help="measured steps per round (20)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds of both; the best of each is kept (3)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="precision of the project's step (auto, as the course profile)")
    p.add_argument("--isa", default="native", choices=ISAS,
                   help="native, or avx2: re-run in a process whose CPU kernels are capped "
                        "at AVX2 (oneDNN, MKL, ATen), like most laptops")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding Fashion-MNIST (see the data command)")
    p.add_argument("--quiet", action="store_true", help="print the results only")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the measurements here as JSON (atomically)")
    p.set_defaults(handler=_run_bench_train)


def _run_bench_train(args: argparse.Namespace) -> int:
    capped = all(os.environ.get(k) == v for k, v in AVX2_CAPS.items())
    if args.isa == "avx2" and not capped:
        # The caps are read when the libraries load, so they need a fresh process.
        return subprocess.run([sys.executable, "-m", "d2l_resnet", *args.argv],
                              env={**os.environ, **AVX2_CAPS}, check=False).returncode
    result = bench_train(args.batch_size, steps=args.steps, rounds=args.rounds,
                         root=args.root, precision=args.precision,
                         log=None if args.quiet else _log)
    print(result.report())
    if args.out is not None:
        _write_bench(args, result, speedup=result.speedup,
                     peak_share=result.project_gflops / result.peak_gflops)
    return 0


def _write_bench(args: argparse.Namespace, result: TrainBench | DdpBench,
                 **figures: float) -> None:
    """``args.out``: the command, the machine, the date, ``result``'s fields and
    ``figures``, as JSON."""
    data = {"command": "python -m d2l_resnet " + " ".join(args.argv),
            "machine": machine("cpu"), "date": time.strftime("%Y-%m-%d"),
            **dataclasses.asdict(result), **figures}
    write_atomically(args.out, lambda f: f.write(json.dumps(data, indent=1) + "\n"))


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _add_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train ResNet-18 on Fashion-MNIST; print the book's final lines",
        description="Train the source's ResNet-18 with a profile's recipe (quick, course, "
                    "d2l; default: $D2L_RESNET_PROFILE, else course) and score the whole "
                    "test set once, after the last epoch. Options override the profile. "
                    "Under torchrun it trains data-parallel, one process per rank.")
    p.add_argument("--profile", default=None, help="quick, course or d2l")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs")
    p.add_argument("--lr", type=float, default=None, help="(peak) learning rate")
    p.add_argument("--batch-size", type=int, default=None,
                   help="examples per step (all processes together under torchrun)")
    p.add_argument("--resize", type=int, default=None,
                   help="resize the 28x28 images to this side (the book: 96)")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="auto (bf16 where the device computes it natively, else fp32), "
                        "fp32 or bf16 (profile: auto)")
    p.add_argument("--device", default=None, help="auto (default: cuda, else mps, else cpu), "
                                                  "cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=None, help="random seed (profile: 0)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="save a checkpoint here after every epoch (atomically)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint to the same result as an unbroken run")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding Fashion-MNIST (see the data command)")
    p.add_argument("--history", type=Path, default=None,
                   help="write the run's history, settings and machine here as JSON "
                        "(atomically, after the last epoch)")
    p.add_argument("--quiet", action="store_true", help="print the final lines only")
    p.set_defaults(handler=_run_train)


def _train_profile(args: argparse.Namespace) -> Profile:
    """The profile named by --profile with the other options applied (and checked)."""
    options = {"--epochs": ("num_epochs", args.epochs), "--lr": ("lr", args.lr),
               "--batch-size": ("batch_size", args.batch_size),
               "--resize": ("resize", args.resize), "--seed": ("seed", args.seed),
               "--precision": ("precision", args.precision)}
    profile = get_profile(args.profile)
    for option, (name, value) in options.items():
        if value is None:
            continue
        if name == "resize" and value < MIN_SIZE:
            raise ValueError(f"--resize must be at least {MIN_SIZE} (the network's smallest "
                             f"input; the book uses 96), got {value}")
        try:
            profile = profile.replace(**{name: value})
        except ValueError as err:   # the recipe's message, in the option's name
            raise ValueError(str(err).replace(name, option, 1).replace(" or None", "")
                             ) from None
    return profile


def _run_train(args: argparse.Namespace) -> int:
    # Under torchrun: one process per rank, joined into a process group; else one process.
    with process_group(args.device) as session:
        with session.agreement() as shared:     # every rank checks; all go on or all stop
            resume = on_main(_resuming, args.resume, args.checkpoint, session.restart_count)
            profile = _train_profile(args)
            session.check_batch(profile.data.batch_size)
            data = load_data_for_profile(profile, root=args.root, device=session.device,
                                         rank=session.rank, world_size=session.world_size)
            shared.update(profile=profile.name, resume=args.resume,
                          checkpoint=str(args.checkpoint), **dataclasses.asdict(profile.recipe),
                          **dataclasses.asdict(profile.data))
        if not args.quiet and is_main():
            _log(f"profile {profile.name}: {profile.recipe.num_epochs} epochs, lr "
                 f"{profile.recipe.lr:g}, batch {profile.data.batch_size}, size "
                 f"{profile.data.resize or 28}, {data.train.num_examples:,} training / "
                 f"{data.test.num_examples:,} test examples")
            if session.launch is not None:
                _log(session.describe())
            if resume and not args.resume:
                _log(f"torchrun restarted the processes (restart {session.restart_count}): "
                     f"resuming from {args.checkpoint}")
        options = {"checkpoint": args.checkpoint, "resume": resume, "verbose": not args.quiet,
                   "progress": False if args.quiet else None}
        started = time.perf_counter()
        if session.launch is None:
            history = train(resnet18(), data.train, data.test, device=session.device,
                            recipe=profile.recipe, **options)
        else:
            history = train_data_parallel(resnet18(), data.train, data.test, profile.recipe,
                                          session.device, **options)
        if is_main():
            _report(args, profile, history, time.perf_counter() - started)
    return 0


def _report(args: argparse.Namespace, profile: Profile, history: History,
            seconds: float) -> None:
    """The end of a run on rank 0: its time, and its history as JSON if asked."""
    if args.quiet:
        print(history.final_lines())
    else:
        _log(f"{len(history.epochs)} epochs in {history.wall_time / 60:.1f} minutes "
             f"(training and scoring)")
    if args.history is not None:
        run = {"command": "python -m d2l_resnet " + " ".join(args.argv),
               "profile": profile.name, "recipe": dataclasses.asdict(profile.recipe),
               "data": dataclasses.asdict(profile.data), "machine": machine(history.device
                                                                            .split()[0]),
               "processes": int(os.environ.get("WORLD_SIZE", "1")),
               "minutes": round(seconds / 60, 2), "date": time.strftime("%Y-%m-%d"),
               "history": history.to_dict()}
        write_atomically(args.history, lambda f: f.write(json.dumps(run, indent=1) + "\n"))


def _resuming(resume: bool, checkpoint: Path | None, restarts: int) -> bool:
    """Whether the run resumes (decided on rank 0, which writes the checkpoint): when asked
    with --resume, or when torchrun has restarted the processes and the checkpoint exists.

    Raises:
        ValueError: If --resume comes without --checkpoint, or the checkpoint is unreadable.
        FileNotFoundError: If --resume finds no checkpoint.
    """
    if not resume:
        return restarts > 0 and checkpoint is not None and checkpoint.is_file()
    if checkpoint is None:
        raise ValueError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}; run once "
                                f"without --resume to create it")
    load_checkpoint(checkpoint)          # an unreadable file fails here, early
    return True


def _add_bench_data(which: argparse._SubParsersAction) -> None:
    p = which.add_parser(
        "data", help="the source DataLoader pipeline vs the in-memory loader",
        description="Examples per second of the source notebook's DataLoader pipeline "
                    "(PIL Resize, ToTensor, 4 worker processes) and of the in-memory "
                    "loader, side by side on the training set, at each size; the ratios "
                    "of the medians on the last line.")
    p.add_argument("--sizes", type=int, nargs="+", default=[28, 96],
                   help="image side lengths (28: no resize; default: 28 96)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per batch (256)")
    p.add_argument("--repeats", type=int, default=3,
                   help="passes of the source pipeline per size (3); the in-memory loader "
                        "makes 5 or at least as many")
    p.add_argument("--workers", type=int, default=4,
                   help="worker processes of the source pipeline (4, as the source)")
    p.add_argument("--device", default=None,
                   help="device of the in-memory loader (default: cpu)")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding Fashion-MNIST (see the data command)")
    p.set_defaults(handler=_run_bench_data)


def _run_bench_data(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    rows = bench_data(args.sizes, batch_size=args.batch_size,
                      source_repeats=args.repeats, fast_repeats=max(5, args.repeats),
                      num_workers=args.workers, device=args.device, root=args.root)
    print(format_bench_data(rows, batch_size=args.batch_size, num_workers=args.workers))
    return 0


def _add_experiment(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "experiment", help="regenerate a committed result under results/",
        description="lr: the source's recipe at lr 0.9 and 0.05, per-step loss over seeds "
                    "(results/source_lr.csv). recipe: variants of the course recipe scored "
                    "on a validation split of the training set (results/recipe_roundN.csv)."
                    " tta: the course recipe's network scored on validation with several "
                    "sets of test-time views (results/tta.csv). depth: plain against "
                    "residual networks of 20 and 56 layers and "
                    "ResNet-18 (results/depth.csv, depth_curves.csv). stem: ResNet-18 with "
                    "a 7x7 and a 3x3 stem (results/stem.csv). Each also writes a JSON file "
                    "saying how it was made.")
    which = p.add_subparsers(dest="experiment", required=True,
                             metavar="{lr,recipe,tta,depth,stem}")
    lr = which.add_parser("lr", help="does the source's lr 0.9 diverge? (about 90 minutes on a "
                                     "2-core CPU)")
    lr.add_argument("--steps", type=int, default=200, help="steps per run (200)")
    lr.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 (8)")
    recipe = which.add_parser("recipe", help="the course recipe's choices, on validation "
                                             "(minutes on a GPU, hours on a 2-core CPU)")
    recipe.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per variant (2)")
    recipe.add_argument("--round", type=int, default=1, choices=sorted(RECIPE_ROUNDS),
                        help="1: one change at a time; 2: its two winners together; 3: "
                             "shorter schedules; 4: 10 or 13 epochs; 5: random erasing, label "
                             "smoothing 0.2; 6: 32x32 images; 7: no bias decay; 8: last epoch "
                             "without flips, batch 128; 9: warm-up 10%%, 40%%; 10: weight "
                             "decay 2.5e-4, 1e-3 (1)")
    recipe.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="only these variants of the round (default: all of "
                             "d2l_resnet.extras.experiments.RECIPE_ROUNDS[round])")
    recipe.add_argument("--profile", default="course",
                        help="the profile varied (course; quick for a smoke test)")
    tta = which.add_parser("tta", help="test-time views: flips, shifts, on validation (about "
                                       "20 minutes a seed on a 2-core AVX2 CPU)")
    tta.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 (2)")
    depth = which.add_parser("depth", help="degradation: plain vs residual networks (about 3 "
                                           "hours on a 2-core CPU in bfloat16, --jobs 2)")
    depth.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per network (2)")
    depth.add_argument("--networks", nargs="+", default=list(DEFAULT_DEPTH_NETWORKS),
                       choices=list(DEPTH_NETWORKS), metavar="NAME",
                       help=f"which networks (default: {', '.join(DEFAULT_DEPTH_NETWORKS)})")
    depth.add_argument("--train-subset", type=int, default=20_000,
                       help="training images per run, of the 55,000 of the training split "
                            "(20000)")
    depth.add_argument("--epochs", type=int, default=15, help="epochs per run (15)")
    stem = which.add_parser("stem", help="ResNet-18 with a 7x7 and a 3x3 stem, on validation "
                                         "(about 40 minutes on a 2-core CPU)")
    stem.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per network (1)")
    stem.add_argument("--train-subset", type=int, default=10_000,
                      help="training images per run (10000)")
    stem.add_argument("--epochs", type=int, default=10, help="epochs per run (10)")
    for sub in (recipe, tta, depth, stem):
        sub.add_argument("--jobs", type=int, default=1,
                         help="runs at a time, a process each (1; 2 on 2 cores)")
    for sub in (lr, recipe, tta, depth, stem):
        sub.add_argument("--device", default=None, help="auto, cpu, cuda or mps")
        sub.add_argument("--out", type=Path, default=None,
                         help="write the results here (default: the project's results/)")
        sub.add_argument("--root", type=Path, default=None,
                         help="a folder holding Fashion-MNIST (see the data command)")
        sub.set_defaults(handler=_run_experiment)


def _run_experiment(args: argparse.Namespace) -> int:
    check_positive_int("--seeds", args.seeds)
    options = {"seeds": range(args.seeds), "root": args.root, "log": _log}
    if args.device is not None:
        options["device"] = args.device
    if args.experiment == "lr":
        options["steps"] = args.steps
    elif args.experiment == "tta":
        options["jobs"] = args.jobs
    elif args.experiment in ("depth", "stem"):
        check_positive_int("--train-subset", args.train_subset)
        check_positive_int("--epochs", args.epochs)
        options.update(networks=getattr(args, "networks", STEM_NETWORKS),
                       train_subset=args.train_subset, num_epochs=args.epochs, jobs=args.jobs)
    else:
        variants = RECIPE_ROUNDS[args.round]
        check_known(f"variant(s) of round {args.round}", args.variants or [], variants)
        options["variants"] = {v: variants[v] for v in args.variants or variants}
        options.update(profile=get_profile(args.profile), jobs=args.jobs, round=args.round)
    paths = run_experiment(args.experiment, args.out, **options)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _add_bench_ddp(which: argparse._SubParsersAction) -> None:
    p = which.add_parser(
        "ddp", help="1 process vs torchrun with several (same threads): where the time goes",
        description="Training examples per second of ResNet-18 (course recipe, the same "
                    "global batch) in 1 process and under torchrun in several, the cores "
                    "shared out so that both use the same threads: the step as train "
                    "takes it, with BatchNorm per process, and with no communication "
                    "(no_sync), and the gradients' all-reduce alone. Starts torchrun "
                    "itself; a few minutes on 2 CPU cores. The ratios on the last line.")
    p.add_argument("--batch-size", type=int, default=256,
                   help="examples per step, all processes together (256)")
    p.add_argument("--steps", type=int, default=10, help="measured steps per run (10)")
    p.add_argument("--nproc", type=int, default=2, help="processes of the parallel run (2)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds of both; the best of each is kept (2)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the measurements here as JSON (atomically)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=_run_bench_ddp)


def _run_bench_ddp(args: argparse.Namespace) -> int:
    if not args.worker:
        if launched_by_torchrun():
            raise ValueError("bench ddp starts torchrun itself: run `python -m d2l_resnet "
                             "bench ddp`, not under torchrun")
        result = bench_ddp(args.batch_size, args.steps, args.nproc, args.rounds, log=_log)
        print(result.report())
        if args.out is not None:
            _write_bench(args, result, speedup=result.speedup,
                         allreduce_share=result.allreduce_share,
                         communication_share=result.communication_share)
        return 0
    with process_group("cpu"):        # one rank of the runs that bench_ddp starts
        report = ddp_worker(args.batch_size, args.steps)
        if is_main():
            print(report_line(report), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="python -m d2l_resnet",
        description="ResNet-18 on Fashion-MNIST: data, training and benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(commands)
    _add_train(commands)
    _add_bench(commands)
    _add_experiment(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors in the user's input print a message and return 2."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if getattr(err, "report", True):     # under torchrun, some errors rank 0 reports
            print(f"error: {err}", file=sys.stderr)
        return 2
