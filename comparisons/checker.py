"""``check_derivation``: does a user's ``loss_and_grads`` agree with the references, and if
not, where (parameter, time step), by how much, and on what smallest case?

For every drawn case the checker runs the candidate on the case's arrays (read-only, so
an in-place write is caught) and the references in float64 on the same values, then
compares per parameter, the loss, and dL/dh_t per step (``comparisons.compare``). A
candidate that raises, returns the wrong structure or non-finite values fails that
case with the reason; it never crashes the checker. A case whose float64 reference
itself overflows is "non-finite", reported apart from disagreement.
"""

from __future__ import annotations

import functools
import traceback as tb
from dataclasses import dataclass, field

import numpy as np

from bptt_xval.model import BackendUnavailable, PARAM_KEYS, check_options
from comparisons import backends, reproducer
from comparisons.cases import DTYPES, Case, as_float64, draw_cases, make_problem
from comparisons.compare import compare
from comparisons.diagnosis import MISTAKES, diagnose
from comparisons.tolerances import magnitudes

# The numeric oracle costs (number of parameters) forward passes: use it where cheap.
NUMERIC_MAX_WORK = 300_000
SHRINK_MAX_TRIES = 60
RELU_NUMERIC_MAX_UNITS = 64


class BadOutput(Exception):
    """The candidate returned something that is not a valid ``Gradients``."""


class NonFiniteOutput(BadOutput):
    """The candidate returned NaN or Inf (where the reference is finite)."""


@dataclass
class Outcome:
    """One case checked: ``status`` is "agree", "disagree", "raised", "bad_output",
    "non_finite" (the candidate overflowed where the float64 reference did not) or
    "reference_non_finite" (the problem itself overflows; inconclusive)."""

    case: Case
    status: str
    comparisons: list = field(default_factory=list)
    reason: str = ""
    traceback: str | None = None
    result: object = None              # the candidate's Gradients, when it returned any
    references: dict = field(default_factory=dict)
    magnitude: dict | None = None
    arrays: tuple | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("disagree", "raised", "bad_output", "non_finite")

    def worst(self) -> tuple:
        """(reference, target, Error, first_bad_step) of the worst disagreement."""
        best = None
        for c in self.comparisons:
            for target in c.failing():
                e = c.errors[target]
                if best is None or e.max_abs / e.tol > best[2].max_abs / best[2].tol:
                    best = (c.reference, target, e, c.first_bad_step)
        return best


@dataclass
class Failure:
    """A failing case: what, where, how much, and the smallest case that still fails."""

    case: Case
    status: str
    parameter: str | None          # worst failing target: a parameter key, "loss" or "dL_dh"
    parameters: list               # every failing target
    step: int | None               # first t (counting back from T) where dL/dh_t departs
    max_abs: float | None
    rel: float | None
    tol: float | None
    reference: str | None
    reason: str
    traceback: str | None
    shrunk: Case | None = None
    diagnosis: list = field(default_factory=list)
    reproducer: str | None = None

    @property
    def case_id(self) -> str:
        return self.case.id

    def describe(self) -> str:
        c = self.case
        lines = [f"case seed={c.seed} T={c.T} B={c.B} D={c.D} H={c.H} O={c.O} regime={c.regime} "
                 f"h0={c.h0} dtype={c.dtype}: {self.status}"]
        if self.status == "disagree":
            lines.append(f"  {self.parameter} differs from {self.reference}: max |error| "
                         f"{self.max_abs:.3g} (relative {self.rel:.3g}) > tolerance {self.tol:.3g}")
            if len(self.parameters) > 1:
                lines.append(f"  all differing: {', '.join(self.parameters)}")
            if self.step is not None:
                lines.append(f"  dL/dh_t first departs at t = {self.step} ({c.T - self.step} "
                             f"step(s) back from T = {c.T})")
        else:
            lines.append(f"  {self.reason}")
        if self.shrunk is not None:
            s = self.shrunk
            lines.append(f"  smallest failing case: Case(seed={s.seed}, T={s.T}, B={s.B}, D={s.D}, "
                         f"H={s.H}, O={s.O}, regime={s.regime!r}, h0={s.h0!r}, dtype={s.dtype!r})")
        if self.diagnosis:
            lines.append("  diagnosis (the failing gradients match these classic mistakes):")
            lines += [f"    - {m}: {MISTAKES[m]}" for m in self.diagnosis]
        elif self.status == "disagree":
            lines.append("  diagnosis: matches none of the catalogued mistakes")
        if self.reproducer:
            lines.append(f"  replay: bptt-xval replay {self.reproducer} --fn FILE:FUNC")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"case": self.case.to_dict(), "case_id": self.case_id, "status": self.status,
                "parameter": self.parameter, "parameters": self.parameters, "step": self.step,
                "max_abs": self.max_abs, "rel": self.rel, "tol": self.tol,
                "reference": self.reference, "reason": self.reason, "traceback": self.traceback,
                "shrunk": None if self.shrunk is None else self.shrunk.to_dict(),
                "diagnosis": self.diagnosis, "reproducer": self.reproducer}


