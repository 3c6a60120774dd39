"""A convention guessed from a file's names is proven before a verdict rests on it.

Detection reads names and arities (``comparisons.conventions.detect``): ``lstm_forward`` with
five arguments looks like cs231n's. Whether the function takes cs231n's *layout* (x as (N, T,
D), h0 as (N, H)) is a fact about its code, tried here on one small case before the check:

1. the batch layout: the forward pass runs and returns what the layout says (its backward may
   still fail: that is the derivation's, and the check says so in its verdict);
2. otherwise, where the style has one, the single-sequence layout (no batch axis: x (T, D),
   h0 (H,)), which real files use;
3. otherwise the layout does not fit: :class:`Unproven`, said with what the function did on
   each layout, and never a DISAGREES from a layout we guessed.

The small case has distinct sizes (T=3, B=2, D=5, H=4) so that a confusion of axes fails
here rather than passing by coincidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from comparisons.check.cases import Case, CaseSpace, make_problem


#: what a function handed arrays of the wrong rank or axes raises
LAYOUT_ERRORS = ("ValueError: ", "IndexError: ", "TypeError: ", "AssertionError")


class Unproven(Exception):
    """The functions do not take the convention's layout (the message says what they did)."""


@dataclass
class Proof:
    fn: object                 # the adapter the check runs
    layout: str                # "batch" or "sequence"
    note: str | None           # said with the verdict where the layout is not the style's first


def probe_case(space: dict) -> Case:
    """The small case a layout is tried on, fitted to the convention's case space."""
    case = Case(seed=12345, T=3, B=2, D=5, H=4, O=2, regime="generic", h0="none", dtype="float64",
                hidden=space.get("hidden", "tanh"), output=space.get("output", "identity"),
                loss=space.get("loss", "squared_error"), reduction=space.get("reduction", "mean"), truncate=None)
    return CaseSpace.make(space.get("sizes"), "none", space.get("inputs"), None, space.get("tie_D_O", False),
                          loss=case.loss).fit(case)


def attempt(fn, case: Case):
    """``fn`` on ``case``: the Gradients it returned, or the failed Outcome."""
    from comparisons.check.candidate import run_candidate, run_gated_candidate

    if getattr(fn, "cell", None) is not None:
        from comparisons.check.cells import GATED_LAYOUTS, make_cell_problem

        shapes, state = GATED_LAYOUTS[fn.cell]
        return run_gated_candidate(fn, case, make_cell_problem(case, shapes), state)
    params, xs, ys = make_problem(case)
    return run_candidate(fn, case, params, xs, ys, tuple(params))


def failed_in_forward(outcome, forward: str) -> bool:
    """Did the forward pass itself fail, or return what the layout does not say? (A failure
    after it, in the backward, is the derivation's own.)"""
    if not hasattr(outcome, "status"):
        return False
    if outcome.status == "raised":
        # an error of shapes or axes; a NameError or a ZeroDivisionError is the code's, not the layout's
        return (outcome.reason.startswith(LAYOUT_ERRORS)
                and f", in {forward}\n" in (outcome.traceback or ""))
    if outcome.status == "bad_output":
        return outcome.reason.startswith(forward) or f"({forward})" in outcome.reason
    return False


def shapes_text(case: Case, batch: bool, step: bool) -> str:
    if step:
        return f"x ({case.B}, {case.D}), prev_h ({case.B}, {case.H})" if batch else f"x ({case.D},), prev_h ({case.H},)"
    return (f"x ({case.B}, {case.T}, {case.D}), h0 ({case.B}, {case.H})" if batch
            else f"x ({case.T}, {case.D}), h0 ({case.H},)")


def prove(make, convention: str, forward: str, *, step: bool = False, sequence: bool = True) -> Proof:
    """The adapter ``make(batch)`` of ``convention`` whose layout the forward function
    (named ``forward``) takes: the batch layout if it runs, else one sequence (where
    ``sequence``), else :class:`Unproven`."""
    tried = []
    for batch in ((True, False) if sequence else (True,)):
        fn = make(batch)
        case = probe_case(dict(fn.case_space))
        outcome = attempt(fn, case)
        if not failed_in_forward(outcome, forward):
            note = None if batch else (f"{forward} takes one sequence without a batch axis "
                                       f"({shapes_text(case, False, step)}): checked with B = 1")
            return Proof(fn, "batch" if batch else "sequence", note)
        shapes = (shapes_text(case, batch, step) if convention.startswith(("cs231n", "gru")) else
                  f"a case of T={case.T}, B={case.B}, D={case.D}, H={case.H}")
        tried.append(f"on {shapes} it {'raised' if outcome.status == 'raised' else 'returned'} {outcome.reason}")
    raise Unproven(f"{forward} has the {convention} convention's name and arity but not its layout: "
                   + "; ".join(tried) + ". Give --convention to check it in that layout anyway, or wrap it in a "
                   "loss_and_grads (docs/conventions.md) and check FILE:loss_and_grads")


# --- a course's template left unwritten ---------------------------------------------------------

#: bytecode that computes: a function with none of it cannot derive a gradient
_COMPUTES = ("BINARY_", "INPLACE_", "CALL", "FOR_ITER", "COMPARE_OP", "UNARY_NEGATIVE")


def returns_a_value(code) -> bool:
    """Does some ``return`` hand back more than None? (A helper that only releases something
    returns None and is not a template; a template returns the names it left at None.)"""
    import dis

    last = None
    for i in dis.get_instructions(code):
        if i.opname == "RETURN_CONST" and i.argval is not None:
            return True
        if i.opname == "RETURN_VALUE" and not (last is not None and last.opname == "LOAD_CONST" and last.argval is None):
            return True
        last = i
    return False


def not_written(fn, helper: bool = False) -> str | None:
    """Where ``fn`` is a course's template still unwritten (it assigns None, passes, returns
    what it holds, or raises NotImplementedError: nothing in it computes), the line to say so;
    else None. Read from its bytecode, which a notebook's function has as a file's does."""
    import dis

    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return None
    ops = [i.opname for i in dis.get_instructions(code)]
    computing = [op for op in ops if op.startswith(_COMPUTES) and op != "CALL_INTRINSIC_1"]
    if "RAISE_VARARGS" in ops:          # raise NotImplementedError("..."): its one call is the raise's
        if "NotImplementedError" not in code.co_names:
            return None                 # another error raised on purpose: its own message says it
        calls = [op for op in computing if op.startswith(("CALL", "PRECALL"))]
        computing = [op for op in computing if not op.startswith(("CALL", "PRECALL"))] + calls[2:]
    if computing or any(isinstance(c, type(code)) for c in code.co_consts):
        return None
    if helper and not returns_a_value(code):         # a function the checked ones call, returning nothing
        return None
    from comparisons.loading import describe

    return (f"{getattr(fn, '__name__', 'it')} ({describe(code.co_filename, code.co_firstlineno)}) is the course's "
            f"template, not yet written: nothing in it computes")
