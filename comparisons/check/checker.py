"""``check_derivation``: does a user's ``loss_and_grads`` agree with the references, and if
not, where (parameter, time step), by how much, and on what smallest case?

For every drawn case the checker runs the candidate on the case's arrays (read-only, so
an in-place write is caught) and the references in float64 on the same values, then
compares per parameter, the loss, and dL/dh_t and dL/dx_t per step
(``comparisons.check.compare``). A candidate that raises, returns the wrong structure
(``comparisons.check.outputs``) or non-finite values fails that case with the reason; it
never crashes the checker. A case whose float64 reference itself overflows is
"non-finite", reported apart from disagreement. The public names are documented in
docs/api.md.
"""

from __future__ import annotations

import functools
import re
import traceback as tb
from dataclasses import dataclass, field

import numpy as np

from bptt_xval.model import BackendUnavailable, PARAM_KEYS, check_options, validate
from comparisons.check import backends, reproducer
from comparisons.check.cases import DTYPES, Case, CaseSpace, as_float64, draw_cases, make_problem
from comparisons.check.compare import compare
from comparisons.check.diagnosis import MISTAKES, diagnose, error_patterns
from comparisons.check.candidate import (Outcome, _exception_line, _read_only, candidate_result,  # noqa: F401
                                         run_candidate, user_line)
from comparisons.check.outputs import BadOutput, InputModified, NonFiniteOutput, as_gradients  # noqa: F401
from comparisons.check.tolerances import case_tolerance, magnitudes, magnitudes_many
from reference.numeric import states
from reference.stacked import groups

# The numeric oracle costs (number of parameters) forward passes: use it where cheap.
NUMERIC_MAX_WORK = 30_000
SHRINK_MAX_TRIES = 60
# Why a case can have no verdict, each decided from the case and the references alone, so a
# wrong derivation can never make its own case inconclusive.
INCONCLUSIVE = ("overflows on this case",          # the forward pass leaves the dtype's range
                "reference not finite",            # the float64 references overflow themselves
                "at a ReLU kink",                  # rounding may take ReLU's other branch
                "ill-conditioned beyond",          # rounding may grow to the size of the signal
                "clipped past judging")            # a style's clip leaves too few entries to compare
# the tolerance may reach this share of the largest value: beyond, no error is detectable
ILL_CONDITIONED = 0.1
# a ReLU pre-activation within this many tolerances (relative to its terms) of 0 may round
# to the other side in the candidate's dtype: the tolerance bounds a's rounding error
KINK_ROUNDING = 1.0
# disagreements described in full in a summary; the rest are counted (all are in to_dict())
SUMMARY_MAX_SHOWN = 3
RELU_NUMERIC_MAX_UNITS = 64
# cases per stacked reference call (one JAX compilation per padded shape serves them all)
STACK_SIZE = 16
# torch builds its graph step by step in Python, so its cost is per group and per step: 32
# cases a group (padded only to the group's own largest) took its share of a 300-case check
# from 0.22 s to 0.18 s of the main thread (issue 28), where 16 had been chosen for JAX
TORCH_STACK = 32
# cases whose references are computed together before their candidates run (bounds memory)
CHUNK = 256


