"""Explorers: a figure recomputed from named parameters, live in a kernel, as frames in HTML.

An :class:`Explorer` is declared once per figure: a render function that draws a
matplotlib ``Figure`` from keyword values, and the :class:`Param` s it takes. In a running
kernel it shows ipywidgets controls; every change calls the render function for the
values chosen (cached), and the figure is replaced in place in an ``Image`` widget, with
any exception shown in an ``Output`` widget below it. In the static HTML book,
where no kernel runs, the same explorer shows precomputed frames over a small grid of its
parameters, one range slider per parameter. Chapters build their explorers with the
factories of :mod:`vbtutor.explorers`.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import random
import statistics
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image, ImageChops

from .train import smoke_mode

__all__ = [
    "Param",
    "integer",
    "number",
    "log_scale",
    "choice",
    "Explorer",
    "explorers",
    "LIVE_NOTE",
    "MAX_FRAMES",
]

#: At most this many precomputed frames per explorer, which bounds the page weight.
MAX_FRAMES = 40
#: Blank margin (inches) drawn around a figure before the frames are cropped to what
#: they draw, and the padding (inches) kept around that.
MARGIN, PAD = 0.5, 0.05

#: A render faster than this (seconds) updates while a slider is dragged; a slower one
#: when the slider is released.
CHEAP_SECONDS = 0.15

#: Shown under a live explorer in Jupyter: a stored widget is inactive until the kernel
#: has run the cell, and a busy kernel (Run All) handles control changes when it is free.
LIVE_NOTE = (
    "<small>Live: each change recomputes the figure in the kernel. The controls work "
    "once the cells above have run; while later cells are still running (Run All), "
    "they wait for them.</small>"
)

_ONINPUT = (
    "var r=this.closest('.vbtutor-explorer'),s=r.querySelectorAll('input[type=range]'),"
    "k=[];for(var i=0;i<s.length;i++){k.push(s[i].value);s[i].nextElementSibling"
    ".textContent=JSON.parse(s[i].dataset.labels)[s[i].value];}k=k.join('-');"
    "var f=r.querySelectorAll('img');for(var j=0;j<f.length;j++)"
    "{f[j].style.display=f[j].dataset.key==k?'block':'none';}"
)

_CREATED: list[weakref.ref] = []


@dataclass(frozen=True)
class Param:
    """One control of an explorer; build it with :func:`integer`, :func:`number`,
    :func:`log_scale` or :func:`choice`.

    ``frames`` are the values precomputed for the static HTML; the live control covers
    ``low`` to ``high`` (or ``options``). ``default`` is where both start.
    """

    name: str
    kind: str
    frames: tuple
    default: Any
    label: str
    low: float = 0.0
    high: float = 0.0
    options: tuple = ()
    fmt: str = "{}"
    integer: bool = False

    def text(self, value: Any) -> str:
        """The label shown for ``value``, e.g. ``"k = 37"``."""
        return f"{self.label} = {self.fmt.format(value)}"

    def value_of(self, control_value: Any) -> Any:
        """The render function's value for a control's raw value."""
        if self.integer:
            return int(round(control_value))
        if self.kind in ("float", "log"):
            return float(f"{control_value:.10g}")  # 0.30000000000000004 -> 0.3
        return control_value

    def control(self, continuous: bool) -> ipywidgets.Widget:
        """The ipywidgets control for this parameter."""
        common = {"description": self.label, "continuous_update": continuous}
        if self.kind == "int":
            return ipywidgets.IntSlider(
                value=self.default, min=self.low, max=self.high, **common
            )
        if self.kind == "float":
            low, high, step = _grid(self.low, self.high, self.default, 200)
            return ipywidgets.FloatSlider(
                value=self.default, min=low, max=high, step=step, **common
            )
        if self.kind == "log":
            lo, hi, step = _grid(
                math.log10(self.low),
                math.log10(self.high),
                math.log10(self.default),
                500,
            )
            return ipywidgets.FloatLogSlider(
                value=self.default,
                base=10,
                min=lo,
                max=hi,
                step=step,
                readout_format=".0f" if self.integer else ".3g",
                **common,
            )
        if all(isinstance(o, (int, float)) for o in self.options):
            return ipywidgets.SelectionSlider(
                options=list(self.options), value=self.default, **common
            )
        return ipywidgets.ToggleButtons(
            options=list(self.options), value=self.default, description=self.label
        )

    def random_value(self, rng: random.Random) -> Any:
        """A value drawn over the live range (log-uniform on a log scale)."""
        if self.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "float":
            return rng.uniform(self.low, self.high)
        if self.kind == "log":
            value = 10 ** rng.uniform(math.log10(self.low), math.log10(self.high))
            return self.value_of(value)
        return rng.choice(self.options)


def _grid(low: float, high: float, default: float, steps: int) -> tuple:
    """Slider bounds and step with ``default`` exactly on the grid of positions.

    A browser slider snaps to ``min + n * step``; if the default were off that grid, the
    first render would snap it and compute a figure that is not the HTML's frame.
    """
    step = (high - low) / steps
    low = default - round((default - low) / step) * step
    return low, low + round((high - low) / step) * step, step


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")


def _content_box(image: Image.Image, fig: Figure) -> tuple[int, ...] | None:
    """Pixel box (left, top, right, bottom) of what differs from the figure's face."""
    face = tuple(round(255 * c) for c in fig.get_facecolor()[:3])
    return ImageChops.difference(image, Image.new("RGB", image.size, face)).getbbox()


