"""Execute chapter notebooks in place, top to bottom in one fresh kernel, and time them.

Usage: python tools/execute_notebooks.py [--no-record] book/a.ipynb [book/b.ipynb ...]
Writes the measured seconds to book/runtimes.json (CPU, default quick settings), unless
--no-record is given (for trial runs, or several runs at once).
"""

import datetime
import json
import os
import pathlib
import platform
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

RUNTIMES = pathlib.Path("book/runtimes.json")


def execute(path: pathlib.Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the stored notebooks: cleaner diffs
        resources={"metadata": {"path": "book"}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    # one stream output per cell: how a print(..., end="") was flushed is timing, and
    # would otherwise split a line in two in the stored notebook
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    nbformat.write(nb, path)
    return seconds


def main(paths: list[str]) -> int:
    record = "--no-record" not in paths
    paths = [p for p in paths if p != "--no-record"]
    runtimes = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
    for name in paths:
        path = pathlib.Path(name)
        seconds = execute(path)
        runtimes[path.stem] = {
            "seconds": round(seconds, 1),
            "cpus": len(os.sched_getaffinity(0)),
            "machine": platform.machine(),
            "date": datetime.date.today().isoformat(),
        }
        print(f"{path}: {seconds:.1f} s")
    if record:
        RUNTIMES.write_text(json.dumps(dict(sorted(runtimes.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