@dataclass
class Failure:
    """A failing case: what, where, how much, and the smallest case that still fails."""

    case: Case
    status: str
    parameter: str | None          # worst failing target: a parameter key, "loss", "dL_dh" or "dL_dx"
    parameters: list               # every failing target
    step: int | None               # first t (counting back from T) where dL/dh_t (else dL/dx_t) departs
    max_abs: float | None
    rel: float | None
    tol: float | None
    reference: str | None
    reason: str
    traceback: str | None
    shrunk: Case | None = None
    diagnosis: list = field(default_factory=list)
    reproducer: str | None = None
    steps: dict = field(default_factory=dict)       # "dL_dh" / "dL_dx" -> first departing t
    patterns: dict = field(default_factory=dict)    # failing target -> how it is off, in words
    notes: dict = field(default_factory=dict)       # diagnosis name -> its text for this case

    @property
    def case_id(self) -> str:
        return self.case.id

    def describe(self) -> str:
        c = self.case
        one_hot = " inputs=one_hot" if c.inputs == "one_hot" else ""
        lines = [f"case seed={c.seed} T={c.T} B={c.B} D={c.D} H={c.H} O={c.O} regime={c.regime} "
                 f"h0={c.h0} dtype={c.dtype}{one_hot}: {self.status}"]
        if self.status == "disagree":
            lines.append(f"  {self.parameter} differs from {self.reference}: max |error| "
                         f"{self.max_abs:.3g} (relative {self.rel:.3g}) > tolerance {self.tol:.3g}")
            if len(self.parameters) > 1:
                lines.append(f"  all differing: {', '.join(self.parameters)}")
            for target, t in self.steps.items():
                what = "dL/dh_t" if target == "dL_dh" else "dL/dx_t"
                lines.append(f"  {what} first departs at t = {t} ({c.T - t} step(s) back from T = {c.T})")
            if not self.diagnosis:   # a named mistake says it better; else say how each is off
                lines += [f"  {target}: {pattern}" for target, pattern in self.patterns.items()]
        else:
            lines.append(f"  {self.reason}")
        if self.shrunk is not None:
            s = self.shrunk
            lines.append(f"  smallest failing case: Case(seed={s.seed}, T={s.T}, B={s.B}, D={s.D}, "
                         f"H={s.H}, O={s.O}, regime={s.regime!r}, h0={s.h0!r}, dtype={s.dtype!r})")
        if self.diagnosis:
            lines.append("  diagnosis (the failing gradients match these classic mistakes):")
            lines += [f"    - {m}: {self.notes.get(m, MISTAKES.get(m, ''))}" for m in self.diagnosis]
        elif self.status == "disagree":
            lines.append("  diagnosis: matches none of the catalogued mistakes")
        if self.reproducer:
            lines.append(f"  replay: bptt-xval replay {self.reproducer} --fn FILE:FUNC")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"case": self.case.to_dict(), "case_id": self.case_id, "status": self.status,
                "parameter": self.parameter, "parameters": self.parameters, "step": self.step,
                "steps": self.steps, "max_abs": self.max_abs, "rel": self.rel, "tol": self.tol,
                "reference": self.reference, "reason": self.reason, "traceback": self.traceback,
                "shrunk": None if self.shrunk is None else self.shrunk.to_dict(),
                "diagnosis": self.diagnosis, "diagnosis_notes": self.notes, "patterns": self.patterns,
                "reproducer": self.reproducer}


