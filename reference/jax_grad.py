"""Reference: the contract's forward pass as a ``jax.lax.scan``, differentiated by JAX.

float64 is honoured: this module turns on ``jax_enable_x64`` when it is imported (the
backend needs it; user code never has to). Without it JAX would silently compute a
float64 problem in float32.

dL/dh_t is obtained the standard autodiff way: a zero perturbation eps_t is added to
every hidden state (h_t + eps_t) and ``jax.grad`` differentiates with respect to eps
as well, so dL/deps_t = dL/dh_t. Truncated BPTT is ``lax.stop_gradient`` on h_k, h_2k, ...
One jitted ``value_and_grad`` is compiled per configuration (and, by jit, per shape).
"""

from __future__ import annotations

import functools

import numpy as np

from bptt_xval.model import BackendUnavailable, Gradients, step_weights, validate

try:
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_enable_x64", True)
except ImportError as exc:  # pragma: no cover - exercised by the missing-backend test
    jax = None
    _IMPORT_ERROR = exc


def _require_jax():
    if jax is None:
        raise BackendUnavailable(f"JAX is not installed ({_IMPORT_ERROR}); "
                                 f"install the extra: pip install 'bptt-xval[jax]'")


def _activation(name):
    return {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu,
            "identity": lambda a: a}[name]


@functools.lru_cache(maxsize=None)
def compiled(hidden, output, loss, reduction, truncate):
    """jit(value_and_grad(L)) with respect to (params, eps) for one configuration."""
    phi, theta = _activation(hidden), _activation(output)

    def L(params, eps, xs, ys, w):
        B, H = eps.shape[1:]
        h0 = jnp.broadcast_to(params["h0"], (B, H)) if "h0" in params else jnp.zeros((B, H), xs.dtype)

        def step(h_prev, inputs):
            x_t, eps_t, t = inputs
            h = phi(x_t @ params["W_xh"].T + h_prev @ params["W_hh"].T + params["b_h"]) + eps_t
            cut = False if truncate is None else (t % truncate == 0)
            return jnp.where(cut, lax.stop_gradient(h), h), h

        T = xs.shape[0]
        _, hs = lax.scan(step, h0 + eps[0], (xs, eps[1:], jnp.arange(1, T + 1)))
        z = hs @ params["W_hy"].T + params["b_y"]
        if loss == "squared_error":
            l = 0.5 * jnp.sum((theta(z) - ys) ** 2, -1).mean(-1)
        else:
            log_p = jax.nn.log_softmax(z, -1)
            l = -jnp.take_along_axis(log_p, ys[..., None], -1)[..., 0].mean(-1)
        return jnp.sum(w * l)

    return jax.jit(jax.value_and_grad(L, argnums=(0, 1)))


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None) -> Gradients:
    """Same signature, shapes and dtypes as :func:`manual.rnn.loss_and_grads`."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    _require_jax()
    eps = np.zeros((p.T + 1, p.B, p.H), p.dtype)
    ys_j = p.ys.astype(np.int32) if loss == "cross_entropy" else p.ys
    value, (g_params, g_eps) = compiled(hidden, output, loss, reduction, truncate)(
        p.params, eps, p.xs, ys_j, step_weights(reduction, p.T, p.dtype))
    grads = {k: np.asarray(v).copy() for k, v in g_params.items()}
    return Gradients(float(value), grads, np.asarray(g_eps).copy())
