"""Numbers a chapter's prose quotes: summarised over seeds, and glued from the cell.

``glue(name, value, fmt)`` stores the formatted value in the cell's outputs in the format
of myst-nb's glue (the ``application/papermill.record/`` prefix and ``scrapbook``
metadata), without importing myst-nb, so a chapter also runs where only ``vbtutor`` is
installed (Colab). The prose then writes ``{glue:text}`name``` and the book inserts
the stored text: the number the reader sees is the number the code printed, formatted
once, in code.

``mean_se``, ``pm`` and ``pm_of`` summarise a quantity measured once per seed as "mean ± SE",
printed only to the precision the standard error supports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from IPython import get_ipython
from IPython.display import display

__all__ = ["GLUE_PREFIX", "glue", "mean_se", "pm", "pm_of", "verdict"]

#: The mime-type prefix myst-nb reads glued values from (hidden, not displayed).
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, fmt: str = "{}") -> None:
    """Store ``fmt.format(value)`` under ``name`` for the book's ``{glue:text}`` role.

    Arguments:
        name: the key the prose uses; letters, digits, ``_`` and ``-``.
        value: what to store (a number, usually).
        fmt: a ``str.format`` pattern, e.g. ``"{:.2f}"`` or ``"{:,}"``.

    Returns nothing, so a cell may end with a call to ``glue`` without showing a value.
    Nothing is shown in the notebook; outside a kernel nothing is stored, but the value
    must still format.

    Example:
        >>> glue("gap", 0.27512, "{:.2f}")  # in a notebook: {glue:text}`gap` shows 0.28
    """
    if (
        not isinstance(name, str)
        or not name
        or not all(ch.isalnum() or ch in "_-" for ch in name)
    ):
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    try:
        text = fmt.format(value)
    except (ValueError, TypeError, IndexError, KeyError) as error:
        raise ValueError(f"fmt {fmt!r} cannot format {value!r}: {error}") from None
    if get_ipython() is None:
        return
    # myst-nb reads text/plain as a Python literal (the repr IPython would show), so the
    # text is stored as the repr of a string: "3,280" must not come back as (3, 280)
    display(
        {GLUE_PREFIX + "text/plain": repr(text)},
        raw=True,
        metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
    )


def mean_se(values: Any, axis: int = 0) -> tuple[Any, Any]:
    """Mean and standard error of the mean (sample sd / sqrt(n)) along ``axis``.

    Arguments:
        values: one value per seed (a list, array or tensor), at least two along
            ``axis``, all finite.
        axis: the axis the seeds run along.

    Returns ``(mean, se)``: floats for a 1-d input, arrays otherwise.

    Example:
        >>> mean_se([1.0, 2.0, 3.0])
        (2.0, 0.5773502691896258)
    """
    array = np.asarray(
        values.detach().cpu() if hasattr(values, "detach") else values, dtype=float
    )
    if array.ndim == 0 or not -array.ndim <= axis < array.ndim:
        raise ValueError(f"values needs an axis {axis}, got shape {array.shape}")
    n = array.shape[axis]
    if n < 2:
        raise ValueError(f"values needs at least 2 seeds along axis {axis}, got {n}")
    if not np.isfinite(array).all():
        raise ValueError("values must be finite")
    mean, se = array.mean(axis), array.std(axis, ddof=1) / math.sqrt(n)
    return (float(mean), float(se)) if array.ndim == 1 else (mean, se)


def pm(
    mean: float,
    se: float,
    decimals: int | None = None,
    max_decimals: int = 3,
    signed: bool = False,
) -> str:
    """``"mean ± se"``, to the SE's first significant digit unless ``decimals`` is given.

    Arguments:
        mean, se: a mean and its standard error (``se`` finite and >= 0).
        decimals: the number of decimals; ``None`` picks the position of the SE's
            first significant digit, at most ``max_decimals``.
        max_decimals: the cap when ``decimals`` is ``None``.
        signed: print a ``+`` before a positive mean (for differences).

    A mean that rounds to zero prints as ``0``, never ``-0``.

    Example:
        >>> pm(0.7437, 0.0412)
        '0.74 ± 0.04'
        >>> pm(-0.0004, 0.02)
        '0.00 ± 0.02'
    """
    if not (math.isfinite(se) and se >= 0):
        raise ValueError(f"se must be finite and >= 0, got {se}")
    if not math.isfinite(mean):
        raise ValueError(f"mean must be finite, got {mean}")
    if decimals is None:
        first = -math.floor(math.log10(se)) if se > 0 else max_decimals
        decimals = min(max_decimals, max(0, first))
    elif decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    mean = round(mean, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    sign = "+" if signed else ""
    return f"{mean:{sign}.{decimals}f} ± {se:.{decimals}f}"


def pm_of(values: Any, **options: Any) -> str:
    """``pm(*mean_se(values), **options)``: one value per seed, as ``"mean ± SE"``.

    Example:
        >>> pm_of([0.70, 0.74, 0.78])
        '0.74 ± 0.02'
    """
    return pm(*mean_se(values), **options)


def verdict(mean: float, se: float, within: str, above: str, below: str) -> str:
    """The sentence for a difference of ``mean ± se``: ``within`` when it lies within two
    standard errors of zero (or is exactly zero), else ``above`` or ``below`` by its sign.

    The chapters glue the chosen sentence into their prose, so the words always follow
    the numbers the cell computed.

    Example:
        >>> verdict(0.3, 0.2, "no difference", "larger", "smaller")
        'no difference'
        >>> verdict(-0.5, 0.2, "no difference", "larger", "smaller")
        'smaller'
    """
    if not (math.isfinite(mean) and math.isfinite(se) and se >= 0):
        raise ValueError(f"mean and se must be finite, se >= 0, got {mean!r}, {se!r}")
    if abs(mean) < 2 * se or mean == 0:
        return within
    return above if mean > 0 else below
