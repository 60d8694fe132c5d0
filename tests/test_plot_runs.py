"""Tests of ``plot_runs``: several training histories on one figure (notebook 06)."""

from __future__ import annotations

import pytest

from d2l_resnet.plot import plot_runs
from d2l_resnet.train import History


def _history(shift: float) -> History:
    h = History(device="cpu", lr=0.1, test_acc=0.7 + shift)
    for e in (1, 2):
        h.points += [(e - 0.5, 2.0 / e + shift, 0.4 + shift), (float(e), 1.5 / e + shift, 0.5)]
        h.epochs.append(e)
    return h


def test_plot_runs_draws_each_run_in_both_panels() -> None:
    runs = {"2 processes": _history(0.0), "1 process": _history(0.01)}
    ax_loss, ax_acc = plot_runs(runs).axes
    assert [line.get_label() for line in ax_acc.lines] == [
        "2 processes, test acc 0.700", "1 process, test acc 0.710"]
    assert list(ax_acc.lines[1].get_ydata()) == pytest.approx([0.41, 0.5, 0.41, 0.5])
    assert list(ax_loss.lines[0].get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert ax_acc.get_ylabel() == "training accuracy"
    assert ax_loss.lines[0].get_color() != ax_loss.lines[1].get_color()


def test_plot_runs_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one labelled history"):
        plot_runs({})
