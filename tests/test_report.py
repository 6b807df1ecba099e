"""Tests for vbtutor.report: glued values are what myst-nb's own reader finds, and
mean ± SE summaries agree with scipy and print to the SE's precision."""

from __future__ import annotations

from unittest import mock

import nbformat
import numpy as np
import pytest
import scipy.stats
import torch
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


def test_mean_se_matches_scipy():
    values = np.random.default_rng(0).normal(size=(5, 3))
    mean, se = report.mean_se(values)
    np.testing.assert_allclose(mean, values.mean(0))
    np.testing.assert_allclose(se, scipy.stats.sem(values, axis=0))
    m1, s1 = report.mean_se(torch.tensor(values[:, 0]))
    assert isinstance(m1, float) and isinstance(s1, float)
    assert (m1, s1) == pytest.approx((mean[0], se[0]))
    m2, s2 = report.mean_se(values.T, axis=1)
    np.testing.assert_allclose(s2, se)


@pytest.mark.parametrize(
    "args, kwargs, text",
    [
        ((0.7437, 0.0412), {}, "0.74 ± 0.04"),
        ((24.3, 16.1), {}, "24 ± 16"),
        ((0.01234, 0.00021), {}, "0.012 ± 0.000"),  # at most 3 decimals
        ((0.01234, 0.00021), {"max_decimals": 4}, "0.0123 ± 0.0002"),
        ((-0.0004, 0.02), {}, "0.00 ± 0.02"),  # no -0
        ((0.655, 0.04), {"decimals": 3}, "0.655 ± 0.040"),
        ((-0.7, 0.5), {"signed": True}, "-0.7 ± 0.5"),
        ((0.157, 0.01), {"signed": True}, "+0.16 ± 0.01"),
        ((2.0, 0.0), {}, "2.000 ± 0.000"),
    ],
)
def test_pm_prints_to_the_precision_of_the_se(args, kwargs, text):
    assert report.pm(*args, **kwargs) == text


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: report.mean_se([1.0]), "values"),
        (lambda: report.mean_se(3.0), "values"),
        (lambda: report.mean_se([1.0, float("nan")]), "values"),
        (lambda: report.mean_se(np.ones((3, 2)), axis=2), "values"),
        (lambda: report.pm(1.0, -0.1), "se"),
        (lambda: report.pm(float("inf"), 0.1), "mean"),
        (lambda: report.pm(1.0, 0.1, decimals=-1), "decimals"),
    ],
)
def test_bad_summaries_raise_naming_the_argument(call, name):
    with raises_naming(name):
        call()


@pytest.mark.parametrize(
    ("mean", "se", "expected"),
    [
        (0.0, 0.0, "within"),
        (1.9, 1.0, "within"),
        (-1.9, 1.0, "within"),
        (2.0, 1.0, "above"),
        (-2.0, 1.0, "below"),
        (-0.1, 0.0, "below"),
    ],
)
def test_verdict_is_within_below_two_standard_errors_else_by_sign(mean, se, expected):
    assert report.verdict(mean, se, "within", "above", "below") == expected


@pytest.mark.parametrize(
    ("mean", "se"), [(float("nan"), 1.0), (1.0, -1.0), (1.0, np.inf)]
)
def test_verdict_refuses_bad_numbers(mean, se):
    with raises_naming("se"):
        report.verdict(mean, se, "within", "above", "below")
