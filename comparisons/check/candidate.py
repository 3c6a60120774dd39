"""The candidate's half of a check: the user's function run on a case's arrays, its return
value made ``Gradients``, or the ``Outcome`` of its failing.

Kept apart from the checker (``checker``: references, tolerances, the catalogue of
mistakes) so that the process a grader runs a submission in imports only this side: the
grading sandbox's harness (``comparisons.grading.sandbox``) holds none of the suite's
derivations or references, and a submission cannot import or read them.
"""

from __future__ import annotations

import functools
import traceback as tb
from dataclasses import dataclass, field

import numpy as np

from comparisons.check.cases import Case
from comparisons.check.outputs import BadOutput, InputModified, NonFiniteOutput, as_gradients


@dataclass
class Outcome:
    """One case checked: ``status`` is "agree", "disagree", "raised", "bad_output",
    "non_finite" (the candidate overflowed where the float64 reference did not) or
    "inconclusive" (no verdict can be given on this case: ``reason`` starts with one of
    INCONCLUSIVE's phrases, decided from the case and the references alone)."""

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


def _read_only(arrays: dict) -> dict:
    out = {}
    for k, v in arrays.items():
        v = v.copy()
        v.flags.writeable = False
        out[k] = v
    return out


def run_candidate(fn, case: Case, params: dict, xs, ys, checked):
    """The candidate's half of a check: ``fn`` on the case's arrays (read-only), its return
    value made ``Gradients`` (``comparisons.check.outputs``). Returns the Gradients, or the failed
    ``Outcome`` (raised, bad_output, non_finite). The grader runs this half in a
    submission's own subprocess and :func:`judge` in its own."""
    inputs = _read_only({"xs": xs, "ys": ys, **params})
    xs_ro, ys_ro = inputs.pop("xs"), inputs.pop("ys")
    return candidate_result(case, lambda: fn(inputs, xs_ro, ys_ro, **case.config()),
                            lambda result: as_gradients(result, params, checked, (case.T, case.B, case.D, case.H),
                                                        np.dtype(case.dtype)))


def candidate_result(case: Case, call, convert):
    """``convert(call())``, the candidate's run made ``Gradients``, or the failed ``Outcome``:
    what it raised (with the line of the user's file it came from), or what it returned
    that is malformed or not finite. Every path that runs a candidate shares it."""
    try:
        with np.errstate(all="ignore"):
            result = call()
    except BadOutput as exc:                # a convention adapter found the user's return malformed
        return Outcome(case, "bad_output", reason=str(exc))
    except (Exception, SystemExit) as exc:  # the candidate's own failure is a result, not a crash
        return Outcome(case, "raised", reason=_exception_line(exc) + user_line(exc), traceback=tb.format_exc())
    try:
        return convert(result)
    except NonFiniteOutput as exc:
        return Outcome(case, "non_finite", reason=str(exc))
    except BadOutput as exc:
        return Outcome(case, "bad_output", reason=str(exc))


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple:
    """The folders whose frames are not the user's: the suite's packages and Python's own."""
    import os
    import sysconfig

    import importlib

    ours = []
    for name in ("bptt_xval", "comparisons", "manual", "reference"):
        try:          # a grading sandbox's harness holds only some of them
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "__file__", None):
            ours.append(os.path.dirname(module.__file__))
    paths = sysconfig.get_paths()
    return tuple(p + os.sep for p in ours + [paths["stdlib"], paths["purelib"], paths["platlib"]])


def user_line(exc: BaseException) -> str:
    """' (at student.py, line 12, in rnn_step_forward: `next_h = ...`)': the deepest frame of
    the user's own code (not the suite's, not a library's), so the failure names its line."""
    from comparisons.loading import describe

    suite = _library_folders()
    for frame in reversed(tb.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(suite) or frame.filename.startswith("<"):
            continue
        code = f": `{frame.line.strip()}`" if frame.line else ""
        return f" (at {describe(frame.filename, frame.lineno)}, in {frame.name}{code})"
    return ""


def _exception_line(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: the derivation called sys.exit({exc.code!r})"
    if isinstance(exc, ValueError) and "read-only" in str(exc) and not isinstance(exc, InputModified):
        return (f"{type(exc).__name__}: {exc} (the derivation wrote into an input array: inputs are "
                f"handed over read-only, because writing into them corrupts the caller's data)")
    return f"{type(exc).__name__}: {exc}"




#: state entries the initial-state gradients are named by: h0 (every cell), c0 (LSTM)
INITIAL = {"h": "h0", "c": "c0"}


def run_gated_candidate(fn, case: Case, arrays, state):
    """A gated cell's candidate on the case (its initial-state gradients h0, c0 kept where it
    gives them), or the ``Outcome`` of its failing (:func:`candidate_result`)."""
    from bptt_xval.model import Gradients

    params, xs, ys = arrays
    inputs = _read_only({"xs": xs, "ys": ys, **params})
    xs_ro, ys_ro = inputs.pop("xs"), inputs.pop("ys")
    initial = {INITIAL[s]: np.zeros((case.B, case.H), case.dtype) for s in state if s in INITIAL}

    def convert(got):
        given = got.grads if isinstance(got, Gradients) else (got[1] if isinstance(got, (tuple, list))
                                                                 and len(got) > 1 else {})
        checked = tuple(params) + tuple(k for k in initial if isinstance(given, dict) and k in given)
        return as_gradients(got, {**params, **initial}, checked, (case.T, case.B, case.D, case.H),
                            np.dtype(case.dtype))

    return candidate_result(case, lambda: fn(inputs, xs_ro, ys_ro, output=case.output, loss=case.loss,
                                             reduction=case.reduction, truncate=None), convert)
