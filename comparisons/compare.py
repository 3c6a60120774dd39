"""Compare one backend's ``Gradients`` with a reference's: per parameter, loss, dL/dh_t per step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from comparisons.cases import Case
from comparisons.tolerances import case_tolerance, compare_array, compare_dL_dh


@dataclass
class Comparison:
    """Errors of a candidate against one reference on one case."""

    reference: str
    errors: dict                       # target ("loss", "W_hh", ..., "dL_dh") -> Error
    dL_dh_steps: list = field(default_factory=list)   # Error per t = 0..T (empty if no dL_dh)
    first_bad_step: int | None = None  # largest t where dL/dh_t departs (counting back from T)
    why: str = ""

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.errors.values())

    def failing(self) -> list:
        """Failing targets, worst (largest error / tolerance) first."""
        bad = [(k, e) for k, e in self.errors.items() if not e.ok]
        return [k for k, e in sorted(bad, key=lambda ke: -ke[1].max_abs / ke[1].tol)]


def reference_kind(reference: str, case: Case) -> str:
    """Central differences only for numeric + ReLU; everything else is float64-exact."""
    return "central" if reference == "numeric" and case.hidden == "relu" else "autodiff"


def compare(candidate, ref, reference: str, case: Case, magnitude: dict | None = None) -> Comparison:
    """``candidate`` and ``ref`` are ``Gradients``; ``ref`` was computed in float64.

    ``magnitude`` is ``comparisons.tolerances.magnitudes`` for the case (the phi'-free
    scale each error is measured against); without it the scale is max |ref| alone.
    """
    M = magnitude or {}
    tol = case_tolerance(case, reference=reference_kind(reference, case), loss=ref.loss)
    errors = {name: compare_array(np.asarray(candidate.grads[name]), r, tol, M.get(name, 0.0))
              for name, r in ref.grads.items()}
    # the loss itself: a wrong forward pass shows here before any gradient
    errors["loss"] = compare_array(np.asarray([candidate.loss]), np.asarray([ref.loss]),
                                   case_tolerance(case), M.get("loss", 0.0))
    steps, first_bad = [], None
    if candidate.dL_dh is not None and ref.dL_dh is not None:
        steps, errors["dL_dh"], first_bad = compare_dL_dh(np.asarray(candidate.dL_dh), ref.dL_dh,
                                                          tol, M.get("dL_dh"))
    return Comparison(reference, errors, steps, first_bad, tol.why)
