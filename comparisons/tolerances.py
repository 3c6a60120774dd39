"""How close two gradients must be, argued from dtype, length, magnitudes and the reference.

A candidate gradient g (computed in a dtype with unit roundoff u) is compared with a
float64 reference r on the same input values. We accept

    max_i |g_i - r_i|  <=  tol = rtol * scale + atol,     rtol = C (u + u64) n

- ``n = T (B + D + H + O)`` counts the rounded operations an entry depends on: at each
  of the T steps, dot products of length D + H (forward pre-activation) and H + O
  (backward carry and output error), and the sums over T B rows that make the weight
  gradients. Error analysis of sums and products gives |error| <= n u (sum of |terms|)
  to first order (Higham, ch. 3): errors grow linearly in n, not exponentially. (A
  first version used T + H + D + O, which assumed the per-step errors do not add up
  across steps; a long expansive soak case showed they do.)
- ``scale`` is that "sum of |terms|", not |r|: the largest of max |r| and the
  magnitude M of the same sums taken over absolute values with phi', theta' <= 1.
  M (``magnitudes``) is the sum of |terms| of each gradient entry, one level deep, so
  cancellation cannot fake a tight scale. For dL/dh_t the scale is also at least every
  later step's size (a rounding error made at step s > t travels back to t with the
  signal).
  Why not |r| alone: a saturated unit has phi' = 1 - h^2 ~ 1e-9, computed from a
  rounded h with an *absolute* error ~ u; in float32 h rounds to 1 and phi' to 0. The
  gradient is then tiny but its error is u times the unsaturated magnitude, which is
  exactly M. States and outputs for M come from a float64 forward pass
  (``reference.numeric.states``).
- ``C = 8`` absorbs the constants of that analysis (a multiply-add is two roundings;
  forward and backward each add one chain). It was checked, not tuned: ``nox -s soak``
  prints the largest observed error / (rtol * scale) over its cases.
- The reference's own error: autodiff and complex-step differences are float64-exact
  to the same order (the u64 term). Central differences (ReLU only) add truncation
  error of order d^2 |L'''| (rtol 1e-6) and rounding error eps |L| / d = eps^(2/3) |L|
  (an absolute term: it scales with the loss, not with the gradient).

A derivation error, by contrast, is O(1) relative (a dropped term, a wrong factor) or
at least one step's contribution, many orders above these bounds; float32 rounding
inside a float64 derivation (u32 ~ 6e-8 against rtol ~ 1e-13) is caught as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt_xval.model import step_weights

C = 8.0
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
CENTRAL_DIFFERENCE_RTOL = 1e-6
CENTRAL_DIFFERENCE_ROUNDING = C * float(np.finfo(np.float64).eps) ** (2 / 3)
# An exactly-zero reference (dL/dh_t cut off by truncation, say) still allows a
# difference at float64's smallest normal number, so 0 vs 1e-310 is not a failure.
TINY = float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    why: str


def tolerance(dtype: str, T: int, B: int, D: int, H: int, O: int, *, reference: str = "autodiff",
              loss: float = 0.0) -> Tolerance:
    """Tolerance for a ``dtype`` candidate against a float64 ``reference``.

    reference: "autodiff" (torch, jax, or complex-step differences) or "central"
    (central finite differences, whose rounding error grows with ``loss`` = |L|).
    """
    u = UNIT_ROUNDOFF[str(dtype)]
    n = T * (B + D + H + O)
    rtol = C * (u + UNIT_ROUNDOFF["float64"]) * n
    atol = 0.0
    why = f"C (u + u64) n scale: C=8, u={u:.2g} ({dtype}), n=T(B+D+H+O)={n}"
    if reference == "central":
        rtol += CENTRAL_DIFFERENCE_RTOL
        atol = CENTRAL_DIFFERENCE_ROUNDING * abs(loss)
        why += "; central differences add 1e-6 scale + 8 eps^(2/3) |L|"
    return Tolerance(rtol, atol, why)


def case_tolerance(case, **kwargs) -> Tolerance:
    """``tolerance`` for a ``comparisons.cases.Case``."""
    return tolerance(case.dtype, case.T, case.B, case.D, case.H, case.O, **kwargs)


@dataclass(frozen=True)
class Error:
    """One compared quantity: the largest absolute error, its size relative to the scale,
    the absolute tolerance it was held to, and the entry where the error is largest."""

    max_abs: float
    rel: float
    tol: float
    worst_index: tuple

    @property
    def ok(self) -> bool:
        return bool(self.max_abs <= self.tol)

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "rel": self.rel, "tol": self.tol, "ok": self.ok}


def _rel(abs_err: float, scale: float) -> float:
    return abs_err / scale if scale > 0 else (0.0 if abs_err == 0 else float("inf"))


def compare_array(candidate: np.ndarray, reference: np.ndarray, tol: Tolerance,
                  magnitude: float = 0.0) -> Error:
    """Largest error of ``candidate`` against ``reference``; scale = max(max |r|, magnitude)."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = max(float(np.max(np.abs(reference))) if reference.size else 0.0, magnitude)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    max_abs = float(diff.max()) if diff.size else 0.0
    return Error(max_abs, _rel(max_abs, scale), tol.rtol * scale + tol.atol + TINY,
                 tuple(int(i) for i in worst))


