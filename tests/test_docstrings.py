"""The worked examples in the package's docstrings are true: each module's doctests run against the
installed package (examples that need a model are marked ``# doctest: +SKIP``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import vlsurgery

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(vlsurgery.__path__, "vlsurgery.")
                 if not m.name.startswith("vlsurgery.testing"))  # needs hypothesis: imported by its own tests


@pytest.mark.parametrize("name", ["vlsurgery"] + MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name spec files relative to the repository, as the README does
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in finder.find(module, name):
        result = runner.run(test, out=failures.append)
        assert result.failed == 0, "".join(failures)
