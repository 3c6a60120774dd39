"""Derivations as people write them, checked as they are (docs/conventions.md): one module
per course style, each reading like that course's handout, with the mapping to the seeds'
symbols in its docstring.

    min_char.py        karpathy's min-char-rnn: lossFun(inputs, targets, hprev), globals
    cs231n_layers.py   cs231n / EECS 498: rnn_forward / rnn_backward and the step pair
    coursera.py        deeplearning.ai: rnn_forward(x, a0, parameters), caches, dicts
    coursera_step.py   deeplearning.ai's cell functions: rnn_cell_*, lstm_cell_*, chained over T
    the gated cells, each checked against the suite's LSTM or GRU cell (``fn.cell``):
    min_char_lstm.py   lossFun(inputs, targets, hprev, cprev): stacked or one matrix per gate
    cs231n_lstm.py     lstm_forward / lstm_backward and the step pair, gates i, f, o, g
    coursera_lstm.py   deeplearning.ai: lstm_forward(x, a0, parameters), Wf on [a_prev; xt]
    gru.py             gru_forward / gru_backward in torch.nn.GRU's layout
    d2l_gru.py         d2l's gru(inputs, state, params) and a hand-derived gru_backward
    classes.py         cells as classes: 11-785's GRUCell (and an LSTMCell), its 2019 GRU_Cell,
                       Karpathy's LSTM class

Each adapter returns a function with the contract's ``loss_and_grads`` signature, carrying
in ``fn.case_space`` the part of the case space its style supports (one-hot inputs and no
batch for min-char-rnn, tanh for the layer styles, ...); explicit arguments to
``check_derivation`` win over it.

Every array handed to the user's functions is read-only (NumPy) or compared after the
call (torch): writing into an input corrupts the caller's data (a cs231n backward that adds
the carried gradient into the caller's ``dh`` returns right gradients and breaks the
caller's next check), so it fails the case, saying so.

``detect`` tells, from the functions a file defines, which conventions it is written in:
``bptt-xval check FILE`` without ``--convention`` checks each of them.
"""

from __future__ import annotations

import inspect

from comparisons.conventions import classes
from comparisons.conventions.classes import class_gru, class_gru_2019, class_lstm, karpathy_lstm
from comparisons.conventions.coursera import deeplearning_ai
from comparisons.conventions.coursera_lstm import deeplearning_ai_lstm
from comparisons.conventions.coursera_step import deeplearning_ai_lstm_step, deeplearning_ai_step
from comparisons.conventions.cs231n_layers import cs231n, cs231n_step
from comparisons.conventions.cs231n_lstm import cs231n_lstm, cs231n_lstm_step
from comparisons.conventions.d2l_gru import d2l_gru
from comparisons.conventions.gru import gru
from comparisons.conventions.min_char import min_char_rnn
from comparisons.conventions.min_char_lstm import min_char_rnn_lstm

#: name -> (adapter, its functions' conventional names, their positional arities)
CONVENTIONS = {
    "min-char-rnn": (min_char_rnn, ("lossFun",), (3,)),
    "cs231n": (cs231n, ("rnn_forward", "rnn_backward"), (5, 2)),
    "cs231n-step": (cs231n_step, ("rnn_step_forward", "rnn_step_backward"), (5, 2)),
    "deeplearning-ai": (deeplearning_ai, ("rnn_forward", "rnn_backward"), (3, 2)),
    # the gated cells (issue 26): each adapter carries ``fn.cell``, checked by check_cell's fast path
    "min-char-rnn-lstm": (min_char_rnn_lstm, ("lossFun",), (4,)),
    "cs231n-lstm": (cs231n_lstm, ("lstm_forward", "lstm_backward"), (5, 2)),
    "cs231n-lstm-step": (cs231n_lstm_step, ("lstm_step_forward", "lstm_step_backward"), (6, 3)),
    "deeplearning-ai-lstm": (deeplearning_ai_lstm, ("lstm_forward", "lstm_backward"), (3, 2)),
    "gru": (gru, ("gru_forward", "gru_backward"), (6, 2)),
    "d2l-gru": (d2l_gru, ("gru", "gru_backward"), (3, 4)),
    # deeplearning.ai's cell functions, checked on their own (issue 41)
    "deeplearning-ai-step": (deeplearning_ai_step, ("rnn_cell_forward", "rnn_cell_backward"), (3, 2)),
    "deeplearning-ai-lstm-step": (deeplearning_ai_lstm_step, ("lstm_cell_forward", "lstm_cell_backward"), (4, 3)),
    # cells written as classes (Class.forward, Class.backward), told apart by what their code names
    "class-gru": (class_gru, ("forward", "backward"), (2, 1)),
    "class-lstm": (class_lstm, ("forward", "backward"), (3, 2)),
    "class-gru-2019": (class_gru_2019, ("forward", "backward"), (2, 1)),
    "karpathy-lstm": (karpathy_lstm, ("forward", "backward"), (None, None)),
}
#: the class conventions' test beyond names and arities: (forward, backward) -> does it fit?
FITS = {
    "class-gru": lambda f, b: classes.fits("gru", _owner(f)),
    "class-lstm": lambda f, b: classes.fits("lstm", _owner(f)),
    "class-gru-2019": lambda f, b: classes.fits_2019(_owner(f)),
    "karpathy-lstm": classes.is_karpathy,
}