def _first(frames: tuple, name: str) -> Any:
    if not frames:
        raise ValueError(f"frames of {name!r} needs at least one value")
    return frames[0]


def _checked(param: Param) -> Param:
    if len(param.frames) < 1:
        raise ValueError(f"frames of {param.name!r} needs at least one value")
    live = param.options if param.kind == "choice" else None
    for value in param.frames:
        if live is not None and value not in live:
            raise ValueError(f"frames of {param.name!r}: {value!r} is not an option")
        if live is None and not param.low <= value <= param.high:
            raise ValueError(
                f"frames of {param.name!r}: {value!r} is outside "
                f"[{param.low}, {param.high}]"
            )
    if param.default not in param.frames:
        raise ValueError(
            f"default of {param.name!r} must be one of its frames, got {param.default!r}"
        )
    return param


def integer(
    name: str, low: int, high: int, frames: Sequence[int], default=None, label=None
) -> Param:
    """An integer from ``low`` to ``high`` on a linear slider.

    Example:
        >>> integer("t", 0, 200, [0, 100, 200]).text(37)
        't = 37'
    """
    _check_name(name)
    if not isinstance(low, int) or not isinstance(high, int) or low >= high:
        raise ValueError(
            f"low and high must be ints with low < high, got {low}, {high}"
        )
    frames = tuple(int(v) for v in frames)
    default = _first(frames, name) if default is None else default
    return _checked(
        Param(name, "int", frames, default, label or name, low, high, integer=True)
    )


def number(
    name: str,
    low: float,
    high: float,
    frames: Sequence[float],
    default=None,
    label=None,
    fmt: str = "{:.2f}",
) -> Param:
    """A real number from ``low`` to ``high`` on a linear slider (200 steps).

    Example:
        >>> number("x", 0.0, 3.0, [0.0, 1.5, 3.0]).text(0.8)
        'x = 0.80'
    """
    _check_name(name)
    if not low < high:
        raise ValueError(f"low must be below high, got {low}, {high}")
    frames = tuple(float(v) for v in frames)
    default = _first(frames, name) if default is None else default
    return _checked(
        Param(name, "float", frames, default, label or name, low, high, fmt=fmt)
    )


def log_scale(
    name: str,
    low: float,
    high: float,
    frames: Sequence[float],
    default=None,
    label=None,
    integer: bool = False,
    fmt: str | None = None,
) -> Param:
    """A positive number on a log-scale slider; ``integer=True`` rounds it (e.g. k).

    Example:
        >>> k = log_scale("k", 1, 5000, [1, 10, 100], integer=True)
        >>> k.value_of(36.8), k.text(37)
        (37, 'k = 37')
    """
    _check_name(name)
    if not 0 < low < high:
        raise ValueError(f"low and high must satisfy 0 < low < high, got {low}, {high}")
    cast = int if integer else float
    frames = tuple(cast(v) for v in frames)
    default = _first(frames, name) if default is None else default
    fmt = fmt or ("{}" if integer else "{:.3g}")
    return _checked(
        Param(
            name,
            "log",
            frames,
            default,
            label or name,
            low,
            high,
            fmt=fmt,
            integer=integer,
        )
    )


