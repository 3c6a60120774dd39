"""deeplearning.ai's "Sequence Models", week 1: the cell functions, checked on their own as
cs231n's step pairs are, column-major, parameters in a dict.

    a_next, yt_pred, cache = rnn_cell_forward(xt, a_prev, parameters)       xt (n_x, m), a (n_a, m)
    gradients = rnn_cell_backward(da_next, cache)        {"dxt", "da_prev", "dWax", "dWaa", "dba"}
    a_next, c_next, yt_pred, cache = lstm_cell_forward(xt, a_prev, c_prev, parameters)
    gradients = lstm_cell_backward(da_next, dc_next, cache)
        {"dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"}

Mapping: as ``coursera`` (Wax = W_xh, Waa = W_hh, ba = b_h) and ``coursera_lstm`` (Wf = [W_hh_f
W_ih_f] on [a_prev; xt], gates f, i, c = g, o). The harness is the course's own
``rnn_backward`` / ``lstm_backward``, written correctly: the cells run forward over T steps
and backward in reverse, ``da_next = da[:, :, t] + da_prevt`` and (LSTM) ``dc_next = dc_prevt``,
the parameter gradients summed. So a cell that uses a_next where a_prev belongs, or drops
dc_next, fails at T > 1. ``yt_pred`` (the course's softmax) is not used: the suite's output
layer is put on the a's. ``da_next`` and ``dc_next`` are temporaries of that loop: a cell
writing into them gets a note, not a failure (``_adapt.Writes``).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import (Writes, arg_names, as_numpy, call, gradients_dict, h0_gradient, head,
                                            layer_problem, name_of, read_only, require_callables, returned,
                                            tagged)
from comparisons.conventions._gates import GatedProblem, gated
from comparisons.conventions.coursera_lstm import GATES, course_parameters

RNN_GRADIENTS = ("dxt", "da_prev", "dWax", "dWaa", "dba")
LSTM_GRADIENTS = ("dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")
#: PyTorch's gate order
TORCH_ORDER = ("i", "f", "g", "o")


def deeplearning_ai_step(rnn_cell_forward, rnn_cell_backward):
    """``rnn_cell_forward(xt, a_prev, parameters) -> (a_next, yt_pred, cache)`` and
    ``rnn_cell_backward(da_next, cache) -> gradients`` (module docstring), chained over T."""
    require_callables(rnn_cell_forward=rnn_cell_forward, rnn_cell_backward=rnn_cell_backward)
    fwd, bwd = name_of(rnn_cell_forward, "rnn_cell_forward"), name_of(rnn_cell_backward, "rnn_cell_backward")
    inputs_text = f"an input ({', '.join(arg_names(rnn_cell_forward, ('xt', 'a_prev', 'parameters')))})"
    upstream = arg_names(rnn_cell_backward, ("da_next",))[0]
    writes = Writes()

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                       reduction="mean", truncate=None):
        p = layer_problem("deeplearning.ai", params, xs, ys, hidden, output, loss, reduction, truncate)
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        parameters = {k: read_only(v) for k, v in {
            "Wax": p.params["W_xh"], "Waa": p.params["W_hh"], "ba": p.params["b_h"][:, None],
            "Wya": p.params["W_hy"], "by": p.params["b_y"][:, None]}.items()}
        a = [np.ascontiguousarray(h0.T)]
        caches = []
        for t in range(p.T):
            out = call(fwd, inputs_text, rnn_cell_forward, read_only(p.xs[t].T), read_only(a[-1]), parameters)
            a_next, _, cache = returned(fwd, out, 3, "(a_next, yt_pred, cache)")
            a.append(as_numpy(f"a_next ({fwd})", a_next, (p.H, p.B), p.dtype))
            caches.append(cache)
        hs = np.stack([a_t.T for a_t in a])                            # h_0..h_T, time-major
        L, direct, top = head(p.params, hs, p.ys, {"output": output, "loss": loss, "reduction": reduction})
        da_prev = np.zeros((p.H, p.B), p.dtype)
        dx = np.zeros((p.T, p.B, p.D))
        sums = {"W_xh": np.zeros((p.H, p.D)), "W_hh": np.zeros((p.H, p.H)), "b_h": np.zeros(p.H)}
        for t in range(p.T - 1, -1, -1):
            da_next = direct[t].T + da_prev
            given = writes.scratch("numpy", da_next)
            g = gradients_dict(bwd, call(bwd, f"its upstream gradient {upstream}", rnn_cell_backward, given,
                                         caches[t]), RNN_GRADIENTS)
            writes.check(bwd, [upstream], [given], [da_next])
            dx[t] = as_numpy("dxt", g["dxt"], (p.D, p.B), p.dtype).T
            da_prev = as_numpy("da_prev", g["da_prev"], (p.H, p.B), p.dtype)
            sums["W_xh"] += as_numpy("dWax", g["dWax"], (p.H, p.D), p.dtype)
            sums["W_hh"] += as_numpy("dWaa", g["dWaa"], (p.H, p.H), p.dtype)
            sums["b_h"] += as_numpy("dba", g["dba"], (p.H,), p.dtype)
        grads = {**{k: v.astype(p.dtype) for k, v in sums.items()}, **top, **h0_gradient(p.params, da_prev.T)}
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, dx.astype(p.dtype))

    fn = tagged(loss_and_grads, f"deeplearning_ai_step({fwd}, {bwd})", {"hidden": "tanh"})
    fn.writes = writes
    return fn


def deeplearning_ai_lstm_step(lstm_cell_forward, lstm_cell_backward):
    """``lstm_cell_forward(xt, a_prev, c_prev, parameters) -> (a_next, c_next, yt_pred, cache)``
    and ``lstm_cell_backward(da_next, dc_next, cache) -> gradients`` (module docstring),
    chained over T and checked against the suite's LSTM."""
    require_callables(lstm_cell_forward=lstm_cell_forward, lstm_cell_backward=lstm_cell_backward)
    fwd, bwd = name_of(lstm_cell_forward, "lstm_cell_forward"), name_of(lstm_cell_backward, "lstm_cell_backward")
    inputs_text = f"an input ({', '.join(arg_names(lstm_cell_forward, ('xt', 'a_prev', 'c_prev', 'parameters')))})"
    upstream_names = list(arg_names(lstm_cell_backward, ("da_next", "dc_next")))
    upstream = ", ".join(upstream_names)
    writes = Writes()

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "deeplearning.ai")
        H = p.H
        parameters = {k: read_only(v) for k, v in course_parameters(params, H).items()}
        a, c = [np.zeros((H, p.B), p.dtype)], np.zeros((H, p.B), p.dtype)
        caches = []
        for t in range(p.T):
            out = call(fwd, inputs_text, lstm_cell_forward, read_only(p.xs[t].T), read_only(a[-1]), read_only(c),
                       parameters)
            a_next, c_next, _, cache = returned(fwd, out, 4, "(a_next, c_next, yt_pred, cache)")
            a.append(as_numpy(f"a_next ({fwd})", a_next, (H, p.B), p.dtype))
            c = as_numpy(f"c_next ({fwd})", c_next, (H, p.B), p.dtype)
            caches.append(cache)
        L, direct, top = head(params, np.stack([a_t.T for a_t in a]), ys, p.config)
        da_prev, dc_prev = np.zeros((H, p.B), p.dtype), np.zeros((H, p.B), p.dtype)
        dx = np.zeros((p.T, p.B, p.D))
        W = {k: np.zeros((H, H + p.D)) for k in GATES}
        b = {k: np.zeros(H) for k in GATES}
        for t in range(p.T - 1, -1, -1):
            upstream_arrays = [direct[t].T + da_prev, dc_prev]
            given = [writes.scratch("numpy", u) for u in upstream_arrays]
            g = gradients_dict(bwd, call(bwd, f"its upstream gradients ({upstream})", lstm_cell_backward, *given,
                                         caches[t]), LSTM_GRADIENTS)
            writes.check(bwd, upstream_names, given, upstream_arrays)
            dx[t] = as_numpy("dxt", g["dxt"], (p.D, p.B), p.dtype).T
            da_prev = as_numpy("da_prev", g["da_prev"], (H, p.B), p.dtype)
            dc_prev = as_numpy("dc_prev", g["dc_prev"], (H, p.B), p.dtype)
            for k in GATES:
                W[k] += as_numpy(f"dW{k}", g[f"dW{k}"], (H, H + p.D), p.dtype)
                b[k] += as_numpy(f"db{k}", g[f"db{k}"], (H,), p.dtype)
        course_of = {v: k for k, v in GATES.items()}
        grads = {"W_hh": np.concatenate([W[course_of[t]][:, :H] for t in TORCH_ORDER]),
                 "W_ih": np.concatenate([W[course_of[t]][:, H:] for t in TORCH_ORDER]),
                 "b": np.concatenate([b[course_of[t]] for t in TORCH_ORDER]), **top,
                 "h0": da_prev.T, "c0": dc_prev.T}
        return Gradients(L, {k: np.ascontiguousarray(v).astype(p.dtype) for k, v in grads.items()}, None,
                         dx.astype(p.dtype))

    fn = gated(loss_and_grads, "lstm", f"deeplearning_ai_lstm_step({fwd}, {bwd})")
    fn.names_note = ("names: W_hh = the a_prev columns of dWi, dWf, dWc, dWo summed over the steps (gates i, f, "
                     "g = c, o), W_ih = their xt columns, b = dbi, dbf, dbc, dbo; h0 = the first step's da_prev^T, "
                     "c0 = its dc_prev^T; dL_dx = dxt per step")
    fn.writes = writes
    return fn
