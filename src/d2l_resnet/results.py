"""The committed results under ``results/``, read back as data.

Each experiment wrote a CSV of its measurements and a JSON file beside it that says how
they were made (the command, the machine, the versions, the time taken); a committed
training run wrote its :class:`~d2l_resnet.train.History` as JSON. The notebooks read
them here; ``python -m d2l_resnet experiment ...`` and ``train --history`` write them
(:mod:`d2l_resnet.extras.experiments`).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from d2l_resnet.data import project_data_dir
from d2l_resnet.train import DivergenceError, DivergenceGuard, History

__all__ = [
    "guard_stop",
    "longest_stretch_above",
    "lr_runs",
    "read_json",
    "read_results",
    "read_run",
    "recipe_table",
    "results_dir",
    "seed_spread",
]

#: The command that regenerates each result, for the message when one is missing.
COMMANDS = {"source_lr": "experiment lr", "recipe_round1": "experiment recipe --round 1",
            "recipe_round2": "experiment recipe --round 2",
            "recipe_round3": "experiment recipe --round 3",
            "recipe_round4": "experiment recipe --round 4 --seeds 4",
            "recipe_round5": "experiment recipe --round 5 --seeds 8",
            "recipe_round6": "experiment recipe --round 6 --seeds 6",
            "recipe_round7": "experiment recipe --round 7 --seeds 6",
            "recipe_round8": "experiment recipe --round 8 --seeds 2 --jobs 2",
            "recipe_round9": "experiment recipe --round 9 --seeds 2 --jobs 2",
            "recipe_round10": "experiment recipe --round 10 --seeds 2 --jobs 2",
            "tta": "experiment tta --seeds 4",
            "depth": "experiment depth",
            "depth_curves": "experiment depth", "stem": "experiment stem",
            "bench_ddp": "bench ddp --out results/bench_ddp.json",
            "bench_train_zen3": "bench train --out results/bench_train_zen3.json",
            "bench_train_zen3_b": "bench train --out results/bench_train_zen3_b.json"}


def results_dir() -> Path:
    """The project's ``results/`` folder (beside ``data/``)."""
    return project_data_dir().parent / "results"


def read_results(name: str, folder: Path | None = None
                 ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The rows of ``NAME.csv`` (as strings) and the metadata of ``NAME.json``.

    Raises:
        FileNotFoundError: If the results were never written, naming the command.
    """
    folder = results_dir() if folder is None else Path(folder)
    csv_path, json_path = folder / f"{name}.csv", folder / f"{name}.json"
    if not csv_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(f"no results {name!r} in {folder}; regenerate them with "
                                f"`python -m d2l_resnet {COMMANDS.get(name, name)}`")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads(json_path.read_text())


def read_json(name: str, folder: Path | None = None) -> dict[str, Any]:
    """``NAME.json`` in ``results/`` (or ``folder``): a measurement written as data.

    Raises:
        FileNotFoundError: If there is no such file, naming the command that writes it.
    """
    path = (results_dir() if folder is None else Path(folder)) / f"{name}.json"
    if not path.is_file():
        command = COMMANDS.get(name, f"train --history {path}")
        raise FileNotFoundError(f"no {path}; write it with `python -m d2l_resnet "
                                f"{command}`")
    return json.loads(path.read_text())


def read_run(name: str, folder: Path | None = None) -> tuple[History, dict[str, Any]]:
    """A training run, ``NAME.json`` as ``train --history`` wrote it: its
    :class:`~d2l_resnet.train.History`, and the rest (command, machine, recipe, data).

    Raises:
        FileNotFoundError: If there is no such run.
    """
    run = read_json(name, folder)
    return History.from_dict(run.pop("history")), run


# -- source_lr: the source's recipe at lr 0.9 and 0.05 ----------------------------------------


def lr_runs(rows: Iterable[dict[str, str]]) -> dict[tuple[float, int], list[float]]:
    """The per-step losses of ``results/source_lr.csv``, by ``(lr, seed)``."""
    runs: dict[tuple[float, int], list[float]] = {}
    for row in rows:
        runs.setdefault((float(row["lr"]), int(row["seed"])), []).append(float(row["loss"]))
    return runs


def longest_stretch_above(losses: Sequence[float], limit: float) -> int:
    """The most consecutive finite steps with a loss above ``limit``."""
    longest = current = 0
    for loss in losses:
        current = current + 1 if loss > limit and math.isfinite(loss) else 0
        longest = max(longest, current)
    return longest


def guard_stop(losses: Sequence[float], guard: DivergenceGuard) -> int | None:
    """The step at which ``guard`` would have stopped a run with these losses, or None."""
    for step, loss in enumerate(losses, 1):
        try:
            guard.check(loss, epoch=1, step=step)
        except DivergenceError:
            return step
    return None


# -- recipe rounds ------------------------------------------------------------------------------


def recipe_table(rows: Iterable[dict[str, str]]) -> list[dict[str, Any]]:
    """One row per variant of ``results/recipe_round*.csv``: its epochs, the final validation
    accuracy of each seed, their mean, and the mean with flip test-time augmentation."""
    finals: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["val_acc_flip_tta"] == "":
            continue                                  # not the last epoch
        entry = finals.setdefault(row["variant"], {"variant": row["variant"],
                                                   "epochs": int(row["epochs"]),
                                                   "val_acc": [], "val_acc_flip_tta": []})
        entry["val_acc"].append(float(row["val_acc"]))
        entry["val_acc_flip_tta"].append(float(row["val_acc_flip_tta"]))
    for entry in finals.values():
        entry["mean"] = statistics.fmean(entry["val_acc"])
        entry["mean_flip_tta"] = statistics.fmean(entry["val_acc_flip_tta"])
    return list(finals.values())


def seed_spread(table: Sequence[dict[str, Any]], key: str = "val_acc") -> float:
    """The standard deviation of one run's accuracy from its seed alone, estimated from the
    variants of :func:`recipe_table` trained from two seeds or more: each variant's runs
    scatter around their own mean, and the squared deviations of all variants are pooled
    (divided by the runs less one per variant). For two runs ``a`` and ``b`` of one
    variant that is ``(a - b)**2 / 2``.

    Raises:
        ValueError: If no variant has two seeds.
    """
    groups = [row[key] for row in table if len(row[key]) >= 2]
    if not groups:
        raise ValueError("no variant has two seeds; the spread needs pairs of runs")
    squares = sum(statistics.variance(g) * (len(g) - 1) for g in groups)
    return math.sqrt(squares / sum(len(g) - 1 for g in groups))
