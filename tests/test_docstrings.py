"""Every docstring example in the package runs and prints what it shows (the examples are documentation
users copy: a stale one is a bug). One test per module, so xdist spreads them."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import neurobridge

MODULES = sorted(m.name for m in pkgutil.walk_packages(neurobridge.__path__, "neurobridge."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, capsys):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    out = capsys.readouterr().out
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}:\n{out}"


def test_examples_exist():
    finder = doctest.DocTestFinder()
    n = sum(len([t for t in finder.find(importlib.import_module(m)) if t.examples]) for m in MODULES)
    assert n >= 100  # the public API is documented with runnable examples
