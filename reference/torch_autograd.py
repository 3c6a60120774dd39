"""Reference: the contract's forward pass in PyTorch, differentiated by autograd.

Nothing here is derived by hand: the forward pass is written once, and
``torch.autograd.grad`` returns the gradients of the parameters, of every hidden
state h_0..h_T (that is the contract's dL_dh) and of the inputs xs (dL_dx). Truncated BPTT is ``detach()`` after
steps k, 2k, ..., exactly as it is practised.

The reference's arithmetic is its own: every call runs inside :func:`exact`, which turns
TF32 off for float32 matrix products and cuDNN (a training script's
``torch.set_float32_matmul_precision("high")`` would otherwise round the reference's
products to a 10-bit mantissa on NVIDIA GPUs) and restores the user's settings after.
Tensors live on the CPU unless ``device="cuda"`` is asked for (docs/gpu.md).
"""

from __future__ import annotations

import contextlib

import numpy as np

from bptt_xval.model import (BackendUnavailable, Gradients, is_cut, step_weights, validate, validated,
                             validate_gated, validate_mlp)

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised by the missing-backend test
    torch = None
    _IMPORT_ERROR = exc


def _require_torch():
    if torch is None:
        raise BackendUnavailable(f"PyTorch is not installed ({_IMPORT_ERROR}); "
                                 f"install the extra: pip install 'bptt-xval[torch]'")
    return torch


@contextlib.contextmanager
def exact(threads: int | None = None):
    """Full float32 precision for torch's products (TF32 off: matmul and cuDNN), for the
    calls inside only, and optionally ``threads`` intra-op threads; the user's settings are
    put back as found, also on an exception."""
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32, torch.get_num_threads()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    if threads is not None and threads != saved[2]:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]
        if torch.get_num_threads() != saved[2]:
            torch.set_num_threads(saved[2])


# Below this many multiply-adds per step (T B H (D + H)), one thread: a per-case problem of
# 10 x 10 matrices is bound by launching work, and a 16-core thread pool only adds to it.
SMALL_PROBLEM = 1 << 18


def device_for(device: str = "cpu"):
    """The torch device references run on; ``"cuda"`` without a GPU is BackendUnavailable."""
    _require_torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device='cuda': torch sees no CUDA device (torch.cuda.is_available() is "
                                 "False: no GPU, or a CPU-only build of torch)")
    return torch.device(device)


def _activation(name):
    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
            "identity": lambda a: a}[name]


def loss_and_grads(params, xs, ys, *, hidden="tanh", output="identity",
                   loss="squared_error", reduction="mean", truncate=None, device="cpu") -> Gradients:
    """Same signature, shapes and dtypes as :func:`manual.rnn.loss_and_grads`; ``device``
    ("cpu" or "cuda") is where the tensors live."""
    p = validate(params, xs, ys, hidden=hidden, output=output, loss=loss,
                 reduction=reduction, truncate=truncate)
    dev = device_for(device)
    small = p.T * p.B * p.H * (p.D + p.H) < SMALL_PROBLEM
    with exact(threads=1 if small and dev.type == "cpu" else None):
        return _loss_and_grads(p, dev, hidden, output, loss, reduction, truncate)


