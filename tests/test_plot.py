"""Tests of d2l_resnet.plot: each figure holds what it claims (read back from the
artists, not looked at), renders as PNG, and refuses bad arguments."""

from __future__ import annotations

import io
from itertools import pairwise

import pytest
import torch
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from d2l_resnet.plot import (
    LivePlot,
    family_styles,
    figure_png,
    plot_confusion_matrix,
    plot_cost_shares,
    plot_depth_curves,
    plot_grad_norms,
    plot_history,
    plot_image_grid,
    plot_loss_panels,
    plot_lr_runs,
    plot_misclassified,
    plot_runs,
    plot_val_curves,
    plot_vs_depth,
)
from d2l_resnet.train import History

# -- plot --------------------------------------------------------------------

def _bar_heights(fig) -> dict[str, list[float]]:
    (ax,) = fig.axes
    return {c.get_label(): [p.get_height() for p in c.patches]
            for c in ax.containers if isinstance(c, BarContainer)}


def test_cost_shares_bars_are_percentages_of_each_series() -> None:
    fig = plot_cost_shares(["a", "b", "c"], {"params": [1, 1, 2], "flops": [30, 0, 10]})
    heights = _bar_heights(fig)
    assert list(heights) == ["params", "flops"]
    assert heights["params"] == pytest.approx([25.0, 25.0, 50.0])
    assert heights["flops"] == pytest.approx([75.0, 0.0, 25.0])
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["params", "flops"]


def test_cost_shares_groups_do_not_overlap() -> None:
    fig = plot_cost_shares(["a", "b"], {"x": [1, 2], "y": [3, 4], "z": [5, 6]})
    (ax,) = fig.axes
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for c in ax.containers
                   for p in c.patches)
    assert len(spans) == 6
    assert all(left_end <= right_start + 1e-9
               for (_, left_end), (right_start, _) in pairwise(spans))


def test_cost_shares_title_and_png() -> None:
    fig = plot_cost_shares(["a"], {"x": [3]}, title="where it lives")
    assert fig.axes[0].get_title() == "where it lives"
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("labels", "series", "match"),
    [
        ([], {"x": []}, "at least one group"),
        (["a"], {}, "at least one entry"),
        (["a", "b"], {"x": [1]}, "1 values but there are 2 labels"),
        (["a", "b"], {"x": [1, -1]}, "negative"),
        (["a", "b"], {"x": [0, 0]}, "sums to zero"),
    ],
)
def test_cost_shares_rejects_bad_arguments(labels, series, match) -> None:
    with pytest.raises(ValueError, match=match):
        plot_cost_shares(labels, series)


# -- image grids ---------------------------------------------------------------

def test_image_grid_has_one_titled_image_per_example() -> None:
    images = torch.arange(5 * 4 * 4, dtype=torch.uint8).reshape(5, 4, 4)
    fig = plot_image_grid(images, ["a", "b", "c", "d", "e"], ncols=3)
    assert len(fig.axes) == 6                                  # 2 rows of 3, one left empty
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == ["a", "b", "c", "d", "e"]
    assert (shown[1].get_images()[0].get_array() == images[1].numpy()).all()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


def test_image_grid_narrows_to_the_number_of_images() -> None:
    fig = plot_image_grid(torch.zeros(2, 4, 4), ["x", "y"], ncols=10)
    assert len(fig.axes) == 2


