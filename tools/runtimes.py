"""Sphinx extension: tables of measured notebook run times and explorer update times.

``make notebooks`` (tools/execute_notebooks.py) records each notebook's wall-clock time in
``book/runtimes.json``, and ``make bench-widgets`` (tools/bench_explorers.py) records how
fast each chapter's explorer updates in ``book/explorers.json``. The ``runtime-table`` and
``explorer-table`` directives turn those files into tables at build time, in the order of
``_toc.yml``, so the page can never disagree with the measurements.
"""

from __future__ import annotations

import json
import pathlib

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

BUDGET_SECONDS = 60
#: Chapters that are over the budget as measured, each with the reason and the remedy. The
#: table shows the note beside the time, and tests/test_book.py fails on a chapter over
#: the budget that is not listed here, and on a listed chapter that is back within it.
OVER_BUDGET: dict[str, str] = {}
RUNTIMES = "book/runtimes.json"
EXPLORERS = "book/explorers.json"
#: The targets for an explorer update: median and slowest, seconds.
MEDIAN_TARGET, SLOWEST_TARGET = 0.3, 2.0


def toc_order(toc: dict) -> list[str]:
    """The file entries of a jupyter-book ``_toc.yml``, depth first."""
    files = [toc["root"]] if "root" in toc else []
    for key in ("parts", "chapters", "sections"):
        for entry in toc.get(key, []):
            if "file" in entry:
                files.append(entry["file"])
            files.extend(toc_order({k: v for k, v in entry.items() if k != "file"}))
    return files


def table_lines(runtimes: dict, order: list[str]) -> list[str]:
    """A MyST pipe table, one row per measured chapter of the book, in book order.

    Notebooks measured but not (yet) in the table of contents are left out.
    """
    lines = [
        "| Chapter | Seconds | ≤ 60 s | Machine | Date |",
        "|:--|--:|:--:|:--|:--|",
    ]
    slugs = [f.split("/")[-1] for f in order]
    for slug in sorted(set(runtimes) & set(slugs), key=slugs.index):
        run = runtimes[slug]
        ok = "yes" if run["seconds"] <= BUDGET_SECONDS else "**no**"
        if slug in OVER_BUDGET:
            ok += f": {OVER_BUDGET[slug]}"
        machine = f"{run['machine']}, {run.get('cpus', '?')} cores"
        date = run.get("date", "?")
        lines.append(
            f"| {{doc}}`{slug}` | {run['seconds']:.1f} | {ok} | {machine} | {date} |"
        )
    return lines


def explorer_lines(results: dict, order: list[str]) -> list[str]:
    """A MyST pipe table, one row per explorer of a chapter in the book, in book order."""
    lines = [
        "| Chapter | Explorer | Median s | Slowest s | Frames | HTML kB |",
        "|:--|:--|--:|--:|--:|--:|",
    ]
    slugs = [f.split("/")[-1] for f in order]
    for slug in sorted(set(results) & set(slugs), key=slugs.index):
        for row in results[slug]["explorers"]:
            median = f"{row['median']:.2f}"
            slowest = f"{row['slowest']:.2f}"
            if row["median"] > MEDIAN_TARGET:
                median = f"**{median}**"
            if row["slowest"] > SLOWEST_TARGET:
                slowest = f"**{slowest}**"
            lines.append(
                f"| {{doc}}`{slug}` | {row['title']} | {median} | {slowest} | "
                f"{row['frames']} | {row['html_bytes'] / 1e3:.0f} |"
            )
    return lines


class _JsonTable(SphinxDirective):
    """Render a JSON file of measurements (``path``) as a table (``make_lines``)."""

    path: str
    make_lines: staticmethod

    def run(self) -> list[nodes.Node]:
        root = pathlib.Path(self.env.srcdir)
        path = root / self.path
        self.env.note_dependency(str(path))
        data = json.loads(path.read_text())
        order = toc_order(yaml.safe_load((root / "_toc.yml").read_text()))
        container = nodes.container()
        self.state.nested_parse(
            StringList(self.make_lines(data, order), source=str(path)),
            self.content_offset,
            container,
        )
        return container.children


class RuntimeTable(_JsonTable):
    """Render book/runtimes.json as a table."""

    path, make_lines = RUNTIMES, staticmethod(table_lines)


class ExplorerTable(_JsonTable):
    """Render book/explorers.json as a table."""

    path, make_lines = EXPLORERS, staticmethod(explorer_lines)


def setup(app):
    app.add_directive("runtime-table", RuntimeTable)
    app.add_directive("explorer-table", ExplorerTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
