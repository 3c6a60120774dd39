"""How close two gradients must be, argued from dtype, the case's own error growth and the reference.

A candidate gradient g (computed in a dtype with unit roundoff u) is compared with a
float64 reference r on the same input values. We accept

    max_i |g_i - r_i|  <=  tol = rtol * scale + atol,     rtol = C (u + u64) sqrt(n)

The model (Higham & Mary, "A new approach to probabilistic rounding error analysis",
SIAM J. Sci. Comput. 2019): rounding errors behave like independent, mean-zero random
variables, so a sum of n rounded terms is off by at most lambda sqrt(n) u (sum of |terms|)
with probability at least 1 - 2 exp(-lambda^2 (1-u)^2 / 2): sqrt(n), not the worst case's n.

- ``n = D + H + O + 4 + T B`` counts the rounded operations one entry's local error sums
  over: one step's dot products (at most D + H + O long), phi, phi', theta, theta' (libm
  float32 tanh and exp are within ~1-2 ulp: 4), and the T B rows a weight gradient sums
  (per-step quantities, dL/dh_t and dL/dx_t, sum no rows: their n is one step's).
- ``scale`` is where the errors come from, computed on the case (:func:`magnitudes`): the
  sum of |terms| of each sum (so cancellation cannot fake a tight scale), carried along the
  recurrence through its own Jacobians J_t = diag(phi'(a_t)) W_hh as the covariance of
  independent per-step errors (:func:`propagate`): errors fade where the recurrence
  contracts and grow where it expands, as the product of Jacobians the report draws (with
  phi' allowed its own rounding, 2 (u + u64): a unit that float64 saturates to phi' = 0
  still passes errors on, as the exact phi' does). The
  first version took the largest later step's size instead (no growth): in expansive
  regimes that was too tight (issue 14's false alarm, t = 19 of an expansive T = 21 case);
  and it multiplied a linear n with a linear sum of |terms|, 10^4 too loose in float32.
- ``C`` is measured, not tuned to green: see the value's comment below. With C = lambda =
  16 the model leaves a probability of at most 2 exp(-lambda^2 (1-u)^2 / 2) ~ 1e-55 per
  entry and sum that the bound fails; a union over every entry of every sum of every case
  of a 10^6-case soak (< 10^12 events) leaves < 1e-43. The real risk is the model's
  assumption (independent, mean-zero roundings), not its tail: hence the measured C and
  the held-out soaks.
- Worst-case fallback: where that assumption is unsafe (linear recurrences, identity
  hidden units: :func:`worst_case_applies`) rtol is at least the deterministic
  gamma_n = n u / (1 - n u), which needs no assumption about the roundings at all.
- Where the recurrence can grow a rounding error to the size of the signal (rtol times
  the amplification reaching ILL_CONDITIONED in ``comparisons.check.checker``), no verdict is
  possible: the case is inconclusive, "ill-conditioned beyond float32/float64", decided
  from the case and the references alone.
- The reference's own error: autodiff and complex-step differences are float64-exact
  to the same order (the u64 term). Central differences (ReLU only) add truncation
  error of order d^2 |L'''| (rtol 1e-6) and rounding error eps |L| / d = eps^(2/3) |L|
  (an absolute term: it scales with the loss, not with the gradient); near a kink they
  are left out of the case (``comparisons.check.checker.near_a_kink``).

A derivation error, by contrast, is O(1) relative (a dropped term, a wrong factor) or
at least one step's contribution, many orders above these bounds; float32 rounding
inside a float64 derivation (u32 ~ 6e-8 against rtol ~ 1e-14) is caught as well, and
``bptt-xval resolve`` measures the smallest planted error the check still catches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bptt_xval.model import is_cut, step_weights
from reference.numeric import COMPLEX_STEP

# C, measured (not tuned to green): with C = 1, soak seeds 9001-9004 (24,000 correct cases,
# every configuration, torch and finite differences as references) gave error / (rtol scale)
# a median of 0.05-0.08, a 99.9% quantile of ~1 and a maximum of 2.8 (float32, identity
# units: linear recurrences, whose rounding errors are the most correlated, the model's
# weakest point). C = 16 leaves the largest a margin of ~6 for the tail of far larger
# soaks; held-out seeds check it (README, benchmarks/results). BPTT_XVAL_CALIBRATE_C
# overrides it for such a measurement only.
C = float(os.environ.get("BPTT_XVAL_CALIBRATE_C", 16.0))
# C for the hidden layer's weight sums (dL/dW_xh, dL/dW_hh, dL/db_h) against the Elman model's
# analytic magnitudes, argued from the soaks' own distribution (issue 28), not tuned to green:
# in the 10^6-case soak of seed 1399465641 (C = 16 everywhere) their largest error / tolerance
# was 0.082 (float64) and 0.158 (float32), while the targets that set C's margin reached 0.45
# (h0 against central differences) and 0.40 (dL/dW_hy, float32). Their magnitudes carry slack
# the others do not (each term's error scale sums |terms| of a step and is then added in
# quadrature over t and b with the full sqrt(n): 10^2-10^3 times the errors measured on
# fresh cases), so the same C gave them 3-5x the margin of the rest and gave away resolving
# power (float64 1e-12 in dL/db_h caught in 87-90% of cases). C = 8 leaves their largest
# at 0.16 and 0.32, no closer than the rest, and a fresh 10^6 soak checks it (README).
# BPTT_XVAL_CALIBRATE_C_SUMS overrides it for such a measurement only.
C_WEIGHT_SUMS = float(os.environ.get("BPTT_XVAL_CALIBRATE_C_SUMS", 8.0))
WEIGHT_SUMS = ("W_xh", "W_hh", "b_h")
# roundings per step beyond the dot products: phi and phi' (and theta, theta'), each within
# ~1-2 ulp in float32 libm (tanh, exp), so 4 more rounded operations an entry depends on
ELEMENTARY = 4
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
CENTRAL_DIFFERENCE_RTOL = 1e-6
CENTRAL_DIFFERENCE_ROUNDING = C * float(np.finfo(np.float64).eps) ** (2 / 3)
# An exactly-zero reference (dL/dh_t cut off by truncation, say) still allows a
# difference at float64's smallest normal number, so 0 vs 1e-310 is not a failure.
TINY = float(np.finfo(np.float64).tiny)
# The complex step computes dL/dtheta as Im L(theta + i h) / h with h = 1e-150: a term whose
# imaginary part falls below float64's smallest normal number (a gradient vanished through
# ~190 sigmoid steps, 1e-192) underflows, so the reference itself is exact only down to
# tiny / h per term (soak seeds 9003-9004: h0 gradients of 1e-192 against 1e-205).
COMPLEX_STEP_FLOOR = TINY / COMPLEX_STEP


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    why: str
    # the part of rtol that is C (u + u64) sqrt(n): what a calibrated C scales (not the
    # deterministic gamma_n, not central differences' truncation error)
    rounding: float = 0.0

    def with_C(self, c: float | None) -> "Tolerance":
        """This tolerance with C replaced by ``c`` in its probabilistic rounding part (the
        rest unchanged); None: unchanged."""
        if c is None or not self.rounding:
            return self
        return Tolerance(self.rtol + (c / C - 1) * self.rounding, self.atol, f"{self.why}; C={c:g} for this target",
                         self.rounding * c / C)


def tolerance(dtype: str, T: int, B: int, D: int, H: int, O: int, *, reference: str = "autodiff",
              loss: float = 0.0, loss_terms: float = 0.0, worst_case: bool = False,
              per_step: bool = False) -> Tolerance:
    """Tolerance for a ``dtype`` candidate against a float64 ``reference``.

    reference: "autodiff" (torch, jax, or complex-step differences) or "central"
    (central finite differences, whose rounding error grows with ``loss`` = |L|, or with
    ``loss_terms``, the magnitude of L's own rounding error, where that is the larger).
    ``worst_case``: where the probabilistic model's assumption is unsafe (see
    :func:`worst_case_applies`), rtol is at least the deterministic bound
    gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, Lemma 3.1), which holds for
    every rounding whatever its correlations.
    ``per_step``: the tolerance of a per-step quantity (dL/dh_t, dL/dx_t), which sums no rows
    over t and b: n is one step's D + H + O + 4 (the steps' errors it carries are in its
    magnitude, :func:`propagate`'s random walk). The worst-case bound keeps the full n: its
    T B also covers errors that add up linearly along a linear recurrence.
    """
    u = UNIT_ROUNDOFF[str(dtype)]
    n = rounded_operations(T, B, D, H, O)
    u_sum = u + UNIT_ROUNDOFF["float64"]
    per_step = per_step and not worst_case
    rtol = C * u_sum * np.sqrt(rounded_operations(T, B, D, H, O, per_step=True) if per_step else n)
    # below the candidate dtype's smallest normal number relative precision is gone: a float32
    # gradient of 1e-45 is one subnormal step (soak: an h0 gradient off by exactly that)
    atol = C * float(np.finfo(str(dtype)).tiny)
    why = (f"C (u + u64) sqrt(n) scale: C={C:g}, u={u:.2g} ({dtype}), "
           + (f"n=D+H+O+{ELEMENTARY}={n - T * B} per step" if per_step else f"n=D+H+O+{ELEMENTARY}+TB={n}"))
    rounding = rtol
    if worst_case and n * u_sum < 1:
        gamma = n * u_sum / (1 - n * u_sum)
        if gamma > rtol:
            rtol, rounding = gamma, 0.0
            why = (f"worst case gamma_n = n (u + u64) / (1 - n (u + u64)) scale (linear recurrence: its "
                   f"rounding errors may correlate): u={u:.2g} ({dtype}), n=D+H+O+{ELEMENTARY}+TB={n}")
    if reference == "central":
        rtol += CENTRAL_DIFFERENCE_RTOL
        # each difference subtracts two rounded losses, each off by up to L's own tolerance,
        # C (u + u64) sqrt(n) times its magnitude (the terms that make L), then divides by
        # d >= eps^(1/3): C eps^(2/3) sqrt(n) loss_terms. Not eps |L|: a small L made of large
        # terms (o_t - y_t = 0.04 against o_t = 0.8) is off by far more than eps |L| (soak seed
        # 634539278: an h0 gradient of 2.6e-11, ReLU, reduction "last", L = 8.5e-4, its
        # central difference off by 3.7e-13, 0.73 of the eps^(2/3) |L| bound)
        atol = CENTRAL_DIFFERENCE_ROUNDING * max(abs(loss), float(np.sqrt(n)) * loss_terms)
        why += "; central differences add 1e-6 scale + C eps^(2/3) max(|L|, sqrt(n) L's magnitude)"
    elif reference == "complex_step":
        # never below the candidate dtype's own floor: a float32 candidate cannot hold the
        # 1e-92 h0 gradient the float64 complex step can (conventions soak seed 482407431:
        # reduction "last", T = 164, the float32 answer 0 against 1.7e-92)
        atol = max(atol, COMPLEX_STEP_FLOOR * n)
        why += "; complex step: imaginary parts below float64's smallest normal underflow (atol tiny / h per term)"
    return Tolerance(rtol, atol, why, rounding)


def rounded_operations(T: int, B: int, D: int, H: int, O: int, per_step: bool = False) -> int:
    """n: the rounded operations an entry's local error sums over: one step's dot products
    (D + H forward, H + O backward: at most D + H + O per entry), the activations, and
    the T B rows summed into a weight gradient (not ``per_step``: dL/dh_t sums no rows)."""
    return D + H + O + ELEMENTARY + (0 if per_step else T * B)


def case_n(case) -> int:
    return rounded_operations(case.T, case.B, case.D, case.H, case.O)


def worst_case_applies(case) -> bool:
    """Where the probabilistic model is unsafe and the deterministic bound is kept: linear
    hidden units (``identity``). Their recurrence h_t = W_hh h_{t-1} + ... repeats the same
    linear map, so the roundings of successive steps see the same operands' structure and
    may correlate instead of averaging out; the soak measured these cases' error at 2.8
    times the sqrt(n) model (C = 1), the largest of any configuration. Elsewhere the
    nonlinearity (tanh, sigmoid, relu) decorrelates the steps, and C = 16 covers the rest.
    For n <= C^2 = 256 the probabilistic bound is the larger anyway."""
    return case.hidden == "identity"


def case_tolerance(case, **kwargs) -> Tolerance:
    """``tolerance`` for a ``comparisons.check.cases.Case`` (the worst-case fallback where
    :func:`worst_case_applies`)."""
    kwargs.setdefault("worst_case", worst_case_applies(case))
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
    # (the checker calls this per parameter, reference and case: no copy it does not need)
    diff = np.abs(np.subtract(candidate, reference, dtype=np.float64))
    if diff.size:
        scale = max(float(np.abs(reference).max()), magnitude)
        at = int(diff.argmax())
        max_abs, worst = float(diff.flat[at]), tuple(int(i) for i in np.unravel_index(at, diff.shape))
    else:
        scale, max_abs, worst = magnitude, 0.0, ()
    return Error(max_abs, _rel(max_abs, scale), tol.rtol * scale + tol.atol + TINY, worst)


def compare_steps(candidate: np.ndarray, reference: np.ndarray, tol: Tolerance, magnitude=None,
                  first_t: int = 0):
    """Per-step comparison of dL/dh_t (t = 0..T, ``first_t`` 0) or dL/dx_t (t = 1..T, ``first_t`` 1).

    ``magnitude``: optional per-step phi'-free sizes. Returns (Error per step, the worst
    step's Error, the first departing step t counting back from T, or None).
    """
    diff = np.abs(np.subtract(candidate, reference, dtype=np.float64))
    per_step_abs = diff.reshape(len(diff), -1).max(1)
    scale = np.abs(reference).reshape(len(reference), -1).max(1)
    if magnitude is not None:       # carries the errors of later steps already (see magnitudes)
        scale = np.maximum(scale, magnitude)
    else:                           # without it: errors of later steps arrive at their own size
        scale = later_steps_scale(scale)
    limit = tol.rtol * scale + tol.atol + TINY
    bad = np.nonzero(per_step_abs > limit)[0]
    first_bad = int(bad.max()) + first_t if bad.size else None
    per_step = StepErrors(per_step_abs, scale, limit, first_t)
    return per_step, per_step[int(np.argmax(per_step_abs / limit))], first_bad


def later_steps_scale(per_step: np.ndarray) -> np.ndarray:
    """The classical scale of step t's error: the largest size of steps t..T, since a
    rounding error made at a later step reaches t at that step's size."""
    return np.maximum.accumulate(per_step[::-1])[::-1]


