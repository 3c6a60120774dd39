"""LSTM and GRU files written the way students hand them in (issue 26): each course's style,
correct, and with the classic mistakes behind ``bug``. Written for these tests, in each
course's conventions (names, shapes, gate order), not copied from anyone's solution.
"""

from __future__ import annotations

# --- cs231n / EECS 498: rnn_layers.py with the RNN half and the LSTM half -----------------------

CS231N_LSTM = '''from __future__ import print_function, division
from builtins import range
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    cache = []
    prev_h = h0
    for t in range(T):
        prev_h, c = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(c)
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def sigmoid(x):
    """A numerically stable version of the logistic sigmoid function."""
    pos_mask = (x >= 0)
    neg_mask = (x < 0)
    z = np.zeros_like(x)
    z[pos_mask] = np.exp(-x[pos_mask])
    z[neg_mask] = np.exp(x[neg_mask])
    top = np.ones_like(x)
    top[neg_mask] = z[neg_mask]
    return top / (1 + z)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c, next_h)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c, next_h = cache
    tanh_c = np.tanh(next_c)
    do = dnext_h * tanh_c
    dc = dnext_c + dnext_h * o * TANH_PRIME
    di = dc * g
    df = dc * PREV_C
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack(GATES)
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h, prev_c = h0, np.zeros_like(h0)
    cache = []
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(step_cache)
    return h, cache


def lstm_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t, :] + dprev_h, CARRIED_C,
                                                                               cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = x.reshape(N * T, D).dot(w).reshape(N, T, -1) + b
    return out, (x, w, b, out)
'''

CS231N_BUGS = {
    None: {},
    "cell_carry_dropped": {"CARRIED_C": "np.zeros_like(dprev_c)"},
    "gate_order_swapped": {"GATES": "(di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o))"},
    "tanh_prime_of_h": {"TANH_PRIME": "(1 - next_h ** 2)"},
    "tanh_prime_missing": {"TANH_PRIME": "1"},
    "c_t_for_c_prev": {"PREV_C": "next_c"},
}
CS231N_RIGHT = {"CARRIED_C": "dprev_c", "GATES": "(di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2))",
                "TANH_PRIME": "(1 - tanh_c ** 2)", "PREV_C": "prev_c"}


def cs231n_lstm_source(bug=None) -> str:
    text = CS231N_LSTM
    for key, right in CS231N_RIGHT.items():
        text = text.replace(key, CS231N_BUGS[bug].get(key, right))
    return text


def cs231n_lstm_in_place_source(bug=None) -> str:
    """The same file, its step backward adding into the dnext_c it is handed (``dnext_c += ...``),
    as 15 correct submissions we saw do: harmless in the course's own lstm_backward loop."""
    text = cs231n_lstm_source(bug)
    line = "    dc = dnext_c + dnext_h * o * "
    start = text.index(line)
    end = text.index("\n", start)
    in_place = "    dnext_c += dnext_h * o * " + text[start + len(line):end] + "\n    dc = dnext_c"
    return text[:start] + in_place + text[end:]


# --- deeplearning.ai, "Building your Recurrent Neural Network - Step by Step", the LSTM part ----