@pytest.mark.parametrize(
    ("n", "titles", "ncols", "match"),
    [(0, [], 10, "N >= 1"), (2, ["x"], 10, "2 images and 1 titles"),
     (2, ["x", "y"], 0, "ncols")],
)
def test_image_grid_refuses_bad_arguments(n: int, titles: list[str], ncols: int,
                                          match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plot_image_grid(torch.zeros(n, 4, 4), titles, ncols=ncols)


# -- training curves --------------------------------------------------------------

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
    low, high = ax_loss.get_xlim()
    assert low == 0 and 5 < high < 5.5          # the last epoch's markers inside the axes
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
    assert len(fig.axes) == 2                       # the matrix and its color bar
    with pytest.raises(ValueError, match="must be 3x3"):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"])
    images = torch.zeros(5, 28, 28, dtype=torch.uint8)
    fig = plot_misclassified(images, list("abcde"), list("edcba"), ncols=4)
    assert len(fig.axes) == 8
    with pytest.raises(ValueError, match="expected N >= 1 images"):
        plot_misclassified(images, list("abc"), list("abcde"))


# -- several runs ---------------------------------------------------------------

def _run_history(shift: float) -> History:
    h = History(device="cpu", lr=0.1, test_acc=0.7 + shift)
    for e in (1, 2):
        h.points += [(e - 0.5, 2.0 / e + shift, 0.4 + shift), (float(e), 1.5 / e + shift, 0.5)]
        h.epochs.append(e)
    return h


def test_plot_runs_draws_each_run_in_both_panels() -> None:
    runs = {"2 processes": _run_history(0.0), "1 process": _run_history(0.01)}
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


# -- gradients and losses ----------------------------------------------------------

def test_grad_norms_lines_are_placed_back_from_the_output() -> None:
    fig = plot_grad_norms({"a": {"L=3": [1e-4, 1e-2, 1.0], "L=2": [0.5, 2.0]},
                           "b": {"x": [1.0]}},
                          styles={"L=2": {"linestyle": "--"}})
    ax_a, _ = fig.axes
    lines = {ln.get_label(): ln for ln in ax_a.get_lines()}
    assert list(lines["L=3"].get_xdata()) == [3, 2, 1]
    assert list(lines["L=3"].get_ydata()) == [1e-4, 1e-2, 1.0]
    assert list(lines["L=2"].get_xdata()) == [2, 1]
    assert lines["L=2"].get_linestyle() == "--"
    assert (ax_a.get_xscale(), ax_a.get_yscale()) == ("linear", "log")
    assert ax_a.get_xlim()[0] == 0 and ax_a.get_xlim()[1] > 3     # the dot at L inside
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


def test_loss_panels_smooth_with_a_running_mean() -> None:
    fig = plot_loss_panels({"plain": {"deep": [1.0, 3.0, 5.0, 7.0]}}, window=2)
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [1, 2, 3, 4]
    assert list(line.get_ydata()) == pytest.approx([1.0, 2.0, 4.0, 6.0])
    fig = plot_loss_panels({"p": {"x": [2.0, 4.0]}}, window=5)
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx([2.0, 3.0])


@pytest.mark.parametrize(
    ("panels", "match"),
    [
        ({}, "at least one panel"),
        ({"a": {}}, "has no lines"),
        ({"a": {"x": []}}, "has no values"),
    ],
)
def test_both_plots_reject_empty_input(panels, match) -> None:
    with pytest.raises(ValueError, match=match):
        plot_grad_norms(panels)
    with pytest.raises(ValueError, match=match):
        plot_loss_panels(panels)


def test_grad_norms_reject_zero_and_loss_panels_reject_bad_window() -> None:
    with pytest.raises(ValueError, match="float64"):
        plot_grad_norms({"a": {"x": [1.0, 0.0]}})
    with pytest.raises(ValueError, match="window must be a positive integer"):
        plot_loss_panels({"a": {"x": [1.0]}}, window=0)


def test_grad_norms_panels_can_scale_apart() -> None:
    panels = {"a": {"x": [1e-40, 1.0]}, "b": {"y": [1.0, 10.0]}}
    shared = plot_grad_norms(panels)
    apart = plot_grad_norms(panels, sharey=False)
    assert shared.axes[1].get_ylim() == shared.axes[0].get_ylim()
    assert apart.axes[1].get_ylim()[0] > apart.axes[0].get_ylim()[0] * 1e30
    assert [ax.get_ylabel() != "" for ax in apart.axes] == [True, True]


def _luminance(color: str) -> float:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_family_styles_color_by_family_and_shade_by_depth() -> None:
    lines = {f"{family}, L={L}": (family, L) for family in ("plain", "residual")
             for L in (100, 10, 30)}
    styles = family_styles(lines)
    assert {s["linestyle"] for k, s in styles.items() if k.startswith("plain")} == {"-"}
    assert {s["linestyle"] for k, s in styles.items() if k.startswith("residual")} == {"--"}
    for family in ("plain", "residual"):
        shades = [_luminance(styles[f"{family}, L={L}"]["color"]) for L in (10, 30, 100)]
        assert shades[0] > shades[1] > shades[2], "deeper lines must be darker"
    from matplotlib.colors import rgb_to_hsv, to_rgb

    hue = {f: rgb_to_hsv(to_rgb(styles[f"{f}, L=30"]["color"]))[0]
           for f in ("plain", "residual")}
    assert abs(hue["plain"] - hue["residual"]) > 0.3, "the two families need distinct hues"
    fig = plot_grad_norms({"a": {k: [1.0, 0.5] for k in lines}}, styles=styles)
    drawn = {ln.get_label(): ln.get_color() for ln in fig.axes[0].get_lines()}
    assert drawn == {k: s["color"] for k, s in styles.items()}
    assert fig.axes[0].get_legend().handlelength >= 3


def test_family_styles_reject_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="family 'dense'"):
        family_styles({"x": ("dense", 3)})
    assert family_styles({"x": ("plain", 3)})["x"]["linestyle"] == "-"


