"""The contract's model: option names, the shared result type and input validation.

Every backend (``manual``, ``reference``) calls :func:`validate` first, so a bad input
fails at the boundary with the same message whichever backend it was handed to. This
module imports NumPy only; it is the one piece of code that ``manual/`` and
``reference/`` share, and it holds no derivative of anything.

Dtype policy (one for every entry point): every float array (``xs``, float ``ys`` and
every parameter) must have the same dtype, float32 or float64. Mixed inputs are
rejected with a TypeError naming the odd argument rather than silently promoted,
because a silent float32 -> float64 promotion is exactly the kind of precision change
a derivation check must not hide.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

HIDDEN = ("tanh", "sigmoid", "relu", "identity")
OUTPUT = ("identity", "sigmoid", "tanh")
LOSS = ("squared_error", "cross_entropy")
REDUCTION = ("mean", "sum", "last")
PARAM_KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Gradients(NamedTuple):
    """What every backend's ``loss_and_grads`` returns.

    loss:  Python float, L.
    grads: dict, same keys and shapes as ``params``, NumPy arrays of the input dtype.
    dL_dh: (T+1, B, H) array, dL/dh_t for t = 0..T (total derivative through all later
           steps; index 0 is h0), or None for a backend that cannot give it.
    dL_dx: (T, B, D) array, dL/dx_t for t = 1..T (what layer-style derivations such as
           cs231n's ``dx`` compute), or None. Optional: ``Gradients(loss, grads, dL_dh)``
           still builds one, and a candidate may return a plain 3- or 4-tuple.
    """

    loss: float
    grads: dict
    dL_dh: np.ndarray | None
    dL_dx: np.ndarray | None = None


class BackendUnavailable(ImportError):
    """A backend's library is not installed; the backend is skipped, not failed."""


class Problem(NamedTuple):
    """Validated inputs and their sizes."""

    params: dict
    xs: np.ndarray
    ys: np.ndarray
    dtype: np.dtype
    T: int
    B: int
    D: int
    H: int
    O: int


def check_option(name: str, value, allowed: tuple) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, one of {allowed}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}; got {value!r}")
    return value


def check_options(hidden, output, loss, reduction, truncate) -> None:
    check_option("hidden", hidden, HIDDEN)
    check_option("output", output, OUTPUT)
    check_option("loss", loss, LOSS)
    check_option("reduction", reduction, REDUCTION)
    if loss == "cross_entropy" and output != "identity":
        raise ValueError(
            f"output: loss='cross_entropy' applies softmax to z_t itself, so output must be "
            f"'identity'; got {output!r}"
        )
    if truncate is not None:
        if isinstance(truncate, bool) or not isinstance(truncate, numbers.Integral):
            raise TypeError(f"truncate: expected None or a positive int; got {truncate!r}")
        if truncate < 1:
            raise ValueError(f"truncate: expected None or a positive int; got {truncate}")


def _array(name: str, value, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray; got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions; got shape {value.shape}")
    return value


def _float_array(name: str, value, ndim: int, dtype: np.dtype | None) -> np.ndarray:
    arr = _array(name, value, ndim)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64; got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name}: dtype {arr.dtype} differs from xs's {dtype}; cast every array to one "
            f"dtype (mixed precision is rejected, not promoted)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def _shape(name: str, arr: np.ndarray, expected: tuple) -> None:
    if arr.shape != expected:
        raise ValueError(f"{name}: expected shape {expected}; got {arr.shape}")


