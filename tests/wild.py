"""Files as students hand them in, written for these tests (never copied): scripts that read
their data and train at top level, parse argv, Python 2 prints, renamed globals, a class,
course-helper imports, notebooks with magics and asserts. Each ``*_source`` is the file's
text; ``notebook`` turns cells into an .ipynb."""

import json

# --- min-char-rnn copies --------------------------------------------------------------------

MIN_CHAR_PY2 = '''"""
Minimal character-level RNN, my copy for the homework (python 2).
"""
import numpy as np

data = open('input.txt', 'r').read()
chars = list(set(data))
data_size, vocab_size = len(data), len(chars)
print 'data has %d characters, %d unique.' % (data_size, vocab_size)
char_to_ix = { ch:i for i,ch in enumerate(chars) }
ix_to_char = { i:ch for i,ch in enumerate(chars) }

hidden_size = 100
seq_length = 25
learning_rate = 1e-1

Wxh = np.random.randn(hidden_size, vocab_size)*0.01
Whh = np.random.randn(hidden_size, hidden_size)*0.01
Why = np.random.randn(vocab_size, hidden_size)*0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))

def lossFun(inputs, targets, hprev):
  xs, hs, ys, ps = {}, {}, {}, {}
  hs[-1] = np.copy(hprev)
  loss = 0
  for t in xrange(len(inputs)):
    xs[t] = np.zeros((vocab_size,1))
    xs[t][inputs[t]] = 1
    hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t-1]) + bh)
    ys[t] = np.dot(Why, hs[t]) + by
    ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
    loss += -np.log(ps[t][targets[t],0])
  dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
  dbh, dby = np.zeros_like(bh), np.zeros_like(by)
  dhnext = np.zeros_like(hs[0])
  for t in reversed(xrange(len(inputs))):
    dy = np.copy(ps[t])
    dy[targets[t]] -= 1
    dWhy += np.dot(dy, hs[t].T)
    dby += dy
    dh = np.dot(Why.T, dy) + dhnext
    dhraw = DHRAW
    dbh += dhraw
    dWxh += np.dot(dhraw, xs[t].T)
    dWhh += np.dot(dhraw, hs[t-1].T)
    dhnext = np.dot(Whh.T, dhraw)
  for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
    np.clip(dparam, -5, 5, out=dparam)
  return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]

def sample(h, seed_ix, n):
  x = np.zeros((vocab_size, 1))
  x[seed_ix] = 1
  ixes = []
  for t in xrange(n):
    h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
    y = np.dot(Why, h) + by
    p = np.exp(y) / np.sum(np.exp(y))
    ix = np.random.choice(range(vocab_size), p=p.ravel())
    ixes.append(ix)
  return ixes

n, p = 0, 0
mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
smooth_loss = -np.log(1.0/vocab_size)*seq_length
while True:
  if p+seq_length+1 >= len(data) or n == 0:
    hprev = np.zeros((hidden_size,1))
    p = 0
  inputs = [char_to_ix[ch] for ch in data[p:p+seq_length]]
  targets = [char_to_ix[ch] for ch in data[p+1:p+seq_length+1]]
  loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
  smooth_loss = smooth_loss * 0.999 + loss * 0.001
  if n % 100 == 0: print 'iter %d, loss: %f' % (n, smooth_loss)
  p += seq_length
  n += 1
'''


def min_char_py2_source(bug=None) -> str:
    dhraw = {None: "(1 - hs[t] * hs[t]) * dh", "tanh_prime_missing": "dh"}[bug]
    return MIN_CHAR_PY2.replace("DHRAW", dhraw)


