"""Plots for the notebooks; the only module of the package that imports matplotlib.

Functions return a :class:`matplotlib.figure.Figure`; a notebook shows it with
``display(fig)`` (after ``%matplotlib inline``), a script saves it with ``fig.savefig``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from d2l_resnet.checks import check_choice, check_positive_int

__all__ = [
    "FAMILY_STYLES",
    "LivePlot",
    "family_styles",
    "figure_png",
    "plot_confusion_matrix",
    "plot_cost_shares",
    "plot_depth_curves",
    "plot_grad_norms",
    "plot_history",
    "plot_image_grid",
    "plot_loss_panels",
    "plot_misclassified",
    "plot_runs",
    "plot_vs_depth",
]


def plot_cost_shares(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str | None = None,
    figsize: tuple[float, float] = (6.4, 3.0),
) -> Figure:
    """Grouped bars: how the total of each series splits across ``labels``, in percent.

    For example, the share of a network's parameters and of its FLOPs that each stage
    holds, so that one chart shows where the weights live and where the compute goes.
    Each bar is annotated with its rounded percentage.

    Args:
        labels: One name per group of bars, e.g. ``["b1", "b2", ...]``.
        series: Legend entry -> one non-negative value per label, e.g.
            ``{"parameters": [...], "FLOPs": [...]}``. Each series is divided by its own
            total, so series of different units can share the axis.
        title: Title of the axes, if any.
        figsize: Width and height in inches.

    Returns:
        A new figure, not registered with pyplot (nothing is shown unless displayed).

    Raises:
        ValueError: If there are no labels or no series, a series has the wrong length,
            a value is negative, or a series sums to zero.
    """
    labels = list(labels)
    if not labels:
        raise ValueError("labels must name at least one group of bars, got none")
    if not series:
        raise ValueError("series must hold at least one entry, e.g. {'parameters': [...]}")
    shares: dict[str, list[float]] = {}
    for name, values in series.items():
        values = [float(v) for v in values]
        if len(values) != len(labels):
            raise ValueError(
                f"series {name!r} has {len(values)} values but there are {len(labels)} "
                f"labels; give one value per label"
            )
        if any(v < 0 for v in values):
            raise ValueError(f"series {name!r} has a negative value: {values}")
        total = sum(values)
        if total == 0:
            raise ValueError(f"series {name!r} sums to zero, so it has no shares to plot")
        shares[name] = [100 * v / total for v in values]

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(shares)
    for k, (name, pct) in enumerate(shares.items()):
        offset = (k - (len(shares) - 1) / 2) * width
        bars = ax.bar([i + offset for i in range(len(labels))], pct, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("share of total (%)")
    ax.set_ylim(0, max(max(p) for p in shares.values()) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=10)
    return fig


def _frame(ax: Any, xlabel: str, ylabel: str | None = None) -> None:
    """The axes set-up every line plot here shares: labels, a light grid, no top or
    right spine."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _check_panels(panels: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    if not panels:
        raise ValueError("panels must hold at least one panel: {title: {label: values}}")
    for title, lines in panels.items():
        if not lines:
            raise ValueError(f"panel {title!r} has no lines; give {{label: values}}")
        for label, values in lines.items():
            if len(values) == 0:
                raise ValueError(f"line {label!r} of panel {title!r} has no values")


# Family -> (matplotlib colormap, line style) for figures that compare plain and residual
# networks: one hue per family, so the two are told apart at a glance; the shade of the
# hue says the depth.
FAMILY_STYLES: dict[str, tuple[str, str]] = {"plain": ("Oranges", "-"),
                                              "residual": ("Blues", "--")}


