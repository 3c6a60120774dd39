"""Cases, metrics, tolerances, the derivation checker, the report and the CLI.

The public entry points::

    from comparisons import check_derivation
    result = check_derivation(my_loss_and_grads, hidden="tanh", cases=100)
    assert result.ok, result.summary()

Every public name, with shapes and examples: docs/api.md.

The folders show the architecture: ``check/`` (one check, end to end), ``conventions/``
(code written in a course's style), ``report/``, ``measure/`` (resolving power, the soak,
the benchmark), ``grading/`` and ``loading/`` (functions taken out of files and notebooks
without running their top-level work); ``files.py`` makes a file's derivation checkable (the
command, the grading child and notebooks call it); ``cli.py`` parses and prints.
"""

# The checker's names are looked up on first use (``__getattr__``), not imported here: a
# grading sandbox imports ``comparisons`` without the checker, its references and its
# catalogue of derivations (comparisons.grading.sandbox).
_CHECKER = ("CheckResult", "Failure", "assert_derivation", "check_derivation")


def check_cell(step, fn, **kwargs):
    """Any recurrent cell (``comparisons.check.cells.check_cell``; docs/api.md)."""
    from comparisons.check.cells import check_cell as check

    return check(step, fn, **kwargs)


def __getattr__(name):
    if name in _CHECKER:
        from comparisons.check import checker

        return getattr(checker, name)
    # ``import comparisons; comparisons.conventions.cs231n(...)``, as the contract names it
    if name == "conventions":
        import importlib

        return importlib.import_module(f"{__name__}.conventions")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CheckResult", "Failure", "assert_derivation", "check_cell", "check_derivation"]
