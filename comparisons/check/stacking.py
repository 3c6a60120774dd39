"""Many cases of one gated cell as one stack: every parameter, input and target zero-padded to
the stack's largest T, B, D, H and O, gate blocks padded block by block (a padded unit's
gates sit at sigmoid(0) and its c_t and h_t stay exactly 0), a case axis first; and each
case's results taken back out (``unstack``). ``comparisons.check.gated`` differentiates the
stacks; ``comparisons.check.gated_mc`` runs their Monte Carlo copies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bptt_xval.model import Gradients, step_weights
from comparisons.check.cases import Case


def _dims(shape, sizes: dict) -> list:
    """(blocks, size letter or int) per axis of a parameter's declared shape."""
    out = []
    for dim in shape:
        if isinstance(dim, (int, np.integer)):
            out.append((1, int(dim)))
            continue
        text = str(dim).replace(" ", "")
        factor, _, letter = text.rpartition("*") if "*" in text else ("", "", text)
        out.append((int(factor or 1), letter))
    return out


def _blocks(dims: list, real: dict, padded_shape: tuple) -> list:
    """Per axis, [(padded slice, real slice)] for each gate block: gate k of a (4H, ...)
    weight sits at rows k Hp .. k Hp + H padded and k H .. (k + 1) H as it is."""
    out = []
    for axis, (blocks, letter) in enumerate(dims):
        n = real[letter] if isinstance(letter, str) else letter
        step = padded_shape[axis] // blocks
        out.append([(slice(k * step, k * step + n), slice(k * n, (k + 1) * n)) for k in range(blocks)])
    return out


def _place(target: np.ndarray, value: np.ndarray, dims: list, real: dict) -> None:
    """Write ``value`` into ``target`` (padded) block by block, so the padded step reads the
    same gates."""
    for picks in itertools.product(*_blocks(dims, real, target.shape)):
        target[tuple(p for p, _ in picks)] = value[tuple(r for _, r in picks)]


def _take(padded: np.ndarray, dims: list, real: dict) -> np.ndarray:
    """The inverse of :func:`_place`: case i's real entries out of its padded array."""
    out = np.empty(tuple(b * (real[l] if isinstance(l, str) else l) for b, l in dims), padded.dtype)
    for picks in itertools.product(*_blocks(dims, real, padded.shape)):
        out[tuple(r for _, r in picks)] = padded[tuple(p for p, _ in picks)]
    return out


@dataclass
class Stack:
    """Cases of one configuration padded to (N, Tp, Bp, Dp, Hp, Op), float64."""

    cases: list
    params: dict        # name -> (N, *padded shape)
    xs: np.ndarray      # (N, Tp, Bp, Dp)
    target: np.ndarray  # (N, Tp, Bp, Op): one-hot for cross-entropy
    w: np.ndarray       # (N, Tp) step weights, 0 on padded steps
    w_b: np.ndarray     # (N, Bp) 1 / B, 0 on padded rows
    shapes: dict        # name -> declared shape (W_hy, b_y included)


def output_shapes(param_shapes: dict) -> dict:
    return {**param_shapes, "W_hy": ("O", "H"), "b_y": ("O",)}


def stack(cases: list, arrays: list, param_shapes: dict, *, sizes=None, count=None) -> Stack:
    """Pad float64 ``arrays`` [(params, xs, ys)] of ``cases`` (one configuration) to common
    sizes: the largest of each, or ``sizes`` (Tp, Bp, Dp, Hp, Op); ``count``: N >= len(cases)."""
    N = len(cases) if count is None else count
    Tp, Bp, Dp, Hp, Op = sizes or tuple(max(getattr(c, k) for c in cases) for k in "TBDHO")
    shapes = output_shapes(param_shapes)
    full = {"T": Tp, "B": Bp, "D": Dp, "H": Hp, "O": Op}
    case0 = cases[0]
    cross_entropy = case0.loss == "cross_entropy"
    params = {}
    for name, shape in shapes.items():
        dims = _dims(shape, full)
        params[name] = np.zeros((N,) + tuple(b * (full[l] if isinstance(l, str) else l) for b, l in dims))
    xs = np.zeros((N, Tp, Bp, Dp))
    padded_target = 0.5 if case0.output == "sigmoid" and not cross_entropy else 0.0
    target = np.full((N, Tp, Bp, Op), padded_target)
    w, w_b = np.zeros((N, Tp)), np.zeros((N, Bp))
    if cross_entropy:
        params["b_y"][:len(cases)] = -1e4     # padded classes: probability exactly 0 (exp underflows)
    for i, (case, (p, x, y)) in enumerate(zip(cases, arrays)):
        real = {"T": case.T, "B": case.B, "D": case.D, "H": case.H, "O": case.O}
        for name, shape in shapes.items():
            _place(params[name][i], np.asarray(p[name], np.float64), _dims(shape, real), real)
        xs[i, :case.T, :case.B, :case.D] = x
        if cross_entropy:
            target[i, :case.T, :case.B, :case.O] = np.eye(case.O)[y]
        else:
            target[i, :case.T, :case.B, :case.O] = y
        w[i, :case.T] = step_weights(case.reduction, case.T, np.float64)
        w_b[i, :case.B] = 1.0 / case.B
    return Stack(list(cases), params, xs, target, w, w_b, shapes)


def unstack(s: Stack, i: int, loss: float, grads: dict, dL_dx, states: list, row: int | None = None):
    """(case i's ``Gradients``, padding cut off, with the initial state's gradients as
    ``grads["h0"]`` and ``grads["c0"]``; dL/dc_t (T+1, B, H) for the LSTM, else None).
    ``row``: where case i sits in the arrays (a Monte Carlo copy's row), i by default."""
    case = s.cases[i]
    i = i if row is None else row
    real = {"T": case.T, "B": case.B, "D": case.D, "H": case.H, "O": case.O}
    out = {name: _take(grads[name][i], _dims(shape, real), real) for name, shape in s.shapes.items()}
    per_state = [np.array(g[i, :case.T + 1, :case.B, :case.H]) for g in states]
    for name, g in zip(("h0", "c0"), per_state):
        out[name] = g[0].copy()
    result = Gradients(float(loss), out, per_state[0], np.array(dL_dx[i, :case.T, :case.B, :case.D]))
    return result, (per_state[1] if len(per_state) > 1 else None)