DLAI_LSTM_CELLS = [     # the first is markdown (tests/wild.notebook), the rest code
    "## 2 - Long Short-Term Memory (LSTM) network\n\nImplement `lstm_cell_forward()`.",
    "import numpy as np\nfrom rnn_utils import *\n%matplotlib inline",
    '''# GRADED FUNCTION: lstm_cell_forward

def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    Wf = parameters["Wf"]
    bf = parameters["bf"]
    Wi = parameters["Wi"]
    bi = parameters["bi"]
    Wc = parameters["Wc"]
    bc = parameters["bc"]
    Wo = parameters["Wo"]
    bo = parameters["bo"]
    Wy = parameters["Wy"]
    by = parameters["by"]
    n_x, m = xt.shape
    n_y, n_a = Wy.shape

    ### START CODE HERE ###
    concat = np.concatenate((a_prev, xt), axis=0)
    ft = sigmoid(np.dot(Wf, concat) + bf)
    it = sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(np.dot(Wy, a_next) + by)
    ### END CODE HERE ###
    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache''',
    '''np.random.seed(1)
xt_tmp = np.random.randn(3, 10)
a_prev_tmp = np.random.randn(5, 10)
c_prev_tmp = np.random.randn(5, 10)
parameters_tmp = {}
parameters_tmp['Wf'] = np.random.randn(5, 5 + 3)
a_next_tmp, c_next_tmp, yt_tmp, cache_tmp = lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp)
print("a_next[4] = \\n", a_next_tmp[4])''',
    '''# GRADED FUNCTION: lstm_forward

def lstm_forward(x, a0, parameters):
    caches = []
    Wy = parameters['Wy']
    n_x, m, T_x = x.shape
    n_y, n_a = parameters['Wy'].shape
    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x))
    a_next = a0
    c_next = np.zeros(a_next.shape)
    for t in range(T_x):
        xt = x[:, :, t]
        a_next, c_next, yt, cache = lstm_cell_forward(xt, a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)
    caches = (caches, x)
    return a, y, c, caches''',
    '''# UNGRADED FUNCTION: lstm_cell_backward

def lstm_cell_backward(da_next, dc_next, cache):
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache
    n_x, m = xt.shape
    n_a, m = a_next.shape
    dot = da_next * np.tanh(c_next) * ot * (1 - ot)
    dcct = (dc_next * it + ot * (1 - np.square(np.tanh(c_next))) * it * da_next) * (1 - np.square(cct))
    dit = (dc_next * cct + ot * (1 - np.square(np.tanh(c_next))) * cct * da_next) * it * (1 - it)
    dft = (dc_next * c_prev + ot * (1 - np.square(np.tanh(c_next))) * c_prev * da_next) * ft * (1 - ft)
    concat = np.concatenate((a_prev, xt), axis=0)
    dWf = np.dot(dft, concat.T)
    dWi = np.dot(dit, concat.T)
    dWc = np.dot(dcct, concat.T)
    dWo = np.dot(dot, concat.T)
    dbf = np.sum(dft, axis=1, keepdims=True)
    dbi = np.sum(dit, axis=1, keepdims=True)
    dbc = np.sum(dcct, axis=1, keepdims=True)
    dbo = np.sum(dot, axis=1, keepdims=True)
    Wf, Wi, Wc, Wo = parameters['Wf'], parameters['Wi'], parameters['Wc'], parameters['Wo']
    da_prev = (np.dot(Wf[:, :n_a].T, dft) + np.dot(Wi[:, :n_a].T, dit) + np.dot(Wc[:, :n_a].T, dcct)
               + np.dot(Wo[:, :n_a].T, dot))
    dc_prev = dc_next * ft + ot * (1 - np.square(np.tanh(c_next))) * ft * da_next
    dxt = (np.dot(Wf[:, n_a:].T, dft) + np.dot(Wi[:, n_a:].T, dit) + np.dot(Wc[:, n_a:].T, dcct)
           + np.dot(Wo[:, n_a:].T, dot))
    gradients = {"dxt": dxt, "da_prev": da_prev, "dc_prev": dc_prev, "dWf": dWf, "dbf": dbf, "dWi": dWi,
                 "dbi": dbi, "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}
    return gradients''',
    '''# UNGRADED FUNCTION: lstm_backward

def lstm_backward(da, caches):
    (caches, x) = caches
    (a1, c1, a0, c0, f1, i1, cc1, o1, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    da0 = np.zeros((n_a, m))
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    dWf = np.zeros((n_a, n_a + n_x))
    dWi = np.zeros((n_a, n_a + n_x))
    dWc = np.zeros((n_a, n_a + n_x))
    dWo = np.zeros((n_a, n_a + n_x))
    dbf = np.zeros((n_a, 1))
    dbi = np.zeros((n_a, 1))
    dbc = np.zeros((n_a, 1))
    dbo = np.zeros((n_a, 1))
    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(UPSTREAM, dc_prevt, caches[t])
        da_prevt = gradients["da_prev"]
        dc_prevt = gradients["dc_prev"]
        dx[:, :, t] = gradients["dxt"]
        dWf += gradients["dWf"]
        dWi += gradients["dWi"]
        dWc += gradients["dWc"]
        dWo += gradients["dWo"]
        dbf += gradients["dbf"]
        dbi += gradients["dbi"]
        dbc += gradients["dbc"]
        dbo += gradients["dbo"]
    da0 = da_prevt
    gradients = {"dx": dx, "da0": da0, "dWf": dWf, "dbf": dbf, "dWi": dWi, "dbi": dbi,
                 "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}
    return gradients''',
    "%time\nnp.random.seed(1)\nda_tmp = np.random.randn(5, 10, 4)\ngradients_tmp = lstm_backward(da_tmp, caches_tmp)",
]


def dlai_lstm_cells(bug=None) -> list:
    upstream = "da[:, :, t]" if bug == "hidden_carry_dropped" else "da[:, :, t] + da_prevt"
    return [text.replace("UPSTREAM", upstream) for text in DLAI_LSTM_CELLS]


# --- min-char-rnn with an LSTM: one matrix per gate on [h; x], Python 2, clipped -----------------