@dataclass
class CheckResult:
    ok: bool
    failures: list
    cases_run: int
    non_finite: list = field(default_factory=list)      # case ids the references overflowed on
    skipped_backends: dict = field(default_factory=dict)
    references: list = field(default_factory=list)

    def summary(self) -> str:
        head = (f"{'AGREES' if self.ok else 'DISAGREES'}: {self.cases_run - len(self.failures)} of "
                f"{self.cases_run} cases agree with {', '.join(self.references) or 'no reference'}")
        lines = [head]
        if self.non_finite:
            lines.append(f"{len(self.non_finite)} case(s) inconclusive: the float64 reference overflowed")
        for name, reason in self.skipped_backends.items():
            lines.append(f"skipped {name}: {reason}")
        lines += [f.describe() for f in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "cases_run": self.cases_run, "references": self.references,
                "skipped_backends": self.skipped_backends, "non_finite": self.non_finite,
                "failures": [f.to_dict() for f in self.failures]}


def _read_only(arrays: dict) -> dict:
    out = {}
    for k, v in arrays.items():
        v = v.copy()
        v.flags.writeable = False
        out[k] = v
    return out


def _validate_output(result, params: dict, T: int, B: int, H: int, dtype) -> None:
    """Raise BadOutput naming what is wrong with a candidate's return value."""
    if not (isinstance(result, tuple) and len(result) == 3):
        raise BadOutput(f"expected a Gradients (loss, grads, dL_dh) triple; got {type(result).__name__}")
    loss, grads, dL_dh = result
    if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, (float, int, np.floating, np.integer)):
        raise BadOutput(f"loss: expected a float; got {type(loss).__name__}")
    if not np.isfinite(loss):
        raise NonFiniteOutput(f"loss: not finite ({loss})")
    if not isinstance(grads, dict):
        raise BadOutput(f"grads: expected a dict; got {type(grads).__name__}")
    if set(grads) != set(params):
        raise BadOutput(f"grads: expected keys {sorted(params)}; got {sorted(grads, key=str)}")
    for k in params:
        g = grads[k]
        if not isinstance(g, np.ndarray):
            raise BadOutput(f"grads[{k!r}]: expected a numpy.ndarray; got {type(g).__name__}")
        if g.shape != params[k].shape:
            raise BadOutput(f"grads[{k!r}]: expected shape {params[k].shape}; got {g.shape}")
        if g.dtype != dtype:
            raise BadOutput(f"grads[{k!r}]: expected dtype {dtype} (the input dtype); got {g.dtype}")
        if not np.all(np.isfinite(g)):
            raise NonFiniteOutput(f"grads[{k!r}]: contains NaN or Inf")
    if dL_dh is not None:
        if not isinstance(dL_dh, np.ndarray) or dL_dh.shape != (T + 1, B, H):
            shape = getattr(dL_dh, "shape", type(dL_dh).__name__)
            raise BadOutput(f"dL_dh: expected None or an array of shape {(T + 1, B, H)}; got {shape}")
        if not np.all(np.isfinite(dL_dh)):
            raise NonFiniteOutput("dL_dh: contains NaN or Inf")


def _arrays(result) -> list:
    return list(result.grads.values()) + ([result.dL_dh] if result.dL_dh is not None else [])


def _finite(result) -> bool:
    return np.isfinite(result.loss) and all(np.all(np.isfinite(a)) for a in _arrays(result))


def _representable(result, dtype: str) -> bool:
    """Do the exact loss and gradients fit in ``dtype`` (with room for the forward pass)?"""
    limit = float(np.finfo(dtype).max) * 1e-3
    return abs(result.loss) < limit and all(np.max(np.abs(a), initial=0) < limit for a in _arrays(result))


def numeric_applies(case: Case) -> bool:
    """Finite differences where they are trustworthy: no truncation (invisible to them),
    and for ReLU (central differences, whose step may cross a kink) only short problems."""
    if case.hidden == "relu" and case.T * case.B * case.H > RELU_NUMERIC_MAX_UNITS:
        return False
    return case.truncate is None


