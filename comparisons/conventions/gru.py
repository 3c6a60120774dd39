"""GRU in PyTorch's layout, as a layer: ``torch.nn.GRU(batch_first=True)``'s weights, written by hand.

    h, cache = gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh)      x (N, T, D), h (N, T, H)
        gi = x_t W_ih^T + b_ih,  gh = h_{t-1} W_hh^T + b_hh    (N, 3H), gates r, z, n
        r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n)
        h_t = (1 - z) * n + z * h_{t-1}
    dx, dh0, dW_ih, dW_hh, db_ih, db_hh = gru_backward(dh, cache)   dh (N, T, H): upstream only

The weights are the suite's GRU cell's own (``cells.gru_step``) one to one; h0 is zeros, and
dh0 is compared with dL/dh_0. d2l's GRU (reset applied before the product, (R * H) W_hh) is a
different cell: write its step and check it with ``check_cell``. NumPy arrays or torch tensors.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.conventions._adapt import (arg_names, as_numpy, call, handed, head, name_of, require_callables,
                                            returned, unbatched, unchanged, ONE_SEQUENCE)
from comparisons.conventions._gates import GatedProblem, arrays_mode, gated


def gru(gru_forward, gru_backward, *, arrays="auto", device="cpu", batch=True):
    """``gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh) -> (h, cache)`` and ``gru_backward(dh,
    cache) -> (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)`` (module docstring); ``batch`` False:
    one sequence without a batch axis (x (T, D), h0 (H,), dh (T, H))."""
    require_callables(gru_forward=gru_forward, gru_backward=gru_backward)
    if arrays not in ("auto", "numpy", "torch"):
        raise ValueError(f"arrays: expected 'auto', 'numpy' or 'torch'; got {arrays!r}")
    fwd, bwd = name_of(gru_forward, "gru_forward"), name_of(gru_backward, "gru_backward")
    inputs_text = f"an input ({', '.join(arg_names(gru_forward, ('x', 'h0', 'W_ih', 'W_hh', 'b_ih', 'b_hh')))})"
    upstream = arg_names(gru_backward, ("dh",))[0]
    mode = {"arrays": arrays}

    def loss_and_grads(params, xs, ys, *, output="identity", loss="squared_error", reduction="mean",
                       truncate=None):
        p = GatedProblem("gru", params, xs, ys, output, loss, reduction, truncate, "gru")

        def run(kind):
            h0 = np.zeros((p.B, p.H), p.dtype)
            inputs = [unbatched(p.xs.transpose(1, 0, 2), batch), unbatched(h0, batch)] + [
                params[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
            given = [handed(kind, a, device) for a in inputs]
            h, cache = returned(fwd, call(fwd, inputs_text, gru_forward, *given), 2, "(h, cache)")
            unchanged(fwd, inputs_text, given, inputs)
            h = as_numpy(f"h ({fwd})", h, (p.B, p.T, p.H), p.dtype)
            L, direct, top = head(params, np.concatenate([h0[None], h.transpose(1, 0, 2)]), ys, p.config)
            dh = unbatched(direct.transpose(1, 0, 2), batch)
            dh_given = handed(kind, dh, device)
            out = call(bwd, f"its upstream gradient {upstream}", gru_backward, dh_given, cache)
            unchanged(bwd, f"its upstream gradient {upstream}", [dh_given], [dh])
            dx, dh0, dW_ih, dW_hh, db_ih, db_hh = returned(bwd, out, 6, "(dx, dh0, dW_ih, dW_hh, db_ih, db_hh)")
            G = 3 * p.H
            grads = {"W_ih": as_numpy("dW_ih", dW_ih, (G, p.D), p.dtype),
                     "W_hh": as_numpy("dW_hh", dW_hh, (G, p.H), p.dtype),
                     "b_ih": as_numpy("db_ih", db_ih, (G,), p.dtype), "b_hh": as_numpy("db_hh", db_hh, (G,), p.dtype),
                     **top, "h0": as_numpy("dh0", dh0, (p.B, p.H), p.dtype)}
            dL_dx = as_numpy("dx", dx, (p.B, p.T, p.D), p.dtype).transpose(1, 0, 2)
            return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None,
                             np.ascontiguousarray(dL_dx))
        return arrays_mode(run, mode)

    fn = gated(loss_and_grads, "gru", f"gru({fwd}, {bwd})", None if batch else ONE_SEQUENCE)
    fn.batch = batch
    fn.names_note = "names: W_ih = dW_ih, W_hh = dW_hh, b_ih = db_ih, b_hh = db_hh (gates r, z, n); h0 = dh0; dL_dx = dx"
    return fn