MIN_CHAR_LSTM = '''"""
Minimal character-level LSTM, after karpathy's min-char-rnn. Python 2.
"""
import numpy as np
import sys

data = open(sys.argv[1], 'r').read()
chars = list(set(data))
data_size, vocab_size = len(data), len(chars)
print 'data has %d characters, %d unique.' % (data_size, vocab_size)
char_to_ix = { ch:i for i,ch in enumerate(chars) }
ix_to_char = { i:ch for i,ch in enumerate(chars) }

H_size = 100
seq_length = 25
learning_rate = 1e-1
z_size = H_size + vocab_size

Wf = np.random.randn(H_size, z_size) * 0.1
Wi = np.random.randn(H_size, z_size) * 0.1
Wc = np.random.randn(H_size, z_size) * 0.1
Wo = np.random.randn(H_size, z_size) * 0.1
Wy = np.random.randn(vocab_size, H_size) * 0.1
bf = np.zeros((H_size, 1))
bi = np.zeros((H_size, 1))
bc = np.zeros((H_size, 1))
bo = np.zeros((H_size, 1))
by = np.zeros((vocab_size, 1))

def sigmoid(x):
    return 1 / (1 + np.exp(-x))

def lossFun(inputs, targets, hprev, cprev):
    xs, hs, cs, zs, fs, is_, cc, os, ys, ps = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    cs[-1] = np.copy(cprev)
    loss = 0
    for t in xrange(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        zs[t] = np.vstack((hs[t-1], xs[t]))
        fs[t] = sigmoid(np.dot(Wf, zs[t]) + bf)
        is_[t] = sigmoid(np.dot(Wi, zs[t]) + bi)
        cc[t] = np.tanh(np.dot(Wc, zs[t]) + bc)
        cs[t] = fs[t] * cs[t-1] + is_[t] * cc[t]
        os[t] = sigmoid(np.dot(Wo, zs[t]) + bo)
        hs[t] = os[t] * np.tanh(cs[t])
        ys[t] = np.dot(Wy, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWf, dWi, dWc, dWo, dWy = np.zeros_like(Wf), np.zeros_like(Wi), np.zeros_like(Wc), np.zeros_like(Wo), np.zeros_like(Wy)
    dbf, dbi, dbc, dbo, dby = np.zeros_like(bf), np.zeros_like(bi), np.zeros_like(bc), np.zeros_like(bo), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    dcnext = np.zeros_like(cs[0])
    for t in reversed(xrange(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Wy.T, dy) + dhnext
        do = dh * np.tanh(cs[t]) * os[t] * (1 - os[t])
        dWo += np.dot(do, zs[t].T)
        dbo += do
        dc = CELL_CARRY + dh * os[t] * (1 - np.tanh(cs[t]) ** 2)
        dcc = dc * is_[t] * (1 - cc[t] ** 2)
        dWc += np.dot(dcc, zs[t].T)
        dbc += dcc
        di = dc * cc[t] * is_[t] * (1 - is_[t])
        dWi += np.dot(di, zs[t].T)
        dbi += di
        df = dc * cs[t-1] * fs[t] * (1 - fs[t])
        dWf += np.dot(df, zs[t].T)
        dbf += df
        dz = np.dot(Wf.T, df) + np.dot(Wi.T, di) + np.dot(Wc.T, dcc) + np.dot(Wo.T, do)
        dhnext = dz[:H_size, :]
        dcnext = fs[t] * dc
    for dparam in [dWf, dWi, dWc, dWo, dWy, dbf, dbi, dbc, dbo, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWf, dWi, dWc, dWo, dWy, dbf, dbi, dbc, dbo, dby, hs[len(inputs)-1], cs[len(inputs)-1]

n, p = 0, 0
hprev = np.zeros((H_size, 1))
cprev = np.zeros((H_size, 1))
while True:
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev = np.zeros((H_size, 1))
        cprev = np.zeros((H_size, 1))
        p = 0
    inputs = [char_to_ix[ch] for ch in data[p:p+seq_length]]
    targets = [char_to_ix[ch] for ch in data[p+1:p+seq_length+1]]
    loss, dWf, dWi, dWc, dWo, dWy, dbf, dbi, dbc, dbo, dby, hprev, cprev = lossFun(inputs, targets, hprev, cprev)
    if n % 100 == 0:
        print 'iter %d, loss: %f' % (n, loss)
    p += seq_length
    n += 1
'''


def min_char_lstm_source(bug=None) -> str:
    return MIN_CHAR_LSTM.replace("CELL_CARRY", "0" if bug == "cell_carry_dropped" else "dcnext")


# --- min-char-rnn LSTM keeping the gist's names: Wxh (4H, V) stacked, gates i, f, o, g -------------

MIN_CHAR_LSTM_STACKED = '''import numpy as np

vocab_size = 27
hidden_size = 64
Wxh = np.random.randn(4 * hidden_size, vocab_size) * 0.01
Whh = np.random.randn(4 * hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((4 * hidden_size, 1))
by = np.zeros((vocab_size, 1))


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def lossFun(inputs, targets, hprev, cprev):
    xs, hs, cs, gates, ps = {}, {}, {}, {}, {}
    hs[-1], cs[-1] = np.copy(hprev), np.copy(cprev)
    H = hidden_size
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        a = np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh
        i, f, o = sigmoid(a[:H]), sigmoid(a[H:2 * H]), sigmoid(a[2 * H:3 * H])
        g = np.tanh(a[3 * H:])
        gates[t] = (i, f, o, g)
        cs[t] = f * cs[t - 1] + i * g
        hs[t] = o * np.tanh(cs[t])
        y = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(y - np.max(y)) / np.sum(np.exp(y - np.max(y)))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext, dcnext = np.zeros_like(hprev), np.zeros_like(cprev)
    for t in reversed(range(len(inputs))):
        i, f, o, g = gates[t]
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        tc = np.tanh(cs[t])
        dc = dcnext + dh * o * (1 - tc * tc)
        da = np.vstack((dc * g * i * (1 - i), dc * cs[t - 1] * f * (1 - f), dh * tc * o * (1 - o),
                        dc * i * (1 - g * g)))
        dWxh += np.dot(da, xs[t].T)
        dWhh += np.dot(da, hs[t - 1].T)
        dbh += da
        dhnext = np.dot(Whh.T, da)
        dcnext = dc * f
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1], cs[len(inputs) - 1]
'''


# --- GRU in torch.nn.GRU's layout, batch first ---------------------------------------------------

GRU_LAYER = '''import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev = h0
    cache = []
    for t in range(T):
        gi = x[:, t].dot(W_ih.T) + b_ih
        gh = prev.dot(W_hh.T) + b_hh
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        nxt = (1 - z) * n + z * prev
        cache.append((x[:, t], prev, r, z, n, gh))
        h[:, t] = nxt
        prev = nxt
    return h, (cache, W_ih, W_hh)


def gru_backward(dh, cache):
    steps, W_ih, W_hh = cache
    N, T, H = dh.shape
    D = W_ih.shape[1]
    dx = np.zeros((N, T, D))
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih, db_hh = np.zeros(3 * H), np.zeros(3 * H)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        x_t, prev, r, z, n, gh = steps[t]
        d = dh[:, t] + dprev
        dn = d * (1 - z) * (1 - n ** 2)
        dz = d * DZ * z * (1 - z)
        dr = DR * r * (1 - r)
        dgi = np.hstack((dr, dz, dn))
        dgh = np.hstack((dr, dz, dn * r))
        dW_ih += dgi.T.dot(x_t)
        dW_hh += dgh.T.dot(prev)
        db_ih += dgi.sum(0)
        db_hh += dgh.sum(0)
        dx[:, t] = dgi.dot(W_ih)
        dprev = d * z + dgh.dot(W_hh)
    return dx, dprev, dW_ih, dW_hh, db_ih, db_hh
'''


