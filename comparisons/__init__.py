"""Cases, metrics, tolerances, the derivation checker, the report and the CLI.

The public entry points::

    from comparisons import check_derivation
    result = check_derivation(my_loss_and_grads, hidden="tanh", cases=100)
    assert result.ok, result.summary()

Every public name, with shapes and examples: docs/api.md.
"""

from comparisons.checker import CheckResult, Failure, assert_derivation, check_derivation

__all__ = ["CheckResult", "Failure", "assert_derivation", "check_derivation"]
