"""Error magnitudes of any cell by Monte Carlo arithmetic: torch's own forward and backward
passes rerun with every rounded operation perturbed, as a ``dtype`` computation rounds.

``check_derivation`` knows the Elman recurrence and propagates its rounding errors
analytically (``comparisons.check.tolerances.magnitudes``). A user's cell is code we have
never seen, so ``check_cell`` measures the same thing instead of deriving it:

    the model (Higham, Accuracy and Stability, 2.2; Higham & Mary 2019, probabilistically):
        fl(x op y) = (x op y)(1 + delta),  delta independent, mean zero, |delta| <= u;
    Monte Carlo arithmetic (Parker 1997; Verificarlo): draw the deltas, delta = u U(-1, 1)
        (round to nearest errs uniformly within half an ulp), on every operation's result.

Torch's ``TorchDispatchMode`` sees every ATen operation below autograd, the backward pass's
among them (``tanh_backward`` computing 1 - h^2 from a perturbed h included: the saturated
units whose rounded phi' closes a real gradient path, soak seed 644692166, are covered by
construction), so K such runs in float64 are K draws of the rounding error a ``dtype``
implementation of the same computation makes, carried through the real recurrence:
contracting, expanding, cancelling in sums, whatever the cell does. Per compared target,
sigma = max over entries of the root mean square of (perturbed - unperturbed) over the K
runs, raised to its 99.9% upper confidence bound (sigma^2 K / sigma_true^2 is chi-square
with K degrees of freedom: the bound multiplies by sqrt(K / chi2_K(0.001))), and divided by
u: the size whose rounding the target's error behaves like, the "magnitude" a tolerance
multiplies by C (u + u64) sqrt(n) exactly as Elman's analytic magnitudes are used.

Operations that move data without rounding (views, copies, stacking, selection, zeros,
negation, max) are left exact; anything else floating-point, a library's fused kernel
included, is perturbed once (an unknown exact operation perturbed costs a little
tightness, never a false alarm).

What one implementation's perturbed runs cannot show, and what is added for it:
- a derivative computed differently: torch differentiates 1 / (1 + exp(-z)) through exp
  and a reciprocal, relatively accurately, where a derivation writes o (1 - o) from a
  rounded o and errs by u absolute. The contract's output layer is ours, so its derivative
  is given that rounding as a derivation makes it (``cells._output_rounding``); inside a
  user's step, ``xp.tanh``'s is covered (torch computes 1 - h^2 from the output too), a
  sigmoid written through ``exp`` is not (no such false alarm in the cells soaks, where
  LSTM, GRU and MGU gates are written so);
- a branch taken the other way (a ReLU, a comparison, a clamp): a discrete jump, no
  standard deviation bounds it. The quantity deciding each branch is recorded in every
  run (:data:`BRANCHES`); where one lies within a tolerance of 0 in units of its own
  spread, the case is at a kink and gets no verdict (:func:`_kink`).
"""

from __future__ import annotations

import numpy as np

# K perturbed runs, and the 99.9% upper confidence factor sqrt(K / chi2_K(0.001)) for a
# standard deviation estimated from them (chi2_8(0.001) = 1.3444, scipy.stats.chi2.ppf)
SAMPLES = 8
UPPER_CONFIDENCE = float(np.sqrt(SAMPLES / 1.3444))
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}
# The runs compute in float64, which cannot hold a perturbation below its own ulp: a float64
# candidate's u = 2^-53 perturbs most results by nothing at all (1 + u delta rounds to 1),
# and a saturated tanh's 1 - h^2 never moved in eight runs (a former false alarm came back).
# So the runs perturb at 2^-46 at least, 128 times float64's rounding, and report sigma / u
# at that u: first-order rounding errors grow linearly in u, so sigma / u is the same at any
# small u. Linear up to an error growth of ~2^46 = 7e13, beyond the 3e12 at which a float64
# case is called ill-conditioned anyway.
SMALLEST_U = 2.0 ** -46

# ATen operations that round nothing: their result is a value already held (or a constant)
EXACT = frozenset("""
    _to_copy _unsafe_view alias as_strided cat clone constant_pad_nd contiguous copy copy_ detach
    diagonal empty empty_like expand fill fill_ full full_like gather index index_select
    lift_fresh masked_fill narrow new_empty new_full new_zeros new_ones ones ones_like permute relu
    scatter select select_backward slice slice_backward split squeeze stack t threshold_backward
    transpose unbind unsqueeze view where zero_ zeros zeros_like neg abs max amax min amin maximum
    minimum clamp_min clamp_max clamp sign masked_select repeat _reshape_alias reshape
    """.split())


def _bounds(args, kwargs, names, defaults):
    """The bounds of a clamp-like operation, given by position or by keyword."""
    given = list(args[1:]) + [None] * len(names)
    return [kwargs.get(n, g if g is not None else d) for n, g, d in zip(names, given, defaults)]