def _loss_and_grads(p, dev, hidden, output, loss, reduction, truncate) -> Gradients:
    T, B, H = p.T, p.B, p.H
    P = {k: torch.tensor(v, requires_grad=True, device=dev) for k, v in p.params.items()}
    x = torch.tensor(p.xs, requires_grad=True, device=dev)
    phi, theta = _activation(hidden), _activation(output)

    # h_0 as a (B, H) graph node of its own, so that its gradient is dL/dh_0 per sample.
    h = (P["h0"].expand(B, H) if "h0" in P
         else torch.zeros(B, H, dtype=x.dtype, device=dev, requires_grad=True))
    hs = [h]
    h_in = h
    for t in range(1, T + 1):
        h = phi(x[t - 1] @ P["W_xh"].T + h_in @ P["W_hh"].T + P["b_h"])
        hs.append(h)
        h_in = h.detach() if is_cut(t, truncate) else h

    z = torch.stack(hs[1:]) @ P["W_hy"].T + P["b_y"]
    if loss == "squared_error":
        l = 0.5 * ((theta(z) - torch.tensor(p.ys, device=dev)) ** 2).sum(-1).mean(-1)
    else:
        target = torch.tensor(p.ys.astype(np.int64), device=dev)
        l = -torch.log_softmax(z, -1).gather(-1, target[..., None])[..., 0].mean(-1)
    L = (torch.tensor(step_weights(reduction, T, p.dtype), device=dev) * l).sum()

    keys = list(P)
    # allow_unused: under truncation with reduction="last", early h_t may not reach L.
    out = torch.autograd.grad(L, [P[k] for k in keys] + [x] + hs, allow_unused=True)
    grads = {k: _numpy(g, P[k]) for k, g in zip(keys, out)}
    dL_dx = _numpy(out[len(keys)], x)
    dL_dh = np.stack([_numpy(g, h) for g, h in zip(out[len(keys) + 1:], hs)])
    return Gradients(float(L.detach()), grads, dL_dh, dL_dx)


def _numpy(grad, like) -> np.ndarray:
    if grad is None:
        return np.zeros(tuple(like.shape), dtype=np.dtype(str(like.dtype).removeprefix("torch.")))
    return grad.detach().cpu().numpy().copy()


def mlp_loss_and_grads(params, X, Y, *, activations, loss="squared_error"):
    """Seed 002's MLP by autograd: (loss, grads, deltas) with delta^(l) = dL/dz^(l), (B, n_l)."""
    validate_mlp(params, X, Y, activations, loss)
    _require_torch()
    with exact():
        return _mlp(params, X, Y, activations, loss)


def _mlp(params, X, Y, activations, loss):
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a, zs = torch.tensor(X), []
    for l, name in enumerate(activations, start=1):
        z = a @ P[f"W{l}"].T + P[f"b{l}"]
        zs.append(z)
        a = _activation(name)(z)
    if loss == "squared_error":
        L = 0.5 * ((a - torch.tensor(Y)) ** 2).sum(-1).mean()
    else:
        L = torch.nn.functional.cross_entropy(a, torch.tensor(Y.astype(np.int64)))
    keys = list(P)
    out = torch.autograd.grad(L, [P[k] for k in keys] + zs)
    return (float(L.detach()), {k: g.numpy().copy() for k, g in zip(keys, out)},
            [g.numpy().copy() for g in out[len(keys):]])


def gated_loss_and_grads(cell, params, xs, ys, *, reduction="mean"):
    """``torch.nn.LSTM`` / ``torch.nn.GRU`` with manual.gated's weights mapped onto PyTorch's
    layout (same gate order; the LSTM's single bias b is bias_ih, with bias_hh = 0).
    Returns Gradients with dL_dh None: nn.LSTM hides its per-step states from autograd."""
    p = validate_gated(cell, params, xs, ys, reduction)
    _require_torch()
    with exact():
        return _gated(cell, p, params, xs, ys)


def _gated(cell, p, params, xs, ys):
    D = xs.shape[2]
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(D, p.H).to(torch.float64 if xs.dtype == np.float64
                                                                           else torch.float32)
    mapping = {"W_ih": module.weight_ih_l0, "W_hh": module.weight_hh_l0}
    if cell == "lstm":
        mapping["b"] = module.bias_ih_l0
    else:
        mapping.update(b_ih=module.bias_ih_l0, b_hh=module.bias_hh_l0)
    with torch.no_grad():
        for k, weight in mapping.items():
            weight.copy_(torch.from_numpy(params[k]))
        if cell == "lstm":
            module.bias_hh_l0.zero_()
    head = {k: torch.tensor(params[k], requires_grad=True) for k in ("W_hy", "b_y")}
    hs, _ = module(torch.from_numpy(xs))
    z = hs @ head["W_hy"].T + head["b_y"]
    L = (torch.from_numpy(p.w) * (0.5 * ((z - torch.from_numpy(ys)) ** 2).sum(-1).mean(-1))).sum()
    names = list(mapping) + list(head)
    out = torch.autograd.grad(L, list(mapping.values()) + list(head.values()))
    return Gradients(float(L.detach()), {k: g.numpy().copy() for k, g in zip(names, out)}, None)


