"""deeplearning.ai's "Sequence Models" (Coursera), week 1, "Building your RNN step by step":
column-major arrays, parameters in a dict, caches handed from forward to backward.

    a_next = tanh(Waa a_prev + Wax xt + ba)          a_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)
    a, y_pred, caches = rnn_forward(x, a0, parameters)     x (n_x, m, T_x), a (n_a, m, T_x)
    gradients = rnn_backward(da, caches)                   {"dx", "da0", "dWax", "dWaa", "dba"}

Mapping to the seeds' symbols (the same orientation as the suite's: column vectors):

    Wax (n_a, n_x) = W_xh     Waa (n_a, n_a) = W_hh     ba (n_a, 1) = b_h     a0 (n_a, m) = h_0^T
    da[:, :, t] = W_hy^T dL/dz_t (the upstream part only, as for cs231n)

``y_pred`` is the style's own output layer and is not used: the suite's is put on top of ``a``.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import (arg_names, as_numpy, call, gradients_dict, h0_gradient, head,
                                            layer_problem, name_of, read_only, require_callables, returned, tagged)

GRADIENTS = ("dx", "da0", "dWax", "dWaa", "dba")


def deeplearning_ai(rnn_forward, rnn_backward):
    """The Coursera "Sequence Models" style: ``rnn_forward(x, a0, parameters) -> (a, y_pred,
    caches)`` and ``rnn_backward(da, caches) -> {"dx", "da0", "dWax", "dWaa", "dba"}``,
    column-major: x (n_x, m, T_x), a0 (n_a, m), a and da (n_a, m, T_x); parameters Wax
    (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1), Wya (n_y, n_a), by (n_y, 1).
    """
    require_callables(rnn_forward=rnn_forward, rnn_backward=rnn_backward)
    fwd, bwd = name_of(rnn_forward, "rnn_forward"), name_of(rnn_backward, "rnn_backward")
    fwd_args = arg_names(rnn_forward, ("x", "a0", "parameters"))
    upstream = arg_names(rnn_backward, ("da",))[0]

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                       reduction="mean", truncate=None):
        p = layer_problem("deeplearning.ai", params, xs, ys, hidden, output, loss, reduction, truncate)
        x = p.xs.transpose(2, 1, 0)                                    # (n_x, m, T_x)
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        parameters = {"Wax": p.params["W_xh"], "Waa": p.params["W_hh"], "ba": p.params["b_h"][:, None],
                      "Wya": p.params["W_hy"], "by": p.params["b_y"][:, None]}
        out = call(fwd, f"an input ({', '.join(fwd_args)})", rnn_forward, read_only(x), read_only(h0.T),
                   {k: read_only(v) for k, v in parameters.items()})
        a, _, caches = returned(fwd, out, 3, "(a, y_pred, caches)", kinds=(tuple,))
        a = as_numpy(f"a ({fwd})", a, (p.H, p.B, p.T), p.dtype)
        hs = np.concatenate([h0[None], a.transpose(2, 1, 0)])          # h_0..h_T, time-major
        L, dh_direct, top = head(p.params, hs, p.ys, {"output": output, "loss": loss, "reduction": reduction})
        g = call(bwd, f"its upstream gradient {upstream}", rnn_backward, read_only(dh_direct.transpose(2, 1, 0)),
                 caches)
        g = gradients_dict(bwd, g, GRADIENTS)
        grads = {"W_xh": as_numpy("dWax", g["dWax"], (p.H, p.D), p.dtype),
                 "W_hh": as_numpy("dWaa", g["dWaa"], (p.H, p.H), p.dtype),
                 "b_h": as_numpy("dba", g["dba"], (p.H,), p.dtype), **top,
                 **h0_gradient(p.params, as_numpy("da0", g["da0"], (p.H, p.B), p.dtype).T)}
        dL_dx = as_numpy("dx", g["dx"], (p.D, p.B, p.T), p.dtype).transpose(2, 1, 0)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None,
                         np.ascontiguousarray(dL_dx))

    return tagged(loss_and_grads, f"deeplearning_ai({fwd}, {bwd})", {"hidden": "tanh"})
