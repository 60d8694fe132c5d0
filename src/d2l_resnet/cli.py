"""The command line: ``python -m d2l_resnet COMMAND``.

Commands:
    data    find Fashion-MNIST, verify it and say where it came from.
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
    p = which.add_parser("train", help="training throughput")
    p.set_defaults(handler=_run_bench_train)


def _run_bench_train(args: argparse.Namespace) -> int:
    raise RuntimeError("bench train is not implemented yet; bench data is")


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