# an argparse script in Python 3, the book's names U, W, V, b, c, and seq_length read in lossFun
MIN_CHAR_ARGPARSE = '''import argparse
import numpy as np

parser = argparse.ArgumentParser(description="char rnn")
parser.add_argument("data")
parser.add_argument("--hidden", type=int, default=64)
args = parser.parse_args()

text = open(args.data).read()
vocab = sorted(set(text))
vocab_size = len(vocab)
hidden_size = args.hidden
seq_length = 16

U = np.random.randn(hidden_size, vocab_size) * 0.01   # input -> hidden
W = np.random.randn(hidden_size, hidden_size) * 0.01  # hidden -> hidden
V = np.random.randn(vocab_size, hidden_size) * 0.01   # hidden -> output
b = np.zeros((hidden_size, 1))
c = np.zeros((vocab_size, 1))
GRAD_CLIP = 5.0


def lossFun(inputs, targets, hprev):
    assert len(inputs) <= seq_length or True
    x, h, p = {}, {-1: hprev.copy()}, {}
    loss = 0.0
    for t in range(len(inputs)):
        x[t] = np.zeros((vocab_size, 1))
        x[t][inputs[t]] = 1
        h[t] = np.tanh(U @ x[t] + W @ h[t - 1] + b)
        o = V @ h[t] + c
        p[t] = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        loss -= np.log(p[t][targets[t], 0])
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros_like(b), np.zeros_like(c)
    dh_next = np.zeros((hidden_size, 1))
    for t in reversed(range(len(inputs))):
        do = p[t].copy()
        do[targets[t]] -= 1
        dV += do @ h[t].T
        dc += do
        da = (1 - h[t] ** 2) * (V.T @ do + dh_next)
        db += da
        dU += da @ x[t].T
        dW += da @ h[t - 1].T
        dh_next = W.T @ da
    for g in (dU, dW, dV, db, dc):
        np.clip(g, -GRAD_CLIP, GRAD_CLIP, out=g)
    return loss, dU, dW, dV, db, dc, h[len(inputs) - 1]


if __name__ == "__main__":
    for epoch in range(1000000):
        pass
'''

# the gist wrapped in a class, parameters on self
MIN_CHAR_CLASS = '''import numpy as np
import sys

class CharRNN(object):
    def __init__(self, hidden_size, vocab_size, seq_length=25):
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
        self.Whh = np.random.randn(hidden_size, hidden_size) * 0.01
        self.Why = np.random.randn(vocab_size, hidden_size) * 0.01
        self.bh = np.zeros((hidden_size, 1))
        self.by = np.zeros((vocab_size, 1))

    def lossFun(self, inputs, targets, hprev):
        xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
        loss = 0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.vocab_size, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(self.Wxh.dot(xs[t]) + self.Whh.dot(hs[t - 1]) + self.bh)
            y = self.Why.dot(hs[t]) + self.by
            ps[t] = np.exp(y) / np.sum(np.exp(y))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(self.Wxh), np.zeros_like(self.Whh), np.zeros_like(self.Why)
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += dy.dot(hs[t].T)
            dby += dy
            dhraw = (1 - hs[t] * hs[t]) * (self.Why.T.dot(dy) + dhnext)
            dbh += dhraw
            dWxh += dhraw.dot(xs[t].T)
            dWhh += dhraw.dot(hs[t - 1].T)
            dhnext = self.Whh.T.dot(dhraw)
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

data = open(sys.argv[1]).read()
model = CharRNN(100, len(set(data)))
while True:
    pass
'''

# --- cs231n rnn_layers.py, Python 2, with the LSTM half beside the RNN ----------------------

CS231N_PY2 = '''from __future__ import print_function, division
from builtins import range
import numpy as np


"""
This file defines layer types that are commonly used for recurrent neural
networks.
"""


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h, cache = None, None
    a = prev_h.dot(Wh) + x.dot(Wx) + b
    next_h = np.tanh(a)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = DA
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
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
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t, :], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    out = W[x, :]
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    print "TODO: lstm_step_forward"
    next_h, next_c, cache = None, None, None
    return next_h, next_c, cache


def lstm_forward(x, h0, Wx, Wh, b):
    h, cache = None, None
    return h, cache
'''


