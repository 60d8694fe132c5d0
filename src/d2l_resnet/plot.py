"""Plots for the notebooks; the only module of the package that imports matplotlib.

Functions return a :class:`matplotlib.figure.Figure`; a notebook shows it with
``display(fig)`` (after ``%matplotlib inline``), a script saves it with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

__all__ = ["plot_cost_shares"]


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
