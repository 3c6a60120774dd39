"""The suite's own correct derivations written in the newer conventions' styles: the soak's
candidates (``bptt-xval soak --conventions``), so each convention's check, adapter and
tolerances together, is measured for false alarms on fresh seeds as the Elman checker is.

Each is written from the equations in that convention's module docstring
(``comparisons.conventions.coursera_step``, ``classes``), not from any student's file.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))       # no overflow warning for large |a|


# --- deeplearning.ai's cells ------------------------------------------------------------------

def rnn_cell_forward(xt, a_prev, parameters):
    a_next = np.tanh(parameters["Wax"] @ xt + parameters["Waa"] @ a_prev + parameters["ba"])
    logits = parameters["Wya"] @ a_next + parameters["by"]
    e = np.exp(logits - logits.max(0))
    return a_next, e / e.sum(0), (a_next, a_prev, xt, parameters)


def rnn_cell_backward(da_next, cache):
    a_next, a_prev, xt, parameters = cache
    dz = (1.0 - a_next * a_next) * da_next
    return {"dxt": parameters["Wax"].T @ dz, "da_prev": parameters["Waa"].T @ dz, "dWax": dz @ xt.T,
            "dWaa": dz @ a_prev.T, "dba": dz.sum(1, keepdims=True)}


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    z = np.vstack([a_prev, xt])
    f = _sigmoid(parameters["Wf"] @ z + parameters["bf"])
    i = _sigmoid(parameters["Wi"] @ z + parameters["bi"])
    g = np.tanh(parameters["Wc"] @ z + parameters["bc"])
    o = _sigmoid(parameters["Wo"] @ z + parameters["bo"])
    c_next = f * c_prev + i * g
    a_next = o * np.tanh(c_next)
    return a_next, c_next, None, (z, c_prev, c_next, f, i, g, o, parameters)


def lstm_cell_backward(da_next, dc_next, cache):
    z, c_prev, c_next, f, i, g, o, parameters = cache
    n_a = c_prev.shape[0]
    t = np.tanh(c_next)
    dc = dc_next + da_next * o * (1.0 - t * t)
    pre = {"f": dc * c_prev * f * (1 - f), "i": dc * g * i * (1 - i), "c": dc * i * (1 - g * g),
           "o": da_next * t * o * (1 - o)}
    out = {"dc_prev": dc * f}
    dz = sum(parameters[f"W{k}"].T @ d for k, d in pre.items())
    out["da_prev"], out["dxt"] = dz[:n_a], dz[n_a:]
    for k, d in pre.items():
        out[f"dW{k}"] = d @ z.T
        out[f"db{k}"] = d.sum(1, keepdims=True)
    return out


# --- 11-785's GRUCell ---------------------------------------------------------------------------

class GRUCell:
    def __init__(self, in_dim, hidden_dim):
        d, h = in_dim, hidden_dim
        for g in "rzn":
            setattr(self, f"W{g}x", np.zeros((h, d)))
            setattr(self, f"W{g}h", np.zeros((h, h)))
            setattr(self, f"b{g}x", np.zeros(h))
            setattr(self, f"b{g}h", np.zeros(h))

    def forward(self, x, h_prev_t):
        self.x, self.hidden = x, h_prev_t
        self.r = _sigmoid(self.Wrx @ x + self.brx + self.Wrh @ h_prev_t + self.brh)
        self.z = _sigmoid(self.Wzx @ x + self.bzx + self.Wzh @ h_prev_t + self.bzh)
        self.gh = self.Wnh @ h_prev_t + self.bnh
        self.n = np.tanh(self.Wnx @ x + self.bnx + self.r * self.gh)
        return (1 - self.z) * self.n + self.z * h_prev_t

    def backward(self, delta):
        dn = delta * (1 - self.z) * (1 - self.n ** 2)
        dz = delta * (self.hidden - self.n) * self.z * (1 - self.z)
        dr = dn * self.gh * self.r * (1 - self.r)
        pre_h = {"r": dr, "z": dz, "n": dn * self.r}
        pre_x = {"r": dr, "z": dz, "n": dn}
        for g in "rzn":
            setattr(self, f"dW{g}x", getattr(self, f"dW{g}x") + np.outer(pre_x[g], self.x))
            setattr(self, f"dW{g}h", getattr(self, f"dW{g}h") + np.outer(pre_h[g], self.hidden))
            setattr(self, f"db{g}x", getattr(self, f"db{g}x") + pre_x[g])
            setattr(self, f"db{g}h", getattr(self, f"db{g}h") + pre_h[g])
        dx = sum(getattr(self, f"W{g}x").T @ pre_x[g] for g in "rzn")
        dh = delta * self.z + sum(getattr(self, f"W{g}h").T @ pre_h[g] for g in "rzn")
        return dx, dh


# --- 11-785's GRU_Cell of 2019 (no biases; the course hands delta as a row (1, H)) -------------

class GRU_Cell:
    def __init__(self, in_dim, hidden_dim):
        d, h = in_dim, hidden_dim
        self.Wzh, self.Wrh, self.Wh = (np.zeros((h, h)) for _ in range(3))
        self.Wzx, self.Wrx, self.Wx = (np.zeros((h, d)) for _ in range(3))
        self.dWzh, self.dWrh, self.dWh = (np.zeros((h, h)) for _ in range(3))
        self.dWzx, self.dWrx, self.dWx = (np.zeros((h, d)) for _ in range(3))

    def forward(self, x, h):
        self.x, self.hidden = x, h
        self.z = _sigmoid(self.Wzh @ h + self.Wzx @ x)
        self.r = _sigmoid(self.Wrh @ h + self.Wrx @ x)
        self.h_tilde = np.tanh(self.Wh @ (self.r * h) + self.Wx @ x)
        return (1 - self.z) * h + self.z * self.h_tilde

    def backward(self, delta):
        x, h = self.x[None, :], self.hidden[None, :]
        d_a = delta * self.z * (1 - self.h_tilde ** 2)             # at h~'s pre-activation
        d_rh = d_a @ self.Wh                                      # at r * h
        d_z = delta * (self.h_tilde - h) * self.z * (1 - self.z)
        d_r = d_rh * h * self.r * (1 - self.r)
        self.dWx += d_a.T @ x
        self.dWh += d_a.T @ (self.r * h)
        self.dWzx += d_z.T @ x
        self.dWzh += d_z.T @ h
        self.dWrx += d_r.T @ x
        self.dWrh += d_r.T @ h
        dx = d_a @ self.Wx + d_z @ self.Wzx + d_r @ self.Wrx
        dh = delta * (1 - self.z) + d_rh * self.r + d_z @ self.Wzh + d_r @ self.Wrh
        return dx, dh


# --- Karpathy's LSTM class ------------------------------------------------------------------------

class LSTM:
    @staticmethod
    def forward(X, WLSTM, c0=None, h0=None):
        T, B, D = X.shape
        H = WLSTM.shape[1] // 4
        h, c = h0, c0
        states = []
        Hout = np.zeros((T, B, H))
        for t in range(T):
            hin = np.hstack([np.ones((B, 1)), X[t], h])
            a = hin @ WLSTM
            i, f, o = (_sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
            g = np.tanh(a[:, 3 * H:])
            c_prev, c = c, f * c + i * g
            h = o * np.tanh(c)
            Hout[t] = h
            states.append((hin, i, f, o, g, c_prev, c))
        return Hout, c, h, (WLSTM, states)

    @staticmethod
    def backward(dHout, cache, dcn=None, dhn=None):
        WLSTM, states = cache
        T, B, H = dHout.shape
        D = WLSTM.shape[0] - H - 1
        dW = np.zeros(WLSTM.shape)
        dX = np.zeros((T, B, D))
        dh, dc = np.zeros((B, H)), np.zeros((B, H))
        for t in range(T - 1, -1, -1):
            hin, i, f, o, g, c_prev, c = states[t]
            dht = dHout[t] + dh
            tc = np.tanh(c)
            dct = dc + dht * o * (1 - tc * tc)
            da = np.hstack([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dht * tc * o * (1 - o),
                            dct * i * (1 - g * g)])
            dW += hin.T @ da
            dhin = da @ WLSTM.T
            dX[t], dh, dc = dhin[:, 1:D + 1], dhin[:, D + 1:], dct * f
        return dX, dW, dc, dh


# --- an LSTMCell class in the same layout ----------------------------------------------------------

class LSTMCell:
    def __init__(self, input_size, hidden_size):
        for g in "ifgo":
            setattr(self, f"W{g}x", np.zeros((hidden_size, input_size)))
            setattr(self, f"W{g}h", np.zeros((hidden_size, hidden_size)))
            setattr(self, f"b{g}", np.zeros(hidden_size))

    def forward(self, x, h_prev, c_prev):
        # the weights by name, as a student's class reads them (the check finds them so)
        self.gates = {"i": _sigmoid(self.Wix @ x + self.Wih @ h_prev + self.bi),
                      "f": _sigmoid(self.Wfx @ x + self.Wfh @ h_prev + self.bf),
                      "g": np.tanh(self.Wgx @ x + self.Wgh @ h_prev + self.bg),
                      "o": _sigmoid(self.Wox @ x + self.Woh @ h_prev + self.bo)}
        self.x, self.h_prev, self.c_prev = x, h_prev, c_prev
        self.c = self.gates["f"] * c_prev + self.gates["i"] * self.gates["g"]
        return self.gates["o"] * np.tanh(self.c), self.c

    def backward(self, delta_h, delta_c):
        i, f, g, o = (self.gates[k] for k in "ifgo")
        tc = np.tanh(self.c)
        dc = delta_c + delta_h * o * (1 - tc * tc)
        pre = {"i": dc * g * i * (1 - i), "f": dc * self.c_prev * f * (1 - f), "g": dc * i * (1 - g * g),
               "o": delta_h * tc * o * (1 - o)}
        dx, dh = 0.0, 0.0
        for k, d in pre.items():
            setattr(self, f"dW{k}x", getattr(self, f"dW{k}x") + np.outer(d, self.x))
            setattr(self, f"dW{k}h", getattr(self, f"dW{k}h") + np.outer(d, self.h_prev))
            setattr(self, f"db{k}", getattr(self, f"db{k}") + d)
            dx = dx + getattr(self, f"W{k}x").T @ d
            dh = dh + getattr(self, f"W{k}h").T @ d
        return dx, dh, dc * f


# --- cs231n's LSTM step, for one sequence (no batch axis), adding into the dnext_c it is handed ---

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[-1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (_sigmoid(a[..., k * H:(k + 1) * H]) for k in range(3))
    g = np.tanh(a[..., 3 * H:])
    next_c = f * prev_c + i * g
    return o * np.tanh(next_c), next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dnext_c += dnext_h * o * (1 - tc * tc)          # in place: the caller's temporary
    da = np.concatenate([dnext_c * g * i * (1 - i), dnext_c * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o),
                         dnext_c * i * (1 - g * g)], axis=-1)
    if da.ndim == 1:
        return Wx @ da, Wh @ da, dnext_c * f, np.outer(x, da), np.outer(prev_h, da), da
    return da @ Wx.T, da @ Wh.T, dnext_c * f, x.T @ da, prev_h.T @ da, da.sum(0)


def candidates() -> dict:
    """convention -> the suite's adapter around its styled derivation."""
    from comparisons.conventions import (class_gru, deeplearning_ai_lstm_step, deeplearning_ai_step,
                                         karpathy_lstm)

    from comparisons.conventions import class_gru_2019, class_lstm, cs231n_lstm_step

    cell, lstm_cell, cell_2019 = GRUCell(1, 1), LSTMCell(1, 1), GRU_Cell(1, 1)
    return {"deeplearning-ai-step": deeplearning_ai_step(rnn_cell_forward, rnn_cell_backward),
            "deeplearning-ai-lstm-step": deeplearning_ai_lstm_step(lstm_cell_forward, lstm_cell_backward),
            "class-gru": class_gru(cell.forward, cell.backward),
            "class-gru-2019": class_gru_2019(cell_2019.forward, cell_2019.backward),
            "class-lstm": class_lstm(lstm_cell.forward, lstm_cell.backward),
            "karpathy-lstm": karpathy_lstm(LSTM.forward, LSTM.backward),
            # the step pair adding into dnext_c (judged on copies), in both layouts
            "cs231n-lstm-step-in-place": cs231n_lstm_step(lstm_step_forward, lstm_step_backward),
            "cs231n-lstm-step-sequence": cs231n_lstm_step(lstm_step_forward, lstm_step_backward, batch=False)}