def test_grad_norms_one_figure_legend_outside_each_label_once() -> None:
    panels = {"default": {"plain": [1e-3, 1.0], "residual": [2.0, 1.0]},
              "Kaiming": {"plain": [0.9, 1.0], "residual": [9.0, 1.0]}}
    fig = plot_grad_norms(panels, legend="figure")
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["plain", "residual"]
    fig.draw_without_rendering()          # lay the figure out
    box = legend.get_window_extent()
    assert all(box.x0 >= ax.get_window_extent().x1 for ax in fig.axes), "legend overlaps"
    with pytest.raises(ValueError, match=r"legend 'inside'.*'axes', 'figure'"):
        plot_grad_norms(panels, legend="inside")


def test_loss_panels_state_the_window_and_draw_the_reference() -> None:
    fig = plot_loss_panels({"plain": {"a": [2.3, 2.0, 1.5]}, "residual": {"b": [1.0]}},
                           window=10, reference=(2.302585, "ln 10: a uniform guess"))
    assert "running mean of 10 steps" in fig.axes[0].get_ylabel()
    for ax in fig.axes:
        ref = [ln for ln in ax.get_lines() if ln.get_label() == "ln 10: a uniform guess"]
        assert len(ref) == 1 and list(ref[0].get_ydata()) == [2.302585, 2.302585]
    plain = plot_loss_panels({"p": {"x": [1.0, 2.0]}}, window=1)
    assert plain.axes[0].get_ylabel() == "training loss"


def _depth_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    epochs = [{"network": n, "seed": str(s), "epoch": str(e), "val_acc": str(a)}
              for n, accs in (("plain-20", (0.8, 0.9)), ("plain-56", (0.7, 0.8)))
              for s, shift in ((0, 0.0), (1, 0.02)) for e, a in zip((1, 2), [
                  x + shift for x in accs], strict=True)]
    curves = [{"network": n, "seed": str(s), "epoch": x, "train_err": str(err + s / 100)}
              for n, err in (("plain-20", 0.1), ("plain-56", 0.2)) for s in (0, 1)
              for x in ("0.500", "1.000")]
    return epochs, curves


def test_depth_curves_thin_training_bold_validation_mean_over_seeds() -> None:
    epochs, curves = _depth_rows()
    fig = plot_depth_curves(epochs, curves, {"plain": ["plain-20", "plain-56"]},
                            colors={"plain-20": "#ff0000"})
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4                      # a training and a validation line each
    train20, val20 = lines[0], lines[1]
    assert list(train20.get_xdata()) == [0.5, 1.0]
    assert list(train20.get_ydata()) == pytest.approx([10.5, 10.5])     # mean of 10, 11 %
    assert list(val20.get_xdata()) == [1.0, 2.0]
    assert list(val20.get_ydata()) == pytest.approx([19.0, 9.0])        # 1 - 0.81, 1 - 0.91
    assert train20.get_linewidth() < val20.get_linewidth()
    assert train20.get_linestyle() == "--" and val20.get_linestyle() == "-"
    assert train20.get_color() == val20.get_color() == "#ff0000"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain-20", "plain-56"]
    (key,) = fig.legends
    assert "fifth of an epoch" in key.get_texts()[0].get_text()
    with pytest.raises(ValueError, match="no rows of network 'ResNet-20'"):
        plot_depth_curves(epochs, curves, {"residual": ["ResNet-20"]})
    with pytest.raises(ValueError, match="at least one title"):
        plot_depth_curves(epochs, curves, {})


