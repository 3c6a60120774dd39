"""cs231n and EECS 498: the RNN as a layer, batch first, row vectors.

    next_h, cache = rnn_step_forward(x, prev_h, Wx, Wh, b)     next_h = tanh(prev_h Wh + x Wx + b)
    h, cache = rnn_forward(x, h0, Wx, Wh, b)                   x (N, T, D), h (N, T, H)
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)            dh (N, T, H): the upstream gradient

Mapping to the seeds' symbols (row vectors: x_t Wx = (W_xh x_t)^T):

    Wx (D, H) = W_xh^T      Wh (H, H) = W_hh^T      b (H,) = b_h      h0 (N, H) = h_0
    dh[:, t] = W_hy^T dL/dz_t (the direct part only: carrying dL/dh_{t+1} back is the derivation's job)

The layer has no output: the suite's own output layer and loss are put on top
(``_adapt.head``). NumPy arrays, or torch tensors without autograd (EECS 498, which may
run on a Colab GPU: ``device="cuda"``).
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients
from comparisons.check.outputs import BadOutput
from comparisons.conventions._adapt import (arg_names, as_numpy, call, h0_gradient, handed, head, layer_problem,
                                            name_of, one_sequence, require_callables, returned, tagged, torch_module,
                                            unbatched, unchanged, Writes)


def _layer(forward, backward, *, arrays, device, step: bool, batch: bool = True):
    """The contract's signature around a forward/backward pair; ``step``: the pair is
    ``rnn_step_forward/backward``, checked as T = 1 (in the student's own names); ``batch``
    False: the functions take one sequence without a batch axis (x (T, D), h0 (H,))."""
    if arrays not in ("auto", "numpy", "torch"):
        raise ValueError(f"arrays: expected 'auto', 'numpy' or 'torch'; got {arrays!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda":
        from reference.torch_autograd import device_for
        device_for(device)                               # BackendUnavailable without a GPU
    mode = {"arrays": arrays}
    writes = Writes()
    fwd, bwd = name_of(forward, "rnn_forward"), name_of(backward, "rnn_backward")
    fwd_args = arg_names(forward, ("x", "prev_h" if step else "h0", "Wx", "Wh", "b"))
    upstream = arg_names(backward, ("dnext_h" if step else "dh",))[0]
    inputs_text = f"an input ({', '.join(fwd_args)})"
    grads_text = f"(dx, {'dprev_h' if step else 'dh0'}, dWx, dWh, db)"

    def run(kind, p, config):
        x = p.xs.transpose(1, 0, 2)                                    # (N, T, D)
        h0 = np.broadcast_to(p.params.get("h0", np.zeros(p.H, p.dtype)), (p.B, p.H))
        inputs = [x[:, 0] if step else x, h0, p.params["W_xh"].T, p.params["W_hh"].T, p.params["b_h"]]  # Wx = W_xh^T
        inputs = [unbatched(a, batch) for a in inputs[:2]] + inputs[2:]
        given = [handed(kind, a, device) for a in inputs]
        h, cache = returned(fwd, call(fwd, inputs_text, forward, *given), 2, "(h, cache)")
        unchanged(fwd, inputs_text, given, inputs)
        h = as_numpy(f"{'next_h' if step else 'h'} ({fwd})", h, (p.B, p.H) if step else (p.B, p.T, p.H), p.dtype)
        h = h.reshape(p.B, p.T, p.H)
        hs = np.concatenate([h0[None], h.transpose(1, 0, 2)])      # h_0..h_T, time-major
        L, dh_direct, top = head(p.params, hs, p.ys, config)
        dh = dh_direct.transpose(1, 0, 2)                              # upstream dL/dh_t, (N, T, H)
        dh = unbatched(dh[:, 0] if step else dh, batch)
        if step:
            # dnext_h is a temporary of the course's rnn_backward loop: a write is a note (Writes)
            dh_given = writes.scratch(kind, dh, device)
            out = call(bwd, f"its upstream gradient {upstream}", backward, dh_given, cache)
            writes.check(bwd, [upstream], [dh_given], [dh])
        else:
            # rnn_backward's dh is the caller's, read again (the course's numeric check reuses it)
            dh_given = handed(kind, dh, device)
            out = call(bwd, f"its upstream gradient {upstream}", backward, dh_given, cache)
            unchanged(bwd, f"its upstream gradient {upstream}", [dh_given], [dh])
        dx, dh0, dWx, dWh, db = returned(bwd, out, 5, grads_text)
        grads = {"W_xh": as_numpy("dWx", dWx, (p.D, p.H), p.dtype).T,
                 "W_hh": as_numpy("dWh", dWh, (p.H, p.H), p.dtype).T,
                 "b_h": as_numpy("db", db, (p.H,), p.dtype), **top,
                 **h0_gradient(p.params, as_numpy("dprev_h" if step else "dh0", dh0, (p.B, p.H), p.dtype))}
        dL_dx = as_numpy("dx", dx, (p.B, p.D) if step else (p.B, p.T, p.D), p.dtype)
        dL_dx = dL_dx.reshape(p.B, p.T, p.D).transpose(1, 0, 2)
        return Gradients(L, {k: np.ascontiguousarray(v) for k, v in grads.items()}, None, dL_dx)

    def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity", loss="squared_error",
                       reduction="mean", truncate=None):
        p = layer_problem("cs231n", params, xs, ys, hidden, output, loss, reduction, truncate)
        if step and p.T != 1:
            raise ValueError(f"xs: {fwd} is one step: T must be 1; got T={p.T}")
        config = dict(output=output, loss=loss, reduction=reduction)
        if mode["arrays"] != "auto":
            return run(mode["arrays"], p, config)
        try:
            result = run("numpy", p, config)
        except (TypeError, AttributeError, BadOutput) as exc:
            # EECS 498 code calls tensor methods (x.mm, torch.tanh) that NumPy arrays lack,
            # or returns tensors: try tensors, and keep to them once they work
            if torch_module() is None:
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

    space = {"hidden": "tanh", **({"sizes": {"T": 1}, "fixed": ("T",)} if step else {})}
    fn = tagged(loss_and_grads, f"{'cs231n_step' if step else 'cs231n'}({fwd}, {bwd})",
                space if batch else one_sequence(space))
    fn.batch = batch
    fn.writes = writes
    return fn


def cs231n(rnn_forward, rnn_backward, *, arrays="auto", device="cpu", batch=True):
    """cs231n's ``rnn_forward(x, h0, Wx, Wh, b) -> (h, cache)`` and ``rnn_backward(dh, cache)
    -> (dx, dh0, dWx, dWh, db)``, batch first: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    h (N, T, H). ``arrays``: "numpy", "torch" (EECS 498: tensors, no autograd) or "auto"
    (NumPy first; torch tensors when the functions do not take NumPy arrays or return tensors).
    ``device``: where those tensors live ("cuda": the EECS 498 assignment on a Colab GPU).
    ``batch`` False: one sequence without a batch axis, x (T, D), h0 (H,), dh (T, H).
    """
    require_callables(rnn_forward=rnn_forward, rnn_backward=rnn_backward)
    return _layer(rnn_forward, rnn_backward, arrays=arrays, device=device, step=False, batch=batch)


def cs231n_step(step_forward, step_backward, *, arrays="auto", device="cpu", batch=True):
    """cs231n's ``rnn_step_forward(x, prev_h, Wx, Wh, b) -> (next_h, cache)`` and
    ``rnn_step_backward(dnext_h, cache) -> (dx, dprev_h, dWx, dWh, db)``: checked as T = 1,
    every message in the step functions' own names."""
    require_callables(step_forward=step_forward, step_backward=step_backward)
    return _layer(step_forward, step_backward, arrays=arrays, device=device, step=True, batch=batch)