# --- cs231n's non-recurrent layers (comparisons.check.pieces) ---------------------------------------

def affine_forward(x, w, b):
    return np.reshape(x, (len(x), -1)) @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    flat = np.reshape(x, (len(x), -1))
    return np.reshape(dout @ w.T, x.shape), flat.T @ dout, dout.sum(0)


def word_embedding_forward(x, W):
    return np.take(W, x, axis=0), (x, W.shape)


def word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    np.add.at(dW, x.ravel(), dout.reshape(-1, shape[1]))
    return dW


def temporal_affine_forward(x, w, b):
    return np.einsum("ntd,dm->ntm", x, w) + b, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    return np.einsum("ntm,dm->ntd", dout, w), np.einsum("ntd,ntm->dm", x, dout), dout.sum((0, 1))


def temporal_softmax_loss(x, y, mask):
    N = x.shape[0]
    shifted = x - x.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, y[..., None], -1)[..., 0]
    dx = np.exp(logp)
    np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], -1) - 1, -1)
    return -(picked * mask).sum() / N, dx * mask[..., None] / N


def pieces() -> dict:
    """piece -> (forward, backward) of the suite's styled layers."""
    return {"affine": (affine_forward, affine_backward),
            "word_embedding": (word_embedding_forward, word_embedding_backward),
            "temporal_affine": (temporal_affine_forward, temporal_affine_backward),
            "temporal_softmax_loss": (temporal_softmax_loss, None)}
