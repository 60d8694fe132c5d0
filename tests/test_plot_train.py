"""Tests of the training plots: the live plot updates one display, figures are PNG."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from d2l_resnet.plot import (
    LivePlot,
    figure_png,
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
)
from d2l_resnet.train import History


def _history(epochs: int = 2) -> History:
    h = History(device="cpu", lr=0.1)
    for e in range(1, epochs + 1):
        h.points += [(e - 0.5, 1.0 / e, 0.5 + 0.1 * e), (float(e), 0.8 / e, 0.55 + 0.1 * e)]
        h.epochs.append(e)
        h.val_acc.append(0.6 + 0.1 * e)
    return h


def test_plot_history_draws_loss_and_accuracies() -> None:
    fig = plot_history(_history(), num_epochs=5)
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_xlim() == (0, 5)
    assert [line.get_label() for line in ax_acc.get_lines()] == ["train acc", "val acc"]
    history = _history()
    history.test_acc = 0.8
    labels = [line.get_label() for line in plot_history(history).axes[1].get_lines()]
    assert labels == ["train acc", "val acc", "test acc (scored once)"]
    assert figure_png(fig).startswith(b"\x89PNG")


class FakeHandle:
    def __init__(self) -> None:
        self.updates: list[object] = []

    def update(self, obj: object) -> None:
        self.updates.append(obj)


def test_live_plot_displays_once_then_updates_the_same_handle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[object] = []
    handle = FakeHandle()

    def fake_display(obj: object, display_id: bool = False) -> FakeHandle:
        assert display_id is True
        shown.append(obj)
        return handle

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = LivePlot(num_epochs=3)
    for e in (1, 2, 3):
        live(_history(e))
    assert len(shown) == 1 and len(handle.updates) == 2
    assert handle.updates[-1].format == "png"
    assert isinstance(live.figure, Figure)


def test_confusion_matrix_and_misclassified_figures() -> None:
    fig = plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"])
    assert len(fig.axes) == 2                       # the matrix and its colour bar
    with pytest.raises(ValueError, match="must be 3x3"):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"])
    images = torch.zeros(5, 28, 28, dtype=torch.uint8)
    fig = plot_misclassified(images, list("abcde"), list("edcba"), ncols=4)
    assert len(fig.axes) == 8
    with pytest.raises(ValueError, match="expected N >= 1 images"):
        plot_misclassified(images, list("abc"), list("abcde"))
