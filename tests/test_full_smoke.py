"""Tests for tools/smoke_full.py: how a smoke run treats the chapters' claims.

The smoke run itself (every chapter, a few minutes) is ``make smoke``; these tests check,
without a kernel, the rewriting of ``assert`` that lets a cell go on past a claim that a
few training steps cannot meet, and that anything else still fails.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import types

import nbformat
import pytest

TOOL = pathlib.Path(__file__).parents[1] / "tools" / "smoke_full.py"
spec = importlib.util.spec_from_file_location("smoke_full", TOOL)
smoke_full = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke_full)


class _Shell:
    """What the prelude needs of IPython: AST transformers and a pre_run_cell event."""

    def __init__(self):
        self.ast_transformers = []
        self.events = self
        self.callbacks = []

    def register(self, event, callback):
        assert event == "pre_run_cell"
        self.callbacks.append(callback)


@pytest.fixture
def cell():
    """Run a cell's source as the smoke kernel would; return its namespace."""
    shell = _Shell()
    namespace = {"get_ipython": lambda: shell}
    exec(smoke_full.PRELUDE, namespace)
    (transformer,) = shell.ast_transformers

    def run(source: str) -> dict:
        for callback in shell.callbacks:
            callback(types.SimpleNamespace(raw_cell=source))
        tree = transformer.visit(ast.parse(source))
        exec(compile(tree, "<cell>", "exec"), namespace)
        return namespace

    return run


def test_a_claim_not_met_is_recorded_and_the_cell_goes_on(cell):
    source = "x = 1\nassert x == 2, f'x is {x}'\ny = x + 1"
    ns = cell(source)
    assert ns["y"] == 2  # the names after the claim are defined
    assert ns[smoke_full.CLAIMS] == [(source, "x == 2", "x is 1")]


def test_claims_met_leave_no_record(cell):
    # a message is evaluated only for a failed claim: this one would raise TypeError
    ns = cell("assert 1 < 2\nassert True, 'never evaluated' + 1")
    assert ns[smoke_full.CLAIMS] == []


def test_claims_inside_functions_loops_and_classes_are_recorded(cell):
    source = """
def f(a):
    assert a > 0, a
    return a
class C:
    def m(self):
        assert False, "in a method"
        return 3
for i in range(2):
    assert i > 5
result = f(-1), C().m()
"""
    ns = cell(source)
    assert ns["result"] == (-1, 3)
    tests = [test for _, test, _ in ns[smoke_full.CLAIMS]]
    assert tests == ["i > 5", "i > 5", "a > 0", "False"]  # in the order they ran


@pytest.mark.parametrize(
    "source, error",
    [
        ("assert undefined_name > 0", NameError),  # the test itself is evaluated
        ("assert (1, 2) < 'a'", TypeError),
        ("assert False, undefined_message", NameError),  # and a failing claim's message
        ("raise AssertionError('from library code')", AssertionError),
    ],
)
def test_anything_but_a_claim_not_met_still_fails(cell, source, error):
    with pytest.raises(error):
        cell(source)


def test_only_notebooks_with_a_full_configuration_run():
    def notebook(source):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])

    assert smoke_full.has_full_configuration(notebook("s = vbtutor.choose(1, 2)"))
    assert smoke_full.has_full_configuration(notebook("if vbtutor.full_mode(): pass"))
    assert not smoke_full.has_full_configuration(notebook("choose = 1"))
    assert not smoke_full.has_full_configuration(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("choose(1, 2)")])
    )
