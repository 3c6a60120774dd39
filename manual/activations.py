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


# name -> (f(a, out=None), f'(a, h)); ``out`` lets the time loop write into preallocated rows
ACTIVATIONS = {
    "tanh": (lambda a, out=None: np.tanh(a, out=out), lambda a, h: 1 - h * h),
    "sigmoid": (_sigmoid, lambda a, h: h * (1 - h)),
    "relu": (lambda a, out=None: np.maximum(a, 0, out=out), lambda a, h: (a > 0).astype(a.dtype)),
    "identity": (_identity, lambda a, h: np.ones_like(a)),
}
