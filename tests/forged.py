"""Submissions that try to forge their grade (issue 40), written as an attacker would:
each is a cs231n pair, usually with a wrong derivation (the recurrence carried back with
W_hh instead of W_hh^T), whose first forward call rewrites what the harness hands back to
the grader. The child runs as ``__main__`` and sends ``answer(record, arrays)``; every
forgery here replaces that function in its own process, the way the landed grader's
serialisation was patched."""

import hostile

WRONG = hostile.SOURCE.replace("da.dot(Wh.T)", "da.dot(Wh)")
RIGHT = hostile.SOURCE


def _forge(body: str, source: str = WRONG) -> str:
    """``source`` whose first forward call replaces the harness's ``answer`` with one that
    calls ``forge(record, arrays, real)`` (``body`` its lines) instead."""
    attack = ("import sys\n"
              "main = sys.modules['__main__']\n"
              "real = main.answer\n"
              "def forge(record, arrays, real=real):\n"
              + "\n".join("    " + line for line in body.strip("\n").splitlines()) + "\n"
              "main.answer = forge\n"
              "print('FORGING')")
    return source.replace("ATTACK", "\n".join("    " + line for line in attack.splitlines()))


#: the old attack (a): the record names no gradients; the arrays still go
NAMES_NO_GRADIENTS = _forge("""
for c in record['cases']:
    c.update(grads=[], dL_dh=False, dL_dx=False)
return real(record, arrays)""")
#: (b) a clip bound of its own, and a note saying the gradients agree
OWN_CLIP = _forge("""
record.update(clip=1e-300, clip_note='clipped: agrees')
return real(record, arrays)""")
#: (c) every case's status "agree", and no arrays to compare
STATUS_AGREE = _forge("""
for c in record['cases']:
    c['status'] = 'agree'
return real(record, {})""")
#: only the loss goes back
DROP_GRADIENTS = _forge("""
return real(record, {k: v for k, v in arrays.items() if k.endswith('/loss')})""")
#: malformed: the record a JSON list; not a ZIP at all; an array that inflates past its shape
RECORD_IS_A_LIST = _forge("""
import io, json, zipfile
b = io.BytesIO()
with zipfile.ZipFile(b, 'w') as z:
    z.writestr('record.json', json.dumps([1, 2, 3]))
return b.getvalue()""")
NOT_A_ZIP = _forge("""
import numpy as np, io
b = io.BytesIO()
np.save(b, np.zeros(3))
return b.getvalue()""")
BOMB = _forge("""
import io, json, zipfile
import numpy as np
b = io.BytesIO()
with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('record.json', json.dumps(record))
    for k, v in arrays.items():
        m = io.BytesIO()
        if k.endswith('/W_hh'):
            np.lib.format.write_array_header_1_0(m, {'descr': '<f8', 'fortran_order': False, 'shape': (16384, 16384)})
            m.write(bytes(64 * 2**20))          # 64 MB of zeros: ~64 KB deflated
        else:
            np.lib.format.write_array(m, np.asarray(v))
        z.writestr(k + '.npy', m.getvalue())
return b.getvalue()""")
#: a 30 MB reason, and =HYPERLINK in a reason of its own
HUGE_FIELD = _forge("""
for c in record['cases']:
    c.update(status='raised', reason='A' * (30 * 2**20))
return real(record, {})""")
FORMULA_REASON = _forge("""
for c in record['cases']:
    c.update(status='raised', reason='=HYPERLINK("http://evil.example/","click")')
return real(record, {})""")


def disk_hog(megabytes: int, files: int) -> str:
    """A correct pair that first tries to write ``megabytes`` into one file and ``files``
    files in its own folder, saying how far it got."""
    return hostile.submission(f"""
import os
try:
    with open('big.bin', 'wb') as f:
        for _ in range({megabytes}):
            f.write(bytes(2**20))
    print('GOT big')
except OSError as exc:
    print('BLOCKED big', os.path.getsize('big.bin') // 2**20, 'MB', type(exc).__name__)
made = 0
try:
    for i in range({files}):
        open(f'f{{i}}', 'w').close()
        made += 1
    print('GOT files', made)
except OSError as exc:
    print('BLOCKED files after', made, type(exc).__name__)
""")


def shadowed_stdlib_folder() -> dict:
    """A student's folder: a correct pair, and a ``json.py`` of its own that announces
    itself; the pair prints the address-space limit it runs under on its first call."""
    main = hostile.submission("import resource\nprint('LIMIT', resource.getrlimit(resource.RLIMIT_AS)[0])")
    return {"solution.py": main,
            "json.py": "print('GOT shadowed json')\nfrom _json import *\n",
            "resource_probe.py": "import resource\nprint('GOT early', resource.getrlimit(resource.RLIMIT_AS))\n"}


DYNAMIC_TORCH = hostile.submission("""
import importlib
try:
    importlib.import_module('to' + 'rch')
    print('GOT torch')
except ImportError as exc:
    print('BLOCKED torch', exc)
""")
STATIC_TORCH = "import torch\n" + RIGHT.replace("ATTACK", "    pass")


def min_char(clip_block: str, zero: bool) -> str:
    """A min-char-rnn file (tests/styles.py's) whose gradients are all zero when ``zero``,
    with ``clip_block`` (lines of lossFun's body) in place of its clip."""
    import styles

    source = styles.MIN_CHAR.replace("BIAS_UPDATE", "dbh += dhraw").replace("CLIP", clip_block)
    if zero:
        source = source.replace("    return loss, dWxh", "    dWxh, dWhh, dWhy, dbh, dby = (0 * dWxh, 0 * dWhh, 0 * dWhy, "
                                "0 * dbh, 0 * dby)\n    return loss, dWxh")
    return source


#: (d) zero gradients behind a clip that never runs; the same clip live; a faithful clip at 5
DEAD_CLIP = min_char("if False:\n        for d in (dWxh, dWhh, dWhy, dbh, dby):\n"
                     "            np.clip(d, -1e-300, 1e-300, out=d)", zero=True)
LIVE_TINY_CLIP = min_char("for d in (dWxh, dWhh, dWhy, dbh, dby):\n        np.clip(d, -1e-300, 1e-300, out=d)",
                          zero=False)
FAITHFUL_CLIP = min_char("for d in (dWxh, dWhh, dWhy, dbh, dby):\n        np.clip(d, -5, 5, out=d)", zero=False)
