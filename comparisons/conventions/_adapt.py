"""What every convention adapter shares: handing the user's functions read-only arrays,
calling them so that a slip is reported in the student's own names, reading back what
they return, and the output layer and loss put on top of a layer-style forward pass.

The adapters are thin on purpose: the output layer and loss the layer styles leave out are
``manual.rnn``'s own verified code, so a disagreement is the user's derivation's, not the
adapter's.
"""

from __future__ import annotations

import inspect

import numpy as np

from bptt_xval.model import validate
from comparisons.check.outputs import BadOutput, InputModified, to_numpy
from manual.activations import ACTIVATIONS
from manual.output import Forward, output_error

LAYER_PARAMS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def read_only(array: np.ndarray) -> np.ndarray:
    out = np.array(array, copy=True)
    out.flags.writeable = False
    return out


def name_of(fn, default: str) -> str:
    return getattr(fn, "__name__", default)


def arg_names(fn, defaults: tuple) -> tuple:
    """The names the user gave their function's arguments (``dnext_h`` where the style
    says ``dh``): messages use them. ``defaults`` when the signature cannot be read."""
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return defaults
    return tuple(names[:len(defaults)]) + defaults[len(names):]


def call(where: str, what: str, fn, *args):
    """Call the user's ``fn``; a write into a read-only argument becomes a reason that says so."""
    try:
        return fn(*args)
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        raise InputModified(modified(where, what) + f" ({exc})") from None


def modified(where: str, what: str) -> str:
    return (f"{where} wrote into {what}, which belongs to the caller: every gradient it returns may be "
            f"right, yet the caller's next use of that array (a numeric check, a training step) sees "
            f"corrupted values; work on a copy")


def returned(where: str, out, n: int, expected: str, kinds=(tuple, list)) -> tuple:
    """``out`` as a tuple of ``n``, or BadOutput saying what came back in the student's names:
    None is said as such (a ``return`` missing is the commonest way to get here)."""
    if out is None:
        raise BadOutput(f"{where} returned None (nothing: is its `return` missing?); expected {expected}")
    if not isinstance(out, kinds) or len(out) != n:
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else f"a {type(out).__name__}"
        raise BadOutput(f"{where} returned {got}; expected {expected}")
    return tuple(out)


def gradients_dict(where: str, g, keys: tuple) -> dict:
    """A deeplearning.ai function's returned dict of gradients (``keys`` at least), or BadOutput saying what came back."""
    if g is None:
        raise BadOutput(f"{where} returned None (nothing: is its `return` missing?); expected a dict with keys "
                        f"{list(keys)}")
    if not isinstance(g, dict) or not set(keys) <= set(g):
        got = sorted(map(str, g)) if isinstance(g, dict) else type(g).__name__
        raise BadOutput(f"{where} returned {got}; expected a dict with keys {list(keys)}")
    return g