def gru_source(bug=None) -> str:
    dz = "(n - prev)" if bug == "update_gate_sign" else "(prev - n)"
    dr = "0 * dn" if bug == "reset_path_missing" else "dn * gh[:, 2 * H:]"
    return GRU_LAYER.replace("DZ", dz).replace("DR", dr)


# --- EECS 498 (Michigan), A4: the same LSTM on torch tensors, no autograd ------------------------

EECS498_LSTM = '''import torch


def hello_rnn_lstm_captioning():
    print("Hello from rnn_lstm_captioning.py!")


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b, attn=None, Wattn=None):
    N, H = prev_h.shape
    a = x.mm(Wx) + prev_h.mm(Wh) + b
    i = torch.sigmoid(a[:, :H])
    f = torch.sigmoid(a[:, H:2 * H])
    o = torch.sigmoid(a[:, 2 * H:3 * H])
    g = torch.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * torch.tanh(next_c)
    return next_h, next_c


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = torch.zeros((N, T, H), dtype=x.dtype, device=x.device)
    c = torch.zeros_like(h0)
    prev_h = h0
    for t in range(T):
        prev_h, c = lstm_step_forward(x[:, t], prev_h, c, Wx, Wh, b)
        h[:, t] = prev_h
    return h, (x, h0, Wx, Wh, b)


def lstm_backward(dh, cache):
    # the assignment uses autograd; this student derived it by hand, recomputing the forward
    x, h0, Wx, Wh, b = cache
    N, T, D = x.shape
    H = h0.shape[1]
    hs, cs, gates = [h0], [torch.zeros_like(h0)], []
    for t in range(T):
        a = x[:, t].mm(Wx) + hs[-1].mm(Wh) + b
        i, f, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.sigmoid(a[:, 2 * H:3 * H])
        g = torch.tanh(a[:, 3 * H:])
        cs.append(f * cs[-1] + i * g)
        hs.append(o * torch.tanh(cs[-1]))
        gates.append((i, f, o, g))
    dx = torch.zeros_like(x)
    dWx, dWh, db = torch.zeros_like(Wx), torch.zeros_like(Wh), torch.zeros_like(b)
    dnext_h, dnext_c = torch.zeros_like(h0), torch.zeros_like(h0)
    for t in reversed(range(T)):
        i, f, o, g = gates[t]
        dhh = dh[:, t] + dnext_h
        tc = torch.tanh(cs[t + 1])
        dc = dnext_c + dhh * o * (1 - tc ** 2)
        da = torch.cat((dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dhh * tc * o * (1 - o),
                        dc * i * (1 - g ** 2)), dim=1)
        dx[:, t] = da.mm(Wx.t())
        dWx += x[:, t].t().mm(da)
        dWh += hs[t].t().mm(da)
        db += da.sum(dim=0)
        dnext_h = da.mm(Wh.t())
        dnext_c = dc * f
    return dx, dnext_h, dWx, dWh, db
'''


# --- d2l's GRU from scratch (PyTorch edition), and a backward its reader derived by hand -----------

D2L_GRU = '''import torch
from torch import nn


def get_params(vocab_size, num_hiddens, device):
    num_inputs = num_outputs = vocab_size

    def normal(shape):
        return torch.randn(size=shape, device=device) * 0.01

    def three():
        return (normal((num_inputs, num_hiddens)), normal((num_hiddens, num_hiddens)),
                torch.zeros(num_hiddens, device=device))

    W_xz, W_hz, b_z = three()  # update gate
    W_xr, W_hr, b_r = three()  # reset gate
    W_xh, W_hh, b_h = three()  # candidate hidden state
    W_hq = normal((num_hiddens, num_outputs))
    b_q = torch.zeros(num_outputs, device=device)
    return [W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]


def init_gru_state(batch_size, num_hiddens, device):
    return (torch.zeros((batch_size, num_hiddens), device=device),)


def gru(inputs, state, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = torch.sigmoid((X @ W_xz) + (H @ W_hz) + b_z)
        R = torch.sigmoid((X @ W_xr) + (H @ W_hr) + b_r)
        H_tilda = torch.tanh((X @ W_xh) + ((R * H) @ W_hh) + b_h)
        H = Z * H + (1 - Z) * H_tilda
        Y = H @ W_hq + b_q
        outputs.append(Y)
    return torch.cat(outputs, dim=0), (H,)


def gru_backward(dY, inputs, state, params):
    """My BPTT for the GRU above (no autograd): recompute the forward, then walk back."""
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    Hs, Zs, Rs, Cs = [H], [], [], []
    for X in inputs:
        Z = torch.sigmoid((X @ W_xz) + (H @ W_hz) + b_z)
        R = torch.sigmoid((X @ W_xr) + (H @ W_hr) + b_r)
        C = torch.tanh((X @ W_xh) + ((R * H) @ W_hh) + b_h)
        H = Z * H + (1 - Z) * C
        Hs.append(H); Zs.append(Z); Rs.append(R); Cs.append(C)
    grads = [torch.zeros_like(p) for p in params]
    dW_xz, dW_hz, db_z, dW_xr, dW_hr, db_r, dW_xh, dW_hh, db_h, dW_hq, db_q = grads
    T, B = len(inputs), Hs[0].shape[0]
    dH_next = torch.zeros_like(Hs[0])
    for t in reversed(range(T)):
        X, H_prev, Z, R, C = inputs[t], Hs[t], Zs[t], Rs[t], Cs[t]
        dY_t = dY[t * B:(t + 1) * B]
        dW_hq += Hs[t + 1].T @ dY_t
        db_q += dY_t.sum(0)
        dH = dY_t @ W_hq.T + dH_next
        dA_c = dH * (1 - Z) * (1 - C ** 2)
        dZ = dH * DZ
        dA_z = dZ * Z * (1 - Z)
RESET
        dA_r = dR * R * (1 - R)
        dW_xz += X.T @ dA_z
        dW_hz += H_prev.T @ dA_z
        db_z += dA_z.sum(0)
        dW_xr += X.T @ dA_r
        dW_hr += H_prev.T @ dA_r
        db_r += dA_r.sum(0)
        dW_xh += X.T @ dA_c
        db_h += dA_c.sum(0)
        dH_next = CARRY + dA_z @ W_hz.T + dA_r @ W_hr.T
    return grads
'''