def compare_steps(candidate: np.ndarray, reference: np.ndarray, tol: Tolerance, magnitude=None,
                  first_t: int = 0):
    """Per-step comparison of dL/dh_t (t = 0..T, ``first_t`` 0) or dL/dx_t (t = 1..T, ``first_t`` 1).

    ``magnitude``: optional per-step phi'-free sizes. Returns (Error per step, the worst
    step's Error, the first departing step t counting back from T, or None).
    """
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    per_step_abs = diff.reshape(len(diff), -1).max(1)
    step_scale = np.abs(reference).reshape(len(reference), -1).max(1)
    if magnitude is not None:
        step_scale = np.maximum(step_scale, magnitude)
    # scale_t = max over s >= t: errors from later steps travel back with the signal
    scale = np.maximum.accumulate(step_scale[::-1])[::-1]
    limit = tol.rtol * scale + tol.atol + TINY
    bad = np.nonzero(per_step_abs > limit)[0]
    first_bad = int(bad.max()) + first_t if bad.size else None
    per_step = [Error(float(a), _rel(float(a), float(s)), float(t), (i + first_t,))
                for i, (a, s, t) in enumerate(zip(per_step_abs, scale, limit))]
    worst = int(np.argmax(per_step_abs / limit))
    return per_step, per_step[worst], first_bad


def magnitudes(case, params: dict, xs: np.ndarray, ys: np.ndarray, dL_dh) -> dict:
    """The magnitude M of every compared quantity: the sum of |terms| that rounding acts on.

    With e_t = dL/dh_t phi'(a_t) and the reference's dL/dh_t (float64)::

        g_t = max(|dL/dh_t|,  |W_hy|^T |dL/dz_t| + |W_hh|^T |e_{t+1}|)     (elementwise)
        M(W_xh) = max sum_t g_t |x_t|^T,  M(W_hh) = max sum_t g_t |h_{t-1}|^T,  M(b_h) = max sum_t g_t
        M(dL/dx_t) = max_{s >= t} max g_s  *  max_d sum_h |W_xh[h, d]|

    The second term of g_t is the size of the two sums that make dL/dh_t, so their
    cancellation cannot fake a tight scale; g_t, not |e_t|, multiplies the inputs because
    phi' is computed from a rounded h with an absolute error ~ u (saturation). The
    recursion is not taken over absolute values all the way back: that bound is rigorous
    but grows like |W_hh|^T and would make the check vacuous; errors made at step s
    travel back through the true Jacobians, as the signal does (see compare_steps).
    dL/dx_t = W_xh^T e_t inherits dL/dh_t's error (from step t and every later one),
    times at most the largest column sum of |W_xh|.
    ``params``, ``xs``, ``ys`` in float64; ``dL_dh`` (T+1, B, H) from an autodiff
    reference, or None (then the output side only). Returns {target: float}, with
    "dL_dh" -> (T+1,) array.
    """
    from manual.activations import ACTIVATIONS
    from reference.numeric import states  # NumPy only: a float64 forward pass

    h, a, z, o = states(params, xs, hidden=case.hidden, output=case.output)
    # the largest value the forward pass itself holds: where it passes float32's range, a
    # float32 computation must overflow, as torch's does in float32 on the same arrays
    forward = float(max(np.max(np.abs(a), initial=0), np.max(np.abs(z), initial=0)))
    T, B = xs.shape[:2]
    w = step_weights(case.reduction, T, np.float64)[:, None, None] / B
    if case.loss == "squared_error":
        # the terms that make o_t - y_t: |W_hy| |h_t| + |b_y| (through theta, |theta'| <= 1) and |y_t|
        dz = w * (np.abs(h[1:]) @ np.abs(params["W_hy"]).T + np.abs(params["b_y"]) + np.abs(ys))
        loss_terms = float((dz * np.abs(o - ys)).sum())           # 1/2 (o - y)^2 from rounded o - y
    else:
        dz = w * (o.shape[-1] > 1) * np.ones_like(o)  # |softmax - onehot| <= 1 per entry
        # -log softmax(z)_y = logsumexp(z) - z_y, each term at most max |z| + log O in size
        loss_terms = float((w[..., 0] * (2 * np.abs(z).max(-1) + np.log(z.shape[-1]))).sum())
    M = {"W_hy": float(np.max(np.einsum("tbo,tbh->oh", dz, np.abs(h[1:])))),
         "b_y": float(np.max(dz.sum((0, 1)))), "loss": loss_terms, "forward": forward}
    if dL_dh is None:
        return M
    e = np.abs(dL_dh[1:]) * np.abs(ACTIVATIONS[case.hidden][1](a, h[1:]))
    terms = np.zeros_like(dL_dh)
    terms[:-1] = e @ np.abs(params["W_hh"])            # |W_hh|^T |e_{t+1}|
    terms[1:] += dz @ np.abs(params["W_hy"])           # |W_hy|^T |dL/dz_t|
    g = np.maximum(np.abs(dL_dh), terms)
    M["W_xh"] = float(np.max(np.einsum("tbh,tbd->hd", g[1:], np.abs(xs))))
    M["W_hh"] = float(np.max(np.einsum("tbh,tbk->hk", g[1:], np.abs(h[:-1]))))
    M["b_h"] = float(np.max(g[1:].sum((0, 1))))
    M["dL_dh"] = g.reshape(T + 1, -1).max(1)
    later = np.maximum.accumulate(M["dL_dh"][:0:-1])[::-1]          # max_{s >= t} g_s, t = 1..T
    M["dL_dx"] = later * float(np.abs(params["W_xh"]).sum(0).max())
    if "h0" in params:
        # dL/dh_0, like every dL/dh_t, is held to the size of all later steps
        M["h0"] = float(np.max(g if params["h0"].ndim == 2 else g.sum(1)))
    return M