def cs231n_py2_source(bug=None) -> str:
    da = {None: "dnext_h * (1 - next_h ** 2)", "tanh_prime_twice": "dnext_h * (1 - next_h ** 2) ** 2",
          "no_numpy": "dnext_h * (1 - next_h ** 2)"}[bug]
    source = CS231N_PY2.replace("DA", da)
    if bug == "no_numpy":
        source = source.replace("import numpy as np\n", "")
    return source


# --- EECS 498: torch tensors, the course's helper, which imports torchvision ---------------

A4_HELPER = '''import torch
import torchvision
from torchvision import transforms

def hello_helper():
    print("Hello from a4_helper.py!")

def reset_seed(number):
    torch.manual_seed(number)
'''

EECS498 = '''import torch
from a4_helper import *


def hello_rnn_lstm_attention():
    print("Hello from rnn_lstm_attention.py!")


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = torch.tanh(x.mm(Wx) + prev_h.mm(Wh) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = dnext_h * (1 - next_h ** 2)
    dx = dtanh.mm(Wx.t())
    dprev_h = dtanh.mm(Wh.t())
    dWx = x.t().mm(dtanh)
    dWh = prev_h.t().mm(dtanh)
    db = dtanh.sum(dim=0)
    return dx, dprev_h, dWx, dWh, db
'''

# --- deeplearning.ai "Building your RNN step by step", as a notebook ---------------------

RNN_UTILS = '''import numpy as np

def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)

def sigmoid(x):
    return 1 / (1 + np.exp(-x))
'''

PUBLIC_TESTS = '''import numpy as np
from rnn_utils import *

def rnn_cell_forward_tests(target):
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    assert target is not None
    print("\\033[92mAll tests passed")
'''

DLAI_CELLS = [
    "# Building your Recurrent Neural Network - Step by Step",     # markdown
    "import numpy as np\nfrom rnn_utils import *\nfrom public_tests import *\n%matplotlib inline\n%load_ext autoreload\n%autoreload 2",
    '''# GRADED FUNCTION: rnn_cell_forward

def rnn_cell_forward(xt, a_prev, parameters):
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    Wya = parameters["Wya"]
    ba = parameters["ba"]
    by = parameters["by"]
    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    yt_pred = softmax(np.dot(Wya, a_next) + by)
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache''',
    '''np.random.seed(1)
xt_tmp = np.random.randn(3, 10)
a_prev_tmp = np.random.randn(5, 10)
parameters_tmp = {}
parameters_tmp['Waa'] = np.random.randn(5, 5)
parameters_tmp['Wax'] = np.random.randn(5, 3)
parameters_tmp['Wya'] = np.random.randn(2, 5)
parameters_tmp['ba'] = np.random.randn(5, 1)
parameters_tmp['by'] = np.random.randn(2, 1)
a_next_tmp, yt_pred_tmp, cache_tmp = rnn_cell_forward(xt_tmp, a_prev_tmp, parameters_tmp)
print("a_next[4] = \\n", a_next_tmp[4])
rnn_cell_forward_tests(rnn_cell_forward)''',
    '''# GRADED FUNCTION: rnn_forward

def rnn_forward(x, a0, parameters):
    caches = []
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wya"].shape
    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((n_y, m, T_x))
    a_next = a0
    for t in range(T_x):
        xt = x[:, :, t]
        a_next, yt_pred, cache = rnn_cell_forward(xt, a_next, parameters)
        a[:, :, t] = a_next
        y_pred[:, :, t] = yt_pred
        caches.append(cache)
    caches = (caches, x)
    return a, y_pred, caches''',
    "!pip install -q something\na_tmp, y_tmp, caches_tmp = rnn_forward(np.random.randn(3, 10, 4), a_prev_tmp, parameters_tmp)\nassert a_tmp.shape == (5, 10, 4)",
    '''def rnn_cell_backward(da_next, cache):
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = DTANH
    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)
    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)
    dba = np.sum(dtanh, axis=1, keepdims=True)
    gradients = {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients''',
    '''def rnn_backward(da, caches):
    (caches, x) = caches
    (a1, a0, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    dWax = np.zeros((n_a, n_x))
    dWaa = np.zeros((n_a, n_a))
    dba = np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dxt, da_prevt, dWaxt, dWaat, dbat = gradients["dxt"], gradients["da_prev"], gradients["dWax"], gradients["dWaa"], gradients["dba"]
        dx[:, :, t] = dxt
        dWax += dWaxt
        dWaa += dWaat
        dba += dbat
    da0 = da_prevt
    gradients = {"dx": dx, "da0": da0, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    RETURN''',
    "%%time\nfor i in range(10**9):\n    pass",
]