D2L_BUGS = (None, "reset_after_product", "update_gate_sign", "reset_not_applied", "update_carry_dropped")


def d2l_gru_source(bug=None) -> str:
    dz = "(C - H_prev)" if bug == "update_gate_sign" else "(H_prev - C)"
    if bug == "reset_after_product":      # PyTorch's candidate differentiated: r * (H W_hh)
        reset = ("        dR = dA_c * (H_prev @ W_hh)\n"
                 "        dW_hh += H_prev.T @ (dA_c * R)\n"
                 "        dH_c = (dA_c * R) @ W_hh.T")
    else:
        reset = ("        dRH = dA_c @ W_hh.T\n"
                 "        dR = dRH * H_prev\n"
                 "        dW_hh += (R * H_prev).T @ dA_c\n"
                 "        dH_c = " + ("dRH" if bug == "reset_not_applied" else "dRH * R"))
    carry = "dH_c" if bug == "update_carry_dropped" else "dH * Z + dH_c"
    return D2L_GRU.replace("DZ", dz).replace("RESET", reset).replace("CARRY", carry)


# --- an LSTM for one sequence: no batch axis (x (T, D), h0 (H,)), cs231n's names and gates ---------

LSTM_ONE_SEQUENCE = '''import numpy as np

# my LSTM for a single sentence: x is (T, D), one word vector per row, no minibatch


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[0]
    a = np.dot(x, Wx) + np.dot(prev_h, Wh) + b          # (4H,)
    ai, af, ao, ag = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
    i, f, o, g = sigmoid(ai), sigmoid(af), sigmoid(ao), np.tanh(ag)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc * tc)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                         dnext_h * tc * o * (1 - o), dc * i * (1 - g * g)])
    dx = np.dot(Wx, da)
    dprev_h = np.dot(Wh, da)
    dWx = np.outer(x, da)
    dWh = np.outer(prev_h, da)
    return dx, dprev_h, dc * f, dWx, dWh, da


def lstm_forward(x, h0, Wx, Wh, b):
    T, D = x.shape
    H = h0.shape[0]
    h = np.zeros((T, H))
    c = np.zeros(H)
    prev = h0
    caches = []
    for t in range(T):
        prev, c, cache = lstm_step_forward(x[t], prev, c, Wx, Wh, b)
        h[t] = prev
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    T, H = dh.shape
    D = cache[0][0].shape[0]
    dx = np.zeros((T, D))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros(H), np.zeros(H)
    for t in range(T - 1, -1, -1):
        dx[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[t] + dprev_h, dprev_c, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, DH0, dWx, dWh, db
'''


def lstm_one_sequence_source(bug=None) -> str:
    """``bug``: "dh0_zero" returns zeros for dh0 (a missed carry into h0)."""
    return LSTM_ONE_SEQUENCE.replace("DH0", "np.zeros(H)" if bug == "dh0_zero" else "dprev_h")


# --- 11-785 (CMU): a GRUCell class, weights and gradients as attributes, one step per call ------

GRU_CELL_785 = '''import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class GRUCell(object):
    """my GRU cell for hw3p1"""

    def __init__(self, in_dim, hidden_dim):
        self.d = in_dim
        self.h = hidden_dim
        h, d = hidden_dim, in_dim
        self.Wrx = np.random.randn(h, d)
        self.Wzx = np.random.randn(h, d)
        self.Wnx = np.random.randn(h, d)
        self.Wrh = np.random.randn(h, h)
        self.Wzh = np.random.randn(h, h)
        self.Wnh = np.random.randn(h, h)
        self.brx = np.random.randn(h)
        self.bzx = np.random.randn(h)
        self.bnx = np.random.randn(h)
        self.brh = np.random.randn(h)
        self.bzh = np.random.randn(h)
        self.bnh = np.random.randn(h)
        self.dWrx = np.zeros((h, d))
        self.dWzx = np.zeros((h, d))
        self.dWnx = np.zeros((h, d))
        self.dWrh = np.zeros((h, h))
        self.dWzh = np.zeros((h, h))
        self.dWnh = np.zeros((h, h))
        self.dbrx = np.zeros((h))
        self.dbzx = np.zeros((h))
        self.dbnx = np.zeros((h))
        self.dbrh = np.zeros((h))
        self.dbzh = np.zeros((h))
        self.dbnh = np.zeros((h))

    def forward(self, x, h_prev_t):
        self.x = x
        self.hidden = h_prev_t
        self.r = sigmoid(self.Wrx @ x + self.brx + self.Wrh @ h_prev_t + self.brh)
        self.z = sigmoid(self.Wzx @ x + self.bzx + self.Wzh @ h_prev_t + self.bzh)
        self.hn = self.Wnh @ h_prev_t + self.bnh
        self.n = np.tanh(self.Wnx @ x + self.bnx + self.r * self.hn)
        h_t = (1 - self.z) * self.n + self.z * h_prev_t
        return h_t

    def backward(self, delta):
        delta = delta.reshape(-1)
        dz = delta * (self.hidden - self.n)
        dn = delta * (1 - self.z)
        dn_pre = dn * (1 - self.n ** 2)
        dr = dn_pre * self.hn
        dr_pre = dr * self.r * (1 - self.r)
        dz_pre = dz * self.z * (1 - self.z)
        self.dWnx += np.outer(dn_pre, self.x)
        self.dbnx += dn_pre
        self.dWnh += np.outer(dn_pre * self.r, self.hidden)
        self.dbnh += dn_pre * self.r
        self.dWzx += np.outer(dz_pre, self.x)
        self.dbzx += dz_pre
        self.dWzh += np.outer(dz_pre, self.hidden)
        self.dbzh += dz_pre
        self.dWrx += np.outer(dr_pre, self.x)
        self.dbrx += dr_pre
        self.dWrh += np.outer(dr_pre, self.hidden)
        self.dbrh += dr_pre
        dx = self.Wnx.T @ dn_pre + self.Wzx.T @ dz_pre + self.Wrx.T @ dr_pre
        dh_prev_t = delta * self.z + self.Wnh.T @ (dn_pre * self.r) + self.Wzh.T @ dz_pre + self.Wrh.T @ dr_pre
        return dx.reshape(1, -1), dh_prev_t.reshape(1, -1)
'''