def numeric_is_cheap(case: Case) -> bool:
    """... and cheap: (parameters x forward work) bounded, the checker's fast path."""
    n_params = case.H * (case.D + case.H + 1) + case.O * (case.H + 1)
    return numeric_applies(case) and n_params * case.T * case.B * case.H <= NUMERIC_MAX_WORK


def reference_results(case: Case, refs: dict, params=None, xs=None, ys=None, fast=True):
    """float64 reference ``Gradients`` for ``case`` (or for the given arrays), by name, and
    the magnitudes the errors are measured against (None if a reference overflowed).

    ``fast=False`` is the checker's slow path, the yardstick of the fast one's verdicts:
    JAX compiled for the exact shapes (no padding to buckets) and finite differences on
    every case they apply to, whatever their cost."""
    if params is None:
        params, xs, ys = make_problem(case)
    params64, xs64, ys64 = as_float64(case, params, xs, ys)
    out = {}
    with np.errstate(all="ignore"):
        for name, ref in refs.items():
            if name == "numeric" and not (numeric_is_cheap(case) if fast else numeric_applies(case)):
                continue
            if name == "jax" and not fast:
                ref = functools.partial(ref, pad=False)
            out[name] = ref(params64, xs64, ys64, **case.config())
        if not all(_finite(r) for r in out.values()):
            return out, None
        dL_dh = next((r.dL_dh for r in out.values() if r.dL_dh is not None), None)
        return out, magnitudes(case, params64, xs64, ys64, dL_dh)


def check_case(fn, case: Case, refs: dict, arrays=None, fast=True) -> Outcome:
    """Run ``fn`` and the references on one case and compare them (``fast``: see
    :func:`reference_results`)."""
    params, xs, ys = arrays if arrays is not None else make_problem(case)
    references, magnitude = reference_results(case, refs, params, xs, ys, fast)
    if magnitude is None:
        return Outcome(case, "reference_non_finite", reason="the float64 reference overflowed")
    if not all(_representable(r, case.dtype) for r in references.values()):
        return Outcome(case, "reference_non_finite",
                       reason=f"the exact values overflow {case.dtype} (exploding regime)")
    inputs = _read_only({"xs": xs, "ys": ys, **params})
    xs_ro, ys_ro = inputs.pop("xs"), inputs.pop("ys")
    try:
        with np.errstate(all="ignore"):
            result = fn(inputs, xs_ro, ys_ro, **case.config())
    except Exception as exc:  # the candidate's own failure is a result, not a crash
        return Outcome(case, "raised", reason=f"{type(exc).__name__}: {exc}", traceback=tb.format_exc())
    try:
        _validate_output(result, params, case.T, case.B, case.H, np.dtype(case.dtype))
    except NonFiniteOutput as exc:
        return Outcome(case, "non_finite", reason=str(exc))
    except BadOutput as exc:
        return Outcome(case, "bad_output", reason=str(exc))
    comparisons = [compare(result, r, name, case, magnitude) for name, r in references.items()]
    status = "agree" if all(c.ok for c in comparisons) else "disagree"
    return Outcome(case, status, comparisons, result=result, references=references,
                   magnitude=magnitude, arrays=(params, xs, ys))


