"""Sliders that work everywhere: a live ipywidgets slider in Jupyter, precomputed frames in HTML."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

__all__ = ["FrameSlider", "frame_slider"]

_ONINPUT = (
    "var r=this.closest('.vbtutor-slider'),f=r.querySelectorAll('img');"
    "for(var i=0;i<f.length;i++){f[i].style.display=(i==this.value)?'block':'none';}"
    "r.querySelector('output').textContent=f[this.value].dataset.label;"
)


def _pngs(figures: list[Figure], scale: int) -> tuple[list[bytes], tuple[int, int]]:
    """Save figures as PNGs of one common size, at ``scale`` pixels per CSS pixel.

    Each figure is cropped to the union of all their tight bounding boxes, so the frames
    line up and the slider does not jitter while it moves. Returns the PNGs and their
    size in CSS pixels (at the figures' dpi). The figures are closed.
    """
    boxes = [fig.get_tightbbox() for fig in figures]
    box = Bbox.union(boxes).padded(0.05)
    dpi = figures[0].dpi
    frames = []
    for fig in figures:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=scale * dpi, bbox_inches=box)
        plt.close(fig)
        frames.append(buffer.getvalue())
    return frames, (round(box.width * dpi), round(box.height * dpi))


#: Shown under the live slider in Jupyter: a stored widget is inactive until the kernel
#: has run the cell, and a busy kernel (Run All) handles slider moves only when it is free.
LIVE_NOTE = (
    "<small>In Jupyter this slider works once the cells above it have run; while "
    "later cells are still running (Run All), it waits for them to finish.</small>"
)


class FrameSlider:
    """A figure indexed by a parameter, shown with a slider.

    In a running kernel it displays as an ipywidgets slider and image; in the static HTML
    book (no kernel) the same output shows an HTML range input that switches between the
    precomputed frames. Build it with :func:`frame_slider`.
    """

    def __init__(
        self,
        frames: list[bytes],
        values: list[Any],
        name: str,
        start: int,
        size: tuple[int, int],
    ):
        self.frames, self.values, self.name, self.start = frames, values, name, start
        self.size = size  # (width, height) in CSS pixels; the PNGs have more pixels
        self.widget = self._live_widget()

    def label(self, i: int) -> str:
        return f"{self.name} = {self.values[i]}"

    def _live_widget(self) -> ipywidgets.Widget:
        image = ipywidgets.Image(
            value=self.frames[self.start], format="png", width=self.size[0]
        )
        slider = ipywidgets.SelectionSlider(
            options=[(str(v), i) for i, v in enumerate(self.values)],
            value=self.start,
            description=self.name,
            continuous_update=True,
        )

        def show(change: dict) -> None:
            image.value = self.frames[change["new"]]

        slider.observe(show, names="value")
        return ipywidgets.VBox([slider, image, ipywidgets.HTML(LIVE_NOTE)])

    def html(self) -> str:
        """The kernel-free fallback: an HTML range input over the precomputed frames."""
        images = []
        width, height = self.size
        for i, frame in enumerate(self.frames):
            data = base64.b64encode(frame).decode("ascii")
            shown = "block" if i == self.start else "none"
            label = html.escape(self.label(i), quote=True)
            images.append(
                f'<img src="data:image/png;base64,{data}" data-label="{label}" '
                f'alt="figure at {label}" width="{width}" height="{height}" '
                f'style="display:{shown};max-width:100%;height:auto">'
            )
        name = html.escape(self.name, quote=True)
        return (
            '<div class="vbtutor-slider">'
            f'<label>{name} <input type="range" min="0" max="{len(self.frames) - 1}" '
            f'step="1" value="{self.start}" aria-label="{name}" oninput="{_ONINPUT}"> '
            f"<output>{html.escape(self.label(self.start))}</output></label>"
            + "".join(images)
            + "</div>"
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/html"] = self.html()
        bundle["text/plain"] = (
            f"Slider over {self.name}: {len(self.frames)} frames "
            f"({self.values[0]} to {self.values[-1]})"
        )
        return bundle


def frame_slider(
    render: Callable[[Any], Figure],
    values: Sequence[Any],
    name: str,
    start: Any | None = None,
    scale: int = 2,
) -> FrameSlider:
    """Render one figure per value and return a slider that works with or without a kernel.

    Arguments:
        render: maps a value to a matplotlib ``Figure`` (it is closed after rendering).
        values: the slider positions, at least two.
        name: the parameter's name, shown next to the slider.
        start: the initially shown value (default: the first).
        scale: stored pixels per CSS pixel (2: sharp on high-density screens). The
            frames are shown at the figures' natural size, ``figure.dpi`` pixels per inch.

    Returns:
        A :class:`FrameSlider`; leave it as a cell's last expression to display it.

    Example:
        >>> def render(a):
        ...     fig, ax = plt.subplots()
        ...     ax.plot([0, 1], [0, a])
        ...     return fig
        >>> s = frame_slider(render, [1, 2, 3], name="slope")
        >>> len(s.frames), 'type="range"' in s.html()
        (3, True)
    """
    values = list(values)
    if len(values) < 2:
        raise ValueError(f"values needs at least two entries, got {len(values)}")
    if not name:
        raise ValueError("name must be a non-empty string")
    if start is None:
        start_index = 0
    elif start in values:
        start_index = values.index(start)
    else:
        raise ValueError(f"start must be one of values, got {start!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    figures = []
    for v in values:
        fig = render(v)
        if not isinstance(fig, Figure):
            for done in figures:
                plt.close(done)
            raise ValueError(
                f"render must return a matplotlib Figure, got {type(fig).__name__}"
            )
        figures.append(fig)
    frames, size = _pngs(figures, scale)
    return FrameSlider(frames, values, name, start_index, size)
