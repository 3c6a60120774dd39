"""Reference: the contract's forward pass as a ``jax.lax.scan``, differentiated by JAX.

float64 is honoured and nothing of the user's JAX is changed: every call runs inside
``with jax.enable_x64(True):`` (without it JAX would silently compute a float64 problem
in float32), on JAX's CPU device unless ``device="cuda"`` is asked for (no GPU memory is
taken by default), and every matrix product asks for ``Precision.HIGHEST`` itself (on
NVIDIA GPUs JAX's default runs float32 products in TF32, a 10-bit mantissa; a user's
``jax_default_matmul_precision`` would otherwise change the reference's arithmetic).
See docs/gpu.md.

dL/dh_t is obtained the standard autodiff way: a zero perturbation eps_t is added to
every hidden state (h_t + eps_t) and ``jax.grad`` differentiates with respect to eps
as well, so dL/deps_t = dL/dh_t. Truncated BPTT is ``lax.stop_gradient`` on h_k, h_2k, ...
One jitted ``value_and_grad`` is compiled per configuration (and, by jit, per shape).

Compiled functions can be kept on disk between runs (JAX's persistent compilation
cache), but JAX has one cache setting for the whole process, so the suite sets it only
when asked: ``BPTT_XVAL_JAX_CACHE=FOLDER`` (or ``default`` for
``$XDG_CACHE_HOME/bptt-xval/jax``). A cache folder already set for JAX
(``JAX_COMPILATION_CACHE_DIR``) is used as it is.
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from bptt_xval.model import (BackendUnavailable, Gradients, step_weights, validate, validate_gated, validate_mlp,
                             validated)
from reference.stacked import bucket, stack, unstack

if "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ:
    # Read once, when JAX starts its GPU backend: if the suite is what starts it, take GPU
    # memory on demand instead of 75% of the device up front (docs/gpu.md). A backend the
    # user started already keeps its own setting.
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"

try:
    import jax
    import jax.numpy as jnp
    from jax import lax

    HIGHEST = lax.Precision.HIGHEST
except ImportError as exc:  # pragma: no cover - exercised by the missing-backend test
    jax = None
    _IMPORT_ERROR = exc


CACHE_ENV = "BPTT_XVAL_JAX_CACHE"


def _enable_compilation_cache() -> str | None:
    """The folder compiled functions are cached in, or None. Opt-in: the setting is the
    whole process's, so it is only changed when the user asks (BPTT_XVAL_JAX_CACHE)."""
    if jax.config.jax_compilation_cache_dir:          # the user's own choice wins
        return jax.config.jax_compilation_cache_dir
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in ("", "off", "0", "false", "no"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "bptt-xval", "jax") if setting.lower() == "default" else setting
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:                                   # read-only home: compile every run
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    # JAX caches only compilations over 1 s by default; ours take ~0.3 s each
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return folder


CACHE_DIR = _enable_compilation_cache() if jax is not None else None


def device_for(device: str = "cpu"):
    """The JAX device references run on: the CPU unless ``device="cuda"`` (then the first GPU)."""
    _require_jax()
    if device == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        raise BackendUnavailable("device='cuda': JAX has no GPU backend here (install jax[cuda12] on a "
                                 "machine with an NVIDIA GPU), so the references run on the CPU only")
    return gpus[0]


@contextlib.contextmanager
def scope(device: str = "cpu"):
    """The backend's own settings, for its calls only: float64 on, the chosen device."""
    with jax.enable_x64(True), jax.default_device(device_for(device)):
        yield


def _mm(a, b):
    """a @ b at full precision, whatever JAX's default or the user's setting (TF32 on GPUs)."""
    return jnp.matmul(a, b, precision=HIGHEST)


def _require_jax():
    if jax is None:
        raise BackendUnavailable(f"JAX is not installed ({_IMPORT_ERROR}); "
                                 f"install the extra: pip install 'bptt-xval[jax]'")


def _activation(name):
    return {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu,
            "identity": lambda a: a}[name]