def _owner(method):
    owner = getattr(method, "__self__", None)
    return owner if isinstance(owner, type) else type(owner) if owner is not None else None
#: the contract's own signature, for detection beside the styles
CONTRACT = ("loss_and_grads", 3)


def space_of(convention: str) -> tuple[dict, str | None]:
    """(the case space, the gated cell or None) of a convention, without a file to adapt: the
    adapter's tags do not depend on the functions it wraps, so it is probed with stand-ins,
    except where it reads its function's source (min-char-rnn's LSTM: its constant)."""
    if convention == "min-char-rnn-lstm":
        from comparisons.conventions.min_char_lstm import SPACE
        return dict(SPACE), "lstm"
    if convention in ("class-gru", "class-lstm"):            # read off a class: none to probe with
        return {}, convention.removeprefix("class-")
    if convention == "class-gru-2019":
        return {}, "gru_d2l"
    adapter, names, _ = CONVENTIONS[convention]
    probe = adapter(*[lambda *a, **k: None] * len(names))
    return dict(probe.case_space), getattr(probe, "cell", None)


def arity(fn) -> int | None:
    """Positional parameters a caller must or may pass (``self`` of a bound method excluded)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def required_arity(fn) -> int | None:
    """Positional parameters a caller must pass: a keyword with a default
    (``loss_function='softmax'``) is the file's option, never a convention's argument (a GRU's
    ``lossFun(inputs, targets, hprev, loss_function=...)`` is not the LSTM's ``cprev``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in parameters)


def fits_arity(fn, a) -> bool:
    """``fn`` can be called with ``a`` positional arguments, counting only those it requires
    where it has defaults, and ``*args`` as taking any number."""
    if a is None:
        return True
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return required_arity(fn) <= a
    return required_arity(fn) == a


def callable_with(fn, a: int) -> bool:
    """``fn(*a arguments)`` binds: what a convention the user names asks of a function."""
    try:
        inspect.signature(fn).bind(*([None] * a))
    except TypeError:
        return False
    except ValueError:             # no signature to read: let the call say
        return True
    return True


def min_char_like(fn) -> str | None:
    """"min-char-rnn" or "min-char-rnn-lstm" for a function written like the gist's lossFun
    under another name (``lossfn``, ``compute_loss_and_gradients``): by role, its signature
    (inputs, targets, hprev[, cprev]) and its return statement (loss, five gradients, h[, c];
    or loss, ten per-gate gradients, h, c)."""
    import ast

    from comparisons.conventions.min_char import _tree

    try:
        names = [p.name for p in inspect.signature(fn).parameters.values() if p.default is p.empty
                 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    if len(names) not in (3, 4) or not names[2].lower().startswith("h"):
        return None
    tree = _tree(fn)
    sizes = {len(n.value.elts) for n in ast.walk(tree) if isinstance(n, ast.Return)
             and isinstance(n.value, ast.Tuple)} if tree is not None else set()
    if len(names) == 3 and 7 in sizes:
        return "min-char-rnn"
    if len(names) == 4 and names[3].lower().startswith("c") and sizes & {8, 13}:
        return "min-char-rnn-lstm"
    return None


def detect(functions: dict) -> list:
    """The conventions a file is written in, from its functions (name -> callable; methods
    as ``Class.name``): a list of (convention, names) in CONVENTIONS' order, the contract's
    ``loss_and_grads`` first. A pair counts when both names are there with the style's arities."""
    found = []
    if callable(functions.get(CONTRACT[0])):
        found.append(("contract", (CONTRACT[0],)))
    for name, (_, names, arities) in CONVENTIONS.items():
        prefixes = sorted({n.rsplit(".", 1)[0] + "." for n in functions if "." in n})
        for prefix in ([] if name in FITS else [""]) + prefixes:
            qualified = tuple(prefix + n for n in names)
            if not all(callable(functions.get(q)) and fits_arity(functions.get(q), a)
                       for q, a in zip(qualified, arities)):
                continue
            if name in FITS and not FITS[name](*(functions[q] for q in qualified)):
                continue
            found.append((name, qualified))
            break
    if not any(name.startswith("min-char-rnn") for name, _ in found):
        # the gist's lossFun renamed: found by its role, its own name kept
        for n in sorted(functions):
            style = None if "." in n or not callable(functions[n]) else min_char_like(functions[n])
            if style is not None:
                found.append((style, (n,)))
                break
    return found


def looks_like(name: str, functions: dict) -> str | None:
    """The convention whose functions, found among ``functions``, include ``name``, if any."""
    for convention, names in detect(functions):
        if convention != "contract" and name in names:
            return convention
    return None


__all__ = ["CONVENTIONS", "class_gru", "class_gru_2019", "class_lstm", "karpathy_lstm", "cs231n", "cs231n_lstm", "cs231n_lstm_step", "cs231n_step", "d2l_gru", "deeplearning_ai",
           "deeplearning_ai_lstm", "deeplearning_ai_lstm_step", "deeplearning_ai_step", "detect", "gru", "min_char_rnn", "min_char_rnn_lstm"]