def family_styles(
    lines: Mapping[str, tuple[str, int]],
    families: Mapping[str, tuple[str, str]] = FAMILY_STYLES,
) -> dict[str, dict[str, Any]]:
    """Line styles colored by family (hue) and depth (shade: the deeper, the darker).

    Args:
        lines: Line label -> ``(family, depth)``, e.g. ``{"plain, L=10": ("plain", 10)}``.
        families: Family -> ``(colormap name, line style)``; the default colors plain
            networks orange (solid) and residual ones blue (dashed).

    Returns:
        Line label -> keyword arguments for ``Axes.plot`` (``color``, ``linestyle``), as
        :func:`plot_grad_norms` and :func:`plot_loss_panels` take them in ``styles``.

    Raises:
        ValueError: If a line names a family that ``families`` does not style.
    """
    depths: dict[str, list[int]] = {}
    for label, (family, depth) in lines.items():
        if family not in families:
            raise ValueError(f"line {label!r} has family {family!r}; expected one of "
                             f"{', '.join(repr(f) for f in families)}")
        depths.setdefault(family, []).append(depth)
    shade: dict[tuple[str, int], float] = {}
    for family, found in depths.items():
        ordered = sorted(set(found))
        for i, depth in enumerate(ordered):   # from 0.45 (light) to 0.95 (dark)
            shade[family, depth] = 0.45 + 0.5 * (i / (len(ordered) - 1) if len(ordered) > 1
                                                 else 1.0)
    styles = {}
    for label, (family, depth) in lines.items():
        cmap, linestyle = families[family]
        styles[label] = {"color": to_hex(colormaps[cmap](shade[family, depth])),
                         "linestyle": linestyle}
    return styles


