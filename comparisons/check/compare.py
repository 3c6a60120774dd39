"""Compare one backend's ``Gradients`` with a reference's: per parameter, the loss, and
dL/dh_t and dL/dx_t per time step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from comparisons.check.cases import Case
from comparisons.check.tolerances import case_tolerance, compare_array, compare_steps


@dataclass
class Comparison:
    """Errors of a candidate against one reference on one case."""

    reference: str
    errors: dict                       # target ("loss", "W_hh", ..., "dL_dh", "dL_dx") -> Error
    steps: dict = field(default_factory=dict)       # "dL_dh" / "dL_dx" -> [Error per step]
    first_bad: dict = field(default_factory=dict)   # "dL_dh" / "dL_dx" -> largest departing t
    why: str = ""

    @property
    def dL_dh_steps(self) -> list:
        """Error per t = 0..T (empty when either side has no dL_dh)."""
        return self.steps.get("dL_dh", [])

    @property
    def first_bad_step(self) -> int | None:
        """The largest t where dL/dh_t departs (counting back from T), else dL/dx_t's."""
        return self.first_bad.get("dL_dh", self.first_bad.get("dL_dx"))

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.errors.values())

    def failing(self) -> list:
        """Failing targets, worst (largest error / tolerance) first."""
        bad = [(k, e) for k, e in self.errors.items() if not e.ok]
        return [k for k, e in sorted(bad, key=lambda ke: -ke[1].max_abs / ke[1].tol)]


def reference_kind(reference: str, case: Case) -> str:
    """numeric: central differences for ReLU, the complex step otherwise; torch and jax: autodiff."""
    if reference != "numeric":
        return "autodiff"
    return "central" if case.hidden == "relu" else "complex_step"


def compare(candidate, ref, reference: str, case: Case, magnitude: dict | None = None,
            kind: str | None = None) -> Comparison:
    """``candidate`` and ``ref`` are ``Gradients``; ``ref`` was computed in float64. The
    parameters compared are the candidate's (the checker passes only the checked ones);
    dL_dh and dL_dx are compared per step where both sides give them.

    ``magnitude`` is ``comparisons.check.tolerances.magnitudes`` for the case (the phi'-free
    scale each error is measured against); without it the scale is max |ref| alone.
    """
    M = magnitude or {}
    # the reference's kind and the loss its finite differences round at, for both tolerances
    against = dict(reference=kind or reference_kind(reference, case), loss=ref.loss, loss_terms=M.get("loss", 0.0))
    tol = case_tolerance(case, **against)
    # a target's own C where the magnitudes name one (the Elman model's weight sums)
    calibrated = M.get("C", {})
    errors = {name: compare_array(np.asarray(g), ref.grads[name], tol.with_C(calibrated.get(name)), M.get(name, 0.0))
              for name, g in candidate.grads.items()}
    # the loss itself: a wrong forward pass shows here before any gradient
    errors["loss"] = compare_array(np.asarray([candidate.loss]), np.asarray([ref.loss]),
                                   case_tolerance(case), M.get("loss", 0.0))
    steps, first_bad = {}, {}
    # per step, no rows summed over t and b: one step's n (unless the worst case holds), where
    # the magnitudes carry the other steps' errors (the Elman model's do; the cells' Monte
    # Carlo magnitudes were soaked against the full n and keep it)
    step_tol = case_tolerance(case, **against, per_step=bool(M.get("per_step_n")))
    for target, first_t in (("dL_dh", 0), ("dL_dx", 1)):
        mine, theirs = getattr(candidate, target, None), getattr(ref, target, None)
        if mine is not None and theirs is not None:
            steps[target], errors[target], bad = compare_steps(np.asarray(mine), theirs, step_tol,
                                                               M.get(target), first_t)
            if bad is not None:
                first_bad[target] = bad
    return Comparison(reference, errors, steps, first_bad, tol.why)
