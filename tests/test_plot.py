"""Tests of d2l_resnet.plot: the figures hold what they claim, bad arguments are refused."""

from __future__ import annotations

import io
from itertools import pairwise

import pytest
from matplotlib.container import BarContainer

from d2l_resnet.plot import plot_cost_shares


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
