"""What a candidate may return, and the one-line reason when it returns something else.

A derivation may end with ``return Gradients(loss, grads, dL_dh)`` or, as most people
write it, with a plain tuple ``return loss, grads, dL_dh`` or ``return loss, grads, dL_dh,
dL_dx``: all mean the same (docs/api.md, "Returns"). Arrays may be NumPy arrays, torch
tensors on any device, JAX or CuPy arrays: a derivation that lives on the GPU is checked
as it is, each array moved to NumPy once. Anything else (None, a list, a dict, seven
items, a nested list where an array belongs) is a bad output of that case, described in
one line a user can act on, never an exception out of the checker.
"""

from __future__ import annotations

import numbers

import numpy as np

from bptt_xval.model import Gradients


class BadOutput(Exception):
    """The candidate returned something that is not a valid ``Gradients``."""


class NonFiniteOutput(BadOutput):
    """The candidate returned NaN or Inf (where the reference is finite)."""


class InputModified(ValueError):
    """The user's function wrote into an array it was handed (a convention adapter says which)."""


SHAPE_OF_A_RETURN = "(loss, grads, dL_dh) or (loss, grads, dL_dh, dL_dx)"


def _kind(value) -> str:
    """A type name a user recognises: 'torch.Tensor', 'list', 'NoneType'."""
    t = type(value)
    module = t.__module__.split(".")[0]
    return t.__name__ if module == "builtins" else f"{module}.{t.__name__}"


def _library(value) -> str:
    return type(value).__module__.split(".")[0]


def to_numpy(value):
    """A torch tensor (any device, requiring grad or not), a CuPy or a JAX array as NumPy;
    anything else unchanged (and judged by the caller)."""
    library = _library(value)
    try:
        if library == "torch" and hasattr(value, "detach"):
            return value.detach().cpu().numpy()
        if library == "cupy" and hasattr(value, "get"):
            return value.get()
        if library in ("jax", "jaxlib") and hasattr(value, "shape"):
            return np.asarray(value)
    except Exception as exc:       # a tensor NumPy cannot hold (bfloat16, a sparse layout...)
        raise BadOutput(f"cannot convert a {_kind(value)} to NumPy ({type(exc).__name__}: {exc})") from None
    return value


def _structure(result) -> tuple:
    """(loss, grads, dL_dh, dL_dx) from a Gradients or a plain 3- or 4-tuple."""
    if result is None:
        raise BadOutput(f"returned None; expected a tuple {SHAPE_OF_A_RETURN} "
                        f"(is a `return` missing?)")
    if isinstance(result, dict):
        keys = ", ".join(map(repr, list(result)[:6]))
        raise BadOutput(f"returned a dict (keys {keys}); expected a tuple {SHAPE_OF_A_RETURN} "
                        f"with the gradients dict second")
    if not isinstance(result, tuple):
        hint = " (make it a tuple)" if isinstance(result, list) else ""
        raise BadOutput(f"returned a {_kind(result)}{hint}; expected a tuple {SHAPE_OF_A_RETURN}")
    if len(result) not in (3, 4):
        raise BadOutput(f"returned a tuple of {len(result)} items; expected 3 or 4: {SHAPE_OF_A_RETURN}")
    return tuple(result) + (None,) * (4 - len(result))


def _loss(loss) -> float:
    loss = to_numpy(loss)
    if isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype.kind == "f":
        loss = loss[()]
    if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, numbers.Real):
        shape = f" of shape {loss.shape}" if isinstance(loss, np.ndarray) else ""
        raise BadOutput(f"loss: expected a float; got {_kind(loss)}{shape}")
    loss = float(loss)
    if not np.isfinite(loss):
        raise NonFiniteOutput(f"loss: not finite ({loss})")
    return loss


def _array(name: str, value, shape: tuple, dtype) -> np.ndarray:
    value = to_numpy(value)
    if not isinstance(value, np.ndarray):
        raise BadOutput(f"{name}: expected an array (NumPy, torch, JAX or CuPy); got {_kind(value)}")
    if value.shape != shape:
        raise BadOutput(f"{name}: expected shape {shape}; got {value.shape}")
    if dtype is not None and value.dtype != dtype:
        raise BadOutput(f"{name}: expected dtype {dtype} (the input dtype); got {value.dtype}")
    if value.dtype.kind not in "fiu":
        raise BadOutput(f"{name}: expected real numbers; got dtype {value.dtype}")
    if not np.all(np.isfinite(value)):
        raise NonFiniteOutput(f"{name}: contains NaN or Inf")
    return value


def as_gradients(result, params: dict, checked: tuple, sizes: tuple, dtype) -> Gradients:
    """The candidate's ``result`` as ``Gradients`` holding only the ``checked`` gradients.

    ``params``: the case's parameters (names and shapes); ``sizes``: (T, B, D, H).
    Raises BadOutput (NonFiniteOutput for NaN/Inf) naming what is wrong.
    """
    T, B, D, H = sizes
    loss, grads, dL_dh, dL_dx = _structure(result)
    loss = _loss(loss)
    if not isinstance(grads, dict):
        raise BadOutput(f"grads: expected a dict of gradients by parameter name; got {_kind(grads)}")
    unknown = sorted((str(k) for k in grads if k not in params), key=str)
    if unknown:
        raise BadOutput(f"grads: unknown key(s) {unknown}; this case's parameters are {sorted(params)}")
    missing = [k for k in checked if k not in grads]
    if missing:
        hint = (" (the case has an initial state h0: leave h0 out of params, or draw h0='none')"
                if missing == ["h0"] else "")
        raise BadOutput(f"grads: missing {', '.join(map(repr, missing))}{hint}")
    checked_grads = {k: _array(f"grads[{k!r}]", grads[k], params[k].shape, dtype) for k in checked}
    if dL_dh is not None:
        dL_dh = _array("dL_dh", dL_dh, (T + 1, B, H), None)
    if dL_dx is not None:
        dL_dx = _array("dL_dx", dL_dx, (T, B, D), None)
    return Gradients(loss, checked_grads, dL_dh, dL_dx)
