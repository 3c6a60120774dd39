"""What the gated-cell conventions share: PyTorch's gate layout (the suite's LSTM and GRU
cells, ``comparisons.check.cells``) moved into a course's and back, the problem a
convention is handed, and NumPy-or-torch arrays as cs231n's RNN adapter hands them.

PyTorch stacks the LSTM's gates i, f, g, o (GRU: r, z, n) in blocks of H rows of W_ih
(G H, D), W_hh (G H, H) and b (G H,). A course writes the same cell with its own order
(cs231n: i, f, o, g) and orientation (row vectors: Wx = W_ih^T), or one matrix per gate
(deeplearning.ai: Wf acting on [a_prev; x_t]). Every move here is a permutation of blocks
and a transpose: exact, so a disagreement is the student's, never the adapter's.
"""

from __future__ import annotations

import numpy as np

from bptt_xval.model import check_option, LOSS, OUTPUT, REDUCTION
from comparisons.check.outputs import BadOutput
from comparisons.conventions._adapt import torch_module

#: PyTorch's gate order per cell
TORCH_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "gru_d2l": ("z", "r", "h~")}
#: the state entries and parameters of each built-in cell
CELL_PARAMS = {"lstm": ("W_ih", "W_hh", "b", "W_hy", "b_y"), "gru": ("W_ih", "W_hh", "b_ih", "b_hh", "W_hy", "b_y"),
               "gru_d2l": ("W_ih", "W_hh", "W_hc", "b", "W_hy", "b_y")}


def reorder(W: np.ndarray, order: tuple, cell: str) -> np.ndarray:
    """W's gate blocks (along axis 0) from PyTorch's order into ``order`` (gate letters);
    applied to a course's array with the orders swapped it moves back."""
    G = len(TORCH_GATES[cell])
    H = W.shape[0] // G
    index = [TORCH_GATES[cell].index(g) for g in order]
    return np.concatenate([W[k * H:(k + 1) * H] for k in index])


def back(W: np.ndarray, order: tuple, cell: str) -> np.ndarray:
    """:func:`reorder`'s inverse: a course's gate blocks (``order``) into PyTorch's."""
    G = len(TORCH_GATES[cell])
    H = W.shape[0] // G
    index = [order.index(g) for g in TORCH_GATES[cell]]
    return np.concatenate([W[k * H:(k + 1) * H] for k in index])


class GatedProblem:
    """The validated arguments of a gated convention's call: PyTorch-layout float arrays."""

    def __init__(self, cell, params, xs, ys, output, loss, reduction, truncate, style):
        check_option("output", output, OUTPUT)
        check_option("loss", loss, LOSS)
        check_option("reduction", reduction, REDUCTION)
        if truncate is not None:
            raise ValueError(f"truncate: {style} code runs full BPTT; got truncate={truncate!r}")
        if not isinstance(params, dict) or set(params) != set(CELL_PARAMS[cell]):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise KeyError(f"params: expected keys {list(CELL_PARAMS[cell])} ({cell}, PyTorch's layout); got {got}")
        xs = np.asarray(xs)
        if xs.ndim != 3 or 0 in xs.shape or xs.dtype.kind != "f":
            raise ValueError(f"xs: expected a float array (T >= 1, B >= 1, D >= 1); got {xs.dtype} {xs.shape}")
        if not np.all(np.isfinite(xs)):
            raise ValueError("xs: expected finite values; got NaN or Inf")
        self.cell, self.params, self.xs, self.ys = cell, params, xs, ys
        self.T, self.B, self.D = xs.shape
        self.H = params["W_hh"].shape[1]
        self.O = params["W_hy"].shape[0]
        self.dtype = xs.dtype
        self.config = dict(output=output, loss=loss, reduction=reduction)


def arrays_mode(run, mode: dict):
    """Run ``run(kind)`` with NumPy arrays, or torch tensors where the student's functions
    take tensors (EECS 498), as ``cs231n_layers`` decides: NumPy first; tensors when NumPy
    raises a TypeError or AttributeError or the result is malformed, kept once they work."""
    if mode["arrays"] != "auto":
        return run(mode["arrays"])
    try:
        result = run("numpy")
    except (TypeError, AttributeError, BadOutput) as exc:
        if torch_module() is None:
            raise
        try:
            result = run("torch")
        except (TypeError, AttributeError):
            raise exc from None
        except Exception:
            if isinstance(exc, BadOutput):
                raise exc from None
            mode["arrays"] = "torch"
            raise
        mode["arrays"] = "torch"
        return result
    mode["arrays"] = "numpy"
    return result


def gated(fn, cell: str, name: str, space: dict | None = None):
    """Tag an adapter: its cell (``comparisons.check.cells.builtin_cells()[cell]`` is what it
    is checked against), name and case space."""
    fn.__name__ = fn.__qualname__ = name
    fn.cell = cell
    fn.case_space = dict(space or {})
    return fn
