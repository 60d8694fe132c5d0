"""Tests of d2l_resnet.plot.plot_image_grid: one titled image per axes, bad input refused."""

from __future__ import annotations

import io

import pytest
import torch

from d2l_resnet.plot import plot_image_grid


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