# Bounded: every compiled executable holds mapped code memory, and a process that walks
# through hundreds of configurations (the soak does) otherwise runs out of mappings.
@functools.lru_cache(maxsize=32)
def compiled(hidden, output, loss, reduction, truncate):
    """jit(value_and_grad(L)) with respect to (params, eps, xs) for one configuration.

    L(params, eps, xs, ys, w, w_b) = sum_t w_t sum_b w_b l_tb: w_t are the reduction's step
    weights, w_b the batch-mean weights 1/B (0 on padded rows). params["h0"] is (B, H).
    """
    phi, theta = _activation(hidden), _activation(output)

    def L(params, eps, xs, ys, w, w_b):
        def step(h_prev, inputs):
            x_t, eps_t, t = inputs
            h = phi(_mm(x_t, params["W_xh"].T) + _mm(h_prev, params["W_hh"].T) + params["b_h"]) + eps_t
            cut = False if truncate is None else (t % truncate == 0)
            return jnp.where(cut, lax.stop_gradient(h), h), h

        T = xs.shape[0]
        _, hs = lax.scan(step, params["h0"] + eps[0], (xs, eps[1:], jnp.arange(1, T + 1)))
        return _loss(params, hs, ys, w, w_b, theta, loss)

    return jax.jit(jax.value_and_grad(L, argnums=(0, 1, 2)))


def _loss(params, hs, ys, w, w_b, theta, loss):
    """The output layer and loss on h_1..h_T: sum_t w_t sum_b w_b l_tb."""
    z = _mm(hs, params["W_hy"].T) + params["b_y"]
    if loss == "squared_error":
        l_tb = 0.5 * jnp.sum((theta(z) - ys) ** 2, -1)
    else:
        log_p = jax.nn.log_softmax(z, -1)
        l_tb = -jnp.take_along_axis(log_p, ys[..., None], -1)[..., 0]
    return jnp.sum(w * _mm(l_tb, w_b))


def _pad(array: np.ndarray, shape: tuple, fill=0) -> np.ndarray:
    out = np.full(shape, fill, array.dtype)
    out[tuple(slice(0, n) for n in array.shape)] = array
    return out


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None, pad=True,
                   device="cpu") -> Gradients:
    """Same signature, shapes and dtypes as :func:`manual.rnn.loss_and_grads`.

    Shapes are padded to buckets (T, B, D, H, O; see :func:`bucket`) so that one
    compiled function serves many problem sizes. The padding is exact, and the padded
    parts of the gradients are cut off before returning:
    - padded steps come after T with step weight w_t = 0: no gradient flows from them;
    - padded batch rows have weight w_b = 0;
    - padded inputs and hidden units have all-zero weights in and out, so they add
      exact zeros to every real sum (a padded sigmoid unit is 0.5, times zero weights);
    - padded outputs have target theta(0) = o, so zero error (squared error), or a
      logit of -inf, so zero probability (cross-entropy).

    ``pad=False`` (an extension of the contract's signature): compile for the exact
    shapes instead, one compilation per shape; the checker's slow path uses it.
    ``device``: "cpu" (default: no GPU memory taken) or "cuda".
    """
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    _require_jax()
    if not isinstance(pad, bool):
        raise TypeError(f"pad: expected True or False; got {pad!r}")
    T, B, D, H, O = p.T, p.B, p.D, p.H, p.O
    if pad:
        Tp, Bp, Dp, Hp, Op = bucket(T, 16), bucket(B, 4), bucket(D, 4), bucket(H, 4), bucket(O, 4)
    else:
        Tp, Bp, Dp, Hp, Op = T, B, D, H, O
    h0 = p.params.get("h0", np.zeros((B, H), p.dtype))
    cross_entropy = loss == "cross_entropy"
    padded = {
        "W_xh": _pad(p.params["W_xh"], (Hp, Dp)),
        "W_hh": _pad(p.params["W_hh"], (Hp, Hp)),
        "b_h": _pad(p.params["b_h"], (Hp,)),
        "W_hy": _pad(p.params["W_hy"], (Op, Hp)),
        "b_y": _pad(p.params["b_y"], (Op,), -np.inf if cross_entropy else 0),
        "h0": _pad(np.broadcast_to(h0, (B, H)), (Bp, Hp)),
    }
    if cross_entropy:
        ys_p = _pad(p.ys.astype(np.int32), (Tp, Bp))
    else:
        ys_p = _pad(p.ys, (Tp, Bp, Op), 0.5 if output == "sigmoid" else 0)
    w_b = _pad(np.full(B, 1.0 / B, p.dtype), (Bp,))
    with scope(device):
        value, (g_params, g_eps, g_xs) = compiled(hidden, output, loss, reduction, truncate)(
            padded, np.zeros((Tp + 1, Bp, Hp), p.dtype), _pad(p.xs, (Tp, Bp, Dp)), ys_p,
            _pad(step_weights(reduction, T, p.dtype), (Tp,)), w_b)
        # one transfer of every array (np.asarray per leaf costs ~35 us each)
        value, g_params, g_eps, g_xs = jax.device_get((value, g_params, g_eps, g_xs))
    grads = {k: g_params[k][tuple(slice(0, n) for n in v.shape)].copy()
             for k, v in p.params.items() if k != "h0"}
    dL_dh = g_eps[:T + 1, :B, :H].copy()
    if "h0" in p.params:
        grads["h0"] = dL_dh[0].copy() if p.params["h0"].ndim == 2 else dL_dh[0].sum(0)
    return Gradients(float(value), grads, dL_dh, g_xs[:T, :B, :D].copy())


