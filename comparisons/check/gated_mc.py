"""The gated cells' Monte Carlo runs in NumPy: ``montecarlo``'s error model for the built-in
LSTM and GRU, operation for operation as torch's autograd computes them, without Python's
dispatch on every operation.

``gated._magnitudes`` measured the error sizes of a stack of cases by rerunning torch's
forward and backward of the stacked cell under ``montecarlo._mode``: ~109 ATen operations
a step, half of them views and copies that round nothing, each through a Python
``__torch_dispatch__``. Here the recurrence is written out in NumPy:

- the forward as ``cells.lstm_step`` and ``cells.gru_step`` compute it (sigmoid(v) =
  0.5 tanh(0.5 v) + 0.5, the same association of every sum);
- the backward as torch's autograd computes it, its rounded operations read off the dispatch
  trace of the stacked run (``tests/test_gated_mc.py`` counts them against it): mul's
  backward is grad * other, tanh's is grad (1 - t^2) from the rounded t (one rounding, as
  ``tanh_backward`` is one kernel), and what autograd adds that a derivation would not is
  kept: the gradient of the stacked pre-activations is accumulated from its gate blocks'
  slices by full-width additions, each rounded (LSTM: o and g three times, f twice, i once;
  GRU: n and z twice, r once; d2l's GRU: h~ and r twice, z once: the order the engine
  delivers them), a state used twice
  accumulates its gradients by a rounded addition, a weight's per-step gradients by T - 1,
  and x's gradient is summed from the T steps' full-width ``select_backward`` results, so
  dL/dx_t is rounded up to T - 1 times more (:func:`_select_accumulations`; drawn as one
  perturbation of the same variance: a sum of exact zeros moves nothing else);
- every rounded result r becomes r (1 + u delta), delta = (2k + 1) / 256 for a uniform byte k,
  the dispatch mode's perturbation (``montecarlo.byte_noise``), the K copies of each case
  stacked along the case axis so they are K independent draws.

The output layer and the loss, a few dozen operations per run whatever T is, still run in
torch under the dispatch mode itself (:func:`head`), with the derivation's rounding of
dL/dz (``cell_model.stack_rounding``) as before. So the magnitudes are the same statistic of the
same perturbations; only the engine that computes them moved (``tests/test_gated_mc.py``
compares the two engines' magnitudes over many cases).
"""

from __future__ import annotations

import numpy as np

CELLS = ("lstm", "gru", "gru_d2l")


class _Rounding:
    """R(r): r (1 + u delta) in place (``draw``: pre-scaled u delta), returning r."""

    def __init__(self, draw):
        self.draw = draw

    def __call__(self, r):
        r += r * self.draw(r.shape)
        return r

    def times(self, r, n: int):
        """n roundings of r's own value in a row (a sum with exact zeros, rounded n times), to
        first order in u: r (1 + sqrt(n) u delta), the same variance in one draw."""
        if n > 0:
            r += r * (np.sqrt(n) * self.draw(r.shape))
        return r


class _Exact:
    def __call__(self, r):
        return r

    def times(self, r, n):
        return r


def _select_accumulations(t: int, T: int) -> int:
    """How many times autograd rounds dL/dx_t while it sums the T steps' select_backward results
    into x's gradient, full width (the last step's arrives first, then t = T-2, ..., 0, each
    sum rounded): T - 1 for the last step, t + 1 for the others."""
    return 0 if T == 1 else T - 1 if t == T - 1 else t + 1


def _T(a):
    return a.transpose(0, 2, 1)


def _gate(R, v):
    """sigmoid(v) = 0.5 tanh(0.5 v) + 0.5 (``cells._gate``), and the rounded tanh its backward uses."""
    t = R(np.tanh(R(0.5 * v)))
    return R(R(0.5 * t) + 0.5), t


def _gate_back(R, d_gate, t):
    """The gradient of a gate's pre-activation: 0.5 (tanh_backward(0.5 d_gate, t))."""
    return R(0.5 * R(R(0.5 * d_gate) * (1 - t * t)))


def _accumulate(R, total, part):
    return part if total is None else R(total + part)


# --- LSTM: cells.lstm_step --------------------------------------------------------------------

def lstm_forward(R, P, x):
    """(hs (M, T, B, H), tape) of the stacked LSTM on x (M, T, B, D), h_0 = c_0 = 0."""
    M, T, B, _ = x.shape
    H = P["W_hh"].shape[-1]
    W_ihT, W_hhT, b = _T(P["W_ih"]), _T(P["W_hh"]), P["b"][:, None, :]
    h, c = np.zeros((M, B, H)), np.zeros((M, B, H))
    hs, tape = np.empty((M, T, B, H)), []
    for t in range(T):
        x_t = x[:, t]
        a = R(R(R(x_t @ W_ihT) + b) + R(h @ W_hhT))
        i, ti = _gate(R, a[..., :H])
        f, tf = _gate(R, a[..., H:2 * H])
        g = R(np.tanh(a[..., 2 * H:3 * H]))
        o, to = _gate(R, a[..., 3 * H:])
        c_new = R(R(f * c) + R(i * g))
        tc = R(np.tanh(c_new))
        h_new = R(o * tc)
        tape.append((x_t, h, c, i, ti, f, tf, g, o, to, tc))
        hs[:, t] = h_new
        h, c = h_new, c_new
    return hs, tape


