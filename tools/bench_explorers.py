"""Measure how fast each chapter's explorer updates once the chapter has run.

Usage: python tools/bench_explorers.py [book/a.ipynb ...]   (default: every chapter)

Each notebook runs top to bottom in a fresh kernel (nothing is written back); then, in
the same kernel, every explorer the chapter built is moved to 12 random settings that are
not cached (`Explorer.benchmark`), timing each update: the render, the PNG and the image
swap. The medians, slowest updates, frame counts and HTML bytes go to
book/explorers.json, which the book's run-time page shows as a table.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import sys

import nbformat
from nbclient import NotebookClient

RESULTS = pathlib.Path("book/explorers.json")
MEASURE = """\
import json as _json
import vbtutor.widgets as _w
print(_json.dumps([e.benchmark(n=12, seed=0) for e in _w.explorers()]))
"""


def measure(path: pathlib.Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(MEASURE))
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": "book"}}
    )
    client.execute()
    output = nb.cells[-1].outputs[-1]
    return json.loads(output["text"])


def main(paths: list[str]) -> int:
    paths = paths or sorted(str(p) for p in pathlib.Path("book").glob("*.ipynb"))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in paths:
        path = pathlib.Path(name)
        rows = measure(path)
        results[path.stem] = {
            "explorers": rows,
            "cpus": len(os.sched_getaffinity(0)),
            "machine": platform.machine(),
            "date": datetime.date.today().isoformat(),
        }
        for row in rows:
            print(
                f"{path.stem}: {row['title']}: median {row['median']:.3f} s, "
                f"slowest {row['slowest']:.3f} s, {row['html_bytes'] / 1e3:.0f} kB"
            )
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
