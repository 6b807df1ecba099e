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

__all__ = ["FrameSlider", "frame_slider"]

_ONINPUT = (
    "var r=this.closest('.vbtutor-slider'),f=r.querySelectorAll('img');"
    "for(var i=0;i<f.length;i++){f[i].style.display=(i==this.value)?'block':'none';}"
    "r.querySelector('output').textContent=f[this.value].dataset.label;"
)


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class FrameSlider:
    """A figure indexed by a parameter, shown with a slider.

    In a running kernel it displays as an ipywidgets slider and image; in the static HTML
    book (no kernel) the same output shows an HTML range input that switches between the
    precomputed frames. Build it with :func:`frame_slider`.
    """

    def __init__(self, frames: list[bytes], values: list[Any], name: str, start: int):
        self.frames, self.values, self.name, self.start = frames, values, name, start
        self.widget = self._live_widget()

    def label(self, i: int) -> str:
        return f"{self.name} = {self.values[i]}"

    def _live_widget(self) -> ipywidgets.Widget:
        image = ipywidgets.Image(value=self.frames[self.start], format="png")
        slider = ipywidgets.SelectionSlider(
            options=[(str(v), i) for i, v in enumerate(self.values)],
            value=self.start,
            description=self.name,
            continuous_update=True,
        )

        def show(change: dict) -> None:
            image.value = self.frames[change["new"]]

        slider.observe(show, names="value")
        return ipywidgets.VBox([slider, image])

    def html(self) -> str:
        """The kernel-free fallback: an HTML range input over the precomputed frames."""
        images = []
        for i, frame in enumerate(self.frames):
            data = base64.b64encode(frame).decode("ascii")
            shown = "block" if i == self.start else "none"
            label = html.escape(self.label(i), quote=True)
            images.append(
                f'<img src="data:image/png;base64,{data}" data-label="{label}" '
                f'alt="figure at {label}" style="display:{shown};max-width:100%">'
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
    dpi: int = 80,
) -> FrameSlider:
    """Render one figure per value and return a slider that works with or without a kernel.

    Arguments:
        render: maps a value to a matplotlib ``Figure`` (it is closed after rendering).
        values: the slider positions, at least two.
        name: the parameter's name, shown next to the slider.
        start: the initially shown value (default: the first).
        dpi: resolution of the stored frames.

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
    frames = []
    for v in values:
        fig = render(v)
        if not isinstance(fig, Figure):
            raise ValueError(
                f"render must return a matplotlib Figure, got {type(fig).__name__}"
            )
        frames.append(_png(fig, dpi))
    return FrameSlider(frames, values, name, start_index)
