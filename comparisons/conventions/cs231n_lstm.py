"""cs231n and EECS 498: the LSTM as a layer, batch first, row vectors, gates i, f, o, g.

    next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
        a = x Wx + prev_h Wh + b  (N, 4H);  i, f, o = sigmoid(a[:, :H], a[:, H:2H], a[:, 2H:3H]),
        g = tanh(a[:, 3H:]);  next_c = f * prev_c + i * g;  next_h = o * tanh(next_c)
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)         x (N, T, D), h (N, T, H), c_0 = 0
    dx, dh0, dWx, dWh, db = lstm_backward(dh, cache)  dh (N, T, H): the upstream gradient

Mapping to the suite's LSTM (``cells.lstm_step``, PyTorch's layout, gates i, f, g, o):

    Wx (D, 4H) = W_ih[i, f, o, g blocks]^T     Wh (H, 4H) = W_hh[i, f, o, g]^T     b = b[i, f, o, g]
    h0 = h_0 (zeros)                            dh[:, t] = W_hy^T dL/dz_t (the direct part only)
    dh0 = dL/dh_0,  (step pair) dprev_c of the first step = dL/dc_0

The step pair is checked over T steps: the harness runs ``lstm_step_forward`` T times and
``lstm_step_backward`` back, carrying dprev_h into the previous step's dnext_h (added to its
direct part) and dprev_c into its dnext_c, as a correct ``lstm_backward`` does; so a step that
ignores dnext_c, or uses c_t where prev_c belongs, fails at T > 1 where T = 1 would hide it.
NumPy arrays, or torch tensors without autograd (EECS 498).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import (arg_names, as_numpy, call, handed, head, name_of, require_callables,
                                            returned, unbatched, unchanged, Writes)
from comparisons.conventions._adapt import ONE_SEQUENCE
from comparisons.conventions._gates import GatedProblem, arrays_mode, back, gated, reorder

ORDER = ("i", "f", "o", "g")
NAMES = ("names: W_ih = dWx^T, W_hh = dWh^T, b = db, each with cs231n's gate blocks i, f, o, g put in "
         "PyTorch's order i, f, g, o; h0 = {h0}; dL_dx = dx")


def _weights(p):
    """(Wx, Wh, b) in cs231n's layout from the suite's W_ih, W_hh, b."""
    return (reorder(p.params["W_ih"], ORDER, "lstm").T, reorder(p.params["W_hh"], ORDER, "lstm").T,
            reorder(p.params["b"], ORDER, "lstm"))


def _grads(p, dWx, dWh, db, top) -> dict:
    return {"W_ih": back(as_numpy("dWx", dWx, (p.D, 4 * p.H), p.dtype).T, ORDER, "lstm"),
            "W_hh": back(as_numpy("dWh", dWh, (p.H, 4 * p.H), p.dtype).T, ORDER, "lstm"),
            "b": back(as_numpy("db", db, (4 * p.H,), p.dtype), ORDER, "lstm"), **top}


def _device_check(arrays, device):
    if arrays not in ("auto", "numpy", "torch"):
        raise ValueError(f"arrays: expected 'auto', 'numpy' or 'torch'; got {arrays!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda":
        from reference.torch_autograd import device_for
        device_for(device)


def cs231n_lstm(lstm_forward, lstm_backward, *, arrays="auto", device="cpu", batch=True):
    """cs231n's ``lstm_forward(x, h0, Wx, Wh, b) -> (h, cache)`` and ``lstm_backward(dh, cache)
    -> (dx, dh0, dWx, dWh, db)`` (module docstring), checked against the suite's LSTM.
    ``batch`` False: one sequence without a batch axis (x (T, D), h0 (H,), dh (T, H))."""
    require_callables(lstm_forward=lstm_forward, lstm_backward=lstm_backward)
    _device_check(arrays, device)
    fwd, bwd = name_of(lstm_forward, "lstm_forward"), name_of(lstm_backward, "lstm_backward")
    inputs_text = f"an input ({', '.join(arg_names(lstm_forward, ('x', 'h0', 'Wx', 'Wh', 'b')))})"
    upstream = arg_names(lstm_backward, ("dh",))[0]
    mode = {"arrays": arrays}

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "cs231n")

        def run(kind):
            h0 = np.zeros((p.B, p.H), p.dtype)
            inputs = [unbatched(p.xs.transpose(1, 0, 2), batch), unbatched(h0, batch), *_weights(p)]
            given = [handed(kind, a, device) for a in inputs]
            h, cache = returned(fwd, call(fwd, inputs_text, lstm_forward, *given), 2, "(h, cache)")
            unchanged(fwd, inputs_text, given, inputs)
            h = as_numpy(f"h ({fwd})", h, (p.B, p.T, p.H), p.dtype)
            L, direct, top = head(params, np.concatenate([h0[None], h.transpose(1, 0, 2)]), ys, p.config)
            dh = direct.transpose(1, 0, 2)
            dh = unbatched(dh, batch)
            dh_given = handed(kind, dh, device)
            out = call(bwd, f"its upstream gradient {upstream}", lstm_backward, dh_given, cache)
            unchanged(bwd, f"its upstream gradient {upstream}", [dh_given], [dh])
            dx, dh0, dWx, dWh, db = returned(bwd, out, 5, "(dx, dh0, dWx, dWh, db)")
            grads = {**_grads(p, dWx, dWh, db, top), "h0": as_numpy("dh0", dh0, (p.B, p.H), p.dtype)}
            dL_dx = as_numpy("dx", dx, (p.B, p.T, p.D), p.dtype).transpose(1, 0, 2)
            return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None,
                             np.ascontiguousarray(dL_dx))
        return arrays_mode(run, mode)

    fn = gated(loss_and_grads, "lstm", f"cs231n_lstm({fwd}, {bwd})", None if batch else ONE_SEQUENCE)
    fn.names_note = NAMES.format(h0="dh0")
    fn.batch = batch
    return fn


def cs231n_lstm_step(step_forward, step_backward, *, arrays="auto", device="cpu", batch=True):
    """cs231n's ``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache)``
    and ``lstm_step_backward(dnext_h, dnext_c, cache) -> (dx, dprev_h, dprev_c, dWx, dWh, db)``,
    chained over T steps by a correct harness (module docstring)."""
    require_callables(step_forward=step_forward, step_backward=step_backward)
    _device_check(arrays, device)
    fwd, bwd = name_of(step_forward, "lstm_step_forward"), name_of(step_backward, "lstm_step_backward")
    inputs_text = f"an input ({', '.join(arg_names(step_forward, ('x', 'prev_h', 'prev_c', 'Wx', 'Wh', 'b')))})"
    upstream_names = list(arg_names(step_backward, ("dnext_h", "dnext_c")))
    upstream = ", ".join(upstream_names)
    mode = {"arrays": arrays}
    writes = Writes()

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "cs231n")

        def run(kind):
            Wx, Wh, b = _weights(p)
            weights = [handed(kind, a, device) for a in (Wx, Wh, b)]
            h = [np.zeros((p.B, p.H), p.dtype)]
            c = np.zeros((p.B, p.H), p.dtype)
            caches = []
            for t in range(p.T):
                inputs = [unbatched(a, batch) for a in (p.xs[t], h[-1], c)]
                given = [handed(kind, a, device) for a in inputs]
                out = call(fwd, inputs_text, step_forward, *given, *weights)
                next_h, next_c, cache = returned(fwd, out, 3, "(next_h, next_c, cache)")
                unchanged(fwd, inputs_text, given + weights, inputs + [Wx, Wh, b])
                h.append(as_numpy(f"next_h ({fwd})", next_h, (p.B, p.H), p.dtype))
                c = as_numpy(f"next_c ({fwd})", next_c, (p.B, p.H), p.dtype)
                caches.append(cache)
            L, direct, top = head(params, np.stack(h), ys, p.config)
            dh_carry, dc_carry = np.zeros((p.B, p.H), p.dtype), np.zeros((p.B, p.H), p.dtype)
            dx = np.zeros((p.T, p.B, p.D))
            sums = [np.zeros((p.D, 4 * p.H)), np.zeros((p.H, 4 * p.H)), np.zeros(4 * p.H)]
            for t in range(p.T - 1, -1, -1):
                # dnext_h and dnext_c are temporaries of the course's lstm_backward loop: a write into
                # them (``dnext_c += ...``) harms nothing there, so it is a note (Writes), judged on copies
                upstream_arrays = [unbatched(a, batch) for a in (direct[t] + dh_carry, dc_carry)]
                upstream_given = [writes.scratch(kind, a, device) for a in upstream_arrays]
                out = call(bwd, f"its upstream gradients ({upstream})", step_backward, *upstream_given, caches[t])
                writes.check(bwd, upstream_names, upstream_given, upstream_arrays)
                dx_t, dprev_h, dprev_c, dWx, dWh, db = returned(
                    bwd, out, 6, "(dx, dprev_h, dprev_c, dWx, dWh, db)")
                dx[t] = as_numpy("dx", dx_t, (p.B, p.D), p.dtype)
                dh_carry = as_numpy("dprev_h", dprev_h, (p.B, p.H), p.dtype)
                dc_carry = as_numpy("dprev_c", dprev_c, (p.B, p.H), p.dtype)
                for k, (name, g, shape) in enumerate((("dWx", dWx, (p.D, 4 * p.H)), ("dWh", dWh, (p.H, 4 * p.H)),
                                                      ("db", db, (4 * p.H,)))):
                    sums[k] += as_numpy(name, g, shape, p.dtype)
            grads = {**_grads(p, *(s.astype(p.dtype) for s in sums), top), "h0": dh_carry, "c0": dc_carry}
            return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, dx.astype(p.dtype))
        return arrays_mode(run, mode)

    fn = gated(loss_and_grads, "lstm", f"cs231n_lstm_step({fwd}, {bwd})", None if batch else ONE_SEQUENCE)
    fn.batch = batch
    fn.names_note = NAMES.format(h0="the first step's dprev_h") + ", c0 = the first step's dprev_c"
    fn.writes = writes
    return fn
