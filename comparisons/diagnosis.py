"""Diagnosis: which classic BPTT mistake does a failing derivation reproduce?

Each entry of ``MISTAKES`` is a known way to get BPTT wrong, implemented for real: the
correct forward pass (``manual.rnn.forward``) followed by a backward pass with exactly
that one mistake. To diagnose a failure we *compute* every mistaken gradient on the
failing case and name those that the candidate's output matches within the same
tolerance the checker uses. Nothing is guessed from strings or from error sizes.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, is_cut, step_weights, validate
from comparisons.compare import compare
from manual.activations import ACTIVATIONS
from manual.rnn import forward, output_error

MISTAKES = {
    "forgotten_1_over_T": "forgot the 1/T of the mean over time (gradients T times too large)",
    "forgotten_1_over_B": "forgot the 1/B of the mean over the batch",
    "wrong_reduction": "used the wrong reduction over time (sum for mean, or mean for sum/last)",
    "transposed_recurrence": "carried the error back with W_hh instead of W_hh^T (e_t @ W_hh.T)",
    "off_by_one_hidden_state": "used h_t instead of h_{t-1} in dL/dW_hh = sum_t e_t h_{t-1}^T",
    "missing_phi_prime_in_carry": "carried dL/dh_t (not e_t = dL/dh_t phi'(a_t)) back to h_{t-1}",
    "phi_prime_at_wrong_point": "evaluated phi' at the previous step (phi'(a_{t-1}) instead of phi'(a_t))",
    "phi_prime_of_h": "evaluated phi' at h_t instead of a_t (e.g. 1 - tanh(h)^2 for tanh)",
    "no_accumulation_over_time": "kept only the last step's contribution to the shared weights",
    "no_recurrent_carry": "never carried the error back through time (dL/dh_t = direct part only)",
    "dropped_h0_gradient": "returned zero for the h0 gradient",
    "ignored_truncation": "ran full BPTT where truncate=k was asked for",
    "theta_prime_missing": "dropped the output activation's derivative theta'(z_t)",
    "silent_precision_loss": "computed in float32 and returned float64",
}


def mistaken_loss_and_grads(mistake: str, params, xs, ys, *, hidden="tanh", output="identity",
                            loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """BPTT with exactly one classic ``mistake`` (a key of ``MISTAKES``); contract signature."""
    if mistake not in MISTAKES:
        raise ValueError(f"mistake: expected one of {tuple(MISTAKES)}; got {mistake!r}")
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    P, X, Y, dtype = p.params, p.xs, p.ys, p.dtype
    if mistake == "silent_precision_loss":
        P = {k: v.astype(np.float32) for k, v in P.items()}
        X = X.astype(np.float32)
        Y = Y if loss == "cross_entropy" else Y.astype(np.float32)
    T, B = X.shape[:2]
    f = forward(P, X, hidden, output)
    used_reduction = reduction
    if mistake == "wrong_reduction":
        used_reduction = "sum" if reduction == "mean" else "mean"
    L, dL_dz = output_error(f, Y, loss, used_reduction, output)
    if mistake == "forgotten_1_over_T" and reduction == "mean":
        dL_dz = dL_dz * T
    if mistake == "forgotten_1_over_B":
        dL_dz = dL_dz * B
    if mistake == "theta_prime_missing" and loss == "squared_error":
        w = step_weights(reduction, T, dL_dz.dtype)[:, None, None] / B
        dL_dz = w * (f.o - Y)

    W_hh = P["W_hh"]
    carry_W = W_hh.T if mistake == "transposed_recurrence" else W_hh
    dphi = ACTIVATIONS[hidden][1]
    cut = None if mistake == "ignored_truncation" else truncate
    dL_dh = np.zeros_like(f.h)
    dL_dh[1:] = dL_dz @ P["W_hy"]
    e = np.zeros_like(f.h)
    for t in range(T, 0, -1):
        if mistake == "phi_prime_at_wrong_point":
            e[t] = dL_dh[t] * dphi(f.a[t - 1], f.h[t - 1])
        elif mistake == "phi_prime_of_h":
            e[t] = dL_dh[t] * dphi(f.h[t], ACTIVATIONS[hidden][0](f.h[t]))
        else:
            e[t] = dL_dh[t] * dphi(f.a[t], f.h[t])
        carried = dL_dh[t] if mistake == "missing_phi_prime_in_carry" else e[t]
        if not is_cut(t - 1, cut) and mistake != "no_recurrent_carry":
            dL_dh[t - 1] += carried @ carry_W

    H = f.h.shape[-1]
    steps = slice(T, T + 1) if mistake == "no_accumulation_over_time" else slice(1, T + 1)
    E = e[steps].reshape(-1, H)
    h_in = f.h[1:] if mistake == "off_by_one_hidden_state" else f.h[:-1]
    G = dL_dz.reshape(T * B, -1)
    grads = {
        "W_xh": E.T @ X[steps.start - 1:steps.stop - 1].reshape(len(E), -1),
        "W_hh": E.T @ h_in[steps.start - 1:steps.stop - 1].reshape(len(E), H),
        "b_h": E.sum(0),
        "W_hy": G.T @ f.h[1:].reshape(T * B, H),
        "b_y": G.sum(0),
    }
    if "h0" in P:
        grads["h0"] = dL_dh[0].copy() if P["h0"].ndim == 2 else dL_dh[0].sum(0)
        if mistake == "dropped_h0_gradient":
            grads["h0"] = np.zeros_like(grads["h0"])
    grads = {k: v.astype(dtype) for k, v in grads.items()}
    return Gradients(L, grads, dL_dh.astype(dtype))


def applicable(mistake: str, case) -> bool:
    """Mistakes that change nothing in this configuration cannot be told from correct code."""
    return not ((mistake == "forgotten_1_over_T" and (case.reduction != "mean" or case.T == 1))
                or (mistake == "forgotten_1_over_B" and case.B == 1)
                or (mistake == "dropped_h0_gradient" and case.h0 == "none")
                or (mistake == "ignored_truncation" and case.truncate is None)
                or (mistake == "theta_prime_missing" and (case.output == "identity"
                                                         or case.loss == "cross_entropy"))
                or (mistake == "silent_precision_loss" and case.dtype == "float32"))


def diagnose(result, case, arrays, reference, magnitude=None) -> list:
    """Names of the mistakes whose gradients ``result`` (the candidate's) matches on ``case``.

    ``arrays`` = (params, xs, ys) of the case; ``reference`` the float64 reference
    ``Gradients`` and ``magnitude`` its error scales. A match is the checker's own
    criterion: every gradient within tolerance of the mistaken gradients. Precision loss
    is the one mistake recognised by its size instead of its shape: the candidate fails
    the float64 tolerance but passes the float32 one.
    """
    params, xs, ys = arrays
    matches = []
    for mistake in MISTAKES:
        if not applicable(mistake, case):
            continue
        if mistake == "silent_precision_loss":
            as_float32 = compare(result, reference, "reference", case.replace(dtype="float32"), magnitude)
            if all(e.ok for k, e in as_float32.errors.items() if k != "loss"):
                matches.append(mistake)
            continue
        with np.errstate(all="ignore"):
            wrong = mistaken_loss_and_grads(mistake, params, xs, ys, **case.config())
        comparison = compare(result, wrong, "diagnosis", case, magnitude)
        if all(e.ok for k, e in comparison.errors.items() if k != "loss"):
            matches.append(mistake)
    return matches