@dataclass
class CheckResult:
    ok: bool
    failures: list
    cases_run: int
    non_finite: list = field(default_factory=list)      # ids of the inconclusive cases (any reason)
    skipped_backends: dict = field(default_factory=dict)
    references: list = field(default_factory=list)
    not_checked: dict = field(default_factory=dict)     # name -> why it was not compared
    space: dict = field(default_factory=dict)           # the case space drawn (CaseSpace.to_dict)
    hints: list = field(default_factory=list)           # computed from the verdicts, e.g. about h0
    inconclusive: dict = field(default_factory=dict)    # reason -> ids of the cases without a verdict
    notes: list = field(default_factory=list)           # how the comparison was made, e.g. a style's clip

    def common_failure(self) -> tuple | None:
        """(status, reason) when every case failed the same way (the function returns None,
        raises the same error, returns the same wrong shape...): said once, at the top of
        the summary. The reason shown is the first case's."""
        kinds = {_way(f) for f in self.failures}
        conclusive = self.cases_run - len(self.non_finite)
        first = self.failures[0] if self.failures else None
        if len(kinds) == 1 and len(self.failures) == conclusive > 1 and first.status != "disagree":
            return first.status, first.reason
        return None

    def __post_init__(self):
        # no case could be judged (each inconclusive, e.g. min-char's clip past judging):
        # nothing agreed, so the check is not ok and never reads AGREES (issue 40)
        if self.cases_run and not self.failures and len(self.non_finite) >= self.cases_run:
            self.ok = False

    @property
    def agreed(self) -> int:
        """The cases that agree: those run, less the failed and the inconclusive ones."""
        return self.cases_run - len(self.failures) - len(self.non_finite)

    def headline(self) -> str:
        """AGREES, DISAGREES, INCONCLUSIVE (no case could be judged), or, when every case
        failed the same way before any gradient could be compared, what happened: RAISES
        NameError, RETURNS NOTHING, BAD OUTPUT. A missing import or a missing `return` is not
        a wrong gradient, and is not said as one."""
        if not self.ok and not self.failures:
            return "INCONCLUSIVE"
        common = self.common_failure()
        if self.ok or common is None:
            return "AGREES" if self.ok else "DISAGREES"
        status, reason = common
        if status == "raised":
            return f"RAISES {reason.split(':')[0]}"
        if "returned None" in reason:
            return "RETURNS NOTHING"
        return status.replace("_", " ").upper()

    def summary(self) -> str:
        head = (f"{self.headline()}: {self.agreed} of "
                f"{self.cases_run} cases agree with {', '.join(self.references) or 'no reference'}")
        lines = [head]
        common = self.common_failure()
        if common is not None:
            lines.append(f"every case failed the same way ({common[0]}): {common[1]}")
            if common[1].startswith(("NameError", "ImportError", "ModuleNotFoundError")):
                lines.append("hint: a name the code uses is not defined: an import missing from the file, or a "
                             "global its top level computes (see what was not run)")
        lines += [f"hint: {h}" for h in self.hints]
        lines += [f"note: {n}" for n in self.notes]
        for name, why in self.not_checked.items():
            lines.append(f"not checked: {name} ({why})")
        if self.inconclusive:
            counts = ", ".join(f"{len(ids)} {why}" for why, ids in self.inconclusive.items())
            lines.append(f"{len(self.non_finite)} case(s) inconclusive (no verdict possible): {counts}")
        for name, reason in self.skipped_backends.items():
            lines.append(f"skipped {name}: {reason}")
        if common is not None:
            return "\n".join(lines + [self.failures[0].describe()])
        # the real bug first: disagreements, then each other way of failing once with its count
        disagreements = [f for f in self.failures if f.status == "disagree"]
        others = {}
        for f in self.failures:
            if f.status != "disagree":
                others.setdefault(_way(f), []).append(f)
        lines += [f.describe() for f in disagreements[:SUMMARY_MAX_SHOWN]]
        if len(disagreements) > SUMMARY_MAX_SHOWN:
            diagnosed = sorted({m for f in disagreements for m in f.diagnosis})
            lines.append(f"... and {len(disagreements) - SUMMARY_MAX_SHOWN} more case(s) disagree"
                         + (f" (diagnosed: {', '.join(diagnosed)})" if diagnosed else "")
                         + "; every one is in to_dict() / --json")
        for group in others.values():
            if len(group) > 1:
                lines.append(f"{len(group)} cases {group[0].status.replace('_', ' ')}: {group[0].reason}; "
                             f"the first of them:")
            lines.append(group[0].describe())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's view: the verdict, the first failing parameter and step, the smallest
        failing case and the diagnosis, then the whole summary folded away."""
        import html

        e = html.escape
        colour = "#176b2c" if self.ok else "#b03a2e"
        parts = [f"<div><p style='font-size:110%'><b style='color:{colour}'>{e(self.headline())}</b>: "
                 f"{self.agreed} of {self.cases_run} cases agree with "
                 f"{e(', '.join(self.references) or 'no reference')}</p>"]
        if self.failures:
            f = next((f for f in self.failures if f.status == "disagree"), self.failures[0])
            rows = [("first failing", f"{f.parameter}" + (f", first departing at t = {f.step}" if f.step else "")
                     if f.parameter else f.reason)]
            if f.status == "disagree":
                rows.append(("error", f"max |error| {f.max_abs:.3g} (relative {f.rel:.3g}) > tolerance {f.tol:.3g}, "
                                      f"against {f.reference}"))
            if f.shrunk is not None:
                s = f.shrunk
                rows.append(("smallest failing case", f"T={s.T}, B={s.B}, D={s.D}, H={s.H}, O={s.O} "
                                                      f"(seed {s.seed}, {s.regime}, {s.dtype})"))
            rows.append(("diagnosis", "; ".join(f"{m}: {f.notes.get(m, MISTAKES.get(m, ''))}" for m in f.diagnosis)
                         or ("matches none of the catalogued mistakes" if f.status == "disagree" else "")))
            parts.append("<table>" + "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>"
                                             for k, v in rows if v) + "</table>")
        parts.append(f"<details><summary>full summary</summary><pre>{e(self.summary())}</pre></details></div>")
        return "".join(parts)

    def to_dict(self) -> dict:
        common = self.common_failure()
        return {"ok": self.ok, "cases_run": self.cases_run, "references": self.references,
                "skipped_backends": self.skipped_backends, "non_finite": self.non_finite,
                "not_checked": self.not_checked, "space": self.space, "hints": self.hints,
                "inconclusive": self.inconclusive, "notes": self.notes,
                "common_failure": None if common is None else {"status": common[0], "reason": common[1]},
                "failures": [f.to_dict() for f in self.failures]}


def _way(failure: Failure) -> tuple:
    """How a case failed, sizes aside: "expected shape (5, 4, 1)" and "(3, 3, 1)" are one way."""
    return failure.status, re.sub(r"\d+", "N", failure.reason)


def _h0_hint(failures: list, drawn: list) -> list:
    """Computed, not guessed: does the derivation fail exactly on the cases that have an h0?"""
    failing = {f.case_id for f in failures}
    without = [c for c in drawn if c.h0 == "none"]
    if failures and without and all(f.case.h0 != "none" for f in failures) \
            and not any(c.id in failing for c in without):
        return [f"every failing case has an initial state h0, and all {len(without)} cases without one "
                f"agree: if your derivation takes no h0 (as min-char-rnn's hprev), check with "
                f"h0='none' (--h0 none); if it does, look at how h0 enters h_1 and at its gradient"]
    return []


def _arrays(result) -> list:
    return list(result.grads.values()) + ([result.dL_dh] if result.dL_dh is not None else [])


def _finite(result) -> bool:
    return np.isfinite(result.loss) and all(np.isfinite(a).all() for a in _arrays(result))


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


# How many central-difference steps a ReLU pre-activation must keep from 0 for the step
# never to cross the kink: a step d in a parameter moves a_t by at most d times the
# sum of |terms| it multiplies, carried through the recurrence (its magnitude, Phi).
KINK_MARGIN = 10.0


def near_a_kink(case: Case, params64: dict, xs64, forward=None) -> bool:
    """Could a central difference of ``reference.numeric`` cross ReLU's kink on this case?
    (Soak false alarms: pre-activations 5e-6 from 0 against a step of ~6e-6, so the numeric
    gradient was off by 4%.) Decided from the case alone; the numeric reference is then
    left out of the case and torch and jax judge it. ``forward``: the float64 forward pass
    ``reference.numeric.states`` gives, when the caller has it already."""
    if case.hidden != "relu":
        return False
    h, a, _, _ = forward if forward is not None else states(params64, xs64, hidden=case.hidden,
                                                            output=case.output)
    step = np.finfo(np.float64).eps ** (1 / 3) * max(1.0, *(float(np.max(np.abs(p))) for p in params64.values()))
    reach = 1.0 + float(np.max(np.abs(xs64))) + float(np.max(np.abs(h)))      # what a step multiplies
    return bool(np.min(np.abs(a)) <= KINK_MARGIN * step * reach * case.T)


def _reference_allowed(name: str, case: Case, params64, xs64, forward, fast: bool) -> bool:
    """Does reference ``name`` judge ``case``? Finite differences only where they apply
    (and, on the fast path, are cheap) and where their step cannot cross ReLU's kink."""
    if name != "numeric":
        return True
    if not (numeric_is_cheap(case) if fast else numeric_applies(case)):
        return False
    return not near_a_kink(case, params64, xs64, forward)   # else torch and jax judge alone


