"""Cases, metrics, tolerances, the derivation checker, the report and the CLI.

The public entry points::

    from comparisons import check_derivation
    result = check_derivation(my_loss_and_grads, hidden="tanh", cases=100)
    assert result.ok, result.summary()

Every public name, with shapes and examples: docs/api.md.
"""

from comparisons.checker import CheckResult, Failure, assert_derivation, check_derivation


def check_cell(step, fn, **kwargs):
    """Any recurrent cell (``comparisons.cells.check_cell``; docs/api.md)."""
    from comparisons.cells import check_cell as check

    return check(step, fn, **kwargs)


__all__ = ["CheckResult", "Failure", "assert_derivation", "check_cell", "check_derivation"]
