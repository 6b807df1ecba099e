"""Tests for vbtutor.report: glued values are what myst-nb's own reader finds."""

from __future__ import annotations

from unittest import mock

import nbformat
import pytest
from conftest import raises_naming
from myst_nb.core.variables import format_plain_text
from myst_nb.ext.glue import extract_glue_data_cell

from vbtutor import report


def glued_cell(name, value, fmt):
    """Run glue as in a kernel and return a notebook cell holding what it displayed."""
    shown = []

    def display(data, raw, metadata):
        shown.append(
            nbformat.v4.new_output("display_data", data=data, metadata=metadata)
        )

    with (
        mock.patch.object(report, "get_ipython", return_value=object()),
        mock.patch.object(report, "display", display),
    ):
        returned = report.glue(name, value, fmt)
    assert returned is None  # a cell ending with glue shows no value
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = shown
    return cell


def glued_text(name, value, fmt):
    """What myst-nb's own reader finds for ``name`` after glue."""
    cell = glued_cell(name, value, fmt)
    ((found, output),) = extract_glue_data_cell(cell)
    assert found == name and set(output["data"]) == {"text/plain"}
    assert cell.outputs == []  # stored, not shown
    # what the {glue:text} role shows, by myst-nb's own formatting
    return format_plain_text(output["data"]["text/plain"], "")


def test_myst_nb_reads_the_glued_text():
    assert glued_text("kl-gap", 0.27512, "{:.2f}") == "0.28"


def test_glue_formats_with_the_pattern():
    assert glued_text("n", 12345, "{:,}") == "12,345"
    assert glued_text("p", 0.5, "{:.0%}") == "50%"


@pytest.mark.parametrize(
    "text", ["3,280", "1, 2, 5", "(0.25, 4)", "0 ± 2", "-0.48", "'quoted'", "1e-05"]
)
def test_the_book_shows_exactly_the_glued_text(text):
    # myst-nb evaluates text/plain as a literal: unquoted, "3,280" would become (3, 280)
    assert glued_text("t", text, "{}") == text


def test_outside_a_kernel_glue_stores_nothing():
    with mock.patch.object(report, "display") as display:
        assert report.glue("x", 1.5, "{:.1f}") is None
    display.assert_not_called()


@pytest.mark.parametrize("name", ["", "a b", "x.y", 3])
def test_glue_rejects_bad_names(name):
    with raises_naming("name"):
        report.glue(name, 1.0)


def test_glue_rejects_a_pattern_that_cannot_format_the_value():
    with raises_naming("fmt"):
        report.glue("x", "text", "{:.2f}")