GRU_CELL_BUGS = {
    None: {},
    # the reset gate left out of the candidate's hidden-side gradient
    "reset_dropped_in_dWnh": {"self.dWnh += np.outer(dn_pre * self.r, self.hidden)":
                              "self.dWnh += np.outer(dn_pre, self.hidden)"},
    # the update gate's own path into h_prev forgotten
    "z_carry_dropped": {"dh_prev_t = delta * self.z + ": "dh_prev_t = "},
}


def gru_cell_785_source(bug=None) -> str:
    text = GRU_CELL_785
    for old, new in GRU_CELL_BUGS[bug].items():
        assert old in text
        text = text.replace(old, new)
    return text


#: how 11-785 hand-outs import their activations (mytorch/nn/activation.py), by year and layout
MYTORCH_IMPORTS = ("from activation import *", "from mytorch.nn.activation import *", "from .activation import *")


def gru_cell_785_mytorch_source(importing: str = MYTORCH_IMPORTS[1], bug=None) -> str:
    """The same cell as the hand-out has it: its activations are objects of the course's
    mytorch classes (``self.r_act = Sigmoid()``), called in forward and asked for their
    derivative in backward, both generations (``derivative()``, ``backward(dLdA, state=)``),
    and the module that defines them is not in the student's file."""
    text = gru_cell_785_source(bug)
    edits = {
        "import numpy as np\n\n\ndef sigmoid(x):\n    return 1 / (1 + np.exp(-x))\n": f"import numpy as np\n{importing}\n",
        "        self.dbnh = np.zeros((h))\n": "        self.dbnh = np.zeros((h))\n        self.r_act = Sigmoid()\n"
                                            "        self.z_act = Sigmoid()\n        self.h_act = Tanh()\n",
        "self.r = sigmoid(": "self.r = self.r_act.forward(",
        "self.z = sigmoid(": "self.z = self.z_act(",
        "self.n = np.tanh(": "self.n = self.h_act.forward(",
        "dn_pre = dn * (1 - self.n ** 2)": "dn_pre = self.h_act.backward(dn, state=self.n)",
        "dr_pre = dr * self.r * (1 - self.r)": "dr_pre = self.r_act.backward(dr)",
        "dz_pre = dz * self.z * (1 - self.z)": "dz_pre = dz * self.z_act.derivative()",
    }
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


# --- 11-785 of 2019: GRU_Cell, no biases, the reset gate before the product ---------------------

GRU_CELL_2019 = '''import numpy as np
from activation import *


class GRU_Cell:
    """GRU cell, hw3p1 (my version)"""
    def __init__(self, in_dim, hidden_dim):
        self.d = in_dim
        self.h = hidden_dim
        h = self.h
        d = self.d
        self.x_t = 0

        self.Wzh = np.random.randn(h, h)
        self.Wrh = np.random.randn(h, h)
        self.Wh = np.random.randn(h, h)
        self.Wzx = np.random.randn(h, d)
        self.Wrx = np.random.randn(h, d)
        self.Wx = np.random.randn(h, d)

        self.dWzh = np.zeros((h, h))
        self.dWrh = np.zeros((h, h))
        self.dWh = np.zeros((h, h))
        self.dWzx = np.zeros((h, d))
        self.dWrx = np.zeros((h, d))
        self.dWx = np.zeros((h, d))

        self.z_act = Sigmoid()
        self.r_act = Sigmoid()
        self.h_act = Tanh()

    def forward(self, x, h):
        # x: (input dim,)   h: (hidden dim,)   returns h_t: (hidden dim,)
        self.x = x
        self.hprev = h
        self.z_t = self.z_act(np.dot(self.Wzh, h) + np.dot(self.Wzx, x))
        self.r_t = self.r_act(np.dot(self.Wrh, h) + np.dot(self.Wrx, x))
        self.rh = self.r_t * h
        self.h_tilde = self.h_act(np.dot(self.Wh, self.rh) + np.dot(self.Wx, x))
        h_t = (1 - self.z_t) * h + self.z_t * self.h_tilde
        return h_t

    def backward(self, delta):
        # delta: (1, hidden dim)   returns dx (1, input dim), dh (1, hidden dim)
        x = self.x.reshape(-1, 1)
        hprev = self.hprev.reshape(-1, 1)
        d = delta.reshape(-1, 1)
        dht = d * self.z_t.reshape(-1, 1)
        dz = d * (self.h_tilde - self.hprev).reshape(-1, 1)
        dpre_h = dht * self.h_act.derivative().reshape(-1, 1)
        self.dWx += np.dot(dpre_h, x.T)
        self.dWh += np.dot(dpre_h, self.rh.reshape(1, -1))
        drh = np.dot(self.Wh.T, dpre_h)
        dr = drh * hprev
        dpre_r = dr * self.r_act.derivative().reshape(-1, 1)
        dpre_z = dz * self.z_act.derivative().reshape(-1, 1)
        self.dWrx += np.dot(dpre_r, x.T)
        self.dWrh += np.dot(dpre_r, hprev.T)
        self.dWzx += np.dot(dpre_z, x.T)
        self.dWzh += np.dot(dpre_z, hprev.T)
        dx = np.dot(self.Wx.T, dpre_h) + np.dot(self.Wrx.T, dpre_r) + np.dot(self.Wzx.T, dpre_z)
        dh = (d * (1 - self.z_t.reshape(-1, 1)) + drh * self.r_t.reshape(-1, 1)
              + np.dot(self.Wrh.T, dpre_r) + np.dot(self.Wzh.T, dpre_z))
        return dx.T, dh.T
'''