def batch_loss_and_grads(problems, *, hidden="tanh", output="identity", loss="squared_error",
                         reduction="mean", truncate=None, device="cpu", sizes=None, cases=None) -> list:
    """:func:`loss_and_grads` for many problems ``[(params, xs, ys), ...]`` of one
    configuration and dtype, in one autograd graph: zero-padded to common sizes and
    stacked (``reference.stacked``: exact padding), so the per-operation overhead is paid
    once per group, not once per case. ``sizes`` (Tp, Bp, Dp, Hp, Op) and ``cases`` (N)
    as in ``reference.jax_grad.batch_loss_and_grads`` (default: the problems' largest).
    Returns one ``Gradients`` per problem."""
    from reference.stacked import stack, unstack

    # a Problem is validate()'s own result: the checker validates each case once for all
    ps = [validated(problem, hidden=hidden, output=output, loss=loss, reduction=reduction,
                    truncate=truncate) for problem in problems]
    if not ps:
        return []
    dev = device_for(device)
    s = stack(ps, output=output, loss=loss, reduction=reduction, sizes=sizes, cases=cases)
    with exact(threads=1 if dev.type == "cpu" else None):
        value, g, dL_dh, dL_dx = _stacked(s, dev, hidden, output, loss, truncate)
    return [unstack(s, i, value[i], g, dL_dh, dL_dx) for i in range(len(ps))]


def launch_batch(problems, **config):
    """:func:`batch_loss_and_grads` in the two halves of ``reference.jax_grad.launch_batch``.
    torch computes in the caller's thread, so the work is all in the second half: launched
    after JAX's, it runs while JAX computes on another core."""
    return lambda: batch_loss_and_grads(problems, **config)


def _stacked(s, dev, hidden, output, loss, truncate):
    P = {k: torch.tensor(v, requires_grad=True, device=dev) for k, v in s.params.items()}
    x = torch.tensor(s.xs, requires_grad=True, device=dev)        # (N, T, B, D)
    real = torch.tensor(s.mask > 0, device=dev)[..., None, None]     # (N, T, 1, 1)
    phi, theta = _activation(hidden), _activation(output)
    W_hh_T = P["W_hh"].transpose(1, 2)
    # every step's input term at once: the loop below holds only the recurrence
    inputs = x @ P["W_xh"].transpose(1, 2)[:, None] + P["b_h"][:, None, None]      # (N, T, B, H)
    h = P["h0"]
    hs = [h]
    h_in = h
    for t in range(1, x.shape[1] + 1):
        # a padded step's h_t is 0: a padded tail cannot overflow, nor send a gradient back
        h = torch.where(real[:, t - 1], phi(inputs[:, t - 1] + h_in @ W_hh_T), 0.0)
        hs.append(h)
        h_in = h.detach() if is_cut(t, truncate) else h
    z = torch.stack(hs[1:], 1) @ P["W_hy"].transpose(1, 2)[:, None] + P["b_y"][:, None, None]
    if loss == "squared_error":
        l = 0.5 * ((theta(z) - torch.tensor(s.ys, device=dev)) ** 2).sum(-1)          # (N, T, B)
    else:
        target = torch.tensor(s.ys, device=dev)
        l = -torch.log_softmax(z, -1).gather(-1, target[..., None])[..., 0]
    w = torch.tensor(s.w, device=dev)[..., None] * torch.tensor(s.w_b, device=dev)[:, None]
    L = (w * l).sum((1, 2))                                                             # (N,)
    keys = list(P)
    out = torch.autograd.grad(L.sum(), [P[k] for k in keys] + [x] + hs, allow_unused=True)
    g = {k: _numpy(o, P[k]) for k, o in zip(keys, out)}
    dL_dh = np.stack([_numpy(o, h) for o, h in zip(out[len(keys) + 1:], hs)], 1)
    return L.detach().cpu().numpy(), g, dL_dh, _numpy(out[len(keys)], x)