def lstm_backward(R, P, tape, dhs):
    """Autograd's backward of :func:`lstm_forward` given dL/dh_t from the output layer (``dhs``):
    ({W_ih, W_hh, b}, dL/dx (M, T, B, D), [dL/dh_t, dL/dc_t] each (M, T+1, B, H))."""
    M, T, B, H = dhs.shape
    W_ih, W_hh = P["W_ih"], P["W_hh"]
    dh_all, dc_all = np.empty((M, T + 1, B, H)), np.empty((M, T + 1, B, H))
    dx = np.empty((M, T, B, W_ih.shape[-1]))
    dW_ihT = dW_hhT = db = dh_rec = dc_next = None
    for t in reversed(range(T)):
        x_t, h_prev, c_prev, i, ti, f, tf, g, o, to, tc = tape[t]
        dh = dhs[:, t] if dh_rec is None else R(dhs[:, t] + dh_rec)
        dh_all[:, t + 1] = dh
        d_o, d_tc = R(dh * tc), R(dh * o)
        dc = _accumulate(R, dc_next, R(d_tc * (1 - tc * tc)))
        dc_all[:, t + 1] = dc
        d_i, d_g = R(dc * g), R(dc * i)
        d_f, dc_next = R(dc * c_prev), R(dc * f)
        da = np.empty((M, B, 4 * H))
        da[..., 3 * H:] = _gate_back(R, d_o, to)
        da[..., 2 * H:3 * H] = R(d_g * (1 - g * g))
        da[..., H:2 * H] = _gate_back(R, d_f, tf)
        da[..., :H] = _gate_back(R, d_i, ti)
        # the slices' gradients summed into a's, full width, in the order they arrive (o, g, f, i)
        R(da[..., 2 * H:])
        R(da[..., H:])
        R(da)
        dW_hhT = _accumulate(R, dW_hhT, R(_T(h_prev) @ da))
        dh_rec = R(da @ W_hh)
        db = _accumulate(R, db, R(da.sum(1)) if B > 1 else da[:, 0].copy())
        dW_ihT = _accumulate(R, dW_ihT, R(_T(x_t) @ da))
        dx[:, t] = R.times(R(da @ W_ih), _select_accumulations(t, T))
    dh_all[:, 0], dc_all[:, 0] = dh_rec, dc_next
    return {"W_ih": _T(dW_ihT), "W_hh": _T(dW_hhT), "b": db}, dx, [dh_all, dc_all]


# --- GRU: cells.gru_step ----------------------------------------------------------------------

def gru_forward(R, P, x):
    """(hs (M, T, B, H), tape) of the stacked GRU on x (M, T, B, D), h_0 = 0."""
    M, T, B, _ = x.shape
    H = P["W_hh"].shape[-1]
    W_ihT, W_hhT = _T(P["W_ih"]), _T(P["W_hh"])
    b_ih, b_hh = P["b_ih"][:, None, :], P["b_hh"][:, None, :]
    h = np.zeros((M, B, H))
    hs, tape = np.empty((M, T, B, H)), []
    for t in range(T):
        x_t = x[:, t]
        gi = R(R(x_t @ W_ihT) + b_ih)
        gh = R(R(h @ W_hhT) + b_hh)
        r, tr = _gate(R, R(gi[..., :H] + gh[..., :H]))
        z, tz = _gate(R, R(gi[..., H:2 * H] + gh[..., H:2 * H]))
        gh_n = gh[..., 2 * H:]
        n = R(np.tanh(R(gi[..., 2 * H:] + R(r * gh_n))))
        omz = R(1 - z)
        h_new = R(R(omz * n) + R(z * h))
        tape.append((x_t, h, r, tr, z, tz, gh_n, n, omz))
        hs[:, t] = h_new
        h = h_new
    return hs, tape