def choice(
    name: str,
    options: Sequence,
    frames: Sequence | None = None,
    default=None,
    label=None,
) -> Param:
    """One of ``options``: numbers on a slider, strings as buttons.

    Example:
        >>> choice("solver", ["Euler", "Heun"]).frames
        ('Euler', 'Heun')
    """
    _check_name(name)
    options = tuple(options)
    if len(options) < 2:
        raise ValueError(f"options needs at least two entries, got {len(options)}")
    frames = options if frames is None else tuple(frames)
    default = _first(frames, name) if default is None else default
    return _checked(
        Param(name, "choice", frames, default, label or name, options=options)
    )


class Explorer:
    """A figure that recomputes when its parameters change.

    Arguments:
        render: draws a matplotlib ``Figure`` from keyword arguments, one per parameter
            (and ``seed``, an int, when ``new_draw`` is true). It must be deterministic
            given its arguments.
        params: the :class:`Param` s, in the order of their controls.
        title: a short description, used in benchmarks and the text view.
        new_draw: add a "new draw" button that passes a fresh ``seed`` to ``render``.
        scale: stored pixels per CSS pixel (2: sharp on high-density screens).
        cache_size: how many rendered figures to keep.

    The static frames (the product of the parameters' ``frames``, at most
    :data:`MAX_FRAMES`) are rendered when the explorer is built, with ``seed = 0``; they
    fix one bounding box that every live figure is saved with, so the figure does not
    jump between updates. In a smoke run (``VBTUTOR_SMOKE=1``, see
    :func:`vbtutor.train.smoke_mode`) only the default frame is rendered: no page is
    written then, and the live path is what the run checks.

    Example:
        >>> def render(a):
        ...     fig, ax = plt.subplots()
        ...     ax.plot([0, 1], [0, a])
        ...     return fig
        >>> e = Explorer(render, [number("a", 0.0, 2.0, [0.0, 2.0])], title="slope")
        >>> len(e.frames), e.update(a=1.3) == e.png(a=1.3)
        (2, True)
    """

    def __init__(
        self,
        render: Callable[..., Figure],
        params: Sequence[Param],
        title: str,
        new_draw: bool = False,
        scale: int = 2,
        cache_size: int = 64,
    ):
        params = list(params)
        if not params or not all(isinstance(p, Param) for p in params):
            raise ValueError("params must be a non-empty list of Param")
        names = [p.name for p in params]
        if len(set(names)) != len(names) or "seed" in names:
            raise ValueError(
                f"params must have distinct names other than 'seed': {names}"
            )
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        grid = list(itertools.product(*(p.frames for p in params)))
        if len(grid) > MAX_FRAMES:
            raise ValueError(
                f"params give {len(grid)} frames, at most {MAX_FRAMES} are allowed"
            )
        if smoke_mode():
            grid = [tuple(p.default for p in params)]
        self.render, self.params, self.title = render, params, title
        self.new_draw, self.scale, self.cache_size = new_draw, scale, cache_size
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        start = time.perf_counter()
        figures = [
            self._figure(dict(zip(names, values, strict=True)), 0) for values in grid
        ]
        self.dpi = figures[0].dpi
        images = self._draw_all(figures, figures[0].get_size_inches())
        left, top, right, bottom = self.crop
        self.size = ((right - left) // scale, (bottom - top) // scale)
        self.grid = grid
        self.frames = [self._png(image) for image in images]
        # what one update costs: computing, drawing and saving a figure
        self.render_seconds = (time.perf_counter() - start) / len(grid)
        for values, frame in zip(grid, self.frames, strict=True):
            self._remember((values, 0), frame)
        self.defaults = {p.name: p.default for p in params}
        self.widget = self._live_widget()
        _CREATED.append(weakref.ref(self))

    # -- computing figures ----------------------------------------------------------

    def _figure(self, values: dict, seed: int) -> Figure:
        fig = (
            self.render(**values, seed=seed) if self.new_draw else self.render(**values)
        )
        if not isinstance(fig, Figure):
            raise ValueError(
                f"render must return a matplotlib Figure, got {type(fig).__name__}"
            )
        return fig

    def _draw_all(self, figures: list[Figure], size) -> list[Image.Image]:
        """Draw the frames and fix the crop box that every frame and update shares.

        Each figure is drawn once, with a blank margin around it, so that text reaching
        past the figure's edge (a long title) is kept; the crop box is the union of the
        frames' drawn content, padded. Content that reaches the margin's edge may go
        further, so the margin doubles until it does not (up to 8 inches).
        """
        margin = MARGIN
        while True:
            self.canvas = Bbox.from_bounds(
                -margin, -margin, size[0] + 2 * margin, size[1] + 2 * margin
            )
            images = [self._draw(fig) for fig in figures]
            width, height = images[0].size
            boxes = [b for b in map(_content_box, images, figures) if b is not None]
            if not boxes:  # nothing drawn: keep the whole canvas
                self.crop = (0, 0, width, height)
                return images
            box = [f(b[i] for b in boxes) for i, f in enumerate((min, min, max, max))]
            inside = min(box[:2]) > 0 and box[2] < width and box[3] < height
            if inside or margin >= 8:
                break
            margin *= 2
        step, pad = self.scale, round(PAD * self.scale * self.dpi)
        self.crop = (
            max(0, (box[0] - pad) // step * step),
            max(0, (box[1] - pad) // step * step),
            min(width // step * step, -(-(box[2] + pad) // step) * step),
            min(height // step * step, -(-(box[3] + pad) // step) * step),
        )
        return images

    def _draw(self, fig: Figure) -> Image.Image:
        """The figure and its margin (``self.canvas``), drawn as RGB pixels."""
        dpi = self.scale * self.dpi
        buffer = io.BytesIO()
        fig.savefig(buffer, format="rgba", dpi=dpi, bbox_inches=self.canvas)
        plt.close(fig)
        size = (int(self.canvas.width * dpi), int(self.canvas.height * dpi))  # as mpl
        image = Image.frombuffer("RGBA", size, buffer.getvalue(), "raw", "RGBA", 0, 1)
        return image.convert("RGB")

    def _png(self, image: Image.Image) -> bytes:
        """PNG bytes of the image in the explorer's crop box, in a 256-colour palette.

        The palette makes frames about 3x smaller than a full-colour PNG, which bounds
        the page weight of the HTML view, with no visible change to plots.
        """
        palette = image.crop(self.crop).quantize(256, method=Image.Quantize.FASTOCTREE)
        png = io.BytesIO()
        palette.save(png, format="png", compress_level=6)
        return png.getvalue()

    def _save(self, fig: Figure) -> bytes:
        """PNG bytes of a figure, cropped as the frames are."""
        return self._png(self._draw(fig))

    def _remember(self, key: tuple, png: bytes) -> None:
        self._cache[key] = png
        self._cache.move_to_end(key)
        while len(self._cache) > max(self.cache_size, len(self.grid)):
            self._cache.popitem(last=False)

    def _key(self, values: dict, seed: int) -> tuple:
        missing = {p.name for p in self.params} - set(values)
        if missing or len(values) != len(self.params):
            raise ValueError(
                f"values must give exactly {[p.name for p in self.params]}, "
                f"got {sorted(values)}"
            )
        return tuple(values[p.name] for p in self.params), seed

    def png(self, seed: int = 0, **values) -> bytes:
        """The figure for ``values`` (and ``seed``) as PNG bytes, from the cache if there."""
        key = self._key(values, seed)
        if key not in self._cache:
            self._remember(key, self._save(self._figure(values, seed)))
        return self._cache[key]

    def fresh_png(self, seed: int = 0, **values) -> bytes:
        """The same figure rendered again, bypassing the cache (for checks)."""
        self._key(values, seed)
        return self._save(self._figure(values, seed))

    def update(self, seed: int = 0, **values) -> bytes:
        """Show the figure for ``values``: what a control change does."""
        png = self.png(seed=seed, **values)
        self.image.value = png
        text = ", ".join(p.text(values[p.name]) for p in self.params)
        self.caption.value = html.escape(
            text + (f", draw {seed}" if self.new_draw else "")
        )
        return png

    # -- the live widget -------------------------------------------------------------

    def _live_widget(self) -> ipywidgets.Widget:
        continuous = self.render_seconds < CHEAP_SECONDS
        self.controls = {p.name: p.control(continuous) for p in self.params}
        self.image = ipywidgets.Image(format="png", width=self.size[0])
        self.caption = ipywidgets.HTML()
        children = list(self.controls.values())
        live = dict(self.controls)
        if self.new_draw:
            self.draw = live["seed"] = ipywidgets.BoundedIntText(
                value=0, min=0, max=10**6, description="draw"
            )
            button = ipywidgets.Button(description="new draw", icon="refresh")
            button.on_click(
                lambda _: setattr(live["seed"], "value", live["seed"].value + 1)
            )
            children.append(ipywidgets.HBox([live["seed"], button]))

        output = ipywidgets.Output()  # shows the traceback if render raises
        by_name = {p.name: p for p in self.params}

        def show(change=None) -> None:
            if self._holding:
                return
            raw = {name: control.value for name, control in live.items()}
            seed = raw.pop("seed", 0)
            output.outputs = ()  # clear an earlier error without printing anything
            with output:
                self.update(
                    seed=seed, **{n: by_name[n].value_of(v) for n, v in raw.items()}
                )

        for control in live.values():
            control.observe(show, names="value")
        self._holding, self._show = False, show
        show()
        return ipywidgets.VBox(
            children + [self.image, self.caption, output, ipywidgets.HTML(LIVE_NOTE)]
        )

    def set(self, **values) -> None:
        """Move the live controls to ``values`` at once, then update the figure once.

        ``seed`` sets the draw number of an explorer with a "new draw" button.
        """
        controls = dict(self.controls, **({"seed": self.draw} if self.new_draw else {}))
        for name in values:
            if name not in controls:
                raise ValueError(f"name {name!r} is not a control of this explorer")
        self._holding = True
        try:
            for name, value in values.items():
                controls[name].value = value
        finally:
            self._holding = False
        self._show()

    # -- the static fallback ---------------------------------------------------------

    def html(self) -> str:
        """The kernel-free view: one range slider per parameter over the frames."""
        start = [p.frames.index(p.default) for p in self.params]
        width, height = self.size
        rows = []
        for p, i in zip(self.params, start, strict=True):
            texts = [p.text(v) for v in p.frames]
            labels = html.escape(json.dumps(texts), quote=True)
            name = html.escape(p.label, quote=True)
            # as wide as the longest value, so that the track keeps its length
            wide = max(map(len, texts))
            rows.append(
                f'<label><input type="range" min="0" max="{len(p.frames) - 1}" '
                f'step="1" value="{i}" aria-label="{name}" data-labels="{labels}" '
                f'oninput="{_ONINPUT}"><output style="min-width:max(8em, {wide}ch)">'
                f"{html.escape(p.text(p.default))}</output></label>"
            )
        images = []
        for values, frame in zip(self.grid, self.frames, strict=True):
            key = "-".join(
                str(p.frames.index(v)) for p, v in zip(self.params, values, strict=True)
            )
            shown = "block" if key == "-".join(map(str, start)) else "none"
            alt = html.escape(
                ", ".join(p.text(v) for p, v in zip(self.params, values, strict=True))
            )
            data = base64.b64encode(frame).decode("ascii")
            images.append(
                f'<img src="data:image/png;base64,{data}" data-key="{key}" alt="{alt}" '
                f'width="{width}" height="{height}" '
                f'style="display:{shown};max-width:100%;height:auto">'
            )
        return '<div class="vbtutor-explorer">' + "".join(rows + images) + "</div>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/html"] = self.html()
        names = ", ".join(p.label for p in self.params)
        bundle["text/plain"] = (
            f"Explorer: {self.title} ({names}); {len(self.frames)} frames in the "
            "HTML book, recomputed live in a kernel"
        )
        return bundle

    # -- measuring -------------------------------------------------------------------

    def benchmark(self, n: int = 12, seed: int = 0) -> dict[str, Any]:
        """Time ``n`` live updates at random values that are not cached.

        Returns the title, the median and slowest update in seconds, the number of
        frames and the bytes of the HTML view.
        """
        rng = random.Random(seed)
        seconds = []
        for _ in range(n):
            values = {p.name: p.random_value(rng) for p in self.params}
            draw = rng.randrange(1, 10**6) if self.new_draw else 0
            self._cache.pop(self._key(values, draw), None)
            start = time.perf_counter()
            self.update(seed=draw, **values)
            seconds.append(time.perf_counter() - start)
        return {
            "title": self.title,
            "median": statistics.median(seconds),
            "slowest": max(seconds),
            "frames": len(self.frames),
            "html_bytes": len(self.html().encode()),
        }


def explorers() -> list[Explorer]:
    """The explorers built in this process that are still alive, oldest first."""
    return [e for e in (ref() for ref in _CREATED) if e is not None]
