"""The folders of comparisons/ show the architecture, and nothing that imported before the
move stops importing: the contract's names where the contract puts them, and every old
module name as the very module that moved."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import comparisons
from comparisons import _moved

ROOT = Path(comparisons.__file__).parent


def test_contract_names_import_from_comparisons():
    from comparisons import assert_derivation, check_cell, check_derivation  # noqa: F401
    from comparisons.conventions import cs231n, deeplearning_ai, min_char_rnn  # noqa: F401

    # attribute access without an import statement, as `import comparisons` users write
    assert comparisons.conventions.cs231n is cs231n


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_module_name_is_the_moved_module(old):
    moved = importlib.import_module(f"comparisons.{_moved.MOVED[old]}")
    assert importlib.import_module(f"comparisons.{old}") is moved
    # the module keeps naming where it lives (pickles, reloads, tracebacks)
    assert moved.__name__ == moved.__spec__.name == f"comparisons.{_moved.MOVED[old]}"


def test_old_names_from_modules_that_became_folders():
    from comparisons.grading import grade, parse_size  # noqa: F401
    from comparisons.report import write_report  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        comparisons.report.nonsense  # noqa: B018


def test_no_flat_modules_but_the_command_and_shared_helpers():
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert flat == ["__init__.py", "_moved.py", "atomic.py", "cli.py"]
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")} == {
        "check", "report", "measure", "grading"}


def test_a_fresh_interpreter_resolves_old_names_before_anything_else_is_imported():
    # the finder is installed by `import comparisons`, which `import comparisons.cases`
    # runs first: no import order in the user's code can miss it
    code = "import comparisons.cases as c, comparisons.check.cases as d; assert c is d; print(c.Case.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT.parent, check=True).stdout
    assert out.strip() == "comparisons.check.cases"