def gru_backward(R, P, tape, dhs):
    """Autograd's backward of :func:`gru_forward` (as :func:`lstm_backward`; states [dL/dh_t])."""
    M, T, B, H = dhs.shape
    W_ih, W_hh = P["W_ih"], P["W_hh"]
    dh_all = np.empty((M, T + 1, B, H))
    dx = np.empty((M, T, B, W_ih.shape[-1]))
    dW_ihT = dW_hhT = db_ih = db_hh = None
    dh_next = None       # h_t's gradient so far from step t+1: output's, then z h's, then W_hh's
    for t in reversed(range(T)):
        x_t, h_prev, r, tr, z, tz, gh_n, n, omz = tape[t]
        dh = dhs[:, t] if dh_next is None else dh_next
        dh_all[:, t + 1] = dh
        d_z2, d_direct = R(dh * h_prev), R(dh * z)
        # h_{t-1}'s buffer: the output layer's gradient arrived first (none for h_0)
        dh_prev = d_direct if t == 0 else R(dhs[:, t - 1] + d_direct)
        d_omz, d_n = R(dh * n), R(dh * omz)
        d_z = R(d_z2 - d_omz)                          # rsub's backward negates (exact)
        d_an = R(d_n * (1 - n * n))
        d_r, d_ghn = R(d_an * gh_n), R(d_an * r)
        d_az = _gate_back(R, d_z, tz)
        d_ar = _gate_back(R, d_r, tr)
        dgi, dgh = np.empty((M, B, 3 * H)), np.empty((M, B, 3 * H))
        dgi[..., 2 * H:], dgh[..., 2 * H:] = d_an, d_ghn
        dgi[..., H:2 * H], dgh[..., H:2 * H] = d_az, d_az
        dgi[..., :H], dgh[..., :H] = d_ar, d_ar
        for d in (dgi, dgh):                       # slices summed full width as they arrive (n, z, r)
            R(d[..., H:])
            R(d)
        db_hh = _accumulate(R, db_hh, R(dgh.sum(1)) if B > 1 else dgh[:, 0].copy())
        dW_hhT = _accumulate(R, dW_hhT, R(_T(h_prev) @ dgh))
        dh_next = R(dh_prev + R(dgh @ W_hh))
        db_ih = _accumulate(R, db_ih, R(dgi.sum(1)) if B > 1 else dgi[:, 0].copy())
        dW_ihT = _accumulate(R, dW_ihT, R(_T(x_t) @ dgi))
        dx[:, t] = R.times(R(dgi @ W_ih), _select_accumulations(t, T))
    dh_all[:, 0] = dh_next
    return {"W_ih": _T(dW_ihT), "W_hh": _T(dW_hhT), "b_ih": db_ih, "b_hh": db_hh}, dx, [dh_all]


# --- d2l's GRU: cells.gru_d2l_step -------------------------------------------------------------

def gru_d2l_forward(R, P, x):
    """(hs (M, T, B, H), tape) of the stacked d2l GRU on x (M, T, B, D), h_0 = 0."""
    M, T, B, _ = x.shape
    H = P["W_hc"].shape[-1]
    W_ihT, W_hhT, W_hcT, b = _T(P["W_ih"]), _T(P["W_hh"]), _T(P["W_hc"]), P["b"][:, None, :]
    h = np.zeros((M, B, H))
    hs, tape = np.empty((M, T, B, H)), []
    for t in range(T):
        x_t = x[:, t]
        gi = R(R(x_t @ W_ihT) + b)
        gh = R(h @ W_hhT)
        z, tz = _gate(R, R(gi[..., :H] + gh[..., :H]))
        r, tr = _gate(R, R(gi[..., H:2 * H] + gh[..., H:]))
        rh = R(r * h)
        c = R(np.tanh(R(gi[..., 2 * H:] + R(rh @ W_hcT))))
        zh = R(z * h)
        omz = R(1 - z)
        h_new = R(zh + R(omz * c))
        tape.append((x_t, h, z, tz, r, tr, rh, c, omz))
        hs[:, t] = h_new
        h = h_new
    return hs, tape