def _magnitude_job(case: Case, out: dict, data64, forward):
    """magnitudes()'s arguments for ``case``, or None when a reference overflowed."""
    if not all(_finite(r) for r in out.values()):
        return None
    dL_dh = next((r.dL_dh for r in out.values() if r.dL_dh is not None), None)
    return (case, *data64, dL_dh, forward)


def reference_results(case: Case, refs: dict, params=None, xs=None, ys=None, fast=True):
    """float64 reference ``Gradients`` for ``case`` (or for the given arrays), by name, and
    the magnitudes the errors are measured against (None if a reference overflowed).

    ``fast=False`` is the checker's slow path, the yardstick of the fast one's verdicts:
    JAX compiled for the exact shapes (no padding to buckets) and finite differences on
    every case they apply to, whatever their cost. :func:`references_for` gives the same
    for many cases at once."""
    if params is None:
        params, xs, ys = make_problem(case)
    data64 = as_float64(case, params, xs, ys)
    out = {}
    with np.errstate(all="ignore"):
        # one float64 forward pass serves the kink test and the magnitudes
        forward = states(data64[0], data64[1], hidden=case.hidden, output=case.output)
        for name, ref in refs.items():
            if not _reference_allowed(name, case, data64[0], data64[1], forward, fast):
                continue
            if name == "jax" and not fast:
                ref = functools.partial(ref, pad=False)
            out[name] = ref(*data64, **case.config())
        job = _magnitude_job(case, out, data64, forward)
        return out, None if job is None else magnitudes(*job)


