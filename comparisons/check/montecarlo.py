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
"""

from __future__ import annotations

import numpy as np

# K perturbed runs, and the 99.9% upper confidence factor sqrt(K / chi2_K(0.001)) for a
# standard deviation estimated from them (chi2_8(0.001) = 1.3444, scipy.stats.chi2.ppf)
SAMPLES = 8
UPPER_CONFIDENCE = float(np.sqrt(SAMPLES / 1.3444))
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}

# ATen operations that round nothing: their result is a value already held (or a constant)
EXACT = frozenset("""
    _to_copy _unsafe_view alias as_strided cat clone constant_pad_nd contiguous copy copy_ detach
    diagonal empty empty_like expand fill fill_ full full_like gather index index_select
    lift_fresh masked_fill narrow new_empty new_full new_zeros new_ones ones ones_like permute relu
    scatter select select_backward slice slice_backward split squeeze stack t threshold_backward
    transpose unbind unsqueeze view where zero_ zeros zeros_like neg abs max amax min amin maximum
    minimum clamp_min clamp_max clamp sign masked_select repeat _reshape_alias reshape
    """.split())


def _mode(u: float, generator):
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class MonteCarloArithmetic(TorchDispatchMode):
        """Every rounded floating-point result r becomes r (1 + u U(-1, 1))."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.is_view or not isinstance(out, torch.Tensor) or not out.is_floating_point() \
                    or func._schema.name.split("::")[-1] in EXACT:
                return out
            # (inside this method the mode is off: these operations are not perturbed)
            delta = torch.rand(out.shape, generator=generator, dtype=out.dtype, device=out.device) * 2 - 1
            if func._schema.is_mutable:              # an in-place result stays in place
                return out.mul_(1 + u * delta)
            return out * (1 + u * delta)

    return MonteCarloArithmetic()


def magnitudes(reference, run, dtype: str, seed: int, samples: int = SAMPLES) -> dict:
    """The magnitudes of every compared quantity of one case, for ``compare``.

    ``reference``: the unperturbed float64 ``Gradients`` of ``run`` (a zero-argument callable
    returning ``Gradients`` through torch); ``dtype``: the candidate's; ``seed``: the
    perturbations' (the case's, so a verdict replays). Returns {parameter: float, "loss":
    float, "dL_dh": (T+1,) array, "dL_dx": (T,) array}, each the bound on the error's
    standard deviation divided by u, and "amplification": the largest dL/dh_t magnitude over
    the largest |dL/dh_t| (how far the recurrence grows rounding beyond the signal)."""
    import torch

    u = UNIT_ROUNDOFF[dtype]
    generator = torch.Generator().manual_seed(int(seed))
    draws = []
    for _ in range(samples):
        with _mode(u, generator):
            draws.append(run())

    def sigma(get, per_step=False):
        base = np.asarray(get(reference), np.float64)
        sq = np.mean([(np.asarray(get(d), np.float64) - base) ** 2 for d in draws], axis=0)
        if per_step:
            rms = np.sqrt(sq.reshape(len(sq), -1).max(1))
        else:
            rms = float(np.sqrt(np.max(sq, initial=0.0)))
        return UPPER_CONFIDENCE * rms / u

    M = {name: sigma(lambda g, name=name: g.grads[name]) for name in reference.grads}
    M["loss"] = sigma(lambda g: [g.loss])
    if reference.dL_dh is not None:
        M["dL_dh"] = sigma(lambda g: g.dL_dh, per_step=True)
        signal = float(np.max(np.abs(reference.dL_dh), initial=0.0))
        M["amplification"] = float(M["dL_dh"].max()) / signal if signal > 0 else 0.0
    if reference.dL_dx is not None:
        M["dL_dx"] = sigma(lambda g: g.dL_dx, per_step=True)
    if not all(np.all(np.isfinite(v)) for v in M.values()):
        # a rounding's worth of perturbation overflowed (or made a NaN): no error size
        # can be trusted on this case, which the amplification says
        M = {k: np.nan_to_num(np.asarray(v, np.float64), nan=np.inf) for k, v in M.items()}
        M["amplification"] = np.inf
    return M