class StepErrors(Sequence):
    """The ``Error`` of each step, made when asked for: the checker reads only the worst
    step and the first departing one, so a Python object per step per reference per case
    (a fifth of a warm check's time) is built only for the report and the diagnosis."""

    def __init__(self, max_abs: np.ndarray, scale: np.ndarray, tol: np.ndarray, first_t: int):
        self.max_abs, self.scale, self.tol, self.first_t = max_abs, scale, tol, first_t

    def __len__(self) -> int:
        return len(self.max_abs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        a = float(self.max_abs[i])
        return Error(a, _rel(a, float(self.scale[i])), float(self.tol[i]), (i + self.first_t,))

    def __repr__(self) -> str:
        return f"StepErrors({list(self)!r})"


def propagate(local: np.ndarray, J: np.ndarray, *, backward: bool, cut=None) -> np.ndarray:
    """The size of rounding errors carried along the recurrence through its real Jacobians.

    ``local`` (N, B, H): the local error scale of each step (sum of |terms|); ``J`` (N-1, B,
    H, H): the step Jacobians between them. Each step's rounding error is modelled as an
    independent random vector (Higham & Mary 2019: rounding errors behave like independent
    mean-zero variables; their sums grow like sqrt(n) u, not n u) with standard deviation
    ``local`` per entry; carried along, the errors add up as their covariance does:

        forward:   C_t = diag(local_t^2) + J_t C_{t-1} J_t^T
        backward:  C_t = diag(local_t^2) + J_{t+1}^T C_{t+1} J_{t+1}

    and the returned scale is sqrt(diag C_t) (N, B, H). Through contracting Jacobians old
    errors fade, through expanding ones they grow, exactly as the product of Jacobians the
    report draws; with J = I it is the random walk sqrt(sum_s local_s^2). ``cut``: optional
    (N-1,) booleans, True where no error crosses (truncated BPTT).
    """
    N, B, H = local.shape
    # C is kept in units of f (per sample): squares of vanishing (1e-177) or exploding
    # (1e200) gradients would under- or overflow float64 otherwise
    C, f = np.zeros((B, H, H)), np.ones(B)
    out = np.empty_like(local)
    order = range(N - 1, -1, -1) if backward else range(N)
    # C <- A C A^T with A = J^T (backward) or J (forward); A^T laid out contiguously, which
    # NumPy's batched product runs faster on
    A = J.transpose(0, 1, 3, 2) if backward else J
    A_T = J if backward else np.ascontiguousarray(J.transpose(0, 1, 3, 2))
    prev = None
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for t in order:
            if prev is not None and not (cut is not None and cut[min(t, prev)]):
                C = A[min(t, prev)] @ C @ A_T[min(t, prev)]
            else:
                C = np.zeros((B, H, H))
            diag = C.reshape(B, H * H)[:, ::H + 1]        # a view: C's diagonals
            scale = np.sqrt(diag.max(1))
            np.maximum(scale, local[t].max(-1) / f, out=scale)
            scale[~((scale > 0) & (scale < np.inf))] = 1.0
            C /= (scale * scale)[:, None, None]
            f = f * scale
            diag += (local[t] / f[:, None]) ** 2
            out[t] = f[:, None] * np.sqrt(diag)
            prev = t
    return np.nan_to_num(out, nan=np.inf)


def _summed(left: np.ndarray, right: np.ndarray) -> float:
    """The size of sum_{t,b} left_tb right_tb^T's error, largest entry: the terms' errors
    add in quadrature, sqrt(sum_{t,b} (left right)^2) (the sqrt(T B) of their random walk
    is in rtol's n). Each side is scaled by its largest entry first: the squares of a
    gradient vanished to 1e-222 underflow to 0 (soak seed 318650666: a zero tolerance)."""
    l, r = _largest(left), _largest(right)
    if l == 0 or r == 0:
        return 0.0
    return l * r * float(np.sqrt(np.max(np.einsum("tbi,tbj->ij", (left / l) ** 2, (right / r) ** 2))))


def _largest(x: np.ndarray) -> float:
    m = float(np.max(np.abs(x), initial=0.0))
    return m if np.isfinite(m) else np.inf


def _root_sum_squares(x: np.ndarray, axis) -> np.ndarray:
    """sqrt(sum x^2) over ``axis``, scaled so that tiny (or huge) entries do not under- or
    overflow when squared."""
    m = _largest(x)
    if m == 0 or not np.isfinite(m):
        return np.sqrt((x ** 2).sum(axis))
    return m * np.sqrt(((x / m) ** 2).sum(axis))


def magnitudes(case, params: dict, xs: np.ndarray, ys: np.ndarray, dL_dh, forward=None) -> dict:
    """:func:`_magnitudes` for one case (its docstring says what they are)."""
    steps = _magnitudes(case, params, xs, ys, dL_dh, forward)
    request = next(steps)
    try:
        while True:
            local, J, backward, cut = request
            request = steps.send(propagate(local, J, backward=backward, cut=cut))
    except StopIteration as done:
        return done.value


def magnitudes_many(jobs: list) -> list:
    """:func:`magnitudes` for many cases, ``jobs`` [(case, params, xs, ys, dL_dh, forward)]:
    the same values (to float64 rounding), but each round of :func:`propagate` runs once
    for a group of cases stacked along the batch axis (its rows are independent; the
    steps and units are zero-padded, and zeros carry no error), not once per case: the
    loop over time is paid per group."""
    gens = [_magnitudes(*job) for job in jobs]
    results = [None] * len(gens)
    requests = {}
    for i, g in enumerate(gens):
        requests[i] = next(g)
    while requests:
        answers = {}
        keys = {}
        for i, (local, J, backward, cut) in requests.items():
            keys.setdefault((backward, None if cut is None else tuple(np.nonzero(cut)[0])), []).append(i)
        for (backward, _), idx in keys.items():
            for group in _propagation_groups([requests[i][0].shape for i in idx]):
                members = [idx[j] for j in group]
                Np = max(requests[i][0].shape[0] for i in members)
                Hp = max(requests[i][0].shape[2] for i in members)
                rows = [requests[i][0].shape[1] for i in members]
                local = np.zeros((Np, sum(rows), Hp))
                J = np.zeros((max(Np - 1, 0), sum(rows), Hp, Hp))
                cut = None
                start = 0
                for i, b in zip(members, rows):
                    l_i, J_i, _, cut_i = requests[i]
                    N_i, _, H_i = l_i.shape
                    local[:N_i, start:start + b, :H_i] = l_i
                    J[:N_i - 1, start:start + b, :H_i, :H_i] = J_i
                    if cut_i is not None:
                        cut = np.zeros(max(Np - 1, 0), bool)
                        cut[:len(cut_i)] = cut_i
                    start += b
                out = propagate(local, J, backward=backward, cut=cut)
                start = 0
                for i, b in zip(members, rows):
                    N_i, _, H_i = requests[i][0].shape
                    answers[i] = out[:N_i, start:start + b, :H_i]
                    start += b
        requests = {}
        for i, answer in answers.items():
            try:
                requests[i] = gens[i].send(answer)
            except StopIteration as done:
                results[i] = done.value
    return results


# cases per propagate() call, and the most rows x Hp^2 entries of a stacked covariance
# (0.5 MB: beyond, measured on this machine, NumPy's batched products slow by 3x per row,
# 66 rows of H = 48 taking 2.6 ms a step)
PROPAGATE_GROUP = 64
PROPAGATE_ENTRIES = 2 ** 16


def _propagation_groups(shapes: list) -> list:
    """Groups of indices into ``shapes`` [(N, B, H)] that propagate() runs stacked.

    Its cost per step is a fixed overhead (some twenty NumPy calls) plus rows x Hp^3 for the
    two products: the steps are padded within a length bucket (64, 256, ... steps), the
    cases sorted by H so that wide cases share groups with wide ones, and a group's rows
    bounded by PROPAGATE_ENTRIES / Hp^2. (Splitting further by H, to pad less, cost more
    in per-step overhead than it saved in products: measured on the default mixture.)"""
    from reference.stacked import coarse

    order = sorted(range(len(shapes)), key=lambda i: (coarse(shapes[i][0], 64), -shapes[i][2], -shapes[i][0]))
    out, current, rows = [], [], 0
    for i in order:
        N, B, H = shapes[i]
        if current:
            first = shapes[current[0]]      # the group's largest H
            if (coarse(N, 64) != coarse(first[0], 64) or len(current) >= PROPAGATE_GROUP
                    or (rows + B) * first[2] ** 2 > PROPAGATE_ENTRIES):
                out.append(current)
                current, rows = [], 0
        current.append(i)
        rows += B
    return out + ([current] if current else [])


def _local_error_scale(hidden: str, G, dL_dh_abs, d, h, Phi, n: int):
    """The scale of e_t = phi'(a_t) dL/dh_t's error, t = 1..T, which the weight gradients sum
    and the backward recursion carries to dL/dh_{t-1} (there with G = |dL/dh_t|: the
    recursion itself propagates dL/dh_t's own error).

    Three sources: dL/dh_t's own error reaches e_t through phi' (d G_t); phi' is computed
    from a rounded h_t, off by its forward error (at most Phi_t, in units of rtol) times
    |phi''| in terms of h (tanh: 2|h|, sigmoid: |1 - 2h|); and rounding 1 - h^2 itself,
    2u absolute (2 / sqrt(n) in units of rtol, as for dL/dh_t above). ReLU's and the
    identity's phi' are exact (a ReLU pre-activation at its kink is inconclusive)."""
    if hidden == "tanh":
        dphi = 2 * np.abs(h)
    elif hidden == "sigmoid":
        dphi = np.abs(1 - 2 * h)
    else:
        return d * G
    with np.errstate(over="ignore", invalid="ignore"):
        return np.nan_to_num(d * G + dL_dh_abs * (dphi * Phi + 2 / np.sqrt(n)), nan=np.inf)


def _magnitudes(case, params: dict, xs: np.ndarray, ys: np.ndarray, dL_dh, forward=None):
    """The magnitude M of every compared quantity: the size its rounding errors are
    measured against, on this case (float64 forward pass, the reference's dL/dh_t).

    Three parts, each a bound on where a rounding error can come from:

    1. The sum of |terms| of every sum the derivation takes (the |A||x| form of Higham's
       bounds), so that cancellation cannot fake a tight scale: for a_t the terms
       |W_xh||x_t| + |W_hh||h_{t-1}| + |b_h|, for dL/dz_t those of o_t - y_t, for dL/dh_t
       ``g_t = max(|dL/dh_t|, |W_hy|^T |dL/dz_t| + |W_hh|^T |e_{t+1}|)``.
    2. Errors carried by the recurrence: an error in h_{t-1} reaches h_t through the step
       Jacobian J_t = diag(phi'(a_t)) W_hh, an error in dL/dh_t reaches dL/dh_{t-1} through
       J_t^T, each growing at most by sigma_t >= ||J_t||_2 (:func:`jacobian_norms`, on the
       case's own phi'). So the forward scale is Phi_t = max(|h_t|, d_t (terms of a_t),
       sigma_t max Phi_{t-1}) and the backward one G_t = max(g_t, sigma_{t+1} S_{t+1}) with
       S_t = max G_t: in contractive regimes errors fade with the signal, in expansive ones
       they grow with it, as the product of Jacobians the report draws. (The earlier
       bound took sigma = 1: too tight where the recurrence expands, a soak false alarm.)
       No error crosses a truncation cut.
    3. Weight gradients sum per-step products over t and the batch; the products' errors
       add in quadrature (``_summed``: sqrt(sum_t ...^2), the sqrt(T B) growth of their sum
       being in rtol's n), and each product's error is taken to first order,
       d(e h^T) = de h^T + e dh^T: M(W_hh) = max sqrt(sum_t E_t^2 h_{t-1}^2) +
       max sqrt(sum_t e_t^2 Phi_{t-1}^2), M(W_xh) the first with |x_t| (exact inputs),
       M(b_h) = max sqrt(sum_t E_t^2), M(W_hy) likewise from dL/dz_t's terms and |h_t| plus
       |dL/dz_t| and Phi_t. E_t is e_t = phi'(a_t) dL/dh_t's error scale
       (:func:`_local_error_scale`): phi' times G_t, plus phi' computed from a rounded h_t
       (its forward error, and the 2u of 1 - h^2: a saturated unit, phi' ~ 1e-9 from an h
       rounded to 1, still passes 2u |dL/dh_t| on). (The first version multiplied the two
       error scales, G_t Phi_{t-1}: a product of two bounds, 10-200x max |dL/dW_hh| on
       fresh seeds, which caught a 1e-4 float32 error in dL/dW_hh in 53% of cases, issue 28.)
       dL/dx_t = W_xh^T e_t: S_t times the largest column sum of |W_xh|. dL/dh_t and
       dL/dx_t sum no rows over t and b: their tolerance takes one step's n
       (``tolerance(per_step=True)``).

    ``params``, ``xs``, ``ys`` in float64; ``dL_dh`` (T+1, B, H) from an autodiff reference,
    or None (then the output side only). Returns {target: float}, with "dL_dh" -> (T+1,)
    and "dL_dx" -> (T,) arrays, "forward": the largest |a_t| or |z_t| (whether the case fits
    the dtype's range at all), and "amplification": the largest error growth sigma_t...
    along the recurrence relative to the signal (how ill-conditioned the case is).
    """
    from manual.activations import ACTIVATIONS
    from manual.output import Forward, output_error
    from reference.numeric import states  # NumPy only: a float64 forward pass

    # ``forward``: reference.numeric.states' (h, a, z, o), when the caller computed it already
    h, a, z, o = forward if forward is not None else states(params, xs, hidden=case.hidden, output=case.output)
    # the largest value the forward pass itself holds: where it passes float32's range, a
    # float32 computation must overflow, as torch's does in float32 on the same arrays
    forward = float(max(np.max(np.abs(a), initial=0), np.max(np.abs(z), initial=0)))
    T, B = xs.shape[:2]
    smooth = case.hidden in ("tanh", "sigmoid")
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.abs(ACTIVATIONS[case.hidden][1](a, h[1:]))
        # J_t = diag(phi'(a_t)) W_hh, t = 1..T: the recurrence's own Jacobians on this case,
        # the paths rounding errors travel. phi' = 1 - h^2 (h (1 - h)) is computed from a
        # rounded h, here and in every implementation, so the phi' an error really meets
        # may exceed this one by up to 2 (u + u64) absolute: a unit whose float64 h rounds
        # to +-1 has phi' = 0 here, a closed path, while the exact phi' (2e-20) keeps it
        # open; the gradient that flows through it is real and no rounded 1 - h^2 sees it
        # (soak seed 644692166: an h0 gradient 9% off in every autodiff reference, exact in
        # the complex step). Errors are carried with phi' + 2 (u + u64) (ReLU's and the
        # identity's phi' are exact).
        slack = 2 * (UNIT_ROUNDOFF[case.dtype] + UNIT_ROUNDOFF["float64"]) if smooth else 0.0
        J = np.nan_to_num((ACTIVATIONS[case.hidden][1](a, h[1:]) + slack)[..., None] * params["W_hh"])
        W_hh_abs = np.abs(params["W_hh"])
        a_terms = np.abs(xs) @ np.abs(params["W_xh"]).T + np.abs(h[:-1]) @ W_hh_abs.T + np.abs(params["b_h"])
        local = np.abs(h).copy()                        # h_0: given, not computed
        local[1:] = np.maximum(local[1:], d * a_terms)  # h_t = phi(a_t): |phi'| times a_t's terms
    Phi = yield local, J, False, None                   # propagate(local, J, backward=False)
    n_step = rounded_operations(case.T, case.B, case.D, case.H, case.O, per_step=True)
    w = step_weights(case.reduction, T, np.float64)[:, None, None] / B
    _, dL_dz = output_error(Forward(None, h, z, o), ys, case.loss, case.reduction, case.output)
    if case.loss == "squared_error":
        # the terms that make o_t - y_t: |W_hy| Phi_t + |b_y| (through theta, |theta'| <= 1), and
        # y_t, exact in both: the subtraction's one rounding, u |o_t - y_t| <= u (|o_t| + |y_t|),
        # is |y_t| / (C sqrt(n)) in units of rtol beyond o_t's terms (1 / sqrt(n) keeps C's margin)
        # and never below |dL/dz_t| itself (a large |y_t| against a small o_t), which the sums
        # of b_y and the loss round at their own size
        dz = np.maximum(w * (Phi[1:] @ np.abs(params["W_hy"]).T + np.abs(params["b_y"]) + np.abs(ys) / np.sqrt(n_step)),
                        np.abs(dL_dz))
        loss_terms = float((dz * np.abs(o - ys)).sum())           # 1/2 (o - y)^2 from rounded o - y
    else:
        # |softmax - onehot| <= 1 per entry, and softmax p moves with z_t's error (the forward
        # pass's, |W_hy| Phi_t) through its Jacobian diag(p) - p p^T, whose rows sum in absolute
        # value to at most 2 p_i (1 - p_i): a saturated softmax (exploding logits) barely moves
        zs = z - z.max(-1, keepdims=True)
        p = np.exp(zs) / np.exp(zs).sum(-1, keepdims=True)
        z_terms = Phi[1:] @ np.abs(params["W_hy"]).T + np.abs(params["b_y"])   # z_t's terms, errors carried
        dz = w * ((o.shape[-1] > 1) + 2 * p * (1 - p) * (Phi[1:] @ np.abs(params["W_hy"]).T).max(-1, keepdims=True))
        # -log softmax(z)_y = logsumexp(z) - z_y moves with z_t's error by at most twice its
        # largest entry (|p - onehot|_1 <= 2): z_t's terms as the forward pass carried them
        # (|W_hy| Phi_t + |b_y|), not |z_t| (soak seed 318650666: an expansive T = 153 case,
        # the loss off by 4e-13 relative against a scale from |z_t|)
        loss_terms = float((w[..., 0] * (2 * z_terms.max(-1) + np.log(z.shape[-1]))).sum())
    # how close a pre-activation comes to ReLU's kink, relative to the terms that make it:
    # closer than a's own rounding error, the candidate's dtype may take the other branch
    kink = float(np.min(np.abs(a) / np.maximum(a_terms, TINY))) if case.hidden == "relu" else np.inf
    # first order in the errors, as W_hh's below: d(dL/dz h^T) = d(dL/dz) h^T + dL/dz dh^T
    M = {"W_hy": _summed(dz, np.abs(h[1:])) + _summed(np.abs(dL_dz), Phi[1:]), "b_y": float(np.max(_root_sum_squares(dz, (0, 1)))),
         "loss": loss_terms, "forward": forward, "kink": kink}
    if dL_dh is None:
        return M
    # phi' = 1 - h^2 (or h (1 - h)) is computed from a rounded h: its error is absolute,
    # ~2u, not relative, so a saturated unit (phi' ~ 1e-9) still passes 2u |dL/dh_t| on;
    # in units of rtol (C u sqrt(n)) that is 2 / sqrt(n) of |dL/dh_t| (ReLU's and the
    # identity's phi' are exact)
    # (one step's n, the smaller: dL/dh_t's own tolerance is per step)
    n = rounded_operations(case.T, case.B, case.D, case.H, case.O, per_step=True)
    # e_t's error as _local_error_scale takes it: phi' also meets h_t's forward error, Phi_t
    # times |phi''| (soak seed 1282086616: an expansive tanh forward pass, h off by 5e-14,
    # put 3.2e-14 into torch's float64 dL/dh_70 through 1 - h^2 alone, 0.78 of a tolerance
    # that left this path out, and 1.02 in JAX's; the backward pass's roundings made 0.07)
    e = _local_error_scale(case.hidden, np.abs(dL_dh[1:]), np.abs(dL_dh[1:]), d, h[1:], Phi[1:], n)
    terms = np.zeros_like(dL_dh)
    terms[:-1] = e @ W_hh_abs                          # |W_hh|^T |e_{t+1}|
    terms[1:] += dz @ np.abs(params["W_hy"])           # |W_hy|^T |dL/dz_t|
    cut = np.array([is_cut(t, case.truncate) for t in range(T)])   # no error crosses h_t, t cut
    G = yield np.maximum(np.abs(dL_dh), terms), J, True, cut      # propagate(..., backward=True)
    S = G.reshape(T + 1, -1).max(1)
    E = _local_error_scale(case.hidden, G[1:], np.abs(dL_dh[1:]), d, h[1:], Phi[1:], n)
    M["W_xh"] = _summed(E, np.abs(xs))
    # first order in the errors: d(e h^T) = de h^T + e dh^T (their product is second order)
    M["W_hh"] = _summed(E, np.abs(h[:-1])) + _summed(np.abs(dL_dh[1:]) * d, Phi[:-1])
    M["b_h"] = float(np.max(_root_sum_squares(E, (0, 1))))
    M["dL_dh"] = S
    # S carries every later step's error (propagate's random walk): compare() holds dL/dh_t
    # and dL/dx_t to one step's n (tolerance(per_step=True)) against these magnitudes
    M["per_step_n"] = True
    # the weight sums' own C (see C_WEIGHT_SUMS: argued from the soak against these magnitudes)
    M["C"] = dict.fromkeys(WEIGHT_SUMS, C_WEIGHT_SUMS)
    M["dL_dx"] = S[1:] * float(np.abs(params["W_xh"]).sum(0).max())
    if "h0" in params:
        M["h0"] = float(np.max(G[0] if params["h0"].ndim == 2 else _root_sum_squares(G[0], 0)))
    # how far the recurrence can grow an error beyond the signal it carries: backward (dL/dh_t)
    # and forward (h_t: a chaotic forward pass, expansive tanh over 150 steps, loses every digit)
    signal = max(float(np.max(np.abs(dL_dh))), float(np.max(dz @ np.abs(params["W_hy"]))), TINY)
    states_size = max(float(np.max(np.abs(h[1:]))), float(np.max(a_terms)), TINY)
    M["amplification"] = max(float(S.max()) / signal, float(np.max(Phi[1:])) / states_size)
    return M