def references_for(cases: list, refs: dict, arrays: list | None = None) -> list:
    """:func:`reference_results` (fast path) for many cases at once: torch and JAX
    differentiate each group of similar cases in one stacked call (``reference.stacked``,
    exact zero padding; ``jax.vmap``), so their per-call overhead is paid per group, not
    per case; finite differences and any other reference run case by case. The same
    references within float64 rounding (tested against the case-by-case path)."""
    arrays = [make_problem(c) for c in cases] if arrays is None else arrays
    data64 = [as_float64(c, *a) for c, a in zip(cases, arrays)]
    # validated once here for every stacked reference (they take a Problem as validated)
    problems = [validate(*d, **c.config()) for c, d in zip(cases, data64)]
    out = [{} for _ in cases]
    with np.errstate(all="ignore"):
        forwards = [states(p, x, hidden=c.hidden, output=c.output) for c, (p, x, _) in zip(cases, data64)]
        # the stacked references first: JAX's run on another core while the others compute
        launched, by_case = [], []
        for name, ref in refs.items():
            launch = backends.batched(name, ref)
            by_config = {}
            for i, case in enumerate(cases):
                if _reference_allowed(name, case, data64[i][0], data64[i][1], forwards[i], True):
                    by_config.setdefault(tuple(case.config().items()), []).append(i)
            for config, chosen in by_config.items():
                if launch is None:
                    by_case += [(name, ref, i) for i in chosen]
                    continue
                sizes = [(cases[i].T, cases[i].B, cases[i].D, cases[i].H, cases[i].O) for i in chosen]
                # JAX compiles per padded shape: fix it; torch pads only to the group's largest
                # and has no compiler to serve: larger groups, fewer graphs
                compiled = name == "jax"
                for idx, padded in groups(sizes, STACK_SIZE if compiled else TORCH_STACK):
                    shape = dict(sizes=padded, cases=STACK_SIZE) if compiled else {}
                    members = [chosen[j] for j in idx]
                    launched.append((name, members, launch([problems[i] for i in members], **dict(config), **shape)))
        for name, ref, i in by_case:
            out[i][name] = ref(*data64[i], **cases[i].config())
        for name, members, collect in launched:
            for i, r in zip(members, collect()):
                out[i][name] = r
        # every case's references in the order of refs, as reference_results gives them
        out = [{name: o[name] for name in refs if name in o} for o in out]
        jobs = [_magnitude_job(c, o, d, f) for c, o, d, f in zip(cases, out, data64, forwards)]
        todo = [j for j in jobs if j is not None]
        sizes = iter(magnitudes_many(todo))
        return [(o, None if j is None else next(sizes)) for o, j in zip(out, jobs)]


def inconclusive_reason(case: Case, references: dict, magnitude: dict | None) -> str | None:
    """Why no verdict can be given on ``case`` (a reason starting with one of INCONCLUSIVE's
    phrases), or None. Looks at the case and the references only, never at a candidate."""
    if magnitude is None:
        return "reference not finite: the float64 references overflow"
    if magnitude["forward"] > float(np.finfo(case.dtype).max) * 1e-3:
        return (f"{case.dtype} overflows on this case: the forward pass reaches "
                f"{magnitude['forward']:.3g} (computed in float64)")
    if not all(_representable(r, case.dtype) for r in references.values()):
        return f"{case.dtype} overflows on this case: the exact gradients leave its range (exploding regime)"
    rtol = case_tolerance(case).rtol
    if magnitude.get("kink", np.inf) <= KINK_ROUNDING * rtol:
        # soak seed 4102025: a float32 a_t of ~1e-7 took relu's other branch, dL/dx 7% off
        return (f"at a ReLU kink in {case.dtype}: a pre-activation lies within its own rounding "
                f"error of 0 ({magnitude['kink']:.2g} of its terms), so either branch is right")
    if rtol * magnitude.get("amplification", 0.0) >= ILL_CONDITIONED:
        return (f"ill-conditioned beyond {case.dtype}: the recurrence can grow a rounding error "
                f"{magnitude['amplification']:.3g} times beyond the gradients' size")
    return None


def check_case(fn, case: Case, refs: dict, arrays=None, fast=True, checked=None, prepared=None) -> Outcome:
    """Run ``fn`` and the references on one case and compare them (``fast``: see
    :func:`reference_results`). ``checked``: the parameter names compared (default: all
    of the case's). ``prepared``: the case's (references, magnitudes) from
    :func:`references_for`, when computed already (then ``arrays`` are the ones used)."""
    params, xs, ys = arrays if arrays is not None else make_problem(case)
    checked = tuple(params) if checked is None else checked
    references, magnitude = prepared or reference_results(case, refs, params, xs, ys, fast)
    why = inconclusive_reason(case, references, magnitude)
    if why is not None:
        return Outcome(case, "inconclusive", reason=why)
    result = run_candidate(fn, case, params, xs, ys, checked)
    if isinstance(result, Outcome):
        return result
    return judge(case, result, references, magnitude, (params, xs, ys), clip=getattr(fn, "clip", None))


#: a clipped case is judged only where at least this share of its gradient entries lies
#: under the bound (compared exactly); the entries at the bound say only their sign
CLIP_LEFT_MIN = 0.5


def clip_reason(references: dict, clip, exempt=()) -> str | None:
    """Why a case clipped at ``clip`` cannot be judged (the true gradients of more than half
    its entries are at or past the bound, so a wrong derivation clipped to ±c looks right),
    or None. Decided from the references alone (the first of them), never the candidate.
    ``exempt``: gradients a clip does not act on (the gated cells' h0, c0)."""
    if clip is None or not references:
        return None
    first = next(iter(references.values()))
    clipped = total = 0
    for name, g in first.grads.items():
        if name not in exempt:
            clipped += int(np.count_nonzero(np.abs(g) >= clip))
            total += int(np.size(g))
    if total and clipped > (1 - CLIP_LEFT_MIN) * total:
        return (f"clipped past judging: at ±{clip:g}, {clipped} of {total} true gradient entries sit at the bound, "
                f"leaving under {CLIP_LEFT_MIN:.0%} to compare exactly")
    return None


