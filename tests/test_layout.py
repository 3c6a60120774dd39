"""The folders of comparisons/ show the architecture: the contract's names where the
contract puts them, conventions one module per course style, loading one module of its own,
and no alias machinery for the old flat names (nothing outside depended on them)."""

import importlib
from pathlib import Path

import pytest

import comparisons

ROOT = Path(comparisons.__file__).parent


def test_contract_names_import_from_comparisons():
    from comparisons import assert_derivation, check_cell, check_derivation  # noqa: F401
    from comparisons.conventions import cs231n, deeplearning_ai, min_char_rnn  # noqa: F401

    # attribute access without an import statement, as `import comparisons` users write
    assert comparisons.conventions.cs231n is cs231n


def test_old_names_from_modules_that_became_folders():
    from comparisons.grading import grade, parse_size  # noqa: F401
    from comparisons.report import write_report  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        comparisons.report.nonsense  # noqa: B018


def test_no_flat_modules_but_the_command_loading_and_shared_helpers():
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert flat == ["__init__.py", "atomic.py", "cli.py", "course_helpers.py", "loading.py"]
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")} == {
        "check", "conventions", "report", "measure", "grading"}


def test_one_module_per_course_style():
    styles = sorted(p.stem for p in (ROOT / "conventions").glob("*.py") if not p.name.startswith("_"))
    assert styles == ["classes", "coursera", "coursera_lstm", "coursera_step", "cs231n_layers", "cs231n_lstm",
                      "d2l_gru", "gru", "min_char", "min_char_lstm"]


@pytest.mark.parametrize("old", ["comparisons.cases", "comparisons.checker", "comparisons.conventions_old"])
def test_old_flat_names_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_the_package_declares_ranges_and_the_constraints_pin():
    # a user with their own torch (any 2.x, CUDA or not) can install bptt-xval[torch]; the
    # sessions still get exactly the CPU wheel on local disk
    import tomllib

    repo = Path(__file__).resolve().parents[1]          # the checkout (the package may be installed)
    meta = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    requirements = meta["dependencies"] + [r for extra in meta["optional-dependencies"].values() for r in extra]
    assert not [r for r in requirements if "==" in r], requirements
    assert "torch>=2.1" in meta["optional-dependencies"]["torch"]
    pins = [line.strip() for line in (repo / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert "torch==2.13.0" in pins