def shrink(fn, case: Case, refs: dict, fast=True) -> Case:
    """The smallest case (fewest steps, then units, batch, inputs, outputs) that still fails.

    Greedy, deterministic: for each size in turn try 1, half, and one less, keep the
    first that still fails, and repeat until nothing shrinks; h0 and the regime are
    simplified last. The seed stays, so every shrunk case replays exactly.
    """
    def fails(candidate):
        return check_case(fn, candidate, refs, fast=fast).failed

    tries = 0
    changed = True
    while changed and tries < SHRINK_MAX_TRIES:
        changed = False
        for name in ("T", "H", "B", "D", "O"):
            value = getattr(case, name)
            low = 2 if name == "O" and case.loss == "cross_entropy" else 1
            for smaller in sorted({low, value // 2, value - 1}):
                if low <= smaller < value and tries < SHRINK_MAX_TRIES:
                    tries += 1
                    candidate = case.replace(**{name: smaller})
                    if fails(candidate):
                        case, changed = candidate, True
                        break
        for name, simple in (("h0", "none"), ("regime", "generic")):
            if getattr(case, name) != simple and tries < SHRINK_MAX_TRIES:
                tries += 1
                candidate = case.replace(**{name: simple})
                if fails(candidate):
                    case, changed = candidate, True
    return case


def failure_from(outcome: Outcome) -> Failure:
    """The Failure record of a failed outcome, diagnosed against the catalog of mistakes."""
    worst = outcome.worst()
    if worst is None:
        return Failure(outcome.case, outcome.status, None, [], None, None, None, None, None,
                       outcome.reason, outcome.traceback)
    reference, target, err, _ = worst
    failing = sorted({t for c in outcome.comparisons for t in c.failing()},
                     key=lambda t: (t != target, t))
    step = next((c.first_bad_step for c in outcome.comparisons if c.first_bad_step is not None), None)
    analytic = next(r for name, r in outcome.references.items() if r.dL_dh is not None or name == reference)
    diagnosis = diagnose(outcome.result, outcome.case, outcome.arrays, analytic, outcome.magnitude)
    return Failure(outcome.case, "disagree", target, failing, step, err.max_abs, err.rel, err.tol,
                   reference, f"{target} differs from {reference}", None, diagnosis=diagnosis)


def check_derivation(fn, *, hidden="tanh", output="identity", loss="squared_error",
                     reduction="mean", cases=100, seed=0, dtype="float64",
                     truncate=None, references=backends.REFERENCES, shrink_failures=True,
                     reproducer_dir=None, fast=True):
    """Check ``fn`` (the contract's ``loss_and_grads`` signature) on ``cases`` random problems.

    Returns ``CheckResult(ok, failures, cases_run, ...)``; ``ok`` is True when every
    conclusive case agrees with every available reference within tolerance
    (``comparisons.tolerances``). Each failure names its case, the worst parameter,
    the first departing step of dL/dh_t, the error sizes, and (``shrink_failures``) the
    smallest failing case. ``dtype`` is "float64", "float32" or "both".
    ``reproducer_dir``: write each failure's (shrunk) case there, for ``bptt-xval replay``.
    ``fast=False``: the slow path (see :func:`reference_results`), the yardstick the fast
    path's verdicts are tested against: the same cases, the same verdicts, at a fraction of the rate.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable with the loss_and_grads signature; got {type(fn).__name__}")
    check_options(hidden, output, loss, reduction, truncate)
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise ValueError(f"cases: expected a positive int; got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int; got {seed!r}")
    dtypes = DTYPES if dtype == "both" else (dtype,)
    if any(d not in DTYPES for d in dtypes):
        raise ValueError(f"dtype: expected 'float64', 'float32' or 'both'; got {dtype!r}")
    unknown = [r for r in references if r not in backends.REFERENCES]
    if unknown:
        raise ValueError(f"references: expected names from {backends.REFERENCES}; got {unknown}")
    refs, skipped = backends.available(references)
    if truncate is not None:
        refs.pop("numeric", None)   # finite differences cannot see truncation
    if not refs:
        raise BackendUnavailable(f"references: none available ({skipped})")
    if not isinstance(fast, bool):
        raise TypeError(f"fast: expected True or False; got {fast!r}")

    config = dict(hidden=hidden, output=output, loss=loss, reduction=reduction, truncate=truncate)
    drawn = []
    for i, d in enumerate(dtypes):
        drawn += draw_cases(cases if len(dtypes) == 1 else (cases + i) // 2, seed + i, dtype=d, **config)
    failures, non_finite = [], []
    for case in drawn:
        outcome = check_case(fn, case, refs, fast=fast)
        if outcome.status == "reference_non_finite":
            non_finite.append(case.id)
        elif outcome.failed:
            failure = failure_from(outcome)
            if shrink_failures:
                failure.shrunk = shrink(fn, case, refs, fast)
            if reproducer_dir is not None:
                failure.reproducer = str(reproducer.save(failure.shrunk or case, reproducer_dir,
                                                         failure.to_dict()))
            failures.append(failure)
    return CheckResult(not failures, failures, len(drawn), non_finite, skipped, sorted(refs))


def replay(path, fn, references=backends.REFERENCES) -> Outcome:
    """Rerun ``fn`` on a reproducer written by ``check_derivation(reproducer_dir=...)``."""
    case, arrays, _ = reproducer.load(path)
    refs, skipped = backends.available(references)
    if case.truncate is not None:
        refs.pop("numeric", None)
    if not refs:
        raise BackendUnavailable(f"references: none available ({skipped})")
    return check_case(fn, case, refs, arrays)


def assert_derivation(fn, **config) -> CheckResult:
    """pytest-friendly: raise AssertionError with the full verdict (parameter, step,
    errors, shrunk case, diagnosis) unless ``fn`` agrees. ``config`` is passed to
    :func:`check_derivation` (hidden=..., cases=..., dtype=...)."""
    result = check_derivation(fn, **config)
    if not result.ok:
        raise AssertionError(result.summary())
    return result
