"""Cases, metrics, tolerances, the derivation checker, the report and the CLI.

The public entry points::

    from comparisons import check_derivation
    result = check_derivation(my_loss_and_grads, hidden="tanh", cases=100)
    assert result.ok, result.summary()

Every public name, with shapes and examples: docs/api.md.

The folders show the architecture: ``check/`` (one check, end to end), ``report/``,
``measure/`` (resolving power, the soak, the benchmark) and ``grading/``. The modules
used to sit flat in this folder; their old names (``comparisons.cases``,
``comparisons.conventions``, ...) still import, as the same module objects, so that
code and reproducers written against them keep working (``_moved``).
"""

from comparisons import _moved
from comparisons.check.checker import CheckResult, Failure, assert_derivation, check_derivation

_moved.install(__name__)


def check_cell(step, fn, **kwargs):
    """Any recurrent cell (``comparisons.check.cells.check_cell``; docs/api.md)."""
    from comparisons.check.cells import check_cell as check

    return check(step, fn, **kwargs)


def __getattr__(name):
    # ``import comparisons; comparisons.conventions.cs231n(...)``: the contract names
    # ``comparisons.conventions``, which now lives in check/.
    if name in _moved.MOVED:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CheckResult", "Failure", "assert_derivation", "check_cell", "check_derivation"]