def test_vs_depth_marks_each_depth_and_logs_the_named_panels() -> None:
    fig = plot_vs_depth({"ratio": {"plain": {56: 1e4, 20: 20.0}},
                         "correlation": {"plain": {20: 0.5, 56: 0.0}}},
                        ylabels={"ratio": "ratio (log scale)"}, logy=["ratio"])
    ratio_ax, corr_ax = fig.axes
    (line,) = ratio_ax.get_lines()
    assert list(line.get_xdata()) == [20, 56] and list(line.get_ydata()) == [20.0, 1e4]
    assert line.get_marker() == "o"
    assert (ratio_ax.get_yscale(), corr_ax.get_yscale()) == ("log", "linear")
    assert ratio_ax.get_ylabel() == "ratio (log scale)"
    with pytest.raises(ValueError, match=r"logy names panels that do not exist: \['rate'\]"):
        plot_vs_depth({"ratio": {"plain": {20: 1.0}}}, logy=["rate"])
    with pytest.raises(ValueError, match="none of them empty"):
        plot_vs_depth({"ratio": {"plain": {}}})


# -- the committed experiments -------------------------------------------------------------


def test_lr_runs_mark_the_nan_step_and_the_limit_where_they_occur() -> None:
    nan = float("nan")
    runs = {(0.9, 0): [3.0, 60.0, 5.0, 1.0], (0.9, 1): [3.0, 40.0, nan, nan],
            (0.05, 0): [3.0, 2.0, 1.0, 0.5], (0.05, 1): [2.5, 2.0, 1.5, 1.0]}
    fig = plot_lr_runs(runs, limit=4.6, clip=12)
    ax_high, ax_low = fig.axes
    assert [ax.get_title() for ax in (ax_high, ax_low)] == ["lr 0.9", "lr 0.05"]
    assert ax_high.get_ylim() == (0, 12)
    nan_marks = [ln for ln in ax_high.lines if ln.get_label() == "_nan"]
    assert len(nan_marks) == 1 and list(nan_marks[0].get_xdata()) == [3]   # the NaN step
    legend = [t.get_text() for t in ax_high.get_legend().get_texts()]
    assert legend == ["limit 4.6 (2 ln 10)", "loss became NaN"]
    assert ax_low.get_legend() is None                 # nothing crossed 4.6 at lr 0.05
    seeds = [t.get_text() for t in fig.legends[0].get_texts()]
    assert seeds == ["seed 0", "seed 1"]


def test_val_curves_are_the_means_of_the_seeds_zoomed_as_asked() -> None:
    rows = [{"variant": v, "seed": str(s), "epoch": str(e), "val_acc": str(acc)}
            for v, s, e, acc in [("a", 0, 1, 0.90), ("a", 1, 1, 0.92), ("a", 0, 2, 0.93),
                                 ("a", 1, 2, 0.93), ("b", 0, 1, 0.91), ("b", 1, 1, 0.91),
                                 ("b", 0, 2, 0.92), ("b", 1, 2, 0.94)]]
    (ax,) = plot_val_curves(rows, ["a", "b"], ylim=(0.89, 0.95)).axes
    for line in ax.lines:
        assert list(line.get_ydata()) == pytest.approx([0.91, 0.93])
    assert ax.get_ylim() == (0.89, 0.95) and "mean of 2 seeds" in ax.get_ylabel()
    with pytest.raises(ValueError, match="'c'"):
        plot_val_curves(rows, ["c"])
