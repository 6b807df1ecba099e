"""What the explorer modules share: a fixed figure layout and a memo for costly parts."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FIXED_LAYOUT", "memo"]

#: Margins of a two-panel explorer figure with a legend below the panels. A fixed layout
#: keeps live updates fast (matplotlib's layout engines cost more than the computation)
#: and the panels still between frames.
FIXED_LAYOUT = {"left": 0.1, "right": 0.98, "top": 0.92, "bottom": 0.31, "wspace": 0.35}


def memo(function: Callable) -> Callable:
    """Remember a function's results by its (hashable) arguments.

    A render function often has an expensive part that depends on fewer parameters than
    the figure (the IWAE gap curve depends on the width, not on k); computing it once per
    distinct argument keeps live updates fast.

    Example:
        >>> calls = []
        >>> square = memo(lambda v: calls.append(v) or v * v)
        >>> square(3), square(3), calls
        (9, 9, [3])
    """
    results: dict = {}

    def remembered(*args):
        if args not in results:
            results[args] = function(*args)
        return results[args]

    return remembered
