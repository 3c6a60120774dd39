"""A synthetic class for the grading bench (``bptt-xval bench --grading``): N cs231n
``rnn_layers.py`` submissions, right, wrong, hostile and slow, each with the verdict it must
get, so the bench measures the grader's speed and memory on a class that looks like a real
one and checks every verdict while it does.

The mix, by submission number (deterministic, so every N is the same class cut shorter):
about 70% right (the template, lightly varied so no two files are byte-equal), 18% wrong
(the mistakes students make: the recurrent carry dropped, the recurrence transposed, the
tanh derivative taken at the pre-activation, the bias gradient not summed over the batch),
10% hostile (patches the suite inside its own process and returns wrong gradients; floods
its output; writes outside its folder; reads the grader's files) and 2% slow (never
returns: a timeout).
"""

from __future__ import annotations

from pathlib import Path

# cs231n's rnn_layers.py as a student writes it (batch first: x (N, T, D), h (N, T, H))
CS231N = '''
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1 - next_h ** 2)
    return dz.dot(Wx.T), dz.dot(Wh.T), x.T.dot(dz), prev_h.T.dot(dz), dz.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, cache, prev = np.zeros((N, T, h0.shape[1])), [], h0
    for t in range(T):
        prev, c = rnn_step_forward(x[:, t, :], prev, Wx, Wh, b)
        h[:, t, :] = prev
        cache.append(c)
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx, dWx, dWh, db = np.zeros((N, T, D)), np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        UPSTREAM
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(upstream, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db
'''
# the line of rnn_backward's loop that makes its upstream gradient, right or with a bug: None
# (right), "no_carry" (the carried gradient dropped), "writes_dh" (the carry written into the
# caller's dh, which the course's loop reads again); tests/styles.py fills its torch twin alike
UPSTREAMS = {None: "upstream = dh[:, t, :] + dprev_h",
             "no_carry": "upstream = dh[:, t, :]",
             "writes_dh": "dh[:, t, :] = dprev_h + dh[:, t, :]\n        upstream = dh[:, t, :]"}
BACKWARD = "def rnn_backward(dh, cache):"


def cs231n_source(bug=None) -> str:
    """The template with ``bug`` (a key of :data:`UPSTREAMS`)."""
    return CS231N.replace("UPSTREAM", UPSTREAMS[bug])


def run_first(source: str, body: str) -> str:
    """``source`` with ``body`` run first thing in rnn_backward."""
    return source.replace(BACKWARD, BACKWARD + "\n" + "\n".join("    " + line for line in body.splitlines()))


RIGHT = cs231n_source()
# the mistakes, each a one-line change of the right file; each must be a disagree
WRONG = {
    "no_carry": cs231n_source("no_carry"),
    "transposed": RIGHT.replace("dz.dot(Wh.T)", "dz.dot(Wh)"),
    "derivative_at_preactivation": RIGHT.replace("dz = dnext_h * (1 - next_h ** 2)",
                                                 "dz = dnext_h * (1 - np.arctanh(np.clip(next_h, -0.999, 0.999)) ** 2)"),
    "bias_not_summed": RIGHT.replace("dz.sum(axis=0)", "dz.mean(axis=0)"),
}
CHEAT = """
import comparisons.check.checker, comparisons.check.compare, reference.torch_autograd
comparisons.check.checker.judge = comparisons.check.checker.compare = comparisons.check.compare.compare = None
reference.torch_autograd.loss_and_grads = None
"""
# hostile: (source, verdict). The cheat returns wrong gradients after disarming the suite in
# its own process; the others are right and must still agree whatever they try on the side
HOSTILE = {
    "cheat": (CHEAT + WRONG["transposed"], "disagree"),
    "flood": (run_first(RIGHT, "print('x' * 200_000)"), "agree"),
    "writes_outside": (run_first(RIGHT, "import os\n"
                                     "for p in ('/tmp/bptt-xval-bench-was-here', os.path.expanduser('~/../x')):\n"
                                     "    try:\n        open(p, 'w').write('hi')\n    except OSError:\n        pass"),
                       "agree"),
    "reads_grader": (run_first(RIGHT, "import os\ntry:\n    os.listdir('/')\n    open('/etc/passwd').read()\n"
                                   "except OSError:\n    pass"), "agree"),
}
SLOW = run_first(RIGHT, "import time\nwhile True:\n    time.sleep(1)")


def kind_of(i: int) -> str:
    """Submission ``i``'s kind, out of every 50: 35 right, 9 wrong, 5 hostile, 1 slow."""
    r = i % 50
    return "right" if r < 35 else "wrong" if r < 44 else "hostile" if r < 49 else "slow"


def submission(i: int) -> tuple[str, str, str]:
    """(file name, source, the verdict it must get) of submission ``i``."""
    kind = kind_of(i)
    name = f"student{i:05d}.py"
    if kind == "right":
        # a comment of its own: no two files alike, as in a real class
        return name, f"# student {i}\n" + RIGHT, "agree"
    if kind == "wrong":
        bug = list(WRONG)[i % len(WRONG)]
        return name, f"# student {i}: {bug}\n" + WRONG[bug], "disagree"
    if kind == "hostile":
        trick = list(HOSTILE)[i % len(HOSTILE)]
        source, verdict = HOSTILE[trick]
        return name, f"# student {i}: {trick}\n" + source, verdict
    return name, f"# student {i}: never returns\n" + SLOW, "timeout"


def write_class(folder, n: int) -> dict:
    """Write submissions 0 .. n-1 into ``folder``; returns file name -> the verdict it must get."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of submissions; got {n!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(n):
        name, source, verdict = submission(i)
        (folder / name).write_text(source)
        expected[name] = verdict
    return expected