def dlai_cells(bug=None) -> list:
    dtanh = "(1 - a_next ** 2) * da_next"
    cells = [c.replace("DTANH", dtanh).replace("RETURN", "" if bug == "no_return" else "return gradients")
             for c in DLAI_CELLS]
    return cells


def notebook(cells: list) -> str:
    """An .ipynb (nbformat 4) whose first cell is markdown and the rest code."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3",
                                                                                         "display_name": "Python 3",
                                                                                         "language": "python"}},
                       "cells": [{"cell_type": "markdown" if i == 0 else "code", "metadata": {}, "source": c,
                                  **({} if i == 0 else {"outputs": [], "execution_count": None})}
                                 for i, c in enumerate(cells)]})


# --- the rest of a cs231n assignment: the non-recurrent layers, as a student fills them in -------

CS231N_PIECES = '''import numpy as np

def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)

def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db

def word_embedding_forward(x, W):
    return W[x, :], (x, W)

def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW

def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    M = b.shape[0]
    out = x.reshape(N * T, D).dot(w).reshape(N, T, M) + b
    return out, (x, w, b, out)

def temporal_affine_backward(dout, cache):
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = dout.reshape(N * T, M).T.dot(x.reshape(N * T, D)).T
    db = dout.sum(axis=(0, 1))
    return dx, dw, db

def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    return loss, dx_flat.reshape(N, T, V)
'''

PIECE_BUGS = {
    # dW[x] += dout: fancy indexing adds a repeated word once (np.add.at adds each occurrence)
    "embedding_repeats_lost": ("    np.add.at(dW, x, dout)\n", "    dW[x] += dout\n"),
    # the mask left out of dx: padding positions get gradient
    "softmax_mask_dropped": ("    dx_flat *= mask_flat[:, None]\n", ""),
    # db summed over the batch only, not time
    "temporal_db_one_axis": ("    db = dout.sum(axis=(0, 1))\n", "    db = dout.sum(axis=0)[0]\n"),
}


def cs231n_pieces_source(bug=None) -> str:
    if bug is None:
        return CS231N_PIECES
    old, new = PIECE_BUGS[bug]
    assert old in CS231N_PIECES
    return CS231N_PIECES.replace(old, new)


# --- one assignment split across files that import each other ------------------------------------

def split_rnn_files() -> dict:
    """cs231n's RNN as a student splits it: the forward half in rnn_forward.py, the backward
    half in rnn_backward.py, which imports from the first (file name -> text)."""
    text = cs231n_py2_source()
    start_b = text.index("def rnn_step_backward")
    start_f2 = text.index("def rnn_forward")
    start_b2 = text.index("def rnn_backward")
    end = text.index("def word_embedding_forward")
    head = "import numpy as np\n\n\n"
    forward = head + text[text.index("def rnn_step_forward"):start_b] + text[start_f2:start_b2]
    backward = head + "from rnn_forward import rnn_step_forward, rnn_forward\n\n\n" + text[start_b:start_f2] \
        + text[start_b2:end]
    return {"rnn_forward.py": forward, "rnn_backward.py": backward}
