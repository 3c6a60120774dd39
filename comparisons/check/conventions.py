"""Derivations as people write them, checked as they are: min-char-rnn, cs231n / EECS 498
and deeplearning.ai code turned into the ``loss_and_grads`` signature (docs/conventions.md).

Each adapter returns a function the checker takes like any other, carrying in
``fn.case_space`` the part of the case space its style supports (one-hot inputs and
no batch for min-char-rnn, tanh for the layer styles, ...); explicit arguments to
``check_derivation`` win over it. The adapters are thin on purpose: every equation of
the mapping is one line here, and the output layer and loss the layer styles leave out
are put on top with ``manual.rnn``'s own verified code, so a disagreement is the user's
derivation's, not the adapter's.

Every array handed to the user's functions is read-only (NumPy) or compared after the
call (torch): writing into an input corrupts the caller's data (a cs231n backward that
adds the carried gradient into the caller's ``dh`` returns right gradients and breaks
the caller's next check), so it fails the case, saying so.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, validate
from comparisons.check.outputs import BadOutput, InputModified, to_numpy
from manual.activations import ACTIVATIONS
from manual.rnn import Forward, output_error

LAYER_PARAMS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def _read_only(array: np.ndarray) -> np.ndarray:
    out = np.array(array, copy=True)
    out.flags.writeable = False
    return out


def _call(where: str, what: str, fn, *args):
    """Call the user's ``fn``; a write into a read-only argument becomes a reason that says so."""
    try:
        return fn(*args)
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        raise InputModified(_modified(where, what) + f" ({exc})") from None


def _modified(where: str, what: str) -> str:
    return (f"{where} wrote into {what}, which belongs to the caller: every gradient it returns may be "
            f"right, yet the caller's next use of that array (a numeric check, a training step) sees "
            f"corrupted values; work on a copy")