def validate(params, xs, ys, *, hidden, output, loss, reduction, truncate) -> Problem:
    """Check every argument of ``loss_and_grads`` and return them with their sizes.

    Raises TypeError (wrong type or dtype), ValueError (wrong shape, T = 0, NaN/Inf,
    unknown option, target out of range) or KeyError (missing parameter), each naming
    the argument and what was expected.
    """
    check_options(hidden, output, loss, reduction, truncate)
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of arrays; got {type(params).__name__}")
    missing = [k for k in PARAM_KEYS if k not in params]
    if missing:
        raise KeyError(f"params: missing key(s) {missing}; expected {list(PARAM_KEYS)} (+ optional 'h0')")
    unknown = sorted(set(params) - set(PARAM_KEYS) - {"h0"}, key=str)
    if unknown:
        raise ValueError(f"params: unknown key(s) {unknown}; expected {list(PARAM_KEYS)} (+ optional 'h0')")

    xs = _float_array("xs", xs, 3, None)
    T, B, D = xs.shape
    if T == 0:
        raise ValueError("xs: T = 0; expected at least one time step, shape (T >= 1, B, D)")
    if B == 0 or D == 0:
        raise ValueError(f"xs: expected shape (T, B >= 1, D >= 1); got {xs.shape}")
    dtype = xs.dtype

    W_hh = _float_array("params['W_hh']", params["W_hh"], 2, dtype)
    H = W_hh.shape[0]
    if H == 0:
        raise ValueError("params['W_hh']: expected shape (H, H) with H >= 1; got (0, 0)")
    _shape("params['W_hh']", W_hh, (H, H))
    W_hy = _float_array("params['W_hy']", params["W_hy"], 2, dtype)
    O = W_hy.shape[0]
    if O == 0:
        raise ValueError(f"params['W_hy']: expected shape (O >= 1, {H}); got {W_hy.shape}")
    _shape("params['W_hy']", W_hy, (O, H))
    _shape("params['W_xh']", _float_array("params['W_xh']", params["W_xh"], 2, dtype), (H, D))
    _shape("params['b_h']", _float_array("params['b_h']", params["b_h"], 1, dtype), (H,))
    _shape("params['b_y']", _float_array("params['b_y']", params["b_y"], 1, dtype), (O,))
    if "h0" in params:
        h0 = params["h0"]
        if not isinstance(h0, np.ndarray):
            raise TypeError(f"params['h0']: expected a numpy.ndarray; got {type(h0).__name__}")
        _float_array("params['h0']", h0, h0.ndim, dtype)
        if h0.shape not in ((H,), (B, H)):
            raise ValueError(f"params['h0']: expected shape ({H},) or ({B}, {H}); got {h0.shape}")

    if loss == "cross_entropy":
        ys = _array("ys", ys, 2)
        if not np.issubdtype(ys.dtype, np.integer):
            raise TypeError(f"ys: loss='cross_entropy' expects integer class indices; got dtype {ys.dtype}")
        _shape("ys", ys, (T, B))
        if ys.size and (ys.min() < 0 or ys.max() >= O):
            raise ValueError(f"ys: class indices must lie in [0, {O}); got range [{ys.min()}, {ys.max()}]")
    else:
        ys = _float_array("ys", ys, 3, dtype)
        _shape("ys", ys, (T, B, O))
    return Problem(dict(params), xs, ys, dtype, T, B, D, H, O)


def validated(problem, **config) -> Problem:
    """``problem`` as :func:`validate` returns it: a ``Problem`` (validate's own result, as
    the checker hands its many internal reference calls, on arrays it made itself) is
    taken as it is, a (params, xs, ys) triple is validated against ``config``."""
    return problem if isinstance(problem, Problem) else validate(*problem, **config)


def step_weights(reduction: str, T: int, dtype) -> np.ndarray:
    """w_t with L = sum_t w_t l_t: 1/T ("mean"), 1 ("sum"), or [t == T] ("last")."""
    if reduction == "mean":
        return np.full(T, 1.0 / T, dtype=dtype)
    if reduction == "sum":
        return np.ones(T, dtype=dtype)
    w = np.zeros(T, dtype=dtype)
    w[-1] = 1.0
    return w


def is_cut(t: int, truncate: int | None) -> bool:
    """Truncated BPTT: is h_t detached before it feeds step t+1? (after steps k, 2k, ...)"""
    return truncate is not None and t > 0 and t % truncate == 0


GATED_KEYS = {"lstm": ("W_ih", "W_hh", "b", "W_hy", "b_y"),
              "gru": ("W_ih", "W_hh", "b_ih", "b_hh", "W_hy", "b_y"),
              "gru_d2l": ("W_ih", "W_hh", "W_hc", "b", "W_hy", "b_y")}
GATES = {"lstm": 4, "gru": 3, "gru_d2l": 3}


class GatedProblem(NamedTuple):
    ys: np.ndarray
    w: np.ndarray      # step weights w_t
    T: int
    B: int
    H: int


