"""Diagnosis: which classic BPTT mistake does a failing derivation reproduce?

Each entry of ``MISTAKES`` is a known way to get BPTT wrong, implemented for real: the
correct forward pass (``manual.rnn.forward``) followed by a backward pass with exactly
that one mistake. To diagnose a failure we *compute* every mistaken gradient on the
failing case and name those that the candidate's output matches within the same
tolerance the checker uses. Nothing is guessed from strings or from error sizes.

Three mistakes are found by computation on the reference instead of by a mistaken
derivation, because they are parameterised: gradients clipped elementwise at some c
(c is read off the candidate, then the clipped reference must match it), a gradient
that is identically zero, and computing in float32 (the float32 tolerance passes).
When nothing in the catalog matches, :func:`error_patterns` still says how each
failing quantity is off: one scale factor, a flipped sign, which entries or steps.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import Gradients, is_cut, step_weights, validate
from comparisons.check import tf32
from comparisons.check.compare import compare
from manual.activations import ACTIVATIONS
from manual.rnn import forward, output_error

MISTAKES = {
    "forgotten_1_over_T": "forgot the 1/T of the mean over time (gradients T times too large)",
    "forgotten_1_over_B": "summed over the batch where the loss averages (forgot the 1/B)",
    "wrong_reduction": "used the wrong reduction over time (sum for mean, or mean for sum/last)",
    "transposed_recurrence": "carried the error back with W_hh instead of W_hh^T (e_t @ W_hh.T)",
    "off_by_one_hidden_state": "used h_t instead of h_{t-1} in dL/dW_hh = sum_t e_t h_{t-1}^T",
    "missing_phi_prime_in_carry": "carried dL/dh_t (not e_t = dL/dh_t phi'(a_t)) back to h_{t-1}",
    "phi_prime_at_wrong_point": "evaluated phi' at the previous step (phi'(a_{t-1}) instead of phi'(a_t))",
    "phi_prime_of_h": "evaluated phi' at h_t instead of a_t (e.g. 1 - tanh(h)^2 for tanh)",
    "phi_prime_missing": "left out the activation's derivative phi'(a_t) altogether (e_t = dL/dh_t: "
                         "no (1 - h_t^2) for tanh)",
    "phi_prime_twice": "applied the activation's derivative twice (e_t = dL/dh_t phi'(a_t)^2: "
                       "(1 - h^2) once in the step and once in the layer)",
    "no_accumulation_over_time": "kept only the last step's contribution to the shared weights",
    "no_recurrent_carry": "never carried the error back through time (dL/dh_t = direct part only; "
                          "dh_prev computed but never added to the next step's upstream dh)",
    "dropped_h0_gradient": "returned zero for the h0 gradient",
    "ignored_truncation": "ran full BPTT where truncate=k was asked for",
    "theta_prime_missing": "dropped the output activation's derivative theta'(z_t)",
    "silent_precision_loss": "computed in float32 and returned float64",
    "clipped_gradients": "returned gradients clipped elementwise to [-c, c] (np.clip): they differ "
                         "from the true ones wherever those exceed c",
    "zero_gradient": "a parameter's gradient is identically zero: never accumulated "
                     "(e.g. `dbh + dhraw` where `dbh += dhraw` was meant)",
    "dx_wrong_weight": "dL/dx_t taken with W_hh instead of W_xh (dx = e_t W_hh, not e_t W_xh)",
    "tf32_matmuls": "the gradients are right to TF32 precision: the float32 matrix products ran in TF32 "
                    "(a 10-bit mantissa, NVIDIA GPUs' default), not in float32. Fix: torch: "
                    "torch.set_float32_matmul_precision('highest') and torch.backends.cudnn.allow_tf32 = False; "
                    "JAX: with jax.default_matmul_precision('highest'): (or precision=lax.Precision.HIGHEST)",
}


# found by computation on the reference (see diagnose), not by a mistaken derivation
COMPUTED = ("clipped_gradients", "zero_gradient", "tf32_matmuls")


def mistaken_loss_and_grads(mistake: str, params, xs, ys, *, hidden="tanh", output="identity",
                            loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """BPTT with exactly one classic ``mistake`` (a key of ``MISTAKES`` not in ``COMPUTED``);
    contract signature."""
    derived = tuple(m for m in MISTAKES if m not in COMPUTED)
    if mistake not in derived:
        raise ValueError(f"mistake: expected one of {derived}; got {mistake!r}")
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
        elif mistake == "phi_prime_missing":
            e[t] = dL_dh[t]
        elif mistake == "phi_prime_twice":
            e[t] = dL_dh[t] * dphi(f.a[t], f.h[t]) ** 2
        else:
            e[t] = dL_dh[t] * dphi(f.a[t], f.h[t])
        carried = dL_dh[t] if mistake == "missing_phi_prime_in_carry" else e[t]
        # without the carry, a layer-style loop still hands back step 1's W_hh^T e_1 as dh0
        if not is_cut(t - 1, cut) and (mistake != "no_recurrent_carry" or t == 1):
            dL_dh[t - 1] += carried @ carry_W

    H = f.h.shape[-1]
    # dL/dx_t = W_xh^T e_t for every step, whatever the weight-gradient mistake
    dL_dx = e[1:] @ (W_hh if mistake == "dx_wrong_weight" else P["W_xh"])
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
    return Gradients(L, grads, dL_dh.astype(dtype), dL_dx.astype(dtype))


def applicable(mistake: str, case) -> bool:
    """Mistakes that change nothing in this configuration cannot be told from correct code."""
    return not ((mistake == "forgotten_1_over_T" and (case.reduction != "mean" or case.T == 1))
                or (mistake == "forgotten_1_over_B" and case.B == 1)
                or (mistake == "dropped_h0_gradient" and case.h0 == "none")
                or (mistake == "ignored_truncation" and case.truncate is None)
                or (mistake == "theta_prime_missing" and (case.output == "identity"
                                                         or case.loss == "cross_entropy"))
                or (mistake == "silent_precision_loss" and case.dtype == "float32")
                or (mistake == "phi_prime_missing" and case.hidden == "identity")
                or (mistake == "phi_prime_twice" and case.hidden in ("identity", "relu"))   # phi'^2 = phi'
                or (mistake == "dx_wrong_weight" and case.D != case.H)
                or (mistake == "tf32_matmuls" and case.dtype != "float32"))


def diagnose(result, case, arrays, reference, magnitude=None) -> tuple[list, dict]:
    """The mistakes whose gradients ``result`` (the candidate's) matches on ``case``.

    ``arrays`` = (params, xs, ys) of the case; ``reference`` the float64 reference
    ``Gradients`` and ``magnitude`` its error scales. A match is the checker's own
    criterion: every gradient within tolerance of the mistaken gradients. Returns
    (names, notes): notes hold the text of a match measured on this case (the c of a
    clip, the parameters whose gradient is zero).
    """
    params, xs, ys = arrays
    matches, notes = [], {}

    def matches_all(wrong) -> bool:
        comparison = compare(result, wrong, "diagnosis", case, magnitude)
        return all(e.ok for k, e in comparison.errors.items() if k != "loss")

    for mistake in MISTAKES:
        if not applicable(mistake, case):
            continue
        if mistake == "silent_precision_loss":
            # recognised by its size instead of its shape: fails float64, passes float32
            as_float32 = compare(result, reference, "reference", case.replace(dtype="float32"), magnitude)
            if all(e.ok for k, e in as_float32.errors.items() if k != "loss"):
                matches.append(mistake)
        elif mistake == "clipped_gradients":
            c = max(float(np.max(np.abs(g), initial=0.0)) for g in result.grads.values())
            clipped = reference._replace(grads={k: np.clip(g, -c, c) for k, g in reference.grads.items()})
            if c > 0 and matches_all(clipped):
                matches.append(mistake)
                notes[mistake] = (f"gradients clipped elementwise at c = {c:.6g} (np.clip(d, -{c:.6g}, "
                                  f"{c:.6g})): they differ from the true ones wherever those exceed {c:.6g}")
        elif mistake == "zero_gradient":
            # h0's own zero is dropped_h0_gradient; the rest must agree, as for every mistake
            zero = [k for k, g in result.grads.items() if k != "h0" and not np.any(g) and np.any(reference.grads[k])]
            zeroed = reference._replace(grads={k: (np.zeros_like(g) if k in zero else g)
                                               for k, g in reference.grads.items()})
            if zero and matches_all(zeroed):
                matches.append(mistake)
                notes[mistake] = (f"the gradient of {', '.join(zero)} is identically zero: never accumulated "
                                  f"(e.g. `dbh + dhraw` where `dbh += dhraw` was meant)")
        elif mistake == "tf32_matmuls":
            if _tf32(result, case, arrays, reference, magnitude):
                matches.append(mistake)
        elif mistake == "dx_wrong_weight" and result.dL_dx is None:
            continue
        else:
            with np.errstate(all="ignore"):
                wrong = mistaken_loss_and_grads(mistake, params, xs, ys, **case.config())
            if matches_all(wrong):
                matches.append(mistake)
    return matches, notes


def _tf32(result, case, arrays, reference, magnitude) -> bool:
    """Computed, not guessed: the correct gradients in TF32 arithmetic on this case
    (``comparisons.check.tf32``), and the candidate's errors set beside theirs, for each of
    TF32's two roundings on its own. Taking the larger of the two as TF32's size (as this
    did before) measured a round-to-nearest candidate, cuBLAS's rounding, against
    truncation's errors, biased and 2-4 times larger: only 17-19 of 40 such cases were
    named (issue 28); each rounding judged by its own errors names 40 of 40."""
    mine = compare(result, reference, "reference", case, magnitude).errors
    targets = [k for k in mine if k != "loss"]
    for rounding in tf32.ROUNDINGS:
        with np.errstate(all="ignore"):
            emulated = tf32.loss_and_grads(*arrays, **case.config(), rounding=rounding)
        # the same quantities the candidate gave, nothing more
        emulated = emulated._replace(grads={k: emulated.grads[k] for k in result.grads},
                                     dL_dh=emulated.dL_dh if result.dL_dh is not None else None,
                                     dL_dx=emulated.dL_dx if result.dL_dx is not None else None)
        theirs = compare(emulated, reference, "reference", case, magnitude).errors
        if tf32.looks_like_tf32({k: mine[k].max_abs for k in targets}, {k: theirs[k].max_abs for k in targets},
                                {k: mine[k].tol for k in targets}):
            return True
    return False


def _steps_text(ts: list) -> str:
    """[1, 2, 3, 7] -> '1..3, 7'."""
    runs, start = [], None
    for i, t in enumerate(ts):
        if start is None:
            start = t
        if i + 1 == len(ts) or ts[i + 1] != t + 1:
            runs.append(f"{start}" if start == t else f"{start}..{t}")
            start = None
    return ", ".join(runs)


def _scale_text(k: float, case) -> str:
    named = {"B": case.B, "T": case.T, "1/B": 1 / case.B, "1/T": 1 / case.T, "-1": -1.0}
    for name, value in named.items():
        if value != 1 and abs(k - value) <= 1e-9 * abs(value):
            return f"{k:.6g} (= {name})"
    return f"{k:.6g}"


def error_patterns(result, reference, comparison, case) -> dict:
    """How each failing quantity of ``result`` is off from ``reference``, in words a student
    can act on: identically zero, every entry scaled by one factor (and which: B, T, -1),
    only some time steps, or which entries. Computed from the arrays, never guessed."""
    out = {}
    for target in comparison.failing():
        if target == "loss":
            out[target] = (f"the loss itself differs ({result.loss:.6g} against {reference.loss:.6g}): "
                           f"the forward pass or the reduction differs, before any gradient")
            continue
        mine = result.grads[target] if target in result.grads else getattr(result, target)
        theirs = reference.grads[target] if target in reference.grads else getattr(reference, target)
        c, r = np.asarray(mine, np.float64), np.asarray(theirs, np.float64)
        words = []
        rr = float(np.vdot(r, r))
        if not np.any(c):
            words.append("identically zero")
        elif rr > 0 and c.size > 1:      # one number is always "scaled"; say nothing then
            k = float(np.vdot(c, r)) / rr
            if np.linalg.norm(c - k * r) <= 1e-6 * np.linalg.norm(c):
                words.append("sign flipped: -1 x the true values" if abs(k + 1) <= 1e-9
                             else f"every entry scaled by one factor: {_scale_text(k, case)} x the true values")
        if target in comparison.steps:
            bad = [e.worst_index[0] for e in comparison.steps[target] if not e.ok]
            first_t = 0 if target == "dL_dh" else 1
            words.append(f"off at t = {_steps_text(bad)} ({len(bad)} of {len(comparison.steps[target])} "
                         f"steps, t = {first_t}..{case.T})")
        elif not words:
            e = comparison.errors[target]
            tol = e.tol
            off = np.abs(c - r) > tol
            idx = e.worst_index
            flipped = int(np.sum(off & (np.sign(c) == -np.sign(r)) & (r != 0)))
            words.append(f"{int(off.sum())} of {off.size} entries off, worst at index {idx}: "
                         f"{c[idx]:.6g} against {r[idx]:.6g}"
                         + (f"; {flipped} of them with the wrong sign" if flipped else ""))
        out[target] = "; ".join(words)
    return out
