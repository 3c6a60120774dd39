"""Many problems as one: zero-padded to common sizes and stacked along a leading case axis,
so that torch and JAX differentiate a whole group of cases in one graph (``batch_loss_and_grads``
in each reference) instead of paying their per-call overhead once per case.

The padding is exact: every real sum gains only exact zeros, and no gradient flows from
what was padded.
- padded steps (t > T) carry step weight w_t = 0 and mask m_t = 0, which sets their h_t
  to 0, so a padded tail can neither overflow nor send a gradient back;
- padded batch rows have weight w_b = 0;
- padded inputs and hidden units have all-zero weights in and out (a padded sigmoid unit
  is 0.5, times zero weights);
- padded outputs have target theta(0) (zero error, squared error) or a logit of -inf
  (zero probability, cross-entropy);
- padded cases (to make up a fixed group size for JAX's compiler) are all zeros with zero
  weights.
The loss of the stack is the sum of the cases' losses; as the cases share no parameter,
its gradient with respect to case i's parameters is case i's gradient.

NumPy only: both references import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt_xval.model import Gradients, Problem, step_weights


@dataclass
class Stack:
    """``problems`` (validated, float64) padded to (N, Tp, Bp, Dp, Hp, Op)."""

    problems: list
    params: dict        # W_xh (N, Hp, Dp), W_hh (N, Hp, Hp), b_h (N, Hp), W_hy (N, Op, Hp), b_y (N, Op), h0 (N, Bp, Hp)
    xs: np.ndarray      # (N, Tp, Bp, Dp)
    ys: np.ndarray      # (N, Tp, Bp, Op), or int (N, Tp, Bp) for cross-entropy
    w: np.ndarray       # (N, Tp) step weights, 0 on padded steps
    w_b: np.ndarray     # (N, Bp) 1/B, 0 on padded rows
    mask: np.ndarray    # (N, Tp) 1 on real steps, 0 on padded ones


def stack(problems: list, *, output: str, loss: str, reduction: str, sizes=None, cases=None) -> Stack:
    """Pad ``problems`` (``bptt_xval.model.Problem``, one dtype) to common sizes: the
    largest of each, or ``sizes`` (Tp, Bp, Dp, Hp, Op) when given; ``cases``: the stack's
    length N >= len(problems) (padded cases are zeros)."""
    N = len(problems) if cases is None else cases
    Tp, Bp, Dp, Hp, Op = sizes or tuple(max(getattr(p, k) for p in problems) for k in "TBDHO")
    dtype = problems[0].dtype
    cross_entropy = loss == "cross_entropy"
    params = {"W_xh": np.zeros((N, Hp, Dp), dtype), "W_hh": np.zeros((N, Hp, Hp), dtype),
              "b_h": np.zeros((N, Hp), dtype), "W_hy": np.zeros((N, Op, Hp), dtype),
              "b_y": np.full((N, Op), -np.inf if cross_entropy else 0.0, dtype),
              "h0": np.zeros((N, Bp, Hp), dtype)}
    xs = np.zeros((N, Tp, Bp, Dp), dtype)
    ys = (np.zeros((N, Tp, Bp), np.int64) if cross_entropy
          else np.full((N, Tp, Bp, Op), 0.5 if output == "sigmoid" else 0.0, dtype))
    w, w_b, mask = np.zeros((N, Tp), dtype), np.zeros((N, Bp), dtype), np.zeros((N, Tp), dtype)
    params["b_y"][len(problems):] = 0.0      # a padded case needs one finite logit: no NaN
    for i, p in enumerate(problems):
        T, B, D, H, O = p.T, p.B, p.D, p.H, p.O
        for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y"):
            params[k][(i,) + tuple(slice(0, n) for n in p.params[k].shape)] = p.params[k]
        if "h0" in p.params:
            params["h0"][i, :B, :H] = np.broadcast_to(p.params["h0"], (B, H))
        xs[i, :T, :B, :D] = p.xs
        if cross_entropy:
            ys[i, :T, :B] = p.ys
        else:
            ys[i, :T, :B, :O] = p.ys
        w[i, :T] = step_weights(reduction, T, dtype)
        w_b[i, :B] = 1.0 / B
        mask[i, :T] = 1.0
    return Stack(list(problems), params, xs, ys, w, w_b, mask)


def unstack(s: Stack, i: int, value: float, g_params: dict, dL_dh: np.ndarray, dL_dx: np.ndarray) -> Gradients:
    """Case i's ``Gradients`` from the stack's: the padding cut off, h0's gradient per its shape."""
    p: Problem = s.problems[i]
    grads = {k: np.array(g_params[k][(i,) + tuple(slice(0, n) for n in v.shape)])
             for k, v in p.params.items() if k != "h0"}
    dh = np.array(dL_dh[i, :p.T + 1, :p.B, :p.H])
    if "h0" in p.params:
        grads["h0"] = dh[0].copy() if p.params["h0"].ndim == 2 else dh[0].sum(0)
    return Gradients(float(value), grads, dh, np.array(dL_dx[i, :p.T, :p.B, :p.D]))


def bucket(n: int, smallest: int) -> int:
    """The padded size for n: ``smallest`` times a power of 4 up to 256 (few shapes for
    small problems), the next power of two above (little waste for large ones)."""
    size = smallest
    while size < n and size < 256:
        size *= 4
    while size < n:
        size *= 2
    return size


def coarse(n: int, smallest: int) -> int:
    """A coarser bucket, for the compiler's sake: ``smallest`` times a power of 4."""
    size = smallest
    while size < n:
        size *= 4
    return size


def groups(sizes: list, largest: int = 16) -> list:
    """A plan for stacking problems of ``sizes`` [(T, B, D, H, O), ...]: a list of
    (indices, padded (Tp, Bp, Dp, Hp, Op)), at most ``largest`` problems per group.

    Few distinct padded shapes, because each costs JAX a compilation (about a second):
    T is padded to 64, 256, 1024...; H to 16, 64, 256... (so a
    default check has three groups: short and narrow, short and wide, long); B, D and O to
    the largest of all, bucketed. A short case is never padded to a long case's T, nor a
    narrow one to a wide one's H: it would pay their cost.

    D and O are bucketed from 8, B from 4, so that every draw of the default mixture
    (B <= 4, D <= 5, O <= 3) pads to the same (4, 8, 8) whatever its largest case: a call's
    shapes do not depend on which cases it happened to draw, and a first small call compiles
    what a later large one needs (issue 28: with D bucketed from 4, a 10-case warm-up whose
    largest D was 4 compiled (Bp, 4, Op), and the 300-case call, holding a D = 5, compiled
    all three groups again at (Bp, 16, Op): 1.15 s, half the call). D and O enter only the
    input and output projections, so their padding costs little; B pads the recurrence.
    """
    B = bucket(max(s[1] for s in sizes), 4)
    D, O = (bucket(max(s[k] for s in sizes), 8) for k in (2, 4))
    by_key = {}
    for i, (T, _, _, H, _) in enumerate(sizes):
        by_key.setdefault((coarse(T, 64), coarse(H, 16)), []).append(i)
    return [(idx[j:j + largest], (T, B, D, H, O))
            for (T, H), idx in by_key.items() for j in range(0, len(idx), largest)]
