"""Reference: finite differences in float64, the oracle that needs no derivation.

Every parameter entry theta_i is perturbed and the loss re-evaluated:

- complex step, dL/dtheta_i = Im L(theta + i h e_i) / h with h = 1e-150, whenever the
  forward pass is analytic (every configuration but hidden="relu"). No subtraction
  happens, so the result is accurate to float64 rounding, as tight as autodiff. h is
  that small because the imaginary parts along the way are h times the derivatives:
  they must stay far below 1 (else exp and log wrap around their branch cuts) even
  where exploding regimes make derivatives ~1e31, and far above underflow;
- central differences, (L(theta + d e_i) - L(theta - d e_i)) / 2d with
  d = eps^(1/3) max(1, |theta_i|) for ReLU (not analytic at 0). Truncation error
  O(d^2 L''') and rounding error O(eps |L| / d) balance at about eps^(2/3) ~ 4e-11
  relative; the tolerances in ``comparisons.check.tolerances`` allow for that.

The forward pass is this module's own (``reference`` never imports ``manual``) and is
vectorised over a leading axis N of perturbed parameter sets, so all 2P (or P)
evaluations run as a few batched passes. ``dL_dh`` is None. Truncation changes the
gradient, not the loss, so finite differences cannot express it: ``truncate`` other
than None raises ValueError.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, step_weights, validate, validate_mlp

COMPLEX_STEP = 1e-150
OUTPUT_SIDE = ("W_hy", "b_y")
# Perturbed parameter sets evaluated per batched forward pass (bounds memory).
CHUNK_ELEMENTS = 2_000_000


def _phi(name, a):
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-a))
    if name == "relu":
        return np.where(a.real > 0, a, 0)
    return a


def _shared(W):
    """The complex step's N parameter sets as one shared real matrix and their few
    differences: (base, (rows, index, delta)) when every set of ``W`` (N, ...) has the same
    real part and at most one imaginary entry (``differentiate`` perturbs one entry per
    row; the unperturbed row and the other parameters' rows have none), else None.

    Then a product with W is one BLAS call with ``base`` plus a scatter of the N
    perturbed entries, in place of N tiny batched products: the same numbers to float64
    rounding (the real parts are identical, the imaginary ones summed in another order)."""
    if not np.iscomplexobj(W):
        return None
    real = W.real
    if not (real == real[:1]).all():
        return None
    rows, *index = np.nonzero(W.imag)
    if len(np.unique(rows)) != len(rows):
        return None
    return real[0], (rows, tuple(index), 1j * W.imag[(rows, *index)])


def forward(params, xs, *, hidden, output):
    """Hidden states and outputs for N parameter sets (leading axis N on every ``params[k]``).

    Returns h (T+1, N, B, H) with h[0] = h0, z (T, N, B, O) and o = theta(z).
    """
    T, B, _ = xs.shape
    W_xh, W_hh, b_h = params["W_xh"], params["W_hh"], params["b_h"]
    N, H = b_h.shape
    h = np.zeros((N, B, H), b_h.dtype)
    if "h0" in params:  # (N, H) or (N, B, H)
        h = h + (params["h0"][:, None, :] if params["h0"].ndim == 2 else params["h0"])
    hs = [h]
    x = xs.reshape(T * B, -1)
    shared = [_shared(W) for W in (W_xh, W_hh, b_h)]
    if all(s is not None for s in shared):
        # the complex step: one product per step for all N sets, plus each set's perturbed entry
        (xh, (rx, (ix, kx), dx)), (hh, (rh, (ih, kh), dh)), (bh, (rb, (ib,), db)) = shared
        inputs = np.empty((N, T * B, H), np.result_type(W_xh, xs))
        inputs[:] = x @ xh.T + bh
        inputs[rx, :, ix] += x[:, kx].T * dx[:, None]
        inputs[rb, :, ib] += db[:, None]
        inputs = inputs.reshape(N, T, B, H)

        def recur(h):
            out = (h.reshape(N * B, H) @ hh.T).reshape(N, B, H)
            out[rh, :, ih] += h[rh, :, kh] * dh[:, None]
            return out
    else:
        # every step's input projection at once: (N, T*B, H)
        inputs = (x @ W_xh.transpose(0, 2, 1) + b_h[:, None, :]).reshape(N, T, B, H)
        W_hh_T = W_hh.transpose(0, 2, 1)

        def recur(h):
            return h @ W_hh_T                               # batched (N, B, H) x (N, H, H)
    with np.errstate(over="ignore"):  # exp overflow in sigmoid is a correct 0, not an error
        for t in range(T):
            h = _phi(hidden, inputs[:, t] + recur(h))
            hs.append(h)
        hs = np.stack(hs)
        z = np.einsum("tnbh,noh->tnbo", hs[1:], params["W_hy"]) + params["b_y"][None, :, None, :]
        return hs, z, _phi(output, z)


def states(params, xs, *, hidden, output):
    """``forward`` for one parameter set: h (T+1, B, H), a (T, B, H) for t = 1..T, z and o (T, B, O)."""
    hs, z, o = forward({k: v[None] for k, v in params.items()}, xs, hidden=hidden, output=output)
    h = hs[:, 0]
    a = xs @ params["W_xh"].T + h[:-1] @ params["W_hh"].T + params["b_h"]
    return h, a, z[:, 0], o[:, 0]


def losses(params, xs, ys, *, hidden, output, loss, reduction, hs=None):
    """L for each of N parameter sets: ``params[k]`` has a leading axis N. Returns (N,).

    ``hs``: the hidden states (T+1, B, H) shared by all N sets, when only W_hy and b_y vary
    among them (then the recurrence, which they do not enter, is not rerun)."""
    if hs is None:
        _, z, o = forward(params, xs, hidden=hidden, output=output)
    else:
        z = np.einsum("tbh,noh->tnbo", hs[1:], params["W_hy"]) + params["b_y"][None, :, None, :]
        with np.errstate(over="ignore"):  # as in forward: a sigmoid's exp overflow is a correct 0
            o = _phi(output, z)
    if loss == "squared_error":
        l = 0.5 * ((o - ys[:, None]) ** 2).sum(-1).mean(-1)
    else:
        z = z - z.real.max(-1, keepdims=True)   # a real shift keeps the function analytic
        with np.errstate(over="ignore"):
            log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_p, ys[:, None, :, None].repeat(z.shape[1], 1), -1)[..., 0]
        l = -picked.mean(-1)
    return (step_weights(reduction, xs.shape[0], np.float64)[:, None] * l).sum(0)


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """Same signature as :func:`manual.rnn.loss_and_grads`; ``dL_dh`` is None.

    Computed in float64 whatever the input dtype; the gradients are returned in the
    input dtype as the contract requires.
    """
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    if truncate is not None:
        raise ValueError("truncate: finite differences differentiate the loss itself, which "
                         "truncation does not change; use truncate=None")
    theta = {k: v.astype(np.float64) for k, v in p.params.items()}
    xs64 = p.xs.astype(np.float64)
    ys64 = p.ys if loss == "cross_entropy" else p.ys.astype(np.float64)
    config = dict(hidden=hidden, output=output, loss=loss, reduction=reduction)
    analytic = hidden != "relu"
    # W_hy and b_y do not enter the recurrence: their perturbations reuse the unperturbed
    # hidden states and rerun only the output layer and the loss (H O + O of the P passes)
    recurrent = {k: v for k, v in theta.items() if k not in OUTPUT_SIDE}
    fixed = {k: theta[k] for k in OUTPUT_SIDE}

    def recurrent_losses(batch):
        n = len(next(iter(batch.values())))
        return losses({**batch, **{k: np.broadcast_to(v, (n,) + v.shape) for k, v in fixed.items()}},
                      xs64, ys64, **config)

    L0, grads = differentiate(recurrent, recurrent_losses, analytic=analytic, row_cost=p.T * p.B * p.H * 4)
    h = states(theta, xs64, hidden=hidden, output=output)[0]
    _, output_grads = differentiate(fixed, lambda batch: losses(batch, xs64, ys64, hs=h, **config),
                                    analytic=analytic, row_cost=p.T * p.B * p.O * 4)
    grads.update(output_grads)
    return Gradients(L0, {k: grads[k].astype(p.dtype) for k in theta}, None)


def differentiate(theta: dict, evaluate, *, analytic: bool, row_cost: int):
    """(L, {name: dL/dtheta}) by complex-step (``analytic``) or central differences.

    ``evaluate(batch)`` maps a dict of parameter arrays with a leading axis N (N perturbed
    copies of ``theta``) to their N losses; it is called on chunks of perturbations.
    """
    keys = list(theta)
    flat = np.concatenate([theta[k].ravel() for k in keys])
    sizes = [theta[k].size for k in keys]
    P = flat.size

    def rows_to_losses(rows):
        split = np.split(rows, np.cumsum(sizes)[:-1], axis=1)
        return evaluate({k: s.reshape((len(rows),) + theta[k].shape) for k, s in zip(keys, split)})

    chunk = max(1, CHUNK_ELEMENTS // (row_cost + P))
    grad = np.empty(P)
    L0 = None
    for start in range(0, P, chunk):
        idx = np.arange(start, min(P, start + chunk))
        # the unperturbed row rides along with the first chunk: L itself costs no extra pass
        extra = 1 if L0 is None else 0
        if analytic:
            rows = np.tile(flat.astype(np.complex128), (len(idx) + extra, 1))
            rows[np.arange(len(idx)), idx] += 1j * COMPLEX_STEP
            L = rows_to_losses(rows)
            grad[idx] = L[:len(idx)].imag / COMPLEX_STEP
        else:
            d = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(flat[idx]))
            rows = np.tile(flat, (2 * len(idx) + extra, 1))
            rows[np.arange(len(idx)), idx] += d
            rows[len(idx) + np.arange(len(idx)), idx] -= d
            L = rows_to_losses(rows)
            grad[idx] = (L[:len(idx)] - L[len(idx):2 * len(idx)]) / (2 * d)
        if extra:
            L0 = float(L[-1].real)
    parts = np.split(grad, np.cumsum(sizes)[:-1])
    return L0, {k: g.reshape(theta[k].shape) for k, g in zip(keys, parts)}


def mlp_losses(params, X, Y, *, activations, loss):
    """Seed 002's MLP loss (batch mean) for N parameter sets (leading axis N). Returns (N,)."""
    a = X[None]
    for l, name in enumerate(activations, start=1):
        a = _phi(name, np.einsum("nbi,noi->nbo", a, params[f"W{l}"]) + params[f"b{l}"][:, None, :])
    if loss == "squared_error":
        return 0.5 * ((a - Y[None]) ** 2).sum(-1).mean(-1)
    z = a - a.real.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, np.broadcast_to(Y[None, :, None], log_p.shape[:2] + (1,)), -1)[..., 0].mean(-1)


def mlp_loss_and_grads(params, X, Y, *, activations, loss="squared_error"):
    """Finite-difference gradients of seed 002's MLP; (loss, grads, None), float64 inside."""
    validate_mlp(params, X, Y, activations, loss)
    theta = {k: v.astype(np.float64) for k, v in params.items()}
    X64 = X.astype(np.float64)
    Y64 = Y if loss == "cross_entropy" else Y.astype(np.float64)
    L0, grads = differentiate(theta, lambda batch: mlp_losses(batch, X64, Y64, activations=activations, loss=loss),
                              analytic="relu" not in activations, row_cost=X.size * 4)
    return L0, {k: g.astype(X.dtype) for k, g in grads.items()}, None
