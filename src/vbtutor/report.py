"""Numbers a chapter's prose quotes, glued from the cell that computes them.

``glue(name, value, fmt)`` stores the formatted value in the cell's outputs in the format
of myst-nb's glue (the ``application/papermill.record/`` prefix and ``scrapbook``
metadata), without importing myst-nb, so a chapter also runs where only ``vbtutor`` is
installed (Colab). The prose then writes ``{glue:text}`name``` and the book inserts
the stored text: the number the reader sees is the number the code printed, formatted
once, in code.
"""

from __future__ import annotations

from typing import Any

from IPython import get_ipython
from IPython.display import display

__all__ = ["GLUE_PREFIX", "glue"]

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