def judge(case: Case, result, references: dict, magnitude: dict | None, arrays, clip=None) -> Outcome:
    """The references' half: the candidate's ``Gradients`` compared with each reference.
    ``clip``: the c of a style that clips its gradients by design (min-char-rnn's
    ``np.clip(d, -5, 5)``): the parameters' reference gradients are clipped at c first, so
    an entry whose true gradient is under c is compared exactly and a clipped one must sit at
    ±c. Clipping is 1-Lipschitz, |clip(a) - clip(b)| <= |a - b|, so every tolerance still
    holds. A case clipped past judging (:func:`clip_reason`) is inconclusive."""
    why = clip_reason(references, clip)
    if why is not None:
        return Outcome(case, "inconclusive", reason=why, result=result)
    if clip is not None:
        references = {name: r._replace(grads={k: np.clip(g, -clip, clip) for k, g in r.grads.items()})
                      for name, r in references.items()}
    comparisons = [compare(result, r, name, case, magnitude) for name, r in references.items()]
    status = "agree" if all(c.ok for c in comparisons) else "disagree"
    return Outcome(case, status, comparisons, result=result, references=references,
                   magnitude=magnitude, arrays=arrays)


def shrink(fn, case: Case, refs: dict, fast=True, space: CaseSpace | None = None) -> Case:
    """The smallest case (fewest steps, then units, batch, inputs, outputs) that still fails
    (:func:`shrink_with` on ``check_case``)."""
    space = space or CaseSpace()
    return shrink_with(lambda c: check_case(fn, c, refs, fast=fast, checked=space.checked(c)).failed,
                       case, space)