@functools.lru_cache(maxsize=32)
def stacked_compiled(hidden, output, loss, reduction, truncate):
    """jit(vmap(value_and_grad(L))) over a stack of cases (``reference.stacked``): L as in
    :func:`compiled`, with h_t set to 0 on padded steps (mask m_t = 0)."""
    phi, theta = _activation(hidden), _activation(output)

    def L(params, eps, xs, ys, w, w_b, mask):
        def step(h_prev, inputs):
            x_t, eps_t, t, m_t = inputs
            a = _mm(x_t, params["W_xh"].T) + _mm(h_prev, params["W_hh"].T) + params["b_h"]
            h = jnp.where(m_t > 0, phi(a), 0.0) + eps_t
            cut = False if truncate is None else (t % truncate == 0)
            return jnp.where(cut, lax.stop_gradient(h), h), h

        T = xs.shape[0]
        _, hs = lax.scan(step, params["h0"] + eps[0], (xs, eps[1:], jnp.arange(1, T + 1), mask))
        return _loss(params, hs, ys, w, w_b, theta, loss)

    return jax.jit(jax.vmap(jax.value_and_grad(L, argnums=(0, 1, 2))))


def batch_loss_and_grads(problems, *, hidden="tanh", output="identity", loss="squared_error",
                         reduction="mean", truncate=None, device="cpu", sizes=None, cases=None) -> list:
    """:func:`loss_and_grads` for many problems ``[(params, xs, ys), ...]`` of one
    configuration and dtype, in one compiled call: zero-padded to common bucketed sizes
    and stacked (``reference.stacked``: exact padding), ``jax.vmap`` over the cases. The
    number of cases is padded to a power of two, so one compilation serves many groups.
    ``sizes`` (Tp, Bp, Dp, Hp, Op) and ``cases`` (N) fix the padded shape instead
    (``reference.stacked.groups`` plans them). Returns one ``Gradients`` per problem."""
    return launch_batch(problems, hidden=hidden, output=output, loss=loss, reduction=reduction,
                        truncate=truncate, device=device, sizes=sizes, cases=cases)()


def launch_batch(problems, *, hidden="tanh", output="identity", loss="squared_error",
                 reduction="mean", truncate=None, device="cpu", sizes=None, cases=None):
    """:func:`batch_loss_and_grads` in two halves: starts the computation (JAX dispatches
    asynchronously, so it runs on another core while the caller goes on) and returns a
    function that waits for it and returns the ``Gradients``."""
    # a Problem is validate()'s own result: the checker validates each case once for all
    ps = [validated(problem, hidden=hidden, output=output, loss=loss, reduction=reduction,
                    truncate=truncate) for problem in problems]
    _require_jax()
    if not ps:
        return list
    if sizes is None:
        sizes = (bucket(max(p.T for p in ps), 16), bucket(max(p.B for p in ps), 4),
                 bucket(max(p.D for p in ps), 4), bucket(max(p.H for p in ps), 4), bucket(max(p.O for p in ps), 4))
    N = cases or 1 << (len(ps) - 1).bit_length()
    s = stack(ps, output=output, loss=loss, reduction=reduction, sizes=sizes, cases=N)
    ys = s.ys.astype(np.int32) if loss == "cross_entropy" else s.ys
    eps = np.zeros((N, sizes[0] + 1, sizes[1], sizes[3]), ps[0].dtype)
    with scope(device):
        running = stacked_compiled(hidden, output, loss, reduction, truncate)(
            s.params, eps, s.xs, ys, s.w, s.w_b, s.mask)

    def collect() -> list:
        value, (g, g_eps, g_xs) = jax.device_get(running)     # one transfer of every array
        return [unstack(s, i, value[i], g, g_eps, g_xs) for i in range(len(ps))]
    return collect


