"""Tests for vbtutor.widgets: the frame slider's live widget and its kernel-free HTML."""

from __future__ import annotations

import base64
import io
import struct
from html.parser import HTMLParser

import ipywidgets
import matplotlib.pyplot as plt
import pytest
from conftest import raises_naming
from matplotlib.figure import Figure

from vbtutor.widgets import FrameSlider, frame_slider

VALUES = [0.5, 1.0, 2.0, 4.0]
DPI = 30


def render(slope: float):
    """A figure whose layout does not depend on the value: only the line moves."""
    fig, ax = plt.subplots(figsize=(2, 2), dpi=DPI)
    ax.plot([0, 1], [0, slope])
    ax.set_ylim(0, 4)
    return fig


def png(fig) -> bytes:
    """A frame saved independently: twice the figure's dpi, cropped to its own tight box."""
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.05)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * fig.dpi, bbox_inches=box)
    plt.close(fig)
    return buffer.getvalue()


def png_size(frame: bytes) -> tuple[int, int]:
    return struct.unpack(">II", frame[16:24])


class _Tags(HTMLParser):
    """Collect (tag, attributes) pairs and the text of <output>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.output = ""
        self._in_output = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_output = tag == "output"

    def handle_endtag(self, tag):
        self._in_output = False

    def handle_data(self, data):
        if self._in_output:
            self.output += data


def parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def slider() -> FrameSlider:
    return frame_slider(render, VALUES, name="slope", start=2.0)


def test_one_frame_per_value_in_order(slider):
    assert len(slider.frames) == len(VALUES) and slider.values == VALUES
    assert slider.start == VALUES.index(2.0)
    for value, frame in zip(VALUES, slider.frames, strict=True):
        assert frame.startswith(b"\x89PNG\r\n\x1a\n")
        assert frame == png(render(value))
    assert len(set(slider.frames)) == len(VALUES)


def test_frames_are_stored_at_twice_their_shown_size(slider):
    width, height = slider.size
    for frame in slider.frames:
        assert png_size(frame) == pytest.approx((2 * width, 2 * height), abs=2)


def test_frames_of_different_layouts_share_one_size():
    """A title that grows with the value must not make the frames jitter."""

    def growing_title(n: int):
        fig = render(1.0)
        fig.axes[0].set_title("x" * n)
        fig.axes[0].set_ylabel("y" * n)
        return fig

    s = frame_slider(growing_title, [1, 10, 30], name="n")
    assert len({png_size(frame) for frame in s.frames}) == 1
    widest = growing_title(30)
    box = widest.get_tightbbox(widest.canvas.get_renderer())
    assert s.size[0] >= box.width * DPI  # nothing is cropped away
    plt.close(widest)


def test_figures_made_without_pyplot_work():
    def bare(slope: float):
        fig = Figure(figsize=(2, 2), dpi=DPI)
        fig.subplots().plot([0, 1], [0, slope])
        return fig

    s = frame_slider(bare, VALUES[:2], name="slope")
    assert len({png_size(frame) for frame in s.frames}) == 1


def test_rendered_figures_are_closed():
    plt.close("all")
    frame_slider(render, VALUES[:2], name="slope")
    assert plt.get_fignums() == []


def test_html_fallback_is_a_range_input_over_the_frames(slider):
    page = parse(slider.html())
    inputs = [attrs for tag, attrs in page.tags if tag == "input"]
    assert len(inputs) == 1
    (range_input,) = inputs
    assert range_input["type"] == "range"
    assert range_input["min"] == "0" and range_input["max"] == str(len(VALUES) - 1)
    assert range_input["value"] == str(slider.start)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(VALUES)
    prefix = "data:image/png;base64,"
    for attrs, frame, value in zip(images, slider.frames, VALUES, strict=True):
        assert attrs["src"].startswith(prefix)
        assert base64.b64decode(attrs["src"][len(prefix) :]) == frame
        assert attrs["data-label"] == f"slope = {value}"
        assert (attrs["width"], attrs["height"]) == tuple(map(str, slider.size))
    shown = [i for i, attrs in enumerate(images) if "display:block" in attrs["style"]]
    hidden = [i for i, attrs in enumerate(images) if "display:none" in attrs["style"]]
    assert shown == [slider.start] and len(hidden) == len(VALUES) - 1
    assert page.output == "slope = 2.0"


def test_html_escapes_the_name():
    name = 'a<b> & "c"'
    s = frame_slider(render, VALUES[:2], name=name)
    page = parse(s.html())
    (range_input,) = [attrs for tag, attrs in page.tags if tag == "input"]
    assert range_input["aria-label"] == name
    assert [tag for tag, _ in page.tags if tag == "b"] == []
    assert page.output == f"{name} = {VALUES[0]}"


def test_mimebundle_has_text_html_and_the_widget_view(slider):
    bundle = slider._repr_mimebundle_()
    assert {
        "text/plain",
        "text/html",
        "application/vnd.jupyter.widget-view+json",
    } <= set(bundle)
    assert bundle["text/html"] == slider.html()
    assert (
        bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
        == slider.widget.model_id
    )
    assert f"{len(VALUES)} frames" in bundle["text/plain"]


def test_default_start_is_the_first_value():
    s = frame_slider(render, VALUES[:3], name="slope")
    assert s.start == 0
    assert s.widget.children[1].value == s.frames[0]


def test_moving_the_live_slider_shows_the_matching_frame():
    s = frame_slider(render, VALUES, name="slope", start=2.0)
    control, image, note = s.widget.children
    assert "once the cells above it have run" in note.value
    assert isinstance(control, ipywidgets.SelectionSlider) and isinstance(
        image, ipywidgets.Image
    )
    assert [label for label, _ in control.options] == [str(v) for v in VALUES]
    assert control.label == "2.0" and image.value == s.frames[s.start]
    for i in [0, 3, 1, 2]:
        control.index = i  # the trait the browser sets when the slider is dragged
        assert control.label == str(VALUES[i])
        assert image.value == s.frames[i]
    assert image.width == str(s.size[0])  # shown at its natural size, not doubled


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [1.0]])
def test_needs_at_least_two_values(values):
    with raises_naming("values"):
        frame_slider(render, values, name="slope")


def test_render_must_return_a_figure():
    def axes_only(value):
        fig, ax = plt.subplots()
        return ax

    with raises_naming("render"):
        frame_slider(axes_only, VALUES, name="slope")


def test_start_must_be_one_of_the_values():
    with raises_naming("start"):
        frame_slider(render, VALUES, name="slope", start=3.0)


@pytest.mark.parametrize("scale", [0, 1.5])
def test_scale_must_be_a_positive_int(scale):
    with raises_naming("scale"):
        frame_slider(render, VALUES, name="slope", scale=scale)


def test_name_must_be_non_empty():
    with raises_naming("name"):
        frame_slider(render, VALUES, name="")
