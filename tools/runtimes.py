"""Sphinx extension: the ``runtime-table`` directive, a table of measured notebook run times.

``make notebooks`` (tools/execute_notebooks.py) records each notebook's wall-clock time in
``book/runtimes.json``; this directive turns that file into a table at build time, in the
order of ``_toc.yml``, so the page can never disagree with the measurements.
"""

from __future__ import annotations

import json
import pathlib

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

BUDGET_SECONDS = 60
RUNTIMES = "book/runtimes.json"


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
        machine = f"{run['machine']}, {run.get('cpus', '?')} cores"
        date = run.get("date", "?")
        lines.append(
            f"| {{doc}}`{slug}` | {run['seconds']:.1f} | {ok} | {machine} | {date} |"
        )
    return lines


class RuntimeTable(SphinxDirective):
    """Render book/runtimes.json as a table."""

    def run(self) -> list[nodes.Node]:
        root = pathlib.Path(self.env.srcdir)
        path = root / RUNTIMES
        self.env.note_dependency(str(path))
        runtimes = json.loads(path.read_text())
        order = toc_order(yaml.safe_load((root / "_toc.yml").read_text()))
        container = nodes.container()
        self.state.nested_parse(
            StringList(table_lines(runtimes, order), source=str(path)),
            self.content_offset,
            container,
        )
        return container.children


def setup(app):
    app.add_directive("runtime-table", RuntimeTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
