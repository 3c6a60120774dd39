"""Issue 19 on a GPU machine (``nox -s gpu``; skipped without one): the report agrees as on
the CPU, a default check leaves the GPU's memory alone, and ``device="cuda"`` works."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).parents[1]

MEMORY = """
import torch
torch.cuda.init()
free0, total = torch.cuda.mem_get_info()
from comparisons import check_derivation
from manual import rnn
assert check_derivation(rnn.loss_and_grads, cases=50, dtype="both").ok
free1, _ = torch.cuda.mem_get_info()
print((free0 - free1) / 2**30)
"""


def test_default_check_holds_no_gpu_memory_beyond_the_context():
    out = subprocess.run([sys.executable, "-c", MEMORY], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) <= 1.0     # GiB: JAX's CUDA context, no preallocation


def test_report_agrees_on_the_gpu(tmp_path):
    from comparisons.report.data import collect
    report = collect(0, quick=False)
    assert report["summary"]["disagree"] == 0, [c["id"] for c in report["cases"] if not c["agree"]]


def test_check_with_references_on_the_gpu():
    from comparisons import check_derivation
    from manual import rnn
    assert check_derivation(rnn.loss_and_grads, cases=40, dtype="both", device="cuda").ok


def test_eecs498_code_checked_with_cuda_tensors(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    import styles
    from comparisons import check_derivation
    from comparisons import conventions
    from comparisons.cli import load_module
    path = tmp_path / "eecs498.py"
    path.write_text(styles.cs231n_source(torch=True))
    student = load_module(str(path))
    fn = conventions.cs231n(student.rnn_forward, student.rnn_backward, arrays="torch", device="cuda")
    assert check_derivation(fn, cases=12, dtype="both", device="cuda").ok
