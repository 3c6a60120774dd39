"""A Gradescope autograder for a rubric: ``bptt-xval autograder --rubric R.toml --out autograder.zip``.

Gradescope's specification (https://gradescope-autograders.readthedocs.io): the zip holds
``setup.sh`` (run once, as root, when the image is built) and ``run_autograder`` (run per
submission); the student's files are in ``/autograder/submission``; the results go to
``/autograder/results/results.json``::

    {"score": 33.0, "execution_time": 41, "output": "...", "stdout_visibility": "hidden",
     "tests": [{"name": "rnn_step", "score": 5.0, "max_score": 5.0, "output": "...",
                "visibility": "visible"}, ...]}

Here the zip holds the suite's own source and its pinned constraints, the rubric, and the
two scripts: ``setup.sh`` installs the suite (``pip install -c constraints.txt
".[grade]"``: torch's CPU wheel, JAX, bubblewrap) and makes an unprivileged user;
``run_autograder`` runs ``bptt-xval gradescope --rubric ... --root /autograder``, which
grades the one submission as ``grade --rubric`` grades a class and writes results.json.

The student's code must not raise its own score. Under the sandbox (bubblewrap, where the
container's kernel allows user namespaces) nothing of ``/autograder`` is mounted in the
child: it can neither read ``source`` nor write ``results``. Where the sandbox cannot run,
every child runs as the unprivileged user (``setpriv``), and ``source`` and ``results`` are
made root's alone (mode 0700) first. Either way results.json is written by the grader, last,
from the arrays the child returned; ``output`` says which protection held.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

#: the unprivileged user setup.sh makes, that children run as where the sandbox cannot run
USER = "bptt-student"
#: what of the suite goes into the zip (its source: setup.sh installs it)
SOURCE = ("pyproject.toml", "constraints.txt", "README.md", "bptt_xval", "comparisons", "manual", "reference")

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
cd /autograder/source
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv util-linux >/dev/null
python3 -m venv /opt/bptt-xval
/opt/bptt-xval/bin/pip install -q -c bptt-xval/constraints.txt "./bptt-xval[grade]"
id -u {user} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin {user}
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this per submission: the grader writes /autograder/results/results.json
exec /opt/bptt-xval/bin/python -m comparisons.cli gradescope --rubric /autograder/source/rubric.toml \\
    --root /autograder
"""


class SourceNotFound(ValueError):
    """The suite's source tree (pyproject.toml, constraints.txt, the packages) is not here."""


def _is_source(folder: Path) -> bool:
    try:
        meta = tomllib.loads((folder / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return meta.get("project", {}).get("name") == "bptt-xval" and all((folder / e).exists() for e in SOURCE)


def source_root(suite_root=None) -> Path:
    """Where the suite's source is: ``suite_root`` if given, else the checkout this module was
    imported from, else the working directory. An installed wheel holds no pyproject.toml or
    constraints.txt, and a zip without them would install a different torch on Gradescope, so
    a missing tree is an error, never a smaller zip."""
    if suite_root is not None:
        candidates = [Path(suite_root)]
    else:
        candidates = [Path(__file__).resolve().parents[2], Path.cwd()]
    for folder in candidates:
        if _is_source(folder):
            return folder.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise SourceNotFound(
        f"--suite: expected a bptt-xval source checkout (pyproject.toml naming bptt-xval, "
        f"{', '.join(SOURCE[1:])}); looked in {looked}. An installed suite holds no pyproject.toml "
        f"or constraints.txt: pass --suite PATH/TO/bptt-xval (a clone of the repository)")


def build(rubric_path, out, suite_root=None) -> list:
    """Write the autograder zip for ``rubric_path`` to ``out``; returns the names it holds."""
    from comparisons import atomic
    from comparisons.grading import rubric as rubrics

    rubrics.load(rubric_path)                     # a bad rubric fails here, not on Gradescope
    root = source_root(suite_root)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        def add(name: str, data: bytes, executable=False):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)

        add("setup.sh", SETUP.format(user=USER).encode(), executable=True)
        add("run_autograder", RUN.encode(), executable=True)
        add("rubric.toml", Path(rubric_path).read_bytes())
        for entry in SOURCE:
            p = root / entry
            files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()
                                                   and "__pycache__" not in f.parts and f.suffix != ".pyc")
            for f in files:
                add(f"bptt-xval/{f.relative_to(root)}", f.read_bytes())
        names = z.namelist()
    atomic.write_bytes(Path(out), buffer.getvalue())
    return names