def only(name: str, value, allowed: tuple, style: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {style} code computes {' or '.join(map(repr, allowed))} only; got {value!r}")


def require_callables(**functions) -> None:
    for name, f in functions.items():
        if not callable(f):
            raise TypeError(f"{name}: expected a callable; got {type(f).__name__}")


def head(params: dict, h: np.ndarray, ys, config: dict):
    """L, dL/dh_t's direct part W_hy^T dL/dz_t (T, B, H), and dL/dW_hy, dL/db_y, for hidden
    states h (T+1, B, H) from the user's forward pass: manual.rnn's own output layer and loss."""
    T, B, H = h.shape[0] - 1, h.shape[1], h.shape[2]
    z = (h[1:].reshape(T * B, H) @ params["W_hy"].T).reshape(T, B, -1) + params["b_y"]
    f = Forward(None, h, z, ACTIVATIONS[config["output"]][0](z))
    L, dL_dz = output_error(f, ys, config["loss"], config["reduction"], config["output"])
    G = dL_dz.reshape(T * B, -1)
    grads = {"W_hy": G.T @ h[1:].reshape(T * B, H), "b_y": G.sum(0)}
    return L, dL_dz @ params["W_hy"], grads


def h0_gradient(params: dict, dh0: np.ndarray) -> dict:
    """The contract's h0 gradient from the style's (B, H) dh0: summed when h0 is shared."""
    if "h0" not in params:
        return {}
    return {"h0": dh0 if params["h0"].ndim == 2 else dh0.sum(0)}


def as_numpy(name: str, value, shape: tuple, dtype) -> np.ndarray:
    """A returned gradient as a NumPy array of the case's dtype, or BadOutput naming it."""
    if type(value) is np.ndarray and value.shape == shape:
        # the common case, and the per-step loops call this ~10^3 times a case: what the
        # general path below returns for it (a view of ``value`` in ``dtype``), without its checks
        return value if value.dtype == dtype else value.astype(dtype)
    value = to_numpy(value)
    if not isinstance(value, np.ndarray):
        raise BadOutput(f"{name}: expected an array; got {type(value).__name__}")
    # (H, 1) for (H,) is the style's column vector; any other shape is the user's to fix
    if tuple(d for d in value.shape if d != 1) != tuple(d for d in shape if d != 1):
        raise BadOutput(f"{name}: expected shape {shape}; got {value.shape}")
    return value.reshape(shape).astype(dtype, copy=False)


def layer_problem(style: str, params, xs, ys, hidden, output, loss, reduction, truncate):
    """The validated problem of a layer-style call: tanh units, full BPTT (what the style computes)."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss, reduction=reduction,
                 truncate=truncate)
    only("hidden", hidden, ("tanh",), style)
    only("truncate", truncate, (None,), style)
    return p


#: the case space of a single-sequence layout (no batch axis): one sequence, always
ONE_SEQUENCE = {"sizes": {"B": 1}, "fixed": ("B",)}


def one_sequence(space: dict) -> dict:
    """``space`` narrowed to one sequence (B = 1, fixed: ``--sizes`` cannot widen it)."""
    return {**space, "sizes": {**space.get("sizes", {}), "B": 1},
            "fixed": tuple(space.get("fixed", ())) + ("B",)}


def unbatched(array: np.ndarray, batch: bool) -> np.ndarray:
    """What a function without a batch axis is handed: ``array`` (B = 1 on axis 0) without it."""
    if batch:
        return array
    if array.shape[0] != 1:
        raise ValueError(f"xs: the single-sequence layout takes one sequence (B = 1); got B = {array.shape[0]}")
    return array[0]


def tagged(fn, name: str, space: dict):
    fn.__name__ = fn.__qualname__ = name
    fn.case_space = space
    return fn


def torch_module():
    try:
        import torch
    except ImportError:
        return None
    return torch


def handed(kind: str, array: np.ndarray, device: str = "cpu"):
    """What the user's function receives: a read-only NumPy copy, or a fresh torch tensor."""
    if kind == "numpy":
        return read_only(array)
    return torch_module().tensor(np.array(array), device=device)


class Writes:
    """The writes of a style's functions into arrays the course's own caller never reads again
    (a step backward's ``dnext_h``, ``dnext_c``: temporaries of the course's loop). They are
    judged on copies: a write is a note on the verdict, not a failure (issue 41: 15 correct
    cs231n ``lstm_step_backward``s that add into ``dnext_c`` were told they raise), unless
    ``strict`` (``--strict-inputs``). An array the caller reads again (a sequence backward's
    ``dh``, the weights, the forward's inputs) stays read-only: a write into it fails the case."""

    def __init__(self):
        self.strict = False
        self.seen = {}                 # where -> the names written into, in first-seen order

    def scratch(self, kind: str, array: np.ndarray, device: str = "cpu"):
        """A writable copy of ``array`` (NumPy) or a fresh tensor: what the function is handed."""
        if kind == "numpy":
            return np.array(array, copy=True)
        return torch_module().tensor(np.array(array), device=device)

    def check(self, where: str, names, given: list, originals: list) -> None:
        """After the call: note (or, strict, fail) each of ``given`` changed from its original."""
        written = [n for n, g, o in zip(names, given, originals)
                   if not _same(_host(g), o)]
        if not written:
            return
        if self.strict:
            raise InputModified(modified(where, " and ".join(written)) + " (--strict-inputs)")
        seen = self.seen.setdefault(where, [])
        seen += [n for n in written if n not in seen]

    def notes(self) -> list:
        """One line per function that wrote, for the verdict's notes (empty when none did)."""
        return [f"{where} writes into {', '.join(names)}, which the caller owns: harmless in the course's own "
                f"loop (a temporary there), so its gradients were judged on copies; --strict-inputs fails it"
                for where, names in self.seen.items()]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` holds what ``b`` does: the same bytes (the common, unwritten case, cheaply), else
    equal values, NaN equal to NaN (a write of the same values is no write)."""
    if a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return True
    return np.array_equal(a, b, equal_nan=True)


def _host(value) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.detach().cpu().numpy()


def unchanged(where: str, what: str, given: list, originals: list) -> None:
    """torch tensors cannot be made read-only: compare them with what was handed over."""
    for tensor, original in zip(given, originals):
        if not isinstance(tensor, np.ndarray) and not np.array_equal(tensor.detach().cpu().numpy(), original):
            raise InputModified(modified(where, what))
