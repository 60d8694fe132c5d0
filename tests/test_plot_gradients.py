"""Tests of the gradient and loss figures in d2l_resnet.plot (notebook 05)."""

from __future__ import annotations

import io

import pytest

from d2l_resnet.plot import family_styles, plot_grad_norms, plot_loss_panels


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
    assert ax_a.get_xscale() == ax_a.get_yscale() == "log"
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


def test_family_styles_colour_by_family_and_shade_by_depth() -> None:
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