def _lock_down(root: Path) -> str:
    """The protection a child runs under, and the folders made root's alone where it is the
    unprivileged user's (no sandbox)."""
    from comparisons.grading import sandbox

    held = sandbox.protections()
    if held.isolated:
        return f"sandbox: {held.text()}; /autograder is not mounted in the student's process"
    if os.geteuid() != 0:
        return f"no sandbox ({held.text()}) and not root: the student's code runs as this user"
    import pwd
    import subprocess
    import sys

    name = os.environ.get("BPTT_XVAL_RUN_AS", USER)
    try:
        pwd.getpwnam(name)
    except KeyError:
        return f"no sandbox ({held.text()}) and no user {name}: the student's code runs as root"
    os.environ["BPTT_XVAL_RUN_AS"] = name
    # the child's own chain (prlimit, then the interpreter), importing what a child imports
    chain = [p for p in [shutil.which("prlimit")] if p] + (["--core=0:0", "--"] if shutil.which("prlimit") else [])
    probe = sandbox.as_user([*chain, sys.executable, "-I", "-c", "import numpy"], tempfile.mkdtemp())
    if subprocess.run(probe, capture_output=True).returncode != 0:
        del os.environ["BPTT_XVAL_RUN_AS"]
        return (f"no sandbox ({held.text()}), and the user {name} cannot run {sys.executable}: the student's "
                f"code runs as root (setup.sh installs the suite where it can)")
    for folder in (root / "source", root / "results"):
        if folder.is_dir():
            os.chown(folder, 0, 0)
            os.chmod(folder, 0o700)
    return (f"no sandbox here ({held.text()}): the student's code runs as the unprivileged user "
            f"{os.environ['BPTT_XVAL_RUN_AS']}, and {root / 'source'} and {root / 'results'} are root's alone")


def run(root, rubric_path, *, progress=print) -> dict:
    """Grade ``ROOT/submission`` on the rubric; write and return ``ROOT/results/results.json``."""
    from comparisons.grading import rubric as rubrics

    started = time.perf_counter()
    root = Path(root)
    rubric = rubrics.load(rubric_path)
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    held = _lock_down(root)
    with tempfile.TemporaryDirectory(prefix="bptt-xval-gradescope-") as work:
        os.chmod(work, 0o755)
        folder = Path(work) / "class"
        student = folder / "submission"
        shutil.copytree(root / "submission", student, symlinks=True)
        summary = rubrics.grade_rubric(folder, Path(work) / "out", rubric, workers=1, progress=progress)
    # the one submission (a folder's row is named after it, however the grader spells it)
    entry = next(iter(summary["students"].values()), {"parts": {}, "total": 0.0, "feedback": []})
    tests = []
    for part in rubric.parts:
        got = entry["parts"].get(part.name, {"points": 0.0, "verdict": "not graded"})
        text = next((f for f in entry["feedback"] if f.startswith(f"{part.name}:")),
                    f"{part.name}: not graded ({got['verdict']})")
        tests.append({"name": part.name, "score": float(got["points"]), "max_score": float(part.points),
                      "output": text, "visibility": "visible"})
    results = {"score": float(entry["total"]), "execution_time": int(round(time.perf_counter() - started)),
               "output": f"{rubric.name}: {entry['total']:g} of {rubric.total:g} points. {held}.",
               "stdout_visibility": "hidden", "tests": tests}
    from comparisons import atomic
    atomic.write_text(results_dir / "results.json", json.dumps(results, indent=1) + "\n")
    return results