def shrink_with(fails, case: Case, space: CaseSpace | None = None) -> Case:
    """Greedy, deterministic shrinking by the predicate ``fails(case)``: for each size in
    turn try its lower bound, half, and one less, keep the first that still fails, and
    repeat until nothing shrinks; h0 and the regime are simplified last. The seed stays,
    so every shrunk case replays exactly. Every candidate stays inside ``space`` (sizes,
    h0 kinds, D == O when tied)."""
    space = space or CaseSpace()
    tries = 0
    changed = True
    while changed and tries < SHRINK_MAX_TRIES:
        changed = False
        for name in ("T", "H", "B", "D", "O"):
            value = getattr(case, name)
            low = space.bounds(name, case.loss)[0]
            for smaller in sorted({low, value // 2, value - 1}):
                if low <= smaller < value and tries < SHRINK_MAX_TRIES:
                    candidate = space.fit(case.replace(**{name: smaller}))
                    if candidate == case:
                        continue
                    tries += 1
                    if fails(candidate):
                        case, changed = candidate, True
                        break
        for name, simple in (("h0", "none"), ("regime", "generic")):
            candidate = case.replace(**{name: simple})
            if getattr(case, name) != simple and tries < SHRINK_MAX_TRIES and space.contains(candidate):
                tries += 1
                if fails(candidate):
                    case, changed = candidate, True
    return case


def undiagnosed_failure(outcome: Outcome) -> Failure:
    """The Failure record of a failed outcome: its worst target, every failing one, the first
    departing step of each per-step quantity; no diagnosis (each cell's catalogue adds its
    own: :func:`failure_from` for Elman's, ``gated.failure`` for the gated cells')."""
    worst = outcome.worst()
    if worst is None:
        return Failure(outcome.case, outcome.status, None, [], None, None, None, None, None,
                       outcome.reason, outcome.traceback)
    reference, target, err, _ = worst
    failing = sorted({t for c in outcome.comparisons for t in c.failing()},
                     key=lambda t: (t != target, t))
    steps = {}
    for c in outcome.comparisons:
        for name, t in c.first_bad.items():
            steps.setdefault(name, t)
    return Failure(outcome.case, "disagree", target, failing, steps.get("dL_dh", steps.get("dL_dx")), err.max_abs,
                   err.rel, err.tol, reference, f"{target} differs from {reference}", None, steps=steps)


def failure_from(outcome: Outcome) -> Failure:
    """The Failure record of a failed outcome, diagnosed against the catalog of mistakes."""
    f = undiagnosed_failure(outcome)
    if outcome.worst() is None:
        return f
    analytic_name = next(name for name, r in outcome.references.items()
                         if r.dL_dh is not None or name == f.reference)
    analytic = outcome.references[analytic_name]
    comparison = next(c for c in outcome.comparisons if c.reference == analytic_name)
    f.diagnosis, f.notes = diagnose(outcome.result, outcome.case, outcome.arrays, analytic, outcome.magnitude)
    f.patterns = error_patterns(outcome.result, analytic, comparison, outcome.case)
    return f


def _writable_folder(name: str, folder) -> None:
    """Fail at the boundary, before any work, if ``folder`` cannot be created or written."""
    import tempfile
    from pathlib import Path

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (OSError, TypeError) as exc:
        raise ValueError(f"{name}: cannot write into {str(folder)!r} ({type(exc).__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None


def _should_shrink(failure: Failure, failures: list) -> bool:
    """Shrink what can shrink: a disagreement or an overflow depends on the case's size; a
    bad return value, or an exception every failing case raises alike, does not."""
    if failure.status in ("disagree", "non_finite"):
        return True
    return failure.status == "raised" and any(f.reason != failure.reason for f in failures)


def _prepared(drawn: list, refs: dict, fast: bool):
    """(case, arrays, (references, magnitudes) or None) for each drawn case, the references
    computed CHUNK cases at a time on the fast path (:func:`references_for`), case by case
    (inside check_case) on the slow one."""
    for start in range(0, len(drawn), CHUNK):
        chunk = drawn[start:start + CHUNK]
        arrays = [make_problem(c) for c in chunk]
        prepared = references_for(chunk, refs, arrays) if fast else [None] * len(chunk)
        yield from zip(chunk, arrays, prepared)


def check_derivation(fn, *, hidden="tanh", output="identity", loss="squared_error",
                     reduction="mean", cases=100, seed=0, dtype="float64",
                     truncate=None, sizes=None, h0=None, inputs=None, params=None,
                     references=backends.REFERENCES, shrink_failures=True,
                     reproducer_dir=None, fast=True, device="cpu"):
    """Check ``fn`` (the ``loss_and_grads`` signature, docs/api.md) on ``cases`` random problems.

    Returns ``CheckResult(ok, failures, cases_run, ...)``; ``ok`` is True when every
    conclusive case agrees with every available reference within tolerance
    (``comparisons.check.tolerances``). Each failure names its case, the worst parameter,
    the first departing step of dL/dh_t (and dL/dx_t), the error sizes, how the wrong
    gradients are off, the catalogued mistakes they match, and (``shrink_failures``)
    the smallest failing case. ``dtype`` is "float64", "float32" or "both".

    The case space, narrowed to what ``fn`` supports: ``sizes`` ({"B": 1, "T": (2, 60)}),
    ``h0`` ("none", "vector", "batch" or a tuple), ``inputs`` ("dense" or "one_hot"),
    ``params`` (the gradients ``fn`` returns; the others are named in ``not_checked``).
    A convention adapter (``comparisons.conventions``) carries its own defaults in
    ``fn.case_space``; explicit arguments win over them.

    ``reproducer_dir``: write each failure's (shrunk) case there, for ``bptt-xval replay``.
    ``fast=False``: the slow path (see :func:`reference_results`), the yardstick the fast
    path's verdicts are tested against: the same cases, the same verdicts, at a fraction of the rate.
    ``device``: where torch and JAX compute the references, "cpu" (default: the user's GPU
    is left alone) or "cuda" (BackendUnavailable without one; docs/gpu.md).
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable with the loss_and_grads signature; got {type(fn).__name__}")
    defaults = dict(getattr(fn, "case_space", None) or {})
    explicit = dict(hidden=hidden, output=output, loss=loss, reduction=reduction, sizes=sizes, h0=h0,
                    inputs=inputs, params=params)
    # a convention's defaults apply where the caller left the contract's default
    for name, contract_default in (("hidden", "tanh"), ("output", "identity"), ("loss", "squared_error"),
                                   ("reduction", "mean"), ("sizes", None), ("h0", None),
                                   ("inputs", None), ("params", None)):
        if explicit[name] == contract_default and name in defaults:
            explicit[name] = defaults[name]
    if explicit["sizes"] is not None and defaults.get("sizes"):
        # the caller's sizes narrow the convention's; a size the style fixes (a step pair's
        # T = 1) stays fixed, so --sizes for a whole file cannot break its step pair
        fixed = {k: v for k, v in defaults["sizes"].items() if k in defaults.get("fixed", ())}
        explicit["sizes"] = {**defaults["sizes"], **explicit["sizes"], **fixed}
    hidden, output, loss, reduction = (explicit[k] for k in ("hidden", "output", "loss", "reduction"))
    check_options(hidden, output, loss, reduction, truncate)
    space = CaseSpace.make(explicit["sizes"], explicit["h0"], explicit["inputs"], explicit["params"],
                           defaults.get("tie_D_O", False), loss=loss)
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise ValueError(f"cases: expected a positive int; got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int; got {seed!r}")
    dtypes = DTYPES if dtype == "both" else (dtype,)
    if any(d not in DTYPES for d in dtypes):
        raise ValueError(f"dtype: expected 'float64', 'float32' or 'both'; got {dtype!r}")
    if isinstance(references, str) or not isinstance(references, (tuple, list)):
        raise TypeError(f"references: expected a tuple of names from {backends.REFERENCES}; got {references!r}")
    unknown = [r for r in references if r not in backends.REFERENCES]
    if unknown:
        raise ValueError(f"references: expected names from {backends.REFERENCES}; got {unknown}")
    if not isinstance(fast, bool):
        raise TypeError(f"fast: expected True or False; got {fast!r}")
    if reproducer_dir is not None:
        _writable_folder("reproducer_dir", reproducer_dir)
    refs, skipped = backends.available(references)
    if truncate is not None:
        refs.pop("numeric", None)   # finite differences cannot see truncation
    if not refs:
        raise BackendUnavailable(f"references: none available ({skipped})")
    refs = backends.on_device(refs, device)

    config = dict(hidden=hidden, output=output, loss=loss, reduction=reduction, truncate=truncate)
    drawn = []
    for i, d in enumerate(dtypes):
        drawn += draw_cases(cases if len(dtypes) == 1 else (cases + i) // 2, seed + i, dtype=d,
                            space=space, **config)
    failures, non_finite, returned, inconclusive = [], [], set(), {}
    for case, arrays, prepared in _prepared(drawn, refs, fast):
        outcome = check_case(fn, case, refs, arrays, fast=fast, checked=space.checked(case), prepared=prepared)
        if outcome.result is not None:
            returned |= {k for k in ("dL_dh", "dL_dx") if getattr(outcome.result, k) is not None}
        if outcome.status == "inconclusive":
            non_finite.append(case.id)
            inconclusive.setdefault(outcome.reason.split(":")[0], []).append(case.id)
        elif outcome.failed:
            failures.append(failure_from(outcome))
    for failure in failures:
        if shrink_failures and _should_shrink(failure, failures):
            failure.shrunk = shrink(fn, failure.case, refs, fast, space)
        if reproducer_dir is not None:
            failure.reproducer = str(reproducer.save(failure.shrunk or failure.case, reproducer_dir,
                                                     {**failure.to_dict(), "space": space.to_dict()}))
    not_checked = {name: "not in params: the candidate does not return it" for name in space.not_checked()}
    if any(f.status == "disagree" for f in failures) or not failures:
        # what the candidate never returned cannot be compared: say so, never pass it silently
        not_checked.update({k: "the function returns None for it" for k in ("dL_dh", "dL_dx") if k not in returned})
    notes = [fn.clip_note] if getattr(fn, "clip", None) is not None and getattr(fn, "clip_note", None) else []
    notes += writes_notes(fn)
    return CheckResult(not failures, failures, len(drawn), non_finite, skipped, sorted(refs),
                       not_checked, space.to_dict(), _h0_hint(failures, drawn), inconclusive, notes)


def writes_notes(fn) -> list:
    """What a convention's functions wrote into arrays the course's caller does not read again
    (``conventions._adapt.Writes``): notes on the verdict, never a failure of their own."""
    writes = getattr(fn, "writes", None)
    return writes.notes() if writes is not None else []


def replay(path, fn, references=backends.REFERENCES, params=None) -> Outcome:
    """Rerun ``fn`` on a reproducer written by ``check_derivation(reproducer_dir=...)``;
    ``params`` as in :func:`check_derivation` (default: the reproducer's own)."""
    case, arrays, meta = reproducer.load(path)
    refs, skipped = backends.available(references)
    if case.truncate is not None:
        refs.pop("numeric", None)
    if not refs:
        raise BackendUnavailable(f"references: none available ({skipped})")
    if params is None:
        params = ((meta.get("failure") or {}).get("space") or {}).get("params")
    return check_case(fn, case, refs, arrays, checked=CaseSpace.make(params=params).checked(case))


def assert_derivation(fn, **config) -> CheckResult:
    """pytest-friendly: raise AssertionError with the full verdict (parameter, step,
    errors, shrunk case, diagnosis) unless ``fn`` agrees. ``config`` is passed to
    :func:`check_derivation` (hidden=..., cases=..., dtype=..., sizes=..., h0=...)."""
    result = check_derivation(fn, **config)
    if not result.ok:
        raise AssertionError(result.summary())
    return result