# ATen operations with a kink or a branch -> the quantities whose signs decide it (a where's
# condition is one of the comparisons). Rounding may take the other branch where such a
# quantity lies within its own rounding error of 0: a dead ReLU unit alive, the gradient
# routed through the other side of a max.
_DIFFERENCE = lambda args, kwargs: [args[0] - args[1]]
_ITSELF = lambda args, kwargs: [args[0]]
BRANCHES = {
    **dict.fromkeys(("gt", "lt", "ge", "le", "maximum", "minimum", "threshold"), _DIFFERENCE),
    **dict.fromkeys(("relu", "abs", "sign", "leaky_relu"), _ITSELF),
    "clamp": lambda args, kwargs: [args[0] - b for b in _bounds(args, kwargs, ("min", "max"), (None, None))
                                   if b is not None],
    "clamp_min": lambda args, kwargs: [args[0] - _bounds(args, kwargs, ("min",), (None,))[0]],
    "clamp_max": lambda args, kwargs: [args[0] - _bounds(args, kwargs, ("max",), (None,))[0]],
    "hardtanh": lambda args, kwargs: [args[0] - b for b in _bounds(args, kwargs, ("min_val", "max_val"),
                                                                   (-1.0, 1.0))],
}


def byte_noise(rng: np.random.Generator, block: int = 1 << 20, scale: float | None = None):
    """delta for :func:`_mode` drawn a byte per entry: (2k + 1) / 256 for a uniform byte k in
    [-128, 127], a symmetric discrete uniform on (-1, 1) (mean 0, variance 1/3 (1 - 2^-16),
    U(-1, 1)'s to 10^-5). Drawn ``block`` entries at a time and handed out in consecutive,
    non-overlapping slices, which is the same random stream as a draw per operation: the
    gated cells' stacked runs perturb ~10^4 small results each, and a ``torch.rand`` per
    result cost 4 times more than this (measured: 500 against 134 us per 65,536 entries,
    and ~25 us of fixed cost per call).

    Returns draw(shape, dtype) -> (2k + 1) as a float64 torch tensor (the caller scales by
    u / 256), or, given ``scale``, draw(shape) -> (2k + 1) scale as a float64 NumPy array
    (``gated_mc``'s runs, which multiply by it directly)."""
    import math

    # The bytes are the bit generator's raw 64-bit words seen as int8: uniform, and 6.5 times
    # faster than Generator.bytes (0.29 against 1.9 ms per 2^20, measured 2026-12-04). The
    # buffer is float64, as the runs compute: an addcmul of float32 noise into a float64
    # result converts it first (a copy per operation: 10% of a stacked run, torch's profiler).
    state = {"buffer": np.empty(0), "tensor": None, "at": 0}
    factor = 1.0 if scale is None else float(scale)

    def refill(n):
        n = max(block, n)
        k = rng.bit_generator.random_raw(-(-n // 8)).view(np.int8)[:n]
        odd = np.multiply(k, 2.0 * factor, dtype=np.float64)
        odd += factor
        state["buffer"], state["at"] = odd, 0
        if scale is None:
            import torch
            state["tensor"] = torch.from_numpy(odd)

    def take(shape):
        n = math.prod(shape)
        if state["at"] + n > len(state["buffer"]):
            refill(n)
        at = state["at"]
        state["at"] = at + n
        return at, n

    if scale is not None:
        def draw(shape):
            at, n = take(shape)
            return state["buffer"][at:at + n].reshape(shape)
        return draw

    def draw(shape, dtype):
        at, n = take(shape)
        return state["tensor"][at:at + n].view(shape)
    return draw


def _mode(u: float, generator, branches: list | None = None, noise=None):
    """The dispatch mode; ``noise``: a :func:`byte_noise` draw instead of ``torch.rand`` (CPU)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    # per ATen operation, looked up once: (its branch quantities or None, exact?, in place?)
    plans = {}

    class MonteCarloArithmetic(TorchDispatchMode):
        """Every rounded floating-point result r becomes r (1 + u U(-1, 1))."""

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # torch wraps a mode's __torch_dispatch__ so that Dynamo never traces it, and the
            # wrapper imports torch._dynamo on its first call (1.1-1.6 s measured: half of a
            # cold check_cell) and costs a frame per operation after that. These runs are
            # never compiled: no wrapper.
            return False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            plan = plans.get(func)
            if plan is None:
                name = func._schema.name.split("::")[-1]
                plan = plans[func] = (BRANCHES.get(name), func.is_view or name in EXACT, func._schema.is_mutable)
            branch, exact, mutable = plan
            if branches is not None and branch is not None and isinstance(args[0], torch.Tensor) \
                    and args[0].is_floating_point():
                branches.append([np.asarray(q.detach().cpu(), np.float64) for q in branch(args, kwargs or {})])
            if exact:
                return out
            if isinstance(out, (tuple, list)):      # a fused kernel's several results
                return type(out)(self._rounded(mutable, o) for o in out)
            return self._rounded(mutable, out)

        @staticmethod
        def _rounded(mutable, out):
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return out
            # (inside __torch_dispatch__ the mode is off: these operations are not perturbed)
            if noise is not None and not mutable and out.device.type == "cpu":
                return torch.addcmul(out, out, noise(out.shape, out.dtype), value=u / 256)
            delta = torch.rand(out.shape, generator=generator, dtype=out.dtype, device=out.device) * 2 - 1
            if mutable:                              # an in-place result stays in place
                return out.mul_(1 + u * delta)
            return out * (1 + u * delta)

    return MonteCarloArithmetic()


def magnitudes(reference, run, dtype: str, seed: int, samples: int = SAMPLES) -> dict:
    """The magnitudes of every compared quantity of one case, for ``compare``.

    ``reference``: the unperturbed float64 ``Gradients`` of ``run`` (a callable returning
    ``Gradients`` through torch, given ``(u, generator)`` to draw any rounding of its own
    from, as the cells' output layer does); ``dtype``: the candidate's; ``seed``: the
    perturbations' (the case's, so a verdict replays). Returns {parameter: float, "loss":
    float, "dL_dh": (T+1,) array, "dL_dx": (T,) array}, each the bound on the error's
    standard deviation divided by u, and "amplification": the largest dL/dh_t magnitude over
    the largest |dL/dh_t| (how far the recurrence grows rounding beyond the signal)."""
    import torch

    u = max(UNIT_ROUNDOFF[dtype], SMALLEST_U)
    generator = torch.Generator().manual_seed(int(seed))
    draws, branches = [], []
    for _ in range(samples):
        branches.append([])
        with _mode(u, generator, branches[-1]):
            draws.append(run((u, generator)))

    return from_draws(reference, draws, u, _kink(branches, u))


def from_draws(reference, draws: list, u: float, kink: float = np.inf) -> dict:
    """:func:`magnitudes` from the K perturbed runs' ``Gradients`` (``draws``) at unit
    roundoff ``u``: what ``comparisons.check.gated`` computes for many cases in one run."""
    def sigma(get, per_step=False):
        base = np.asarray(get(reference), np.float64)
        diff = np.stack([np.asarray(get(d), np.float64) - base for d in draws])
        # the spread entry by entry, each scaled by its own largest difference first: a
        # gradient of 1e-157 (an h0 200 steps back) differs by 1e-169, whose square
        # underflows to 0 in float64, and an error size of 0 made a tolerance no rounding
        # can meet (a false alarm of the class-gru soak, seed 639912221)
        scale = np.max(np.abs(diff), axis=0, initial=0.0)
        ratio = diff / np.where(scale > 0, scale, 1.0)          # where scale is 0, every diff is 0
        rms_entry = scale * np.sqrt(np.mean(ratio * ratio, axis=0))
        if per_step:
            rms = rms_entry.reshape(len(rms_entry), -1).max(1, initial=0.0)
        else:
            rms = float(np.max(rms_entry, initial=0.0))
        return UPPER_CONFIDENCE * rms / u

    M = {name: sigma(lambda g, name=name: g.grads[name]) for name in reference.grads}
    M["loss"] = sigma(lambda g: [g.loss])
    if reference.dL_dh is not None:
        M["dL_dh"] = sigma(lambda g: g.dL_dh, per_step=True)
        signal = float(np.max(np.abs(reference.dL_dh), initial=0.0))
        M["amplification"] = float(M["dL_dh"].max()) / signal if signal > 0 else 0.0
    if reference.dL_dx is not None:
        M["dL_dx"] = sigma(lambda g: g.dL_dx, per_step=True)
    M["kink"] = kink
    if not all(np.all(np.isfinite(v)) for k, v in M.items() if k != "kink"):
        # a rounding's worth of perturbation overflowed (or made a NaN): no error size
        # can be trusted on this case, which the amplification says
        M = {k: np.nan_to_num(np.asarray(v, np.float64), nan=np.inf) for k, v in M.items()}
        M["amplification"] = np.inf
    return M


def _kink(branches: list, u: float) -> float:
    """How close the case comes to a kink, in the units a tolerance uses: the smallest
    |q| / (sigma_q / u) over every branch quantity q (a ReLU's pre-activation, the two
    sides of a comparison), its mean and spread over the perturbed runs (sigma raised to
    its upper confidence bound as for the magnitudes). The checker calls the case
    inconclusive where this is within a tolerance's rtol, as ``checker`` does for Elman's
    ReLU with |a| / (sum of |terms|). The perturbed runs call the same operations in the
    same order (the step's Python is the same); where rounding changed even that, or a
    branch quantity's sign, the case is at a kink (0). inf where the step has no kink."""
    if not branches or not branches[0]:
        return np.inf
    if any(len(run) != len(branches[0]) for run in branches):
        return 0.0
    closest = np.inf
    for calls in zip(*branches):
        for parts in zip(*calls):
            if any(np.shape(p) != np.shape(parts[0]) for p in parts):
                return 0.0
            q = np.stack(np.broadcast_arrays(*parts))            # (K, ...)
            mean, spread = q.mean(0), q.std(0)
            if np.any((np.sign(q) != np.sign(q[0])) & (spread > 0)):
                return 0.0
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.abs(mean) / (UPPER_CONFIDENCE * spread / u)
            ratio = ratio[np.isfinite(ratio)]      # exact quantities (spread 0) have no kink
            if ratio.size:
                closest = min(closest, float(ratio.min()))
    return closest
