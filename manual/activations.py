"""Activations phi / theta and their derivatives, each derivative beside its function.

A derivative takes both the pre-activation ``a`` and the activation ``h = f(a)``, so
each is written the way the seeds write it: tanh' = 1 - h^2 (seed 000's 1 - h[k+1]^2),
sigmoid' = h (1 - h), and ReLU' = [a > 0], which is 0 at exactly a = 0 (the PyTorch and
JAX convention, and the contract's).
"""

import numpy as np


def _sigmoid(a, out=None):
    # exp of a non-positive number only, so no overflow warning for large |a|
    e = np.exp(-np.abs(a))
    return np.divide(np.where(a >= 0, 1, e), 1 + e, out=out, dtype=a.dtype)


def _identity(a, out=None):
    if out is None:
        return a.copy()
    np.copyto(out, a)
    return out


def _dtanh(a, h, out=None):
    out = np.multiply(h, h, out=out)
    return np.subtract(1, out, out=out)                  # 1 - h^2, seed 000's (1 - h[k+1]^2)


def _dsigmoid(a, h, out=None):
    out = np.subtract(1, h, out=out)
    return np.multiply(h, out, out=out)                  # h (1 - h)


def _drelu(a, h, out=None):
    return np.greater(a, 0, out=out if out is not None else np.empty_like(a), casting="unsafe")


def _didentity(a, h, out=None):
    if out is None:
        return np.ones_like(a)
    out[...] = 1
    return out


# name -> (f(a, out=None), f'(a, h, out=None)); ``out`` lets the loops write into preallocated
# arrays instead of allocating temporaries the size of the whole sequence
ACTIVATIONS = {
    "tanh": (lambda a, out=None: np.tanh(a, out=out), _dtanh),
    "sigmoid": (_sigmoid, _dsigmoid),
    "relu": (lambda a, out=None: np.maximum(a, 0, out=out), _drelu),
    "identity": (_identity, _didentity),
}
