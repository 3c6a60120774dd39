"""deeplearning.ai's "Sequence Models", week 1: the LSTM step by step, column-major, one
weight matrix per gate acting on the stacked [a_prev; xt].

    concat = [a_prev; xt]  (n_a + n_x, m)
    ft = sigmoid(Wf concat + bf),  it = sigmoid(Wi concat + bi),  cct = tanh(Wc concat + bc)
    c_next = ft * c_prev + it * cct,  ot = sigmoid(Wo concat + bo),  a_next = ot * tanh(c_next)
    a, y, c, caches = lstm_forward(x, a0, parameters)     x (n_x, m, T_x), a and c (n_a, m, T_x)
    gradients = lstm_backward(da, caches)                  {"dx", "da0", "dWf", "dbf", "dWi", "dbi",
                                                            "dWc", "dbc", "dWo", "dbo"}

Mapping to the suite's LSTM (PyTorch's layout, gates i, f, g, o; g is the course's cct):

    Wf = [W_hh_f  W_ih_f]  (n_a, n_a + n_x): the gate's rows of W_hh, then of W_ih
    bf (n_a, 1) = b_f;  likewise Wi, Wc (gate g), Wo;   Wy (n_y, n_a) = W_hy, by = b_y
    a0 = h_0^T (zeros), c_0 = 0 (the course's lstm_forward starts there)
    da[:, :, t] = W_hy^T dL/dz_t (the upstream part only: carrying da_prevt is the derivation's job)

``y`` is the course's own softmax output and is not used: the suite's output layer is put on
``a``. The course's classic slip, ``lstm_cell_backward(da[:, :, t], ...)`` without ``+ da_prevt``,
drops the hidden-state carry and is diagnosed ``hidden_carry_dropped``.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import (arg_names, as_numpy, call, gradients_dict, head, name_of, read_only,
                                            require_callables, returned)
from comparisons.conventions._gates import GatedProblem, gated

#: the course's gate names -> PyTorch's
GATES = {"f": "f", "i": "i", "c": "g", "o": "o"}
GRADIENTS = ("dx", "da0", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")


def course_parameters(params: dict, H: int) -> dict:
    """The course's parameters dict from the suite's LSTM: ``Wf = [W_hh_f  W_ih_f]``, ``bf``
    (n_a, 1), ... for gates f, i, c (PyTorch's g), o; ``Wy``, ``by``."""
    order = ("i", "f", "g", "o")
    block = lambda W, g: W[order.index(g) * H:(order.index(g) + 1) * H]
    parameters = {}
    for course, g in GATES.items():
        parameters[f"W{course}"] = np.concatenate([block(params["W_hh"], g), block(params["W_ih"], g)], axis=1)
        parameters[f"b{course}"] = block(params["b"], g)[:, None]
    parameters["Wy"], parameters["by"] = params["W_hy"], params["b_y"][:, None]
    return parameters


def deeplearning_ai_lstm(lstm_forward, lstm_backward):
    """The Coursera style's ``lstm_forward(x, a0, parameters) -> (a, y, c, caches)`` and
    ``lstm_backward(da, caches) -> gradients`` (module docstring)."""
    require_callables(lstm_forward=lstm_forward, lstm_backward=lstm_backward)
    fwd, bwd = name_of(lstm_forward, "lstm_forward"), name_of(lstm_backward, "lstm_backward")
    inputs_text = f"an input ({', '.join(arg_names(lstm_forward, ('x', 'a0', 'parameters')))})"
    upstream = arg_names(lstm_backward, ("da",))[0]
    torch_order = ("i", "f", "g", "o")

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("lstm", params, xs, ys, output, loss, reduction, truncate, "deeplearning.ai")
        H = p.H
        parameters = course_parameters(params, H)
        a0 = np.zeros((H, p.B), p.dtype)
        out = call(fwd, inputs_text, lstm_forward, read_only(p.xs.transpose(2, 1, 0)), read_only(a0),
                   {k: read_only(v) for k, v in parameters.items()})
        a, _, _, caches = returned(fwd, out, 4, "(a, y, c, caches)", kinds=(tuple,))
        a = as_numpy(f"a ({fwd})", a, (H, p.B, p.T), p.dtype)
        hs = np.concatenate([a0.T[None], a.transpose(2, 1, 0)])
        L, direct, top = head(params, hs, ys, p.config)
        g = call(bwd, f"its upstream gradient {upstream}", lstm_backward, read_only(direct.transpose(2, 1, 0)), caches)
        g = gradients_dict(bwd, g, GRADIENTS)
        W = {c: as_numpy(f"dW{c}", g[f"dW{c}"], (H, H + p.D), p.dtype) for c in GATES}
        b = {c: as_numpy(f"db{c}", g[f"db{c}"], (H,), p.dtype) for c in GATES}
        course_of = {v: k for k, v in GATES.items()}
        grads = {"W_hh": np.concatenate([W[course_of[t]][:, :H] for t in torch_order]),
                 "W_ih": np.concatenate([W[course_of[t]][:, H:] for t in torch_order]),
                 "b": np.concatenate([b[course_of[t]] for t in torch_order]), **top,
                 "h0": as_numpy("da0", g["da0"], (H, p.B), p.dtype).T}
        dL_dx = as_numpy("dx", g["dx"], (p.D, p.B, p.T), p.dtype).transpose(2, 1, 0)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, np.ascontiguousarray(dL_dx))

    fn = gated(loss_and_grads, "lstm", f"deeplearning_ai_lstm({fwd}, {bwd})")
    fn.names_note = ("names: W_hh = the a_prev columns of dWi, dWf, dWc, dWo stacked (gates i, f, g = c, o), "
                     "W_ih = their xt columns, b = dbi, dbf, dbc, dbo; h0 = da0^T; dL_dx = dx")
    return fn