def _figure_legend(fig: Figure, axes: Sequence[Any]) -> None:
    """One legend for the whole figure, right of the axes: each label once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside right center",
               frameon=False, fontsize=8, handlelength=3.5)


def plot_grad_norms(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylabel: str = r"$\|\partial E / \partial x_l\|$",
    sharey: bool = True,
    legend: str = "axes",
    figsize: tuple[float, float] = (9.0, 3.6),
) -> Figure:
    """Per-layer gradient norms of deep stacks, log scale against depth, one axes per panel.

    A stack of ``L`` layers gives one norm per layer ``l = 0 .. L-1`` (the first nearest
    the input). It is drawn at ``x = L - l``, the number of layers the gradient has come
    back through from the output, on a linear axis, so stacks of different depths line
    up and a gradient that changes by the same factor per layer draws a straight line
    whose slope is that factor (log scale on y).

    Args:
        panels: Panel title -> {line label -> norms, first for the layer nearest the
            input}, e.g. ``{"without BatchNorm": {"plain, L=30": [...], ...}, ...}``.
        styles: Line label -> keyword arguments for ``Axes.plot`` (color, linestyle...).
        ylabel: Label of the shared y axis (the default names the gradient with respect
            to the layer's input; say so when plotting weight gradients).
        sharey: One y axis for all panels (False: each panel scales to its own lines).
        legend: ``"axes"``: a legend in each panel; ``"figure"``: one legend for the
            whole figure, right of the panels, each label once (for panels that draw
            the same lines).
        figsize: Width and height in inches.

    Returns:
        A new figure, the panels side by side.

    Raises:
        ValueError: If a panel or a line is empty, a norm is not positive (a log axis
            cannot show it), or ``legend`` is neither ``"axes"`` nor ``"figure"``.
    """
    _check_panels(panels)
    check_choice("legend", legend, ("axes", "figure"))
    styles = styles or {}
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=sharey, squeeze=False)[0]
    for ax, (title, lines) in zip(axes, panels.items(), strict=True):
        for label, norms in lines.items():
            values = [float(v) for v in norms]
            if not all(v > 0 for v in values):
                raise ValueError(f"line {label!r} of panel {title!r} has a norm <= 0, which "
                                 f"a log axis cannot show; measure in float64 to avoid "
                                 f"underflow to 0")
            depth = len(values)                     # L; values[l] is drawn at L - l
            ax.plot(range(depth, 0, -1), values, label=label,
                    **dict(styles.get(label, {})))
        ax.set_yscale("log")
        ax.set_xlim(left=0)
        ax.set_title(title, fontsize=10)
        _frame(ax, "layers back from the output, $L - l$")
        if legend == "axes":
            ax.legend(frameon=False, fontsize=7, handlelength=3.5)  # long enough for dashes
    if legend == "figure":
        _figure_legend(fig, axes)
    for ax in axes if not sharey else axes[:1]:
        ax.set_ylabel(ylabel)
    return fig


def plot_loss_panels(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    window: int = 10,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylabel: str = "training loss",
    reference: tuple[float, str] | None = None,
    figsize: tuple[float, float] = (9.0, 3.4),
) -> Figure:
    """Loss per training step, smoothed by a running mean, one axes per panel.

    The y axis says how many steps the running mean spans.

    Args:
        panels: Panel title -> {line label -> loss of every step}, e.g.
            ``{"plain": {"8 layers": [...], "32 layers": [...]}, "residual": {...}}``.
        window: Steps in the running mean (1: no smoothing).
        styles: Line label -> keyword arguments for ``Axes.plot``.
        ylabel: Label of the shared y axis, before the window.
        reference: ``(loss, label)`` drawn as a dotted horizontal line in every panel,
            e.g. ``(math.log(10), "ln 10, a uniform guess")``.
        figsize: Width and height in inches.

    Returns:
        A new figure, the panels side by side sharing the y axis.

    Raises:
        ValueError: If a panel or a line is empty, or ``window`` is not a positive integer.
    """
    _check_panels(panels)
    check_positive_int("window", window)
    styles = styles or {}
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, lines) in zip(axes, panels.items(), strict=True):
        for label, losses in lines.items():
            values = [float(v) for v in losses]
            smoothed, total = [], 0.0
            for i, v in enumerate(values):
                total += v - (values[i - window] if i >= window else 0.0)
                smoothed.append(total / min(i + 1, window))
            ax.plot(range(1, len(values) + 1), smoothed, label=label,
                    **dict(styles.get(label, {})))
        if reference is not None:
            ax.axhline(reference[0], color="0.4", linestyle=":", linewidth=1.2,
                       label=reference[1])
        ax.set_title(title, fontsize=10)
        _frame(ax, "step")
        ax.legend(frameon=False, fontsize=8, handlelength=3.5)
    axes[0].set_ylabel(ylabel if window == 1 else
                       f"{ylabel}\n(running mean of {window} steps)")
    return fig


def _seed_means(rows: Sequence[Mapping[str, str]], key: str, name: str, column: str
                ) -> tuple[list[float], list[float]]:
    """``(epochs, mean over the seeds)`` of one column of the rows whose ``key`` is ``name``
    (a network of ``results/depth*.csv``, a variant of ``results/recipe_round*.csv``)."""
    by_x: dict[float, list[float]] = {}
    for row in rows:
        if row[key] == name:
            by_x.setdefault(float(row["epoch"]), []).append(float(row[column]))
    if not by_x:
        raise ValueError(f"no rows of {key} {name!r}; the rows hold "
                         f"{sorted({r[key] for r in rows})}")
    xs = sorted(by_x)
    return xs, [sum(by_x[x]) / len(by_x[x]) for x in xs]


def plot_depth_curves(
    epoch_rows: Sequence[Mapping[str, str]],
    curve_rows: Sequence[Mapping[str, str]],
    panels: Mapping[str, Sequence[str]],
    colors: Mapping[str, str] | None = None,
    ylim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (9.0, 3.6),
) -> Figure:
    """Training and validation error against epochs, in the manner of He et al. 2015, Fig. 6.

    Thin dashed lines: the training error, each point the mean over a fifth of an epoch
    as trained (``results/depth_curves.csv``); bold lines: the validation error at the end
    of each epoch (``results/depth.csv``). Each line is the mean over the seeds found.

    Args:
        epoch_rows: Rows with ``network``, ``seed``, ``epoch`` and ``val_acc``.
        curve_rows: Rows with ``network``, ``seed``, ``epoch`` (a fraction) and
            ``train_err``.
        panels: Panel title -> the networks it shows, e.g. ``{"plain": ["plain-20",
            "plain-56"], "residual": ["ResNet-20", "ResNet-56"]}``.
        colors: Network -> its color (both of its lines).
        ylim: Limits of the shared y axis, in percent.
        figsize: Width and height in inches.

    Returns:
        A new figure, the panels side by side sharing the y axis (error in percent); a
        legend in each panel names its networks, one below the panels the two kinds of
        line.

    Raises:
        ValueError: If ``panels`` is empty or a network has no rows.
    """
    if not panels or not all(panels.values()):
        raise ValueError("panels must map at least one title to the networks it shows")
    colors = colors or {}
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, networks) in zip(axes, panels.items(), strict=True):
        for k, network in enumerate(networks):
            color = colors.get(network, f"C{k % 10}")
            xs, err = _seed_means(curve_rows, "network", network, "train_err")
            ax.plot(xs, [100 * e for e in err], color=color, linewidth=0.9, linestyle="--")
            epochs, acc = _seed_means(epoch_rows, "network", network, "val_acc")
            ax.plot(epochs, [100 * (1 - a) for a in acc], color=color, linewidth=2.4,
                    label=network)
        ax.set_title(title, fontsize=10)
        _frame(ax, "epoch")
        ax.legend(frameon=False, fontsize=8)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0].set_ylabel("error (%)")

    keys = [Line2D([], [], color="0.3", linewidth=0.9, linestyle="--"),
            Line2D([], [], color="0.3", linewidth=2.4)]
    fig.legend(keys, ["training error (mean over each fifth of an epoch)",
                      "validation error (end of each epoch)"],
               loc="outside lower center", ncol=2, frameon=False, fontsize=8,
               handlelength=3.5)
    return fig


def plot_vs_depth(
    panels: Mapping[str, Mapping[str, Mapping[int, float]]],
    ylabels: Mapping[str, str] | None = None,
    logy: Sequence[str] = (),
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    figsize: tuple[float, float] = (9.0, 3.4),
) -> Figure:
    """One measurement per network against its depth, one axes per panel.

    Args:
        panels: Panel title -> {line label -> {depth -> value}}, e.g.
            ``{"gradient correlation": {"plain": {8: 0.9, 20: 0.5}, "residual": {...}}}``.
        ylabels: Panel title -> label of its y axis.
        logy: The titles of the panels drawn with a log y axis.
        styles: Line label -> keyword arguments for ``Axes.plot``.
        figsize: Width and height in inches.

    Returns:
        A new figure, the panels side by side, a marker at each measured depth.

    Raises:
        ValueError: If a panel or a line is empty, or ``logy`` names no panel.
    """
    if not panels or not all(panels.values()) or not all(
            line for lines in panels.values() for line in lines.values()):
        raise ValueError("panels must hold at least one panel of lines {label: {depth: "
                         "value}}, none of them empty")
    unknown = [t for t in logy if t not in panels]
    if unknown:
        raise ValueError(f"logy names panels that do not exist: {unknown}; the panels "
                         f"are {list(panels)}")
    styles, ylabels = styles or {}, ylabels or {}
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, lines) in zip(axes, panels.items(), strict=True):
        for label, values in lines.items():
            depths = sorted(values)
            ax.plot(depths, [values[d] for d in depths], label=label,
                    **{"marker": "o", "markersize": 4, **dict(styles.get(label, {}))})
        if title in logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        _frame(ax, "depth (layers with weights)", ylabels.get(title))
        ax.legend(frameon=False, fontsize=8, handlelength=3.5)
    return fig


# -- training curves, confusion matrix, misclassified images (d2l_resnet.train) ------------


def _history_axes(fig: Figure, history: Any, num_epochs: int | None) -> None:
    """Draw the loss (left) and the accuracies (right) of a training history on ``fig``."""
    ax_loss, ax_acc = fig.subplots(1, 2)
    points = list(history.points)
    xs = [p[0] for p in points]
    ax_loss.plot(xs, [p[1] for p in points], color="C0", label="train loss")
    ax_acc.plot(xs, [p[2] for p in points], color="C1", label="train acc")   # means of
    # the steps between two points, five points an epoch
    if history.val_acc:
        ax_acc.plot(list(history.epochs), list(history.val_acc), "o-", color="C2",
                    label="val acc")
    if history.test_acc is not None:
        ax_acc.plot([history.epochs[-1]], [history.test_acc], "*", color="C3", ms=10,
                    label="test acc (scored once)")
    last = max(1, num_epochs or (max(xs) if xs else 1))
    for ax, ylabel in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlim(0, last + 0.04 * last)       # the last epoch's markers stay inside
        _frame(ax, "epoch", ylabel)
        ax.legend(frameon=False, fontsize=8)
    ax_acc.set_ylim(0, 1.02)


def plot_history(history: Any, num_epochs: int | None = None,
                 figsize: tuple[float, float] = (7.0, 2.8)) -> Figure:
    """The curves of a :class:`d2l_resnet.train.History`: loss, train and validation
    accuracy, and the test accuracy once it is scored.

    Args:
        history: What :func:`d2l_resnet.train.train` returned (or holds so far).
        num_epochs: Fix the x axis to this many epochs (a live plot does not rescale).
        figsize: Width and height in inches.
    """
    fig = Figure(figsize=figsize, layout="constrained")
    _history_axes(fig, history, num_epochs)
    return fig


def plot_runs(runs: Mapping[str, Any], figsize: tuple[float, float] = (7.0, 2.8)) -> Figure:
    """Several training histories on one figure, one color per run: the training loss
    (left) and accuracy (right) five times an epoch; the legend gives each run's test
    accuracy, scored once at its end.

    Args:
        runs: Label -> :class:`d2l_resnet.train.History`, e.g. ``{"1 process": h1,
            "2 processes": h2}``.
        figsize: Width and height in inches.

    Raises:
        ValueError: If ``runs`` is empty.
    """
    if not runs:
        raise ValueError("runs must hold at least one labelled history")
    fig = Figure(figsize=figsize, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (label, history) in enumerate(runs.items()):
        if history.test_acc is not None:
            label = f"{label}, test acc {history.test_acc:.3f}"
        style = {"color": f"C{i}", "label": label, "linestyle": ("-", "--", ":", "-.")[i % 4]}
        xs = [p[0] for p in history.points]
        ax_loss.plot(xs, [p[1] for p in history.points], **style)
        ax_acc.plot(xs, [p[2] for p in history.points], **style)
    for ax, ylabel in ((ax_loss, "training loss"), (ax_acc, "training accuracy")):
        _frame(ax, "epoch", ylabel)
    ax_acc.legend(frameon=False, fontsize=8)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (what a notebook stores; nbval does not compare PNG)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class LivePlot:
    """Training curves in a notebook, one PNG redrawn in place through a display handle.

    Pass it as ``on_update`` to :func:`d2l_resnet.train.train`: the first call displays
    the figure with ``display(..., display_id=True)``, later calls ``handle.update(...)``,
    so the notebook keeps one figure (``clear_output`` would leave nbval a different
    output list). Outside IPython it draws nothing unless asked for :attr:`figure`.

    Args:
        num_epochs: The x axis runs from 0 to this many epochs.
        figsize: Width and height in inches.
    """

    def __init__(self, num_epochs: int | None = None,
                 figsize: tuple[float, float] = (7.0, 2.8)) -> None:
        self.num_epochs = num_epochs
        self.figsize = figsize
        self.handle: Any = None
        self.figure: Figure | None = None

    def __call__(self, history: Any) -> None:
        from IPython.display import Image, display  # only in a notebook's kernel

        self.figure = plot_history(history, self.num_epochs, self.figsize)
        image = Image(data=figure_png(self.figure), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str],
                          figsize: tuple[float, float] = (5.6, 4.8)) -> Figure:
    """A confusion matrix: rows are true classes, columns predicted, counts in the cells.

    Raises:
        ValueError: If the matrix is not square with one row per label.
    """
    rows = [[int(v) for v in row] for row in matrix]
    k = len(labels)
    if len(rows) != k or any(len(r) != k for r in rows):
        raise ValueError(f"matrix must be {k}x{k} (one row and column per label), got "
                         f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(rows, cmap="Blues")
    top = max(max(r) for r in rows) if rows else 0
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > top / 2 else "black")
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_misclassified(images: Any, true_labels: Sequence[str], pred_labels: Sequence[str],
                       ncols: int = 8, scale: float = 1.2) -> Figure:
    """A grid of images titled ``true -> predicted`` (e.g. the test set's mistakes).

    Args:
        images: Images of shape (N, H, W) (a tensor or array; uint8 or float).
        true_labels: N names of the true classes.
        pred_labels: N names of the predicted classes.
        ncols: Images per row.
        scale: Inches per image.

    Raises:
        ValueError: If the lengths differ or there is no image.
    """
    n = len(images)
    if n == 0 or len(true_labels) != n or len(pred_labels) != n:
        raise ValueError(f"expected N >= 1 images with N true and N predicted labels, got "
                         f"{n} images, {len(true_labels)} and {len(pred_labels)} labels")
    titles = [f"{t}\n-> {p}" for t, p in zip(true_labels, pred_labels, strict=True)]
    return plot_image_grid(images, titles, ncols=ncols, scale=scale, row_height=1.25)


def plot_image_grid(images: Any, titles: Sequence[str], ncols: int = 10,
                    scale: float = 1.1, row_height: float = 1.2) -> Figure:
    """A grid of grayscale images, each titled (e.g. Fashion-MNIST examples by class).

    Args:
        images: Images of shape (N, H, W) (a tensor or array; uint8 or float); dark on
            light, the garments drawn in black as in a catalogue.
        titles: N titles, one per image (e.g. the class names).
        ncols: Images per row.
        scale: Inches per image.
        row_height: Height of a row, image and title, in units of ``scale``.

    Raises:
        ValueError: If there is no image, the numbers of images and titles differ, or
            ``ncols`` is not a positive integer.
    """
    n = len(images)
    if n == 0 or len(titles) != n:
        raise ValueError(f"expected N >= 1 images and N titles, got {n} images and "
                         f"{len(titles)} titles")
    check_positive_int("ncols", ncols)
    if hasattr(images, "detach"):      # a torch tensor: matplotlib reads numpy arrays
        images = images.detach().cpu().numpy()
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(ncols * scale, nrows * scale * row_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray_r")
            ax.set_title(titles[k], fontsize=7)
    return fig


# -- the committed experiments (d2l_resnet.results) ------------------------------------


def plot_lr_runs(runs: Mapping[tuple[float, int], Sequence[float]], limit: float | None = None,
                 clip: float = 12.0, figsize: tuple[float, float] = (9.0, 3.4)) -> Figure:
    """Per-step training loss of several seeds, one panel per learning rate.

    The loss axis is linear and clipped at ``clip``, where the spikes and the recoveries
    show (a spike above it runs off the top). A run whose loss became NaN or infinite
    ends in a cross at the top of its panel, at the step where it did; ``limit`` is drawn
    as a dashed line in each panel where a run crossed it (e.g. the divergence guard's).

    Args:
        runs: ``(lr, seed)`` -> the loss of every step.
        limit: A loss to draw as a dashed line, e.g. the divergence guard's limit.
        clip: The top of the loss axis.
        figsize: Width and height in inches.
    """
    if not runs:
        raise ValueError("runs must hold at least one (lr, seed) -> losses")
    lrs = sorted({lr for lr, _ in runs}, reverse=True)
    seeds = sorted({seed for _, seed in runs})
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(lrs), sharey=True, squeeze=False)[0]
    for ax, lr in zip(axes, lrs, strict=True):
        crossed = False
        for k, seed in enumerate(seeds):
            losses = [float(v) for v in runs.get((lr, seed), [])]
            finite = [v for v in losses if math.isfinite(v)]
            color = f"C{k % 10}"
            ax.plot(range(1, len(finite) + 1), finite, color=color, lw=1, label=f"seed {seed}")
            if len(finite) < len(losses):
                ax.plot([len(finite) + 1], [0.97 * clip], "x", color=color, ms=8, mew=2,
                        clip_on=False, label="_nan")
            crossed = crossed or (limit is not None and max(finite, default=0) > limit)
        if crossed:
            ax.axhline(limit, color="0.3", ls="--", lw=1,
                       label=f"limit {limit:.1f} (2 ln 10)")
        if any(line.get_label() == "_nan" for line in ax.lines):
            ax.plot([], [], "x", color="0.3", ms=8, mew=2, label="loss became NaN")
        ax.set_ylim(0, clip)
        ax.set_title(f"lr {lr:g}", fontsize=10)
        _frame(ax, "step")
        extras = [h for h in ax.lines if not h.get_label().startswith(("seed", "_"))]
        if extras:
            ax.legend(handles=extras, frameon=False, fontsize=7, loc="upper right")
    axes[0].set_ylabel(f"training loss (clipped at {clip:g})")
    seed_lines = [h for h in axes[-1].lines if h.get_label().startswith("seed")]
    fig.legend(handles=seed_lines, loc="outside right center", frameon=False, fontsize=7)
    return fig


def plot_val_curves(rows: Sequence[Mapping[str, str]], variants: Sequence[str],
                    ylim: tuple[float, float] | None = None,
                    figsize: tuple[float, float] = (6.4, 3.4)) -> Figure:
    """Validation accuracy per epoch of some variants of ``results/recipe_round*.csv``,
    the mean over their seeds.

    Args:
        rows: The rows of a round's CSV.
        variants: The variants to draw, by name.
        ylim: The accuracy axis (zoom in on the differences discussed).
        figsize: Width and height in inches.
    """
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(variants):
        epochs, acc = _seed_means(rows, "variant", name, "val_acc")
        ax.plot(epochs, acc, "o-", ms=3, color=f"C{k % 10}", label=name)
    seeds = {row["seed"] for row in rows if row["variant"] in variants}
    _frame(ax, "epoch", f"validation accuracy\n(mean of {len(seeds)} seeds)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return fig