GRU_CELL_2019_EDITS = {
    None: {},
    # the reset gate left out of the candidate's hidden-side gradient
    "reset_dropped_in_dWh": {"self.dWh += np.dot(dpre_h, self.rh.reshape(1, -1))":
                             "self.dWh += np.dot(dpre_h, hprev.T)"},
    # z's role taken from d2l's GRU in the carry: h_t's direct path into h is (1 - z), not z
    "carry_through_z": {"dh = (d * (1 - self.z_t.reshape(-1, 1))": "dh = (d * self.z_t.reshape(-1, 1)"},
    # written for delta of shape (hidden dim,): the course's (1, H) row would not fit its matrix products
    "flat_delta": {"        d = delta.reshape(-1, 1)\n": "        d = delta[:, None]\n"},
    # the forward of torch.nn.GRUCell without biases (reset after the product, the carry through z)
    "pytorch_forward": {"self.h_tilde = self.h_act(np.dot(self.Wh, self.rh) + np.dot(self.Wx, x))":
                        "self.h_tilde = self.h_act(np.dot(self.Wx, x) + self.r_t * np.dot(self.Wh, h))",
                        "h_t = (1 - self.z_t) * h + self.z_t * self.h_tilde": "h_t = (1 - self.z_t) * self.h_tilde + self.z_t * h"},
}


def gru_cell_2019_source(bug=None) -> str:
    """11-785's 2019 ``GRU_Cell`` as a student keeps it: its activations the course's
    ``Sigmoid()``/``Tanh()`` (``from activation import *``, not in the file), delta handed as (1, H)."""
    text = GRU_CELL_2019
    for old, new in GRU_CELL_2019_EDITS[bug].items():
        assert old in text, old
        text = text.replace(old, new)
    return text


#: an 11-785 activation.py of the older generation, as a student keeps it beside the cell
MYTORCH_ACTIVATION = '''import numpy as np


class Activation(object):
    def __init__(self):
        self.state = None

    def __call__(self, x):
        return self.forward(x)


class Sigmoid(Activation):
    def forward(self, x):
        self.state = 1 / (1 + np.exp(-x))
        return self.state

    def derivative(self):
        return self.state * (1 - self.state)

    def backward(self, dLdA):
        return dLdA * self.derivative()


class Tanh(Activation):
    def forward(self, x):
        self.state = np.tanh(x)
        return self.state

    def derivative(self, state=None):
        return 1 - (self.state if state is None else state) ** 2

    def backward(self, dLdA, state=None):
        return dLdA * self.derivative(state)
'''


# --- Karpathy's batched LSTM as a class of static methods: one WLSTM, the bias its first row -----