def gru_d2l_backward(R, P, tape, dhs):
    """Autograd's backward of :func:`gru_d2l_forward` (as :func:`gru_backward`)."""
    M, T, B, H = dhs.shape
    W_ih, W_hh, W_hc = P["W_ih"], P["W_hh"], P["W_hc"]
    dh_all = np.empty((M, T + 1, B, H))
    dx = np.empty((M, T, B, W_ih.shape[-1]))
    dW_ihT = dW_hhT = dW_hcT = db = None
    dh_next = None       # h_t's gradient: output's, then z h's, then r h's, then W_hh's
    for t in reversed(range(T)):
        x_t, h_prev, z, tz, r, tr, rh, c, omz = tape[t]
        dh = dhs[:, t] if dh_next is None else dh_next
        dh_all[:, t + 1] = dh
        d_omz, d_c = R(dh * c), R(dh * omz)
        d_z1, d_direct = R(dh * h_prev), R(dh * z)
        d_z = R(d_z1 - d_omz)                          # rsub's backward negates (exact)
        dh_prev = d_direct if t == 0 else R(dhs[:, t - 1] + d_direct)
        d_ac = R(d_c * (1 - c * c))
        dW_hcT = _accumulate(R, dW_hcT, R(_T(rh) @ d_ac))
        d_rh = R(d_ac @ W_hc)
        d_r = R(d_rh * h_prev)
        dh_prev = R(dh_prev + R(d_rh * r))
        d_ar = _gate_back(R, d_r, tr)
        d_az = _gate_back(R, d_z, tz)
        dgi, dgh = np.empty((M, B, 3 * H)), np.empty((M, B, 2 * H))
        dgi[..., 2 * H:], dgi[..., H:2 * H], dgi[..., :H] = d_ac, d_ar, d_az
        dgh[..., H:], dgh[..., :H] = d_ar, d_az
        R(dgi[..., H:])                                # slices summed full width as they arrive (c, r, z)
        R(dgi)
        R(dgh)
        dW_hhT = _accumulate(R, dW_hhT, R(_T(h_prev) @ dgh))
        dh_next = R(dh_prev + R(dgh @ W_hh))
        db = _accumulate(R, db, R(dgi.sum(1)) if B > 1 else dgi[:, 0].copy())
        dW_ihT = _accumulate(R, dW_ihT, R(_T(x_t) @ dgi))
        dx[:, t] = R.times(R(dgi @ W_ih), _select_accumulations(t, T))
    dh_all[:, 0] = dh_next
    return {"W_ih": _T(dW_ihT), "W_hh": _T(dW_hhT), "W_hc": _T(dW_hcT), "b": db}, dx, [dh_all]


FORWARD = {"lstm": lstm_forward, "gru": gru_forward, "gru_d2l": gru_d2l_forward}
BACKWARD = {"lstm": lstm_backward, "gru": gru_backward, "gru_d2l": gru_d2l_backward}


# --- the output layer in torch, under the dispatch mode ----------------------------------------

def head(s, hs, copies: int, output: str, loss: str, rounding=None):
    """The stack's output layer and loss on the hidden states ``hs`` (M, T, B, H), in torch as
    ``gated.torch_stacked`` computes them (the caller's dispatch mode perturbs them; ``rounding``:
    the derivation's rounding of dL/dz): (L (M,), dL/dhs, dL/dW_hy, dL/db_y) as arrays."""
    import torch

    from comparisons.check.cell_model import stack_loss, stack_rounding
    from reference.torch_autograd import exact

    rep = lambda a: np.concatenate([a] * copies) if copies > 1 else a
    with exact(threads=1):
        h = torch.from_numpy(hs).requires_grad_()
        W_hy = torch.tensor(rep(s.params["W_hy"]), requires_grad=True)
        b_y = torch.tensor(rep(s.params["b_y"]), requires_grad=True)
        z = h @ W_hy.transpose(-1, -2)[:, None] + b_y[:, None, None]
        target, w, w_b = (torch.tensor(rep(a)) for a in (s.target, s.w, s.w_b))
        if rounding is not None:
            z = stack_rounding(torch, rounding, target, w, w_b, output, loss)(z)
        L = stack_loss(torch, z, target, w, w_b, output, loss)
        dh, dW, db = torch.autograd.grad(L.sum(), [h, W_hy, b_y])
        return L.detach().numpy(), dh.numpy(), dW.numpy(), db.numpy()


def run(cell: str, s, copies: int, output: str, loss: str, u: float | None = None, generator=None, seed: int = 0):
    """``gated.torch_stacked``'s result (per copy and case: loss, grads, dL_dx, [dL/d state]) for
    the built-in ``cell`` (one of :data:`CELLS`), perturbed at unit roundoff ``u`` (None: exact, the
    engine's own check against torch), the noise seeded by ``seed``."""
    import torch

    from comparisons.check import montecarlo

    rep = lambda a: np.concatenate([a] * copies) if copies > 1 else a
    P = {k: rep(v) for k, v in s.params.items() if k not in ("W_hy", "b_y")}
    x = rep(s.xs)
    rng = np.random.default_rng(int(seed))
    with np.errstate(all="ignore"):
        R = _Exact() if u is None else _Rounding(montecarlo.byte_noise(rng, scale=u / 256))
        hs, tape = FORWARD[cell](R, P, x)
        if u is None:
            L, dhs, dW_hy, db_y = head(s, hs, copies, output, loss)
        else:
            generator = generator if generator is not None else torch.Generator().manual_seed(int(seed))
            with montecarlo._mode(u, generator, noise=montecarlo.byte_noise(rng)):
                L, dhs, dW_hy, db_y = head(s, hs, copies, output, loss, rounding=(u, generator))
        grads, dx, states = BACKWARD[cell](R, P, tape, dhs)
    grads.update(W_hy=dW_hy, b_y=db_y)
    return L, grads, dx, states
