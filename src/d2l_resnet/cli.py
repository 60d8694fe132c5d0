"""The command line: ``python -m d2l_resnet COMMAND``.

Commands:
    data    find Fashion-MNIST, verify it and say where it came from.
    train   train ResNet-18 with a profile's recipe; the book's final lines.
    bench   measure: ``bench data`` (the two data loaders), ``bench train`` (training).

Each command has an ``_add_<command>`` function that declares its arguments and a
handler that runs it; ``main`` returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


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
    from d2l_resnet.data import prepare_fashion_mnist

    source = prepare_fashion_mnist(args.root, download=not args.no_download)
    print(source.report())
    return 0


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "bench", help="measure the data loaders (data) or training (train)",
        description="Benchmarks: figures to read and report, not tests with thresholds.")
    which = p.add_subparsers(dest="bench", required=True, metavar="{train,data}")
    _add_bench_train(which)
    _add_bench_data(which)


def _add_bench_train(which: argparse._SubParsersAction) -> None:
    p = which.add_parser(
        "train", help="the source training pipeline vs the project's training step",
        description="Training examples per second of the source notebook's pipeline (its "
                    "DataLoader, fp32, plain SGD) and of the project's training step (the "
                    "course recipe), side by side at 28x28 with the same model and batch "
                    "size, and the machine's bf16 (else fp32) matmul GFLOP/s; both ratios "
                    "on the last line. About a minute on 2 CPU cores.")
    p.add_argument("--batch-size", type=int, default=256, help="examples per step (256)")
    p.add_argument("--steps", type=int, default=20, help="measured steps per round (20)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds of both; the best of each is kept (2)")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding Fashion-MNIST (see the data command)")
    p.add_argument("--quiet", action="store_true", help="print the results only")
    p.set_defaults(handler=_run_bench_train)


def _run_bench_train(args: argparse.Namespace) -> int:
    from d2l_resnet.bench import bench_train

    result = bench_train(args.batch_size, steps=args.steps, rounds=args.rounds,
                         root=args.root, log=None if args.quiet else _log)
    print(result.report())
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _add_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train", help="train ResNet-18 on Fashion-MNIST; print the book's final lines",
        description="Train the source's ResNet-18 with a profile's recipe (quick, course, "
                    "d2l; default: $D2L_RESNET_PROFILE, else course), scoring the whole test "
                    "set after every epoch. Options override the profile.")
    p.add_argument("--profile", default=None, help="quick, course or d2l")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs")
    p.add_argument("--lr", type=float, default=None, help="(peak) learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step")
    p.add_argument("--resize", type=int, default=None,
                   help="resize the 28x28 images to this side (the book: 96)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=None, help="random seed (profile: 0)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="save a checkpoint here after every epoch (atomically)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint to the same result as an unbroken run")
    p.add_argument("--root", type=Path, default=None,
                   help="a folder holding Fashion-MNIST (see the data command)")
    p.add_argument("--quiet", action="store_true", help="print the final lines only")
    p.set_defaults(handler=_run_train)


def _check_option(name: str, value: float | None, low: float, what: str) -> None:
    if value is not None and not value >= low:
        raise ValueError(f"{name} must be {what}, got {value}")


def _run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from d2l_resnet.profiles import get_profile

    profile = get_profile(args.profile)
    _check_option("--epochs", args.epochs, 1, "a positive integer (e.g. --epochs 10)")
    _check_option("--batch-size", args.batch_size, 1, "a positive integer (e.g. 256)")
    _check_option("--seed", args.seed, 0, "a non-negative integer")
    if args.lr is not None and not 0 < args.lr < float("inf"):
        raise ValueError(f"--lr must be a positive number (the book uses 0.05), got {args.lr}")
    if args.resize is not None:
        from d2l_resnet.model import MIN_SIZE

        _check_option("--resize", args.resize, MIN_SIZE,
                      f"at least {MIN_SIZE} (the network's smallest input; the book uses 96)")
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
    if args.resume and not args.checkpoint.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {args.checkpoint}; run once "
                                f"without --resume to create it")
    overrides = {k: v for k, v in (("num_epochs", args.epochs), ("lr", args.lr),
                                   ("batch_size", args.batch_size),
                                   ("resize", args.resize), ("seed", args.seed))
                 if v is not None}
    profile = dataclasses.replace(profile, **overrides)

    from d2l_resnet.model import resnet18
    from d2l_resnet.train import get_device, load_checkpoint, load_data_for_profile, train

    device = get_device(args.device)
    if args.resume:
        load_checkpoint(args.checkpoint)          # an unreadable file fails here, early
    train_iter, test_iter = load_data_for_profile(profile, root=args.root, device=device)
    if not args.quiet:
        _log(f"profile {profile.name}: {profile.num_epochs} epochs, lr {profile.lr:g}, "
             f"batch {profile.batch_size}, size {profile.resize or 28}, "
             f"{train_iter.num_examples:,} training / {test_iter.num_examples:,} test "
             f"examples")
    history = train(resnet18(), train_iter, test_iter, device=device,
                    checkpoint=args.checkpoint, resume=args.resume, verbose=not args.quiet,
                    progress=False if args.quiet else None, **profile.train_kwargs())
    if args.quiet:
        print(history.final_lines())
    return 0


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
    from d2l_resnet.bench import bench_data, format_bench_data

    if args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    rows = bench_data(args.sizes, batch_size=args.batch_size,
                      source_repeats=args.repeats, fast_repeats=max(5, args.repeats),
                      num_workers=args.workers, device=args.device, root=args.root)
    print(format_bench_data(rows, batch_size=args.batch_size, num_workers=args.workers))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors in the user's input print a message and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