@functools.lru_cache(maxsize=32)
def _mlp_compiled(activations: tuple, loss: str):
    def L(params, eps, X, Y):
        a = X
        for l, name in enumerate(activations, start=1):
            # eps^(l) = 0 added to z^(l): dL/deps^(l) = dL/dz^(l) = delta^(l)
            a = _activation(name)(_mm(a, params[f"W{l}"].T) + params[f"b{l}"] + eps[l - 1])
        if loss == "squared_error":
            return 0.5 * jnp.sum((a - Y) ** 2, -1).mean()
        return -jnp.take_along_axis(jax.nn.log_softmax(a, -1), Y[:, None], -1).mean()

    return jax.jit(jax.value_and_grad(L, argnums=(0, 1)))


def mlp_loss_and_grads(params, X, Y, *, activations, loss="squared_error"):
    """Seed 002's MLP by ``jax.value_and_grad``: (loss, grads, deltas)."""
    validate_mlp(params, X, Y, activations, loss)
    _require_jax()
    L = len(activations)
    eps = [np.zeros((X.shape[0], params[f"b{l}"].shape[0]), X.dtype) for l in range(1, L + 1)]
    with scope():
        value, (g, deltas) = jax.device_get(_mlp_compiled(tuple(activations), loss)(params, eps, X, Y))
    return float(value), {k: np.asarray(v).copy() for k, v in g.items()}, [np.asarray(d).copy() for d in deltas]


def hidden_state_jacobian(params, xs, *, hidden="tanh"):
    """Forward mode: ``jax.jacfwd`` of h_T (B, H) with respect to W_xh, W_hh and b_h.

    Returns a dict of arrays (B, H) + the parameter's shape: dh_T/dW (no h0 given: h0 = 0).
    """
    _require_jax()
    phi = _activation(hidden)
    B = xs.shape[1]
    H = params["W_hh"].shape[0]

    def h_T(w):
        def step(h, x_t):
            return phi(_mm(x_t, w["W_xh"].T) + _mm(h, w["W_hh"].T) + w["b_h"]), None
        return lax.scan(step, jnp.zeros((B, H), xs.dtype), xs)[0]

    w = {k: params[k] for k in ("W_xh", "W_hh", "b_h")}
    with scope():
        return {k: np.asarray(v) for k, v in jax.device_get(jax.jit(jax.jacfwd(h_T))(w)).items()}


def _lstm_step(params, h, c, x):
    a = _mm(x, params["W_ih"].T) + _mm(h, params["W_hh"].T) + params["b"]
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _gru_step(params, h, x):
    gi = _mm(x, params["W_ih"].T) + params["b_ih"]
    gh = _mm(h, params["W_hh"].T) + params["b_hh"]
    (ir, iz, i_n), (hr, hz, hn) = jnp.split(gi, 3, axis=-1), jnp.split(gh, 3, axis=-1)
    r, z = jax.nn.sigmoid(ir + hr), jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(i_n + r * hn)
    return (1 - z) * n + z * h


@functools.lru_cache(maxsize=8)
def _gated_compiled(cell):
    def L(params, eps, xs, ys, w):
        B, H = eps.shape[1:]
        zeros = jnp.zeros((B, H), xs.dtype)

        def step(carry, inputs):
            x_t, eps_t = inputs
            if cell == "lstm":
                h, c = _lstm_step(params, carry[0], carry[1], x_t)
                h = h + eps_t
                return (h, c), h
            h = _gru_step(params, carry, x_t) + eps_t
            return h, h

        init = (zeros + eps[0], zeros) if cell == "lstm" else zeros + eps[0]
        _, hs = lax.scan(step, init, (xs, eps[1:]))
        z = _mm(hs, params["W_hy"].T) + params["b_y"]
        return jnp.sum(w * 0.5 * jnp.sum((z - ys) ** 2, -1).mean(-1))

    return jax.jit(jax.value_and_grad(L, argnums=(0, 1)))


def gated_loss_and_grads(cell, params, xs, ys, *, reduction="mean"):
    """LSTM / GRU over ``lax.scan``, differentiated by JAX; dL_dh (T+1, B, H) by the eps trick."""
    p = validate_gated(cell, params, xs, ys, reduction)
    _require_jax()
    eps = np.zeros((p.T + 1, p.B, p.H), xs.dtype)
    with scope():
        value, (g, g_eps) = jax.device_get(_gated_compiled(cell)(params, eps, xs, ys, p.w))
    return Gradients(float(value), {k: np.asarray(v).copy() for k, v in g.items()}, np.asarray(g_eps).copy())


def clear_compiled() -> None:
    """Drop every compiled function of this backend (and JAX's own caches)."""
    for cached in (compiled, stacked_compiled, _mlp_compiled, _gated_compiled):
        cached.cache_clear()
    if jax is not None:
        jax.clear_caches()
