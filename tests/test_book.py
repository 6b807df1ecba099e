"""Checks on the book's sources: Colab install cells, exercises, the run-time table."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from runtimes import (  # noqa: E402
    BUDGET_SECONDS,
    OVER_BUDGET,
    explorer_lines,
    table_lines,
    toc_order,
)

from vbtutor.plotting import MIN_FONT_PT, TEXT_WIDTH  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
COLAB_CELL = """\
# On Colab, install the companion package first; elsewhere this does nothing.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "vbtutor @ git+{url}"
"""


def cells(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_every_notebook_is_in_the_toc():
    in_toc = {f.split("/")[-1] for f in toc_order(TOC)}
    assert NOTEBOOKS and {nb.stem for nb in NOTEBOOKS} <= in_toc


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_vbtutor_on_colab(notebook):
    """The cell installs from the one repository URL of _config.yml, and is hidden in HTML."""
    first = next(c for c in cells(notebook) if c["cell_type"] == "code")
    expected = COLAB_CELL.format(url=CONFIG["repository"]["url"])
    assert source(first) == expected.rstrip("\n")
    assert "remove-cell" in first["metadata"].get("tags", [])
    assert first["outputs"] == []  # it did nothing when the notebook was executed here


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_ends_with_exercises_and_hidden_solutions(notebook):
    text = "\n".join(source(c) for c in cells(notebook) if c["cell_type"] == "markdown")
    assert "## Exercises" in text
    exercises = text.split("## Exercises", 1)[1]
    assert exercises.count(":::{dropdown} Solution") >= 2


def test_launch_buttons_point_at_colab_and_binder():
    launch = CONFIG["launch_buttons"]
    assert launch["colab_url"].startswith("https://colab.research.google.com")
    assert launch["binderhub_url"].startswith("https://mybinder.org")
    assert CONFIG["repository"]["url"].startswith("https://github.com/")


def test_runtimes_cover_every_chapter_within_budget():
    runtimes = json.loads((ROOT / "book" / "runtimes.json").read_text())
    assert {nb.stem for nb in NOTEBOOKS} <= set(runtimes)
    for slug, run in runtimes.items():
        over = run["seconds"] > BUDGET_SECONDS
        assert run["seconds"] > 0 and over == (slug in OVER_BUDGET), (
            f"{slug} takes {run['seconds']} s; listed as over budget: "
            f"{slug in OVER_BUDGET}"
        )


def test_explorer_table_lists_explorers_in_book_order_and_flags_slow_ones():
    fast = {"title": "a", "median": 0.1, "slowest": 0.5, "frames": 6, "html_bytes": 3e5}
    slow = {"title": "b", "median": 0.4, "slowest": 2.5, "frames": 9, "html_bytes": 4e5}
    results = {"two": {"explorers": [slow]}, "one": {"explorers": [fast]}}
    header, rule, first, second = explorer_lines(results, ["book/one", "book/two"])
    assert header.startswith("| Chapter | Explorer") and rule.startswith("|:--")
    assert first == "| {doc}`one` | a | 0.10 | 0.50 | 6 | 300 |"
    assert second == "| {doc}`two` | b | **0.40** | **2.50** | 9 | 400 |"


def test_every_chapter_has_measured_explorers():
    results = json.loads((ROOT / "book" / "explorers.json").read_text())
    assert {nb.stem for nb in NOTEBOOKS} <= set(results)
    assert all(results[nb.stem]["explorers"] for nb in NOTEBOOKS)


def test_toc_order_is_depth_first():
    toc = {
        "root": "a",
        "parts": [{"chapters": [{"file": "b", "sections": [{"file": "c"}]}]}],
    }
    assert toc_order(toc) == ["a", "b", "c"]


def test_runtime_table_rows_follow_the_book_and_flag_overruns():
    runs = {
        "slow": {"seconds": 75.0, "machine": "x86_64", "cpus": 2, "date": "d"},
        "fast": {"seconds": 5.04, "machine": "x86_64", "cpus": 2, "date": "d"},
    }
    runs["draft"] = runs["fast"]  # measured but not in the book: no row
    header, rule, first, second = table_lines(runs, ["book/fast", "book/slow"])
    assert header.startswith("| Chapter") and rule.startswith("|:--")
    assert first == "| {doc}`fast` | 5.0 | yes | x86_64, 2 cores | d |"
    assert second == "| {doc}`slow` | 75.0 | **no** | x86_64, 2 cores | d |"


# Font sizes set in code: fontsize=8, labelsize="small", ... Named sizes are relative to
# the book's 10 pt base font.
FONT_SETTING = re.compile(r"\b(?:fontsize|labelsize|titlesize)\s*=\s*([^,)\s]+)")
NAMED_SIZES = {"xx-small": 5.8, "x-small": 6.9, "small": 8.3, "medium": 10.0}
FIGURE_WIDTH = re.compile(r"figsize=\(\s*([\d.]+)")


def figure_code() -> dict[str, str]:
    """The code of every notebook and of the package, by name."""
    code = {
        nb.stem: "\n".join(source(c) for c in cells(nb) if c["cell_type"] == "code")
        for nb in NOTEBOOKS
    }
    for module in (ROOT / "src" / "vbtutor").glob("*.py"):
        code[f"vbtutor.{module.stem}"] = module.read_text()
    return code


def font_points(value: str) -> float:
    value = value.strip("\"'")
    return NAMED_SIZES.get(value) or float(value)


@pytest.mark.parametrize("name, code", figure_code().items())
def test_no_figure_font_is_set_below_a_readable_size(name, code):
    small = [m.group(0) for m in FONT_SETTING.finditer(code)]
    small = [
        setting for setting in small if font_points(setting.split("=")[1]) < MIN_FONT_PT
    ]
    assert small == [], f"{name} sets fonts below {MIN_FONT_PT} pt: {small}"


@pytest.mark.parametrize("name, code", figure_code().items())
def test_no_figure_is_wider_than_the_text_column(name, code):
    wide = [float(w) for w in FIGURE_WIDTH.findall(code) if float(w) > TEXT_WIDTH]
    assert wide == [], f"{name} makes figures wider than {TEXT_WIDTH} in: {wide}"


def test_the_font_checks_catch_small_and_wide_settings():
    code = 'ax.legend(fontsize=8); ax.set_title("t", fontsize="small")'
    found = [m.group(1) for m in FONT_SETTING.finditer(code)]
    assert [font_points(v) < MIN_FONT_PT for v in found] == [True, True]
    assert FIGURE_WIDTH.findall("plt.subplots(1, 3, figsize=(11, 3))") == ["11"]


# --- numbers in prose come from the code ------------------------------------------------

#: A decimal number, not part of a word, a version or a longer number.
DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")


def prose_decimals(markdown: str) -> list[str]:
    """Decimal numbers in markdown, outside code spans and roles (``{glue:text}`x```)."""
    text = re.sub(r"`[^`]*`", "", markdown)
    text = re.sub(r"^:(label|name|class):.*$", "", text, flags=re.M)
    return DECIMAL.findall(text)


def typed_numbers(nb: dict) -> list[str]:
    """Decimals in a notebook's prose that no code cell writes and no one vouched for.

    A number a chapter computes must reach its prose through ``vbtutor.glue`` and the
    ``{glue:text}`` role. A decimal may be typed only if it is a setting that the code
    also contains (a step size, a standard deviation), or if the notebook's metadata
    lists it with its source under ``vbtutor.typed_numbers`` (a value from a paper).
    """
    code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
    vouched = nb["metadata"].get("vbtutor", {}).get("typed_numbers", {})
    prose = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    return [
        number
        for number in prose_decimals(prose)
        if number.lstrip("-") not in code and number not in vouched
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_prose_are_glued_or_vouched_for(notebook):
    typed = typed_numbers(json.loads(notebook.read_text()))
    assert typed == [], f"{notebook.stem}: decimals typed into the prose: {typed}"


def test_typed_number_check_catches_a_hand_typed_result():
    nb = {
        "metadata": {"vbtutor": {"typed_numbers": {"-86.76": "Burda et al., Table 1"}}},
        "cells": [
            {"cell_type": "code", "source": ["sigma = 0.25\nprint(gap)"]},
            {
                "cell_type": "markdown",
                "source": [
                    "With $\\sigma = 0.25$ the gap is 0.27 nats ({glue:text}`gap` "
                    "measured), against -86.76 in the paper; see `x = 1.5`."
                ],
            },
        ],
    }
    assert typed_numbers(nb) == ["0.27"]


# --- printed numbers that depend on the CPU ---------------------------------------------


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_exempt_from_output_comparison_assert_their_claims(notebook):
    """A cell whose printed digits may differ on another CPU (nbval-ignore-output) must
    check what the prose claims about those numbers with an assert, on any machine."""
    for cell in cells(notebook):
        if "nbval-ignore-output" in cell["metadata"].get("tags", []):
            assert "assert " in source(cell), source(cell)[:200]


# --- the errata page ----------------------------------------------------------------------

ERRATUM_BOX = re.compile(
    r":::\{admonition\} Erratum \((\w+)\)[^\n]*\n:class:[^\n]*\n:name: (erratum-eq\d+)"
)
SEVERITIES = {"error", "typo", "notation", "outdated"}


def erratum_boxes() -> dict[str, str]:
    """Every erratum box in the chapters: its name and the severity in its title."""
    return {
        m.group(2): m.group(1)
        for path in NOTEBOOKS
        for cell in cells(path)
        if cell["cell_type"] == "markdown"
        for m in ERRATUM_BOX.finditer(source(cell))
    }


def errata_entries(page: str) -> list[tuple[str, str, list[str]]]:
    """(heading, severity, linked labels) for each entry of the errata page."""
    entries = []
    for block in re.split(r"(?m)^## ", page)[1:]:
        heading = block.splitlines()[0]
        severity = re.search(r"\*\*Severity:\*\* (\w+)", block)
        labels = re.findall(r"\{ref\}`[^`]*<([\w-]+)>`", block)
        entries.append((heading, severity.group(1) if severity else "", labels))
    return entries


def test_every_erratum_box_is_on_the_errata_page_with_its_severity():
    boxes = erratum_boxes()
    assert len(boxes) >= 30 and set(boxes.values()) <= SEVERITIES, boxes
    entries = errata_entries((ROOT / "book" / "errata.md").read_text())
    severity_of = {
        label: severity for _, severity, labels in entries for label in labels
    }
    missing = sorted(set(boxes) - set(severity_of))
    assert missing == [], f"erratum boxes missing from the errata page: {missing}"
    differ = {n: (s, severity_of[n]) for n, s in boxes.items() if severity_of[n] != s}
    assert differ == {}, f"box and errata page disagree on the severity: {differ}"
    unrated = [h for h, severity, _ in entries if severity not in SEVERITIES]
    assert unrated == [], f"errata entries without a severity: {unrated}"