def validate_gated(cell, params, xs, ys, reduction) -> GatedProblem:
    """Check the arguments of an LSTM/GRU ``loss_and_grads`` (squared error, identity output)."""
    check_option("cell", cell, tuple(GATED_KEYS))
    check_option("reduction", reduction, REDUCTION)
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of arrays; got {type(params).__name__}")
    keys = GATED_KEYS[cell]
    if set(params) != set(keys):
        raise KeyError(f"params: expected keys {list(keys)} for {cell}; got {sorted(params, key=str)}")
    xs = _float_array("xs", xs, 3, None)
    T, B, D = xs.shape
    if T == 0 or B == 0 or D == 0:
        raise ValueError(f"xs: expected shape (T >= 1, B >= 1, D >= 1); got {xs.shape}")
    W_hh = _float_array("params['W_hh']", params["W_hh"], 2, xs.dtype)
    H = W_hh.shape[1]
    G = GATES[cell]
    O = _float_array("params['W_hy']", params["W_hy"], 2, xs.dtype).shape[0]
    shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b": (G * H,), "b_ih": (G * H,), "b_hh": (G * H,),
              "W_hy": (O, H), "b_y": (O,)}
    if cell == "gru_d2l":          # z and r read h_{t-1}; the candidate reads r * h_{t-1} through W_hc
        shapes.update(W_hh=(2 * H, H), W_hc=(H, H))
    for k in keys:
        _shape(f"params['{k}']", _float_array(f"params['{k}']", params[k], len(shapes[k]), xs.dtype), shapes[k])
    ys = _float_array("ys", ys, 3, xs.dtype)
    _shape("ys", ys, (T, B, O))
    return GatedProblem(ys, step_weights(reduction, T, xs.dtype), T, B, H)


MLP_LOSS = ("squared_error", "cross_entropy")


def validate_mlp(params, X, Y, activations, loss):
    """Check the arguments of :func:`loss_and_grads`; returns L (the number of layers)."""
    check_option("loss", loss, MLP_LOSS)
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict W1, b1, ..., WL, bL; got {type(params).__name__}")
    L = len(params) // 2
    expected = {f"{p}{l}" for l in range(1, L + 1) for p in "Wb"}
    if L == 0 or set(params) != expected:
        raise KeyError(f"params: expected keys W1, b1, ..., W{L}, b{L}; got {sorted(params, key=str)}")
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype not in FLOAT_DTYPES:
        raise TypeError(f"X: expected a float32/float64 array of shape (B, n_0); got {getattr(X, 'shape', X)!r}")
    if X.shape[0] == 0:
        raise ValueError("X: empty batch; expected B >= 1 rows")
    if not isinstance(activations, (list, tuple)) or len(activations) != L:
        raise ValueError(f"activations: expected a list of {L} names, one per layer; got {activations!r}")
    for i, name in enumerate(activations):
        check_option(f"activations[{i}]", name, HIDDEN)
    if loss == "cross_entropy" and activations[-1] != "identity":
        raise ValueError("activations: softmax + cross-entropy needs the last activation 'identity'")
    width = X.shape[1]
    for l in range(1, L + 1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        for name, arr in ((f"W{l}", W), (f"b{l}", b)):
            if not isinstance(arr, np.ndarray) or arr.dtype != X.dtype:
                raise TypeError(f"params['{name}']: expected a {X.dtype} numpy.ndarray")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"params['{name}']: contains NaN or Inf")
        if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
            raise ValueError(f"params['W{l}'], ['b{l}']: expected shapes (n_{l}, {width}) and (n_{l},); "
                             f"got {W.shape} and {b.shape}")
        width = W.shape[0]
    if not np.all(np.isfinite(X)):
        raise ValueError("X: contains NaN or Inf")
    if loss == "cross_entropy":
        if not (isinstance(Y, np.ndarray) and np.issubdtype(Y.dtype, np.integer) and Y.shape == X.shape[:1]):
            raise TypeError(f"Y: expected integer class indices of shape ({X.shape[0]},)")
        if Y.min() < 0 or Y.max() >= width:
            raise ValueError(f"Y: class indices must lie in [0, {width})")
    elif not (isinstance(Y, np.ndarray) and Y.dtype == X.dtype and Y.shape == (X.shape[0], width)):
        raise TypeError(f"Y: expected a {X.dtype} array of shape ({X.shape[0]}, {width})")
    elif not np.all(np.isfinite(Y)):
        raise ValueError("Y: contains NaN or Inf")
    return L