def _only(name: str, value, allowed: tuple, style: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {style} code computes {' or '.join(map(repr, allowed))} only; got {value!r}")


# --- the output layer and loss on top of a layer-style forward pass ------------------------

def _head(params: dict, h: np.ndarray, ys, config: dict):
    """L, dL/dh_t's direct part W_hy^T dL/dz_t (T, B, H), and dL/dW_hy, dL/db_y, for hidden
    states h (T+1, B, H) from the user's forward pass: manual.rnn's own output layer and loss."""
    T, B, H = h.shape[0] - 1, h.shape[1], h.shape[2]
    z = (h[1:].reshape(T * B, H) @ params["W_hy"].T).reshape(T, B, -1) + params["b_y"]
    f = Forward(None, h, z, ACTIVATIONS[config["output"]][0](z))
    L, dL_dz = output_error(f, ys, config["loss"], config["reduction"], config["output"])
    G = dL_dz.reshape(T * B, -1)
    head = {"W_hy": G.T @ h[1:].reshape(T * B, H), "b_y": G.sum(0)}
    return L, dL_dz @ params["W_hy"], head


def _h0_gradient(params: dict, dh0: np.ndarray) -> dict:
    """The contract's h0 gradient from the style's (B, H) dh0: summed when h0 is shared."""
    if "h0" not in params:
        return {}
    return {"h0": dh0 if params["h0"].ndim == 2 else dh0.sum(0)}


def _as_numpy(name: str, value, shape: tuple, dtype) -> np.ndarray:
    """A returned gradient as a NumPy array of the case's dtype, or BadOutput naming it."""
    value = to_numpy(value)
    if not isinstance(value, np.ndarray):
        raise BadOutput(f"{name}: expected an array; got {type(value).__name__}")
    # (H, 1) for (H,) is the style's column vector; any other shape is the user's to fix
    if tuple(d for d in value.shape if d != 1) != tuple(d for d in shape if d != 1):
        raise BadOutput(f"{name}: expected shape {shape}; got {value.shape}")
    return value.reshape(shape).astype(dtype, copy=False)


def _require_callables(**functions) -> None:
    for name, f in functions.items():
        if not callable(f):
            raise TypeError(f"{name}: expected a callable; got {type(f).__name__}")


def _layer_problem(style: str, params, xs, ys, hidden, output, loss, reduction, truncate):
    """The validated problem of a layer-style call: tanh units, full BPTT (what the style computes)."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss, reduction=reduction,
                 truncate=truncate)
    _only("hidden", hidden, ("tanh",), style)
    _only("truncate", truncate, (None,), style)
    return p


def _tagged(fn, name: str, space: dict):
    fn.__name__ = fn.__qualname__ = name
    fn.case_space = space
    return fn


# --- min-char-rnn ---------------------------------------------------------------------------

MIN_CHAR_GLOBALS = ("Wxh", "Whh", "Why", "bh", "by", "vocab_size")


def min_char_rnn(lossFun):
    """karpathy's min-char-rnn ``lossFun(inputs, targets, hprev)``.

    Returns ``(loss, dWxh, dWhh, dWhy, dbh, dby, h_last)``; the parameters are globals of
    lossFun's module (set here for each call, restored after, also when it raises);
    inputs and targets are lists of indices into the vocabulary (one-hot x_t, D = O);
    hprev is (H, 1); the loss is summed over time. One sequence at a time: a batch is
    looped over and averaged, as the contract's loss averages it. h0's gradient is not
    part of this style, so it is not checked (named in the summary).
    """
    if not callable(lossFun):
        raise TypeError(f"lossFun: expected a callable; got {type(lossFun).__name__}")
    module_globals = getattr(lossFun, "__globals__", None)
    if not isinstance(module_globals, dict):
        raise TypeError("lossFun: expected a Python function whose module holds Wxh, Whh, Why, bh, by")

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="cross_entropy",
                       reduction="sum", truncate=None):
        p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss, reduction=reduction,
                     truncate=truncate)
        _only("hidden", hidden, ("tanh",), "min-char-rnn")
        _only("loss", loss, ("cross_entropy",), "min-char-rnn")
        _only("reduction", reduction, ("sum", "mean"), "min-char-rnn")
        _only("truncate", truncate, (None,), "min-char-rnn")
        if p.D != p.O:
            raise ValueError(f"xs: min-char-rnn reads and predicts one vocabulary: D == O; got D={p.D}, O={p.O}")
        if not np.all((p.xs == 0) | (p.xs == 1)) or not np.all(p.xs.sum(-1) == 1):
            raise ValueError("xs: min-char-rnn takes character indices: every x_t must be a one-hot row")
        values = {"Wxh": p.params["W_xh"], "Whh": p.params["W_hh"], "Why": p.params["W_hy"],
                  "bh": p.params["b_h"][:, None], "by": p.params["b_y"][:, None]}
        values = {k: _read_only(v) for k, v in values.items()} | {"vocab_size": p.D}
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        scale = 1.0 / p.T if reduction == "mean" else 1.0     # lossFun sums over time
        missing = object()
        saved = {k: module_globals.get(k, missing) for k in MIN_CHAR_GLOBALS}
        total, sums = 0.0, {k: np.zeros(v.shape, np.float64) for k, v in p.params.items() if k != "h0"}
        try:
            module_globals.update(values)
            for b in range(p.B):
                inputs = [int(i) for i in p.xs[:, b].argmax(-1)]
                targets = [int(i) for i in p.ys[:, b]]
                out = _call("lossFun", "hprev or a parameter", lossFun, inputs, targets, _read_only(h0[b][:, None]))
                if not isinstance(out, tuple) or len(out) != 7:
                    what = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
                    raise BadOutput(f"lossFun returned {what}; expected (loss, dWxh, dWhh, dWhy, dbh, dby, hprev)")
                value, dWxh, dWhh, dWhy, dbh, dby, _ = out
                total += float(np.asarray(value)) * scale / p.B
                for k, g in (("W_xh", dWxh), ("W_hh", dWhh), ("W_hy", dWhy), ("b_h", dbh), ("b_y", dby)):
                    sums[k] += _as_numpy(f"d{k}", g, p.params[k].shape, np.float64) * scale / p.B
        finally:
            for k, v in saved.items():
                if v is missing:
                    module_globals.pop(k, None)
                else:
                    module_globals[k] = v
        return Gradients(total, {k: v.astype(p.dtype) for k, v in sums.items()}, None)

    return _tagged(loss_and_grads, f"min_char_rnn({getattr(lossFun, '__name__', 'lossFun')})", {
        "hidden": "tanh", "loss": "cross_entropy", "reduction": "sum", "inputs": "one_hot",
        "tie_D_O": True, "sizes": {"B": 1}, "h0": ("vector",), "params": LAYER_PARAMS})


# --- cs231n / EECS 498 ------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def cs231n(rnn_forward, rnn_backward, *, arrays="auto", device="cpu"):
    """cs231n's ``rnn_forward(x, h0, Wx, Wh, b) -> (h, cache)`` and ``rnn_backward(dh, cache)
    -> (dx, dh0, dWx, dWh, db)``, batch first: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    h (N, T, H). ``arrays``: "numpy", "torch" (EECS 498: tensors, no autograd) or "auto"
    (NumPy first; torch tensors when the functions do not take NumPy arrays or return tensors).
    ``device``: where those tensors live ("cuda": the EECS 498 assignment on a Colab GPU).
    """
    _require_callables(rnn_forward=rnn_forward, rnn_backward=rnn_backward)
    if arrays not in ("auto", "numpy", "torch"):
        raise ValueError(f"arrays: expected 'auto', 'numpy' or 'torch'; got {arrays!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda":
        from reference.torch_autograd import device_for
        device_for(device)                               # BackendUnavailable without a GPU
    mode = {"arrays": arrays}

    def run(kind, p, config):
        x = p.xs.transpose(1, 0, 2)                                    # (N, T, D)
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        inputs = [x, h0, p.params["W_xh"].T, p.params["W_hh"].T, p.params["b_h"]]   # Wx = W_xh^T
        handed = [_handed(kind, a, device) for a in inputs]
        h, cache = _pair("rnn_forward", _call("rnn_forward", "an input (x, h0, Wx, Wh or b)", rnn_forward, *handed))
        _unchanged("rnn_forward", "an input (x, h0, Wx, Wh or b)", handed, inputs)
        h = _as_numpy("h (rnn_forward)", h, (p.B, p.T, p.H), p.dtype)
        hs = np.concatenate([h0[None], h.transpose(1, 0, 2)])      # h_0..h_T, time-major
        L, dh_direct, head = _head(p.params, hs, p.ys, config)
        dh = dh_direct.transpose(1, 0, 2)                              # upstream dL/dh_t, (N, T, H)
        dh_handed = _handed(kind, dh, device)
        out = _call("rnn_backward", "its upstream gradient dh", rnn_backward, dh_handed, cache)
        _unchanged("rnn_backward", "its upstream gradient dh", [dh_handed], [dh])
        if not isinstance(out, (tuple, list)) or len(out) != 5:
            got = f"{type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise BadOutput(f"rnn_backward returned a {got}; expected (dx, dh0, dWx, dWh, db)")
        dx, dh0, dWx, dWh, db = out
        grads = {"W_xh": _as_numpy("dWx", dWx, (p.D, p.H), p.dtype).T,
                 "W_hh": _as_numpy("dWh", dWh, (p.H, p.H), p.dtype).T,
                 "b_h": _as_numpy("db", db, (p.H,), p.dtype), **head,
                 **_h0_gradient(p.params, _as_numpy("dh0", dh0, (p.B, p.H), p.dtype))}
        dL_dx = _as_numpy("dx", dx, (p.B, p.T, p.D), p.dtype).transpose(1, 0, 2)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, dL_dx)

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                       reduction="mean", truncate=None):
        p = _layer_problem("cs231n", params, xs, ys, hidden, output, loss, reduction, truncate)
        config = dict(output=output, loss=loss, reduction=reduction)
        if mode["arrays"] != "auto":
            return run(mode["arrays"], p, config)
        try:
            result = run("numpy", p, config)
        except (TypeError, AttributeError, BadOutput) as exc:
            # EECS 498 code calls tensor methods (x.mm, torch.tanh) that NumPy arrays lack,
            # or returns tensors: try tensors, and keep to them once they work
            if _torch() is None:
                raise
            try:
                result = run("torch", p, config)
            except (TypeError, AttributeError):
                raise exc from None                   # not tensor code either: the NumPy error stands
            except Exception:
                if isinstance(exc, BadOutput):
                    # it ran on NumPy arrays and returned something malformed: that is the
                    # answer (a None return is not a sign of tensor code)
                    raise exc from None
                mode["arrays"] = "torch"              # it ran on tensors, then failed: its failure stands
                raise
            mode["arrays"] = "torch"
            return result
        mode["arrays"] = "numpy"
        return result

    name = getattr(rnn_forward, "__name__", "rnn_forward")
    return _tagged(loss_and_grads, f"cs231n({name}, {getattr(rnn_backward, '__name__', 'rnn_backward')})",
                   {"hidden": "tanh"})


def cs231n_step(step_forward, step_backward, *, arrays="auto", device="cpu"):
    """cs231n's ``rnn_step_forward(x, prev_h, Wx, Wh, b) -> (next_h, cache)`` and
    ``rnn_step_backward(dnext_h, cache) -> (dx, dprev_h, dWx, dWh, db)``: checked as T = 1."""
    _require_callables(step_forward=step_forward, step_backward=step_backward)

    def rnn_forward(x, h0, Wx, Wh, b):
        next_h, cache = _pair("rnn_step_forward", step_forward(x[:, 0], h0, Wx, Wh, b))
        return next_h[:, None], cache

    def rnn_backward(dh, cache):
        out = step_backward(dh[:, 0], cache)
        if not isinstance(out, (tuple, list)) or len(out) != 5:
            raise BadOutput("rnn_step_backward: expected (dx, dprev_h, dWx, dWh, db)")
        dx, dprev_h, dWx, dWh, db = out
        return dx[:, None], dprev_h, dWx, dWh, db

    fn = cs231n(rnn_forward, rnn_backward, arrays=arrays, device=device)
    fn.case_space = {**fn.case_space, "sizes": {"T": 1}}
    return _tagged(fn, f"cs231n_step({getattr(step_forward, '__name__', 'step_forward')}, "
                       f"{getattr(step_backward, '__name__', 'step_backward')})", fn.case_space)


def _pair(name: str, out) -> tuple:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise BadOutput(f"{name} returned {got}; expected (h, cache)")
    return tuple(out)


def _handed(kind: str, array: np.ndarray, device: str = "cpu"):
    """What the user's function receives: a read-only NumPy copy, or a fresh torch tensor."""
    if kind == "numpy":
        return _read_only(array)
    return _torch().tensor(np.array(array), device=device)


def _unchanged(where: str, what: str, handed: list, originals: list) -> None:
    """torch tensors cannot be made read-only: compare them with what was handed over."""
    for given, original in zip(handed, originals):
        if not isinstance(given, np.ndarray) and not np.array_equal(given.detach().cpu().numpy(), original):
            raise InputModified(_modified(where, what))


# --- deeplearning.ai ----------------------------------------------------------------------------

DLAI_GRADIENTS = ("dx", "da0", "dWax", "dWaa", "dba")


def deeplearning_ai(rnn_forward, rnn_backward):
    """The Coursera "Sequence Models" style: ``rnn_forward(x, a0, parameters) -> (a, y_pred,
    caches)`` and ``rnn_backward(da, caches) -> {"dx", "da0", "dWax", "dWaa", "dba"}``,
    column-major: x (n_x, m, T_x), a0 (n_a, m), a and da (n_a, m, T_x); parameters Wax
    (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1), Wya (n_y, n_a), by (n_y, 1). y_pred is the
    style's own output layer and is not used: the suite's is put on top of a.
    """
    _require_callables(rnn_forward=rnn_forward, rnn_backward=rnn_backward)

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                       reduction="mean", truncate=None):
        p = _layer_problem("deeplearning.ai", params, xs, ys, hidden, output, loss, reduction, truncate)
        x = p.xs.transpose(2, 1, 0)                                    # (n_x, m, T_x)
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        parameters = {"Wax": p.params["W_xh"], "Waa": p.params["W_hh"], "ba": p.params["b_h"][:, None],
                      "Wya": p.params["W_hy"], "by": p.params["b_y"][:, None]}
        out = _call("rnn_forward", "an input (x, a0 or a parameter)", rnn_forward, _read_only(x), _read_only(h0.T),
                    {k: _read_only(v) for k, v in parameters.items()})
        if not isinstance(out, tuple) or len(out) != 3:
            raise BadOutput(f"rnn_forward returned {type(out).__name__}; expected (a, y_pred, caches)")
        a, _, caches = out
        a = _as_numpy("a (rnn_forward)", a, (p.H, p.B, p.T), p.dtype)
        hs = np.concatenate([h0[None], a.transpose(2, 1, 0)])          # h_0..h_T, time-major
        L, dh_direct, head = _head(p.params, hs, p.ys, {"output": output, "loss": loss, "reduction": reduction})
        gradients = _call("rnn_backward", "its upstream gradient da", rnn_backward, _read_only(dh_direct.transpose(2, 1, 0)), caches)
        if not isinstance(gradients, dict) or not set(DLAI_GRADIENTS) <= set(gradients):
            got = sorted(map(str, gradients)) if isinstance(gradients, dict) else type(gradients).__name__
            raise BadOutput(f"rnn_backward returned {got}; expected a dict with keys {list(DLAI_GRADIENTS)}")
        g = gradients
        grads = {"W_xh": _as_numpy("dWax", g["dWax"], (p.H, p.D), p.dtype),
                 "W_hh": _as_numpy("dWaa", g["dWaa"], (p.H, p.H), p.dtype),
                 "b_h": _as_numpy("dba", g["dba"], (p.H,), p.dtype), **head,
                 **_h0_gradient(p.params, _as_numpy("da0", g["da0"], (p.H, p.B), p.dtype).T)}
        dL_dx = _as_numpy("dx", g["dx"], (p.D, p.B, p.T), p.dtype).transpose(2, 1, 0)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None,
                         np.ascontiguousarray(dL_dx))

    return _tagged(loss_and_grads, f"deeplearning_ai({getattr(rnn_forward, '__name__', 'rnn_forward')}, "
                                   f"{getattr(rnn_backward, '__name__', 'rnn_backward')})", {"hidden": "tanh"})


# --- by name, for the command line -----------------------------------------------------------------

CONVENTIONS = {
    "min-char-rnn": (min_char_rnn, ("lossFun",)),
    "cs231n": (cs231n, ("rnn_forward", "rnn_backward")),
    "cs231n-step": (cs231n_step, ("rnn_step_forward", "rnn_step_backward")),
    "deeplearning-ai": (deeplearning_ai, ("rnn_forward", "rnn_backward")),
}
