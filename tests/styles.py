"""Example derivations written in the styles found in the wild, for the convention tests.

Written here for the tests, in each style's shapes and habits (column vectors and module
globals; batch-first layers; column-major dicts; torch tensors without autograd), with
switches for the bugs public copies have. Each ``*_source`` returns a module's text, as
a user's file holds it, so the tests load it the way ``bptt-xval check FILE`` does.
"""

MIN_CHAR = '''
import numpy as np

# min-char-rnn keeps its parameters in module globals; a training loop below the
# function, guarded by __main__, must not run when the file is loaded
Wxh = Whh = Why = bh = by = None
vocab_size = 0


def lossFun(inputs, targets, hprev):
    x_vec, h, p = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t, (i, j) in enumerate(zip(inputs, targets)):
        x_vec[t] = np.zeros((vocab_size, 1))
        x_vec[t][i] = 1
        h[t] = np.tanh(Wxh @ x_vec[t] + Whh @ h[t - 1] + bh)
        logits = Why @ h[t] + by
        p[t] = np.exp(logits - logits.max()) / np.sum(np.exp(logits - logits.max()))
        loss -= np.log(p[t][j, 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros_like(h[0])
    for t in reversed(range(len(inputs))):
        dlogits = np.copy(p[t])
        dlogits[targets[t]] -= 1
        dWhy += dlogits @ h[t].T
        dby += dlogits
        dh = Why.T @ dlogits + dh_next
        dhraw = (1 - h[t] * h[t]) * dh
        BIAS_UPDATE
        dWxh += dhraw @ x_vec[t].T
        dWhh += dhraw @ h[t - 1].T
        dh_next = Whh.T @ dhraw
    CLIP
    return loss, dWxh, dWhh, dWhy, dbh, dby, h[len(inputs) - 1]


if __name__ == "__main__":
    while True:
        raise SystemExit("the training loop ran at import")
'''


def min_char_source(bug=None) -> str:
    bias = "dbh + dhraw" if bug == "no_equals" else "dbh += dhraw"
    clip = ("for d in (dWxh, dWhh, dWhy, dbh, dby):\n        np.clip(d, -5, 5, out=d)"
            if bug == "clip" else "pass")
    return MIN_CHAR.replace("BIAS_UPDATE", bias).replace("CLIP", clip)


# cs231n's rnn_layers.py: the grading bench's class is made of it (comparisons.measure.classroom)
from comparisons.measure.classroom import CS231N, UPSTREAMS  # noqa: E402

# EECS 498: the same assignment on torch tensors, without autograd
EECS498 = '''
import torch


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = torch.tanh(x.mm(Wx) + prev_h.mm(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1 - next_h ** 2)
    return dz.mm(Wx.t()), dz.mm(Wh.t()), x.t().mm(dz), prev_h.t().mm(dz), dz.sum(dim=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, cache, prev = x.new_zeros(N, T, h0.shape[1]), [], h0
    for t in range(T):
        prev, c = rnn_step_forward(x[:, t, :], prev, Wx, Wh, b)
        h[:, t, :] = prev
        cache.append(c)
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    x0, Wx = cache[0][0], cache[0][2]
    dx = x0.new_zeros(N, T, x0.shape[1])
    dWx, dWh, db = torch.zeros_like(Wx), x0.new_zeros(H, H), x0.new_zeros(H)
    dprev_h = x0.new_zeros(N, H)
    for t in reversed(range(T)):
        UPSTREAM
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(upstream, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db
'''


def cs231n_source(bug=None, torch=False) -> str:
    # bugs as the classroom's (writes_dh: the public question, the carry written into the caller's dh)
    return (EECS498 if torch else CS231N).replace("UPSTREAM", UPSTREAMS[bug])


DLAI = '''
import numpy as np


def rnn_cell_forward(xt, a_prev, parameters):
    Wax, Waa, ba = parameters["Wax"], parameters["Waa"], parameters["ba"]
    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    return a_next, (a_next, a_prev, xt, parameters)


def rnn_forward(x, a0, parameters):
    n_x, m, T_x = x.shape
    a, caches, a_next = np.zeros((a0.shape[0], m, T_x)), [], a0
    for t in range(T_x):
        a_next, cache = rnn_cell_forward(x[:, :, t], a_next, parameters)
        a[:, :, t] = a_next
        caches.append(cache)
    return a, None, (caches, x)


def rnn_cell_backward(da_next, cache):
    a_next, a_prev, xt, parameters = cache
    dtanh = (1 - a_next ** 2) * da_next
    return {"dxt": np.dot(parameters["Wax"].T, dtanh), "da_prev": np.dot(parameters["Waa"].T, dtanh),
            "dWax": np.dot(dtanh, xt.T), "dWaa": np.dot(dtanh, a_prev.T),
            "dba": np.sum(dtanh, axis=1, keepdims=True)}


def rnn_backward(da, caches):
    caches, x = caches
    n_a, m, T_x = da.shape
    dx = np.zeros((x.shape[0], m, T_x))
    dWax, dWaa = np.zeros((n_a, x.shape[0])), np.zeros((n_a, n_a))
    dba, da_prev = np.zeros((n_a, 1)), np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = rnn_cell_backward(da[:, :, t] + da_prev, caches[t])
        dx[:, :, t], da_prev = g["dxt"], g["da_prev"]
        dWax += g["dWax"]
        dWaa += g["dWaa"]
        dba += g["dba"]
    return {"dx": dx, "da0": da_prev, KEYS}
'''


def dlai_source(bug=None) -> str:
    keys = '"dWa": dWax, "dWaa": dWaa, "dba": dba' if bug == "wrong_keys" else '"dWax": dWax, "dWaa": dWaa, "dba": dba'
    return DLAI.replace("KEYS", keys)
