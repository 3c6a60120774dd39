"""A file's derivation made checkable: the file loaded without running its top-level work
(``comparisons.loading``), its functions found by name, and a course convention's adapter
around them, its layout proven on one small case first (``comparisons.check.proof``).

The library half of ``bptt-xval check FILE``: the command (``comparisons.cli``), the grading
child (``comparisons.grading.child``) and a notebook all call these; a problem with the file
or the names asked for is a :class:`UsageError`, one line naming the cause.
"""

from __future__ import annotations

from pathlib import Path

# a hang inside one C call at import is caught by a forked probe (loading.finishes): only where
# the process is the command's own (cli.console(), python -m comparisons.cli), never in a
# user's process; the grader's child has the grader's own timeout
HARD_TIMEOUT = False


class UsageError(Exception):
    """The file or the names asked for cannot be checked as given: one line naming the
    cause (the command prints it and exits 2)."""


def load_file(path: str, what: str = "FILE", *, paths=(), stubs=(), timeout=None, hard_timeout=None):
    """The file (``.py`` or ``.ipynb``) loaded without running its top-level work
    (``comparisons.loading``); a file that cannot be loaded is one line naming the cause."""
    from comparisons import loading

    try:
        return loading.load(path, paths=paths, stubs=stubs, what=what,
                            timeout=loading.TIMEOUT if timeout is None else timeout,
                            hard_timeout=HARD_TIMEOUT if hard_timeout is None else hard_timeout)
    except loading.LoadError as exc:
        raise UsageError(str(exc)) from None


def load_module(path: str, what: str = "FILE", **options):
    """The module of :func:`load_file` (``import``-like use: tests, check-cell)."""
    return load_file(path, what, **options).module


def function_named(loaded, path: str, name: str, what: str = "FILE:FUNC"):
    """Function ``name`` (or ``Class.name``) of the loaded file, or one line saying why not."""
    fn = loaded.function(name)
    if not callable(fn):
        skipped = loaded.skipped_global(name)
        if skipped is not None and skipped.syntax:
            raise UsageError(f"{what}: {Path(path).name}, {skipped.where}: `{skipped.text}`: {skipped.why}")
        known = sorted(loaded.functions)
        raise UsageError(f"{what}: {path!r} has no function {name!r}"
                         + (f" (it defines {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})" if known else ""))
    return fn


def split_target(spec: str) -> tuple[str, str | None]:
    """``path/file.py:NAME`` -> (path, NAME); ``path/file.py`` -> (path, None)."""
    path, sep, name = spec.rpartition(":")
    if sep and path and all(part.isidentifier() for part in name.split(".")):
        return path, name
    return spec, None


def load_function(spec: str, **options):
    """``path/to/file.py:function_name`` -> the function."""
    path, name = split_target(spec)
    if name is None:
        raise UsageError(f"FILE:FUNC: expected path/to/file.py:function_name; got {spec!r}")
    return function_named(load_file(path, "FILE:FUNC", **options), path, name)


#: the conventions with a single-sequence layout (no batch axis) beside the batch one
SEQUENCE_LAYOUTS = ("cs231n", "cs231n-step", "cs231n-lstm", "cs231n-lstm-step", "gru")


def convention_check(loaded, path: str, convention: str, names, device: str = "cpu", strict_clip: bool = False,
                     strict_inputs: bool = False, prove=False):
    """The derivation in the loaded file written in ``convention``'s style, adapted to the
    contract: its conventional function names (lossFun; rnn_forward, rnn_backward) or ``names``.
    ``prove``: "detected" (the convention was guessed from names: a layout that does not fit
    is a UsageError) or "given" (named by the user: the batch layout where none fits), the
    layout tried on one small case first (``comparisons.check.proof``); False: not tried."""
    from comparisons.conventions import CONVENTIONS

    adapter, default_names, _ = CONVENTIONS[convention]
    names = names or default_names
    if len(names) != len(default_names):
        raise UsageError(f"--fn: the {convention} convention takes {len(default_names)} function name(s) "
                         f"({','.join(default_names)}); got {','.join(names)}")
    functions = [function_named(loaded, path, n, "--fn") for n in names]
    from comparisons.conventions import arity, callable_with, detect

    arities = CONVENTIONS[convention][2]
    for n, f, a in zip(names, functions, arities):
        if a is not None and arity(f) is not None and not callable_with(f, a):
            others = [c for c, found in detect({k: loaded.function(k) for k in loaded.functions})
                      if n in found and c != convention]
            raise UsageError(f"--convention: {signature_text(f)} takes {arity(f)} argument(s) where the {convention} "
                             f"convention's {default_names[names.index(n)]} takes {a}"
                             + (f"; it looks like the {others[0]} convention" if others else ""))

    def make(batch=True):
        # the torch-tensor styles hand their inputs over on the GPU when the check runs there
        if convention in SEQUENCE_LAYOUTS:
            fn = adapter(*functions, device=device, batch=batch)
        elif convention == "d2l-gru":
            fn = adapter(*functions, device=device)
        elif convention.startswith("min-char-rnn"):
            fn = adapter(*functions, strict_clip=strict_clip)
        else:
            fn = adapter(*functions)
        if getattr(fn, "writes", None) is not None:
            fn.writes.strict = strict_inputs
        return fn

    if convention.startswith("min-char-rnn") or not prove:
        return make()
    # a layout is proven on one small case before a verdict rests on it (comparisons.check.proof)
    from comparisons.check.proof import Unproven, prove as prove_layout

    try:
        proof = prove_layout(make, convention, names[0], step=convention.endswith("-step"),
                             sequence=convention in SEQUENCE_LAYOUTS)
    except Unproven as exc:
        if prove == "detected":
            raise UsageError(str(exc)) from None
        return make()                   # the user named the convention: checked as asked
    proof.fn.layout_note = proof.note
    return proof.fn


def conventional_names(convention: str) -> tuple:
    from comparisons.conventions import CONVENTIONS

    return CONVENTIONS[convention][1] if convention in CONVENTIONS else ()


def contract_signature(fn) -> bool:
    """Can ``fn`` be called as ``loss_and_grads(params, xs, ys, *, hidden, output, loss,
    reduction, truncate)``?"""
    import inspect

    try:
        inspect.signature(fn).bind({}, None, None, hidden="tanh", output="identity", loss="squared_error",
                                   reduction="mean", truncate=None)
    except TypeError:
        return False
    except ValueError:                 # no signature to read (a builtin): let the check say
        return True
    return True


def signature_text(fn) -> str:
    import inspect

    try:
        return f"{getattr(fn, '__name__', 'it')}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return getattr(fn, "__name__", "it")
