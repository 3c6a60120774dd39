"""The folders of comparisons/ show the architecture: the contract's names where the
contract puts them, conventions one module per course style, loading a package of its own,
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


def test_no_flat_modules_but_the_command_checking_a_file_and_shared_helpers():
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert flat == ["__init__.py", "atomic.py", "cli.py", "course_helpers.py", "files.py"]
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")} == {
        "check", "conventions", "report", "measure", "grading", "loading"}


def _import_graph() -> dict:
    """module -> the modules of ours it imports, function-level imports included (the suite
    imports lazily), read from the source, never by importing it."""
    import ast

    packages = ("comparisons", "bptt_xval", "manual", "reference")
    top = ROOT.parent
    modules = {}
    for package in packages:
        for path in (top / package).rglob("*.py"):
            parts = path.relative_to(top).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def ours(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    b = base
                    for _ in range(node.level - 1):
                        b = b.rpartition(".")[0]
                    module = f"{b}.{module}" if module else b
                # a submodule named in the import is the edge, not its package's __init__
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            else:
                continue
            found |= {ours(t) for t in targets if t.split(".")[0] in packages} - {name, ""}
        graph[name] = found
    return graph


def _circles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_house_has_no_circle_and_no_arrow_up_to_the_command():
    graph = _import_graph()
    assert "comparisons.check.cells" in graph and "comparisons.files" in graph
    assert _circles(graph) == []
    assert sorted(m for m, targets in graph.items() if "comparisons.cli" in targets) == []
    # the three rooms of check/: the stacked LSTM and GRU never reach into check_cell's module,
    # and both stand on the cells themselves
    assert "comparisons.check.cells" not in graph["comparisons.check.gated"] | graph["comparisons.check.gated_mc"]
    assert "comparisons.check.cell_model" in graph["comparisons.check.gated"] & graph["comparisons.check.cells"]


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


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
