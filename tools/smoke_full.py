"""Run every chapter's full configuration (VBTUTOR_FULL=1) for a few steps: a smoke test.

Usage: python tools/smoke_full.py [--slowest N] [--json FILE] [book/a.ipynb ...]
(default: every book/*.ipynb). ``make smoke`` runs it on the CPU, as part of ``make test``;
``VBTUTOR_DEVICE=cuda python tools/smoke_full.py`` runs it on a GPU.

The full configuration is meant for a GPU and is too slow for CI, so it could break
unnoticed. This runs each notebook top to bottom in a fresh kernel (on the CPU) with
``VBTUTOR_FULL=1 VBTUTOR_SMOKE=1``: ``vbtutor.choose`` returns the full settings with
every int (a step count, an iteration count, a sample size) cut to a few
(``vbtutor.train.smoke_cap``), and ``vbtutor.train.fit`` takes at most that many steps,
while the full configuration's structure (wider networks, more seeds) is kept. The
notebooks are never written back. A notebook that never calls ``choose`` or
``full_mode`` has no full configuration (nbval runs its only one) and is skipped.

A few steps cannot meet the claims that the chapters assert about trained models, so
each ``assert`` statement in a notebook's cells is rewritten, in this kernel only, into
"if the test is false, record the claim and go on": the rest of its cell still runs (the
names it defines, its glue and its figures), the test expression itself is still
evaluated (an error inside it still fails), and the claims not met are listed. Any
exception fails the notebook: a shape or type error, out of memory, a NameError, an
AssertionError raised inside vbtutor. Exit status 1 if any notebook fails. Cells are
numbered as nbformat counts them: from 0, markdown cells included.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys
import time
from datetime import datetime

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ENV = {
    "VBTUTOR_FULL": "1",
    "VBTUTOR_SMOKE": "1",
    "VBTUTOR_DEVICE": "cpu",
    "VBTUTOR_PROGRESS": "off",
    "VBTUTOR_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
#: Chapters whose analysis needs more than the default few steps (VBTUTOR_SMOKE_STEPS).
STEPS = {
    # AVB's loop records every 100 steps, and the analysis reads the 4th record on
    "avb": 400,
}
#: A notebook with a full configuration calls one of these.
FULL = re.compile(r"\b(choose|full_mode)\(")
CLAIMS = "_vbtutor_smoke_claims"

# Run in the kernel before the notebook's first cell. `assert test, message` becomes
# `if not test: _vbtutor_smoke_claim(<source of test>, lambda: message)`, at any depth.
# If the transformer ever fails, IPython drops it and asserts raise again: fails safe.
PRELUDE = f"""
import ast as _ast

{CLAIMS} = []
_vbtutor_smoke_cell = [""]  # the source of the cell that runs


def _vbtutor_smoke_claim(test, message):
    {CLAIMS}.append((_vbtutor_smoke_cell[0], test, str(message())[:200]))


get_ipython().events.register(
    "pre_run_cell", lambda info: _vbtutor_smoke_cell.__setitem__(0, info.raw_cell)
)


class _SmokeClaims(_ast.NodeTransformer):
    def visit_Assert(self, node):
        message = node.msg if node.msg is not None else _ast.Constant("")
        no_args = _ast.arguments([], [], None, [], [], None, [])
        call = _ast.Call(
            _ast.Name("_vbtutor_smoke_claim", _ast.Load()),
            [_ast.Constant(_ast.unparse(node.test)), _ast.Lambda(no_args, message)],
            [],
        )
        check = _ast.If(_ast.UnaryOp(_ast.Not(), node.test), [_ast.Expr(call)], [])
        return _ast.fix_missing_locations(_ast.copy_location(check, node))


get_ipython().ast_transformers.append(_SmokeClaims())
"""
REPORT = f"import json as _json; print(_json.dumps({CLAIMS}))"


def has_full_configuration(nb: nbformat.NotebookNode) -> bool:
    return any(c.cell_type == "code" and FULL.search(c.source) for c in nb.cells)


def run(path: pathlib.Path) -> dict:
    """Execute one notebook in smoke mode; return its time, claims not met and error."""
    nb = nbformat.read(path, as_version=4)
    if not has_full_configuration(nb):
        return {"skipped": True}
    n_cells = len(nb.cells)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PRELUDE))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    os.environ.pop("VBTUTOR_SMOKE_STEPS", None)
    if path.stem in STEPS:
        os.environ["VBTUTOR_SMOKE_STEPS"] = str(STEPS[path.stem])
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=True,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no colours in CI logs
    except Exception as exc:  # the kernel died (out of memory), a timeout, ...
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    # the notebook's index of each cell (the prelude is not counted), by its source
    cell_of = {}
    for i, cell in enumerate(nb.cells[1:]):
        cell_of.setdefault(cell.source, i)
    claims = []
    if error is None:
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        claims = [(cell_of.get(src), test, msg) for src, test, msg in json.loads(text)]
    cells = []
    for i, cell in enumerate(nb.cells[1 : n_cells + 1]):
        timing = cell.metadata.get("execution", {})
        begin, end = (
            timing.get("iopub.execute_input"),
            timing.get("shell.execute_reply"),
        )
        if cell.cell_type == "code" and begin and end:
            cells.append((round(_seconds(begin, end), 2), i))
    return {"seconds": seconds, "claims": claims, "error": error, "cells": cells}


def _seconds(begin: str, end: str) -> float:
    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(end) - parse(begin)).total_seconds()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument(
        "--slowest", type=int, default=0, help="list the N slowest cells"
    )
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(pathlib.Path("book").glob("*.ipynb"))
    device = os.environ.get("VBTUTOR_DEVICE", "cpu")  # VBTUTOR_DEVICE=cuda on a GPU
    os.environ.update(ENV, VBTUTOR_DEVICE=device)
    failed, total, results = [], 0.0, {}
    for path in paths:
        result = results[path.stem] = run(path)
        if result.get("skipped"):
            print(f"{path.stem:14s} skipped: no full configuration", flush=True)
            continue
        total += result["seconds"]
        status = "FAILED" if result["error"] else "ok"
        print(
            f"{path.stem:14s} {result['seconds']:6.1f} s  {status:6s}"
            f"  claims not met after a few steps: {len(result['claims'])}",
            flush=True,
        )
        for cell, test, message in result["claims"]:
            print(f"    cell {cell}: {test[:80]}  {message[:60]}".rstrip())
        for seconds, cell in sorted(result["cells"], reverse=True)[: args.slowest]:
            print(f"    slow cell {cell}: {seconds:.1f} s")
        if result["error"]:
            failed.append(path.stem)
            print(result["error"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(
        f"smoke: {total:.1f} s for {len(paths)} notebooks; failed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
