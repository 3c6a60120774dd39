"""GRU as d2l writes it from scratch (Dive into Deep Learning, "Gated Recurrent Units"), with a
backward derived by hand beside it.

    Y, (H,) = gru(inputs, state, params)          inputs (T, B, D), state (H0,), H0 (B, h)
        params = [W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]
        Z = sigmoid(X W_xz + H W_hz + b_z),  R = sigmoid(X W_xr + H W_hr + b_r)
        H~ = tanh(X W_xh + (R * H) W_hh + b_h),   H = Z * H + (1 - Z) * H~
        Y_t = H W_hq + b_q;  Y = the Y_t stacked over time, (T B, q)
    grads = gru_backward(dY, inputs, state, params)   dY (T B, q): dL/dY
        grads: the 11 gradients in params' order; or (grads, (dH0,)) with dL/dH0 (B, h)

Row vectors times matrices (W_xz is (D, h)), one bias per gate, and the reset gate applied
*before* the candidate's product, (R * H) W_hh: a different cell from PyTorch's GRU, whose
reset gate scales the product's result, r * (W_hn h + b_hn). It is the suite's ``gru_d2l``
cell (``comparisons.check.cells.gru_d2l_step``), its weights moved one to one:

    W_ih = [W_xz^T; W_xr^T; W_xh^T] (3h, D)    W_hh = [W_hz^T; W_hr^T] (2h, H)
    W_hc = W_hh(d2l)^T (h, h)                  b = [b_z; b_r; b_h]    W_hy = W_hq^T, b_y = b_q

d2l's output layer is the student's own (Y), so the suite computes only the loss on Y and hands
its gradient dY over; H0 is zeros. NumPy arrays or torch tensors (d2l's PyTorch edition).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.check.outputs import BadOutput
from comparisons.conventions._adapt import (arg_names, as_numpy, call, handed, name_of, require_callables,
                                            returned, unchanged)
from comparisons.conventions._gates import GatedProblem, arrays_mode, gated

#: d2l's parameter list, in its order
PARAMS = ("W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h", "W_hq", "b_q")


def to_d2l(params: dict) -> dict:
    """The suite's gru_d2l weights as d2l's (a transpose and a block per gate: exact)."""
    H = params["W_hc"].shape[0]
    W_ih, W_hh, b = params["W_ih"], params["W_hh"], params["b"]
    return {"W_xz": W_ih[:H].T, "W_xr": W_ih[H:2 * H].T, "W_xh": W_ih[2 * H:].T,
            "W_hz": W_hh[:H].T, "W_hr": W_hh[H:].T, "W_hh": params["W_hc"].T,
            "b_z": b[:H], "b_r": b[H:2 * H], "b_h": b[2 * H:], "W_hq": params["W_hy"].T, "b_q": params["b_y"]}


def from_d2l(g: dict) -> dict:
    """:func:`to_d2l`'s inverse, for the gradients."""
    return {"W_ih": np.concatenate([g["W_xz"].T, g["W_xr"].T, g["W_xh"].T]),
            "W_hh": np.concatenate([g["W_hz"].T, g["W_hr"].T]), "W_hc": g["W_hh"].T,
            "b": np.concatenate([g["b_z"], g["b_r"], g["b_h"]]), "W_hy": g["W_hq"].T, "b_y": g["b_q"]}


def d2l_gru(gru, gru_backward, *, arrays="auto", device="cpu"):
    """``gru(inputs, state, params) -> (Y, (H,))`` and ``gru_backward(dY, inputs, state, params)
    -> grads`` (module docstring)."""
    from manual.output import Forward, output_error
    from manual.activations import ACTIVATIONS

    require_callables(gru=gru, gru_backward=gru_backward)
    if arrays not in ("auto", "numpy", "torch"):
        raise ValueError(f"arrays: expected 'auto', 'numpy' or 'torch'; got {arrays!r}")
    fwd, bwd = name_of(gru, "gru"), name_of(gru_backward, "gru_backward")
    inputs_text = f"its inputs ({', '.join(arg_names(gru, ('inputs', 'state', 'params')))})"
    upstream = arg_names(gru_backward, ("dY",))[0]
    mode = {"arrays": arrays}

    def loss_and_grads(params, xs, ys, *, output="identity", loss="cross_entropy", reduction="mean",
                       truncate=None):
        p = GatedProblem("gru_d2l", params, xs, ys, output, loss, reduction, truncate, "d2l")

        def run(kind):
            H0 = np.zeros((p.B, p.H), p.dtype)
            theirs = to_d2l(params)
            originals = [p.xs, H0] + [theirs[k] for k in PARAMS]
            given = [handed(kind, a, device) for a in originals]
            inputs, state, plist = given[0], (given[1],), list(given[2:])
            Y, _ = returned(fwd, call(fwd, inputs_text, gru, inputs, state, plist), 2, "(Y, (H,))")
            unchanged(fwd, inputs_text, given, originals)
            Y = as_numpy(f"Y ({fwd})", Y, (p.T * p.B, p.O), p.dtype)
            z = Y.reshape(p.T, p.B, p.O)
            L, dL_dz = output_error(Forward(None, None, z, ACTIVATIONS[output][0](z)), ys, loss, reduction, output)
            dY = np.ascontiguousarray(dL_dz.reshape(p.T * p.B, p.O))
            given_b = [handed(kind, a, device) for a in [dY] + originals]
            out = call(bwd, f"its upstream gradient {upstream}", gru_backward, given_b[0], given_b[1],
                       (given_b[2],), list(given_b[3:]))
            unchanged(bwd, f"its upstream gradient {upstream}", given_b, [dY] + originals)
            dstate = None
            if isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], (tuple, list)):
                out, dstate = out
            grads = returned(bwd, out, len(PARAMS), f"the {len(PARAMS)} gradients in params' order "
                                                    f"({', '.join('d' + k for k in PARAMS)})")
            theirs_g = {k: as_numpy(f"d{k} (item {i} of {bwd}'s result)", g, np.shape(theirs[k]), p.dtype)
                        for i, (k, g) in enumerate(zip(PARAMS, grads))}
            mine = from_d2l(theirs_g)
            if dstate is not None:
                dH0 = dstate[0] if isinstance(dstate, (tuple, list)) else dstate
                mine["h0"] = as_numpy("dH0", dH0, (p.B, p.H), p.dtype)
            return Gradients(L, {k: np.ascontiguousarray(v) for k, v in mine.items()}, None)
        return arrays_mode(run, mode)

    loss_and_grads = gated(loss_and_grads, "gru_d2l", f"d2l({fwd}, {bwd})",
                           {"loss": "cross_entropy", "reduction": "mean"})
    loss_and_grads.names_note = ("the failures name the suite's gru_d2l weights: W_ih holds d2l's W_xz^T, W_xr^T, "
                                 "W_xh^T; W_hh holds W_hz^T and W_hr^T; W_hc is d2l's W_hh^T; b holds b_z, b_r, b_h; "
                                 "W_hy is W_hq^T, b_y is b_q")
    return loss_and_grads


__all__ = ["d2l_gru", "from_d2l", "to_d2l", "BadOutput"]
