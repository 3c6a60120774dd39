"""Reference: the contract's forward pass in PyTorch, differentiated by autograd.

Nothing here is derived by hand: the forward pass is written once, and
``torch.autograd.grad`` returns the gradients of the parameters and of every hidden
state h_0..h_T (that is the contract's dL_dh). Truncated BPTT is ``detach()`` after
steps k, 2k, ..., exactly as it is practised.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import BackendUnavailable, Gradients, is_cut, step_weights, validate

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised by the missing-backend test
    torch = None
    _IMPORT_ERROR = exc


def _require_torch():
    if torch is None:
        raise BackendUnavailable(f"PyTorch is not installed ({_IMPORT_ERROR}); "
                                 f"install the extra: pip install 'bptt-xval[torch]'")
    return torch


def _activation(name):
    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
            "identity": lambda a: a}[name]


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """Same signature, shapes and dtypes as :func:`manual.rnn.loss_and_grads`."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    _require_torch()
    T, B, H = p.T, p.B, p.H
    P = {k: torch.tensor(v, requires_grad=True) for k, v in p.params.items()}
    x = torch.tensor(p.xs)
    phi, theta = _activation(hidden), _activation(output)

    # h_0 as a (B, H) graph node of its own, so that its gradient is dL/dh_0 per sample.
    h = (P["h0"].expand(B, H) if "h0" in P
         else torch.zeros(B, H, dtype=x.dtype, requires_grad=True))
    hs = [h]
    h_in = h
    for t in range(1, T + 1):
        h = phi(x[t - 1] @ P["W_xh"].T + h_in @ P["W_hh"].T + P["b_h"])
        hs.append(h)
        h_in = h.detach() if is_cut(t, truncate) else h

    z = torch.stack(hs[1:]) @ P["W_hy"].T + P["b_y"]
    if loss == "squared_error":
        l = 0.5 * ((theta(z) - torch.tensor(p.ys)) ** 2).sum(-1).mean(-1)
    else:
        target = torch.tensor(p.ys.astype(np.int64))
        l = -torch.log_softmax(z, -1).gather(-1, target[..., None])[..., 0].mean(-1)
    L = (torch.tensor(step_weights(reduction, T, p.dtype)) * l).sum()

    keys = list(P)
    # allow_unused: under truncation with reduction="last", early h_t may not reach L.
    out = torch.autograd.grad(L, [P[k] for k in keys] + hs, allow_unused=True)
    grads = {k: _numpy(g, P[k]) for k, g in zip(keys, out)}
    dL_dh = np.stack([_numpy(g, h) for g, h in zip(out[len(keys):], hs)])
    return Gradients(float(L.detach()), grads, dL_dh)


def _numpy(grad, like) -> np.ndarray:
    if grad is None:
        return np.zeros(tuple(like.shape), dtype=np.dtype(str(like.dtype).removeprefix("torch.")))
    return grad.detach().numpy().copy()


def mlp_loss_and_grads(params, X, Y, *, activations, loss="squared_error"):
    """Seed 002's MLP by autograd: (loss, grads, deltas) with delta^(l) = dL/dz^(l), (B, n_l)."""
    _require_torch()
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a, zs = torch.tensor(X), []
    for l, name in enumerate(activations, start=1):
        z = a @ P[f"W{l}"].T + P[f"b{l}"]
        zs.append(z)
        a = _activation(name)(z)
    if loss == "squared_error":
        L = 0.5 * ((a - torch.tensor(Y)) ** 2).sum(-1).mean()
    else:
        L = torch.nn.functional.cross_entropy(a, torch.tensor(Y.astype(np.int64)))
    keys = list(P)
    out = torch.autograd.grad(L, [P[k] for k in keys] + zs)
    return (float(L.detach()), {k: g.numpy().copy() for k, g in zip(keys, out)},
            [g.numpy().copy() for g in out[len(keys):]])
