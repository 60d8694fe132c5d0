"""The command line: ``python -m d2l_resnet COMMAND``.

Commands:
    data    find Fashion-MNIST, verify it and say where it came from.

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="python -m d2l_resnet",
        description="ResNet-18 on Fashion-MNIST: data, training and benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(commands)
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
