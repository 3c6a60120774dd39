"""manual.rnn reuses its forward buffers between calls: nothing returned may point into them."""

import sys
import threading

import numpy as np

from conftest import small_problem
from manual import rnn


def _copy(g):
    return g.loss, {k: v.copy() for k, v in g.grads.items()}, g.dL_dh.copy()


def _same(a, b):
    assert a[0] == b[0]
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])
    np.testing.assert_array_equal(a[2], b[2])


def test_results_survive_later_calls_of_the_same_and_other_shapes():
    p1, x1, y1 = small_problem(T=7, B=3, H=5, seed=1, h0="batch")
    p2, x2, y2 = small_problem(T=7, B=3, H=5, seed=2)
    p3, x3, y3 = small_problem(T=4, B=2, H=6, seed=3, dtype=np.float32)
    first = rnn.loss_and_grads(p1, x1, y1)
    kept = _copy(first)
    rnn.loss_and_grads(p2, x2, y2)                 # same shape: the same buffers
    rnn.loss_and_grads(p3, x3, y3)                 # another shape and dtype: new buffers
    _same(_copy(first), kept)                      # the first result was not overwritten
    _same(_copy(rnn.loss_and_grads(p1, x1, y1)), kept)   # and recomputing gives it bit for bit
    for name in ("sigmoid", "relu", "identity"):   # e is built in a's memory for every phi'
        rnn.release_workspace()
        fresh = _copy(rnn.loss_and_grads(p2, x2, y2, hidden=name))
        rnn.loss_and_grads(p1, x1, y1, hidden=name)
        _same(_copy(rnn.loss_and_grads(p2, x2, y2, hidden=name)), fresh)


def test_the_public_forward_allocates_unless_given_buffers():
    p, x, _ = small_problem(T=5, B=2, H=4)
    f1 = rnn.forward(p, x, "tanh", "identity")
    f2 = rnn.forward(p, x, "tanh", "identity")
    assert not np.shares_memory(f1.h, f2.h)
    a, h = rnn.workspace(5, 2, 4, x.dtype)
    f3 = rnn.forward(p, x, "tanh", "identity", buffers=(a, h))
    assert f3.h is h and f3.a is a
    np.testing.assert_array_equal(f3.h, f1.h)


def test_each_thread_has_its_own_workspace():
    # one shape for all, so shared buffers would be reused across threads; a tiny switch
    # interval makes the threads interleave inside the time loops
    problems = [small_problem(T=200, B=4, H=8, seed=s) for s in range(4)]
    expected = [_copy(rnn.loss_and_grads(*pr)) for pr in problems]
    got = {i: [] for i in range(4)}

    def work(i):
        for _ in range(10):
            got[i].append(_copy(rnn.loss_and_grads(*problems[i])))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for i in range(4):
        assert len(got[i]) == 10
        for result in got[i]:
            _same(result, expected[i])


def test_workspace_beyond_the_cap_is_fresh_and_not_kept(monkeypatch):
    monkeypatch.setattr(rnn, "WORKSPACE_MAX_BYTES", 1000)
    rnn.release_workspace()
    first, second = rnn.workspace(10, 2, 8, np.float64), rnn.workspace(10, 2, 8, np.float64)
    assert not np.shares_memory(first[0], second[0])       # 2 * 11 * 2 * 8 * 8 bytes > 1000
    assert rnn.workspace(2, 2, 2, np.float64)[0] is rnn.workspace(2, 2, 2, np.float64)[0]
    p, x, y = small_problem(T=10, B=2, H=8)
    np.testing.assert_array_equal(rnn.loss_and_grads(p, x, y).dL_dh, rnn.loss_and_grads(p, x, y).dL_dh)