KARPATHY_LSTM = '''"""
Batched LSTM forward and backward, in the layout of karpathy's lstm.py (my rewrite for class).
X is (n, b, input_size): time first.
"""
import numpy as np


class LSTM:

    @staticmethod
    def init(input_size, hidden_size):
        WLSTM = np.random.randn(input_size + hidden_size + 1, 4 * hidden_size) / np.sqrt(input_size + hidden_size)
        WLSTM[0, :] = 0
        return WLSTM

    @staticmethod
    def forward(X, WLSTM, c0=None, h0=None):
        n, b, input_size = X.shape
        d = WLSTM.shape[1] // 4
        if c0 is None:
            c0 = np.zeros((b, d))
        if h0 is None:
            h0 = np.zeros((b, d))
        xphpb = WLSTM.shape[0]
        Hin = np.zeros((n, b, xphpb))
        Hout = np.zeros((n, b, d))
        IFOG = np.zeros((n, b, d * 4))
        IFOGf = np.zeros((n, b, d * 4))
        C = np.zeros((n, b, d))
        Ct = np.zeros((n, b, d))
        for t in range(n):
            prevh = Hout[t - 1] if t > 0 else h0
            Hin[t, :, 0] = 1
            Hin[t, :, 1:input_size + 1] = X[t]
            Hin[t, :, input_size + 1:] = prevh
            IFOG[t] = Hin[t].dot(WLSTM)
            IFOGf[t, :, :3 * d] = 1.0 / (1.0 + np.exp(-IFOG[t, :, :3 * d]))
            IFOGf[t, :, 3 * d:] = np.tanh(IFOG[t, :, 3 * d:])
            prevc = C[t - 1] if t > 0 else c0
            C[t] = IFOGf[t, :, :d] * IFOGf[t, :, 3 * d:] + IFOGf[t, :, d:2 * d] * prevc
            Ct[t] = np.tanh(C[t])
            Hout[t] = IFOGf[t, :, 2 * d:3 * d] * Ct[t]
        cache = {"WLSTM": WLSTM, "Hout": Hout, "IFOGf": IFOGf, "IFOG": IFOG, "C": C, "Ct": Ct, "Hin": Hin,
                 "c0": c0, "h0": h0}
        return Hout, C[t], Hout[t], cache

    @staticmethod
    def backward(dHout_in, cache, dcn=None, dhn=None):
        WLSTM, Hout, IFOGf, IFOG = cache["WLSTM"], cache["Hout"], cache["IFOGf"], cache["IFOG"]
        C, Ct, Hin, c0, h0 = cache["C"], cache["Ct"], cache["Hin"], cache["c0"], cache["h0"]
        n, b, d = Hout.shape
        input_size = WLSTM.shape[0] - d - 1
        dIFOG = np.zeros(IFOG.shape)
        dIFOGf = np.zeros(IFOGf.shape)
        dWLSTM = np.zeros(WLSTM.shape)
        dHin = np.zeros(Hin.shape)
        dC = np.zeros(C.shape)
        dX = np.zeros((n, b, input_size))
        dh0 = np.zeros((b, d))
        dc0 = np.zeros((b, d))
        dHout = dHout_in.copy()
        if dcn is not None:
            dC[n - 1] += dcn.copy()
        if dhn is not None:
            dHout[n - 1] += dhn.copy()
        for t in reversed(range(n)):
            tanhCt = Ct[t]
            dIFOGf[t, :, 2 * d:3 * d] = tanhCt * dHout[t]
            dC[t] += (1 - tanhCt ** 2) * (IFOGf[t, :, 2 * d:3 * d] * dHout[t])
            if t > 0:
                dIFOGf[t, :, d:2 * d] = C[t - 1] * dC[t]
                dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]
            else:
                dIFOGf[t, :, d:2 * d] = c0 * dC[t]
                dc0 = IFOGf[t, :, d:2 * d] * dC[t]
            dIFOGf[t, :, :d] = IFOGf[t, :, 3 * d:] * dC[t]
            dIFOGf[t, :, 3 * d:] = IFOGf[t, :, :d] * dC[t]
            dIFOG[t, :, 3 * d:] = (1 - IFOGf[t, :, 3 * d:] ** 2) * dIFOGf[t, :, 3 * d:]
            y = IFOGf[t, :, :3 * d]
            dIFOG[t, :, :3 * d] = (y * (1.0 - y)) * dIFOGf[t, :, :3 * d]
            dWLSTM += np.dot(Hin[t].transpose(), dIFOG[t])
            dHin[t] = dIFOG[t].dot(WLSTM.transpose())
            dX[t] = dHin[t, :, 1:input_size + 1]
            if t > 0:
                dHout[t - 1, :] += dHin[t, :, input_size + 1:]
            else:
                dh0 += dHin[t, :, input_size + 1:]
        return dX, dWLSTM, dc0, dh0
'''


def karpathy_lstm_source(bug=None) -> str:
    """``bug``: "forget_carry_dropped" never carries dC back through the forget gate."""
    if bug == "forget_carry_dropped":
        return KARPATHY_LSTM.replace("dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]", "pass")
    return KARPATHY_LSTM


# --- an LSTMCell class in the same layout as 11-785's GRUCell -------------------------------------

LSTM_CELL_CLASS = '''import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LSTMCell:
    def __init__(self, input_size, hidden_size):
        d, h = input_size, hidden_size
        for g in "ifco":
            setattr(self, "W" + g + "x", np.random.randn(h, d) * 0.1)
            setattr(self, "W" + g + "h", np.random.randn(h, h) * 0.1)
            setattr(self, "b" + g, np.zeros(h))
        self.zero_grad()

    def zero_grad(self):
        for name in ("Wix", "Wih", "Wfx", "Wfh", "Wcx", "Wch", "Wox", "Woh", "bi", "bf", "bc", "bo"):
            setattr(self, "d" + name, np.zeros_like(getattr(self, name)))

    def forward(self, x, h_prev, c_prev):
        self.x, self.h_prev, self.c_prev = x, h_prev, c_prev
        self.i = sigmoid(self.Wix @ x + self.Wih @ h_prev + self.bi)
        self.f = sigmoid(self.Wfx @ x + self.Wfh @ h_prev + self.bf)
        self.c_hat = np.tanh(self.Wcx @ x + self.Wch @ h_prev + self.bc)
        self.o = sigmoid(self.Wox @ x + self.Woh @ h_prev + self.bo)
        self.c = self.f * c_prev + self.i * self.c_hat
        self.h = self.o * np.tanh(self.c)
        return self.h, self.c

    def backward(self, delta_h, delta_c):
        tc = np.tanh(self.c)
        do = delta_h * tc * self.o * (1 - self.o)
        dc = delta_c + delta_h * self.o * (1 - tc ** 2)
        di = dc * self.c_hat * self.i * (1 - self.i)
        df = dc * self.c_prev * self.f * (1 - self.f)
        dg = dc * self.i * (1 - self.c_hat ** 2)
        dx = np.zeros_like(self.x)
        dh = np.zeros_like(self.h_prev)
        for g, da in (("i", di), ("f", df), ("c", dg), ("o", do)):
            getattr(self, "dW" + g + "x").__iadd__(np.outer(da, self.x))
            getattr(self, "dW" + g + "h").__iadd__(np.outer(da, self.h_prev))
            getattr(self, "db" + g).__iadd__(da)
            dx = dx + getattr(self, "W" + g + "x").T @ da
            dh = dh + getattr(self, "W" + g + "h").T @ da
        return dx, dh, dc * self.f
'''
