"""Tests for vbtutor.widgets: explorers recompute live, and their kernel-free HTML frames."""

from __future__ import annotations

import base64
import json
import struct
from html.parser import HTMLParser
from types import SimpleNamespace
from unittest import mock

import ipywidgets
import matplotlib.pyplot as plt
import pytest
from conftest import raises_naming
from matplotlib.figure import Figure

from vbtutor import widgets
from vbtutor.widgets import (
    MAX_FRAMES,
    Explorer,
    choice,
    explorers,
    integer,
    log_scale,
    number,
)

DPI = 30


def render(slope: float, shift: int = 0):
    """A figure whose layout does not depend on the values: only the line moves."""
    fig, ax = plt.subplots(figsize=(2, 2), dpi=DPI)
    ax.plot([0, 1], [shift, shift + slope])
    ax.set_ylim(-1, 8)
    return fig


def png_size(frame: bytes) -> tuple[int, int]:
    return struct.unpack(">II", frame[16:24])


class _Tags(HTMLParser):
    """Collect (tag, attributes) pairs and the texts of <output> elements."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.outputs: list[str] = []
        self._in_output = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_output = tag == "output"
        if self._in_output:
            self.outputs.append("")

    def handle_endtag(self, tag):
        self._in_output = False

    def handle_data(self, data):
        if self._in_output:
            self.outputs[-1] += data


def parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def two_params() -> Explorer:
    return Explorer(
        render,
        [
            number("slope", 0.0, 4.0, [0.5, 2.0, 4.0], default=2.0),
            integer("shift", 0, 3, [0, 3]),
        ],
        title="a line",
    )


# --- parameters ---------------------------------------------------------------------


def test_parameters_map_control_values_to_render_values():
    k = log_scale("k", 1, 5000, [1, 10, 5000], integer=True)
    assert k.value_of(36.8) == 37 and k.text(37) == "k = 37"
    assert isinstance(k.control(True), ipywidgets.FloatLogSlider)
    width = log_scale("width", 0.5, 3.0, [0.5, 1.0])
    assert width.value_of(0.8) == 0.8 and width.text(0.8) == "width = 0.8"
    assert isinstance(integer("t", 0, 9, [0]).control(True), ipywidgets.IntSlider)
    assert isinstance(choice("s", ["a", "b"]).control(True), ipywidgets.ToggleButtons)
    assert isinstance(choice("n", [1, 2]).control(True), ipywidgets.SelectionSlider)


def test_random_values_stay_in_the_live_range():
    import random

    rng = random.Random(0)
    k = log_scale("k", 1, 5000, [1], integer=True)
    draws = [k.random_value(rng) for _ in range(200)]
    assert all(isinstance(v, int) and 1 <= v <= 5000 for v in draws)
    assert (
        sum(v < 71 for v in draws) > 60
    )  # log-uniform: half the draws below sqrt(5000)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: number("a b", 0, 1, [0.5]), "name"),
        (lambda: number("a", 1, 1, [1]), "low"),
        (lambda: number("a", 0, 1, [2.0]), "frames"),
        (lambda: number("a", 0, 1, []), "frames"),
        (lambda: number("a", 0, 1, [0.5], default=0.7), "default"),
        (lambda: log_scale("k", 0, 10, [1]), "low"),
        (lambda: integer("t", 0.5, 3, [1]), "low"),
        (lambda: choice("s", ["only"]), "options"),
        (lambda: choice("s", ["a", "b"], frames=["c"]), "frames"),
    ],
)
def test_bad_parameters_are_rejected(make, argument):
    with raises_naming(argument):
        make()


# --- frames for the static HTML -------------------------------------------------------


def test_one_frame_per_grid_point_in_order(two_params):
    assert two_params.grid == [(s, h) for s in (0.5, 2.0, 4.0) for h in (0, 3)]
    assert len(two_params.frames) == 6 == len(set(two_params.frames))
    for values, frame in zip(two_params.grid, two_params.frames, strict=True):
        assert frame == two_params.fresh_png(slope=values[0], shift=values[1])


def test_a_smoke_run_renders_only_the_default_frame(monkeypatch):
    monkeypatch.setenv("VBTUTOR_SMOKE", "1")
    params = [
        number("slope", 0.0, 4.0, [0.5, 2.0, 4.0], default=2.0),
        integer("shift", 0, 3, [0, 3]),
    ]
    explorer = Explorer(render, params, title="a line")
    assert explorer.grid == [(2.0, 0)]
    assert explorer.frames == [explorer.fresh_png(slope=2.0, shift=0)]
    assert explorer.update(slope=4.0, shift=3) == explorer.fresh_png(slope=4.0, shift=3)


def test_frames_are_stored_at_twice_their_shown_size(two_params):
    width, height = two_params.size
    for frame in two_params.frames:
        assert png_size(frame) == pytest.approx((2 * width, 2 * height), abs=2)


def test_frames_of_different_layouts_share_one_size():
    """A title that grows with the value must not make the figure jump."""

    def growing_title(n: int):
        fig = render(1.0)
        fig.axes[0].set_title("x" * n)
        fig.axes[0].set_ylabel("y" * n)
        return fig

    e = Explorer(growing_title, [integer("n", 1, 30, [1, 10, 30])], title="t")
    assert len({png_size(frame) for frame in e.frames}) == 1
    widest = growing_title(30)
    assert e.size[0] >= widest.get_tightbbox().width * DPI  # nothing cropped away
    plt.close(widest)


def test_figures_made_without_pyplot_work():
    def bare(a: float):
        fig = Figure(figsize=(2, 2), dpi=DPI)
        fig.subplots().plot([0, 1], [0, a])
        return fig

    e = Explorer(bare, [number("a", 0.0, 1.0, [0.0, 1.0])], title="bare")
    assert len({png_size(frame) for frame in e.frames}) == 1


def test_rendered_figures_are_closed():
    plt.close("all")
    e = Explorer(render, [number("slope", 0.0, 4.0, [1.0, 2.0])], title="t")
    e.update(slope=3.3)
    assert plt.get_fignums() == []


def test_html_is_one_range_input_per_parameter_over_all_frames(two_params):
    page = parse(two_params.html())
    inputs = [attrs for tag, attrs in page.tags if tag == "input"]
    assert [i["aria-label"] for i in inputs] == ["slope", "shift"]
    assert [(i["max"], i["value"]) for i in inputs] == [("2", "1"), ("1", "0")]
    assert json.loads(inputs[0]["data-labels"]) == [
        "slope = 0.50",
        "slope = 2.00",
        "slope = 4.00",
    ]
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    prefix = "data:image/png;base64,"
    keys = [f"{i}-{j}" for i in range(3) for j in range(2)]
    assert [img["data-key"] for img in images] == keys
    for img, frame in zip(images, two_params.frames, strict=True):
        assert base64.b64decode(img["src"][len(prefix) :]) == frame
        assert (img["width"], img["height"]) == tuple(map(str, two_params.size))
    shown = [img["data-key"] for img in images if "display:block" in img["style"]]
    assert shown == ["1-0"]  # the defaults
    assert page.outputs == ["slope = 2.00", "shift = 0"]


def test_html_values_are_as_wide_as_their_longest_text():
    """So that the track beside a value keeps its length when the value changes."""
    params = [integer("shift", 0, 1000, [3, 1000, 10]), number("slope", 0, 1, [0.5])]
    e = Explorer(render, params, title="t")
    output = [attrs for tag, attrs in parse(e.html()).tags if tag == "output"][0]
    assert output["style"] == "min-width:max(8em, 12ch)"  # "shift = 1000"


def test_html_escapes_labels():
    label = 'a<b> & "c"'
    e = Explorer(render, [number("slope", 0, 4, [1.0, 2.0], label=label)], title="t")
    page = parse(e.html())
    (range_input,) = [attrs for tag, attrs in page.tags if tag == "input"]
    assert range_input["aria-label"] == label
    assert [tag for tag, _ in page.tags if tag == "b"] == []
    assert page.outputs == [f"{label} = 1.00"]


def test_mimebundle_has_the_widget_view_html_and_text(two_params):
    bundle = two_params._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == two_params.widget.model_id
    assert bundle["text/html"] == two_params.html()
    assert "6 frames" in bundle["text/plain"] and "a line" in bundle["text/plain"]


# --- the live widget ------------------------------------------------------------------


def test_moving_controls_recomputes_the_figure_for_values_off_the_frames():
    calls = []

    def counted(slope, shift):
        calls.append((slope, shift))
        return render(slope, shift)

    e = Explorer(
        counted,
        [number("slope", 0.0, 4.0, [0.5, 4.0]), integer("shift", 0, 3, [0, 3])],
        title="t",
    )
    first = e.image.value
    assert first == e.frames[0] and calls == e.grid  # built once per frame
    e.set(slope=1.37, shift=2)  # neither value is a frame
    assert calls[-1] == (1.37, 2)
    assert e.image.value == e.fresh_png(slope=1.37, shift=2) != first
    assert e.caption.value == "slope = 1.37, shift = 2"
    n = len(calls)
    e.set(slope=0.5, shift=0)
    e.set(slope=1.37, shift=2)
    assert len(calls) == n  # both were cached


def test_a_new_draw_passes_a_fresh_seed():
    def noisy(scale, seed):
        import numpy as np

        fig, ax = plt.subplots(figsize=(2, 2), dpi=DPI)
        ax.plot(np.random.default_rng(seed).normal(size=20) * scale)
        ax.set_ylim(-8, 8)
        return fig

    e = Explorer(noisy, [number("scale", 0.1, 2.0, [1.0])], title="t", new_draw=True)
    first = e.image.value
    button = e.widget.children[1].children[1]
    button.click()
    assert e.controls["scale"].value == 1.0
    assert e.image.value == e.fresh_png(scale=1.0, seed=1) != first
    assert e.caption.value.endswith("draw 1")
    e.set(seed=5, scale=0.5)  # the draw number can be set like any control
    assert e.image.value == e.fresh_png(scale=0.5, seed=5)


def test_cheap_renders_update_while_dragging():
    # the threshold, not the machine's speed, decides (a busy machine once made the
    # real render slower than CHEAP_SECONDS and this test fail)
    with mock.patch.object(widgets, "CHEAP_SECONDS", 60.0):
        e = Explorer(render, [number("slope", 0.0, 4.0, [1.0])], title="t")
    assert e.controls["slope"].continuous_update


def test_costly_renders_update_on_release():
    with mock.patch.object(widgets, "CHEAP_SECONDS", 0.0):
        e = Explorer(render, [number("slope", 0.0, 4.0, [1.0])], title="t")
    assert not e.controls["slope"].continuous_update


def test_an_error_in_render_reaches_the_reader(two_params):
    def failing(slope):
        if slope > 3:
            raise RuntimeError("slope too steep")
        return render(slope)

    e = Explorer(failing, [number("slope", 0.0, 4.0, [1.0])], title="t")
    with pytest.raises(RuntimeError, match="too steep"):  # not swallowed without kernel
        e.set(slope=3.5)
    shown = []
    shell = SimpleNamespace(
        kernel=None, showtraceback=lambda exc, tb_offset: shown.append(exc[1])
    )
    with mock.patch("ipywidgets.widgets.widget_output.get_ipython", return_value=shell):
        e.set(slope=3.9)  # in a kernel the output widget shows the traceback
    assert [str(err) for err in shown] == ["slope too steep"]


def test_benchmark_times_uncached_updates(two_params):
    result = two_params.benchmark(n=4)
    assert result["title"] == "a line" and result["frames"] == 6
    assert 0 < result["median"] <= result["slowest"]
    assert result["html_bytes"] == len(two_params.html().encode())


def test_explorers_lists_the_live_explorers(two_params):
    assert two_params in explorers()


# --- bad input ------------------------------------------------------------------------


def test_render_must_return_a_figure():
    def axes_only(slope):
        return plt.subplots()[1]

    with raises_naming("render"):
        Explorer(axes_only, [number("slope", 0, 1, [0.5])], title="t")


def test_params_must_be_distinct_and_few_enough():
    with raises_naming("params"):
        Explorer(render, [], title="t")
    with raises_naming("params"):
        Explorer(
            render, [number("slope", 0, 1, [0.5]), integer("slope", 0, 1, [0])], "t"
        )
    many = number("slope", 0, 1, [i / 100 for i in range(MAX_FRAMES + 1)])
    with raises_naming("params"):
        Explorer(render, [many], title="t")


@pytest.mark.parametrize("scale", [0, 1.5])
def test_scale_must_be_a_positive_int(scale):
    with raises_naming("scale"):
        Explorer(render, [number("slope", 0, 1, [0.5])], title="t", scale=scale)


def test_values_must_name_every_parameter(two_params):
    with raises_naming("values"):
        two_params.png(slope=1.0)
    with raises_naming("name"):
        two_params.set(tilt=1.0)
