"""Taking a student's functions out of a file as it was handed in, without running the file.

Real files are scripts: they read ``input.txt``, parse ``sys.argv`` and train at top level;
they live in notebooks, import the course's helpers, and some still speak Python 2. Running
such a file to reach its ``lossFun`` hangs, exits or reads the tool's own arguments. So the
file is read as a syntax tree and only what its functions need is run, one top-level
statement at a time, in order:

- run: imports, ``def`` and ``class``, docstrings, and assignments whose value is *simple*:
  constants, arithmetic, containers and calls of pure builtins or of NumPy / math / torch
  (``hidden_size = 100``, ``Wxh = np.random.randn(hidden_size, vocab_size) * 0.01``), or
  instances of the file's classes that have no constructor of their own (``cache = Cache()``,
  :func:`_inert_class`), once every name they read is defined;
- skipped, each named with its line and why: loops, ``with``, ``if`` (``__main__`` blocks
  among them), top-level calls (``print``, ``train()``), instances of classes whose
  ``__init__`` may load or train (``model = CharRNN(...)``), file reads (``open``,
  ``np.load``), argument parsing, and assignments that read a skipped name
  (``vocab_size = len(chars)`` when ``chars`` came from the data).

An import that fails (a course helper's ``torchvision``, a module not installed) binds a
placeholder that names the failure when it is used, and is listed; ``stubs`` replaces
modules by such placeholders on purpose (a heavy import the check does not need). The
file's folder, the current folder and ``paths`` are importable, as when the student runs
it; course helpers found there are loaded the same selective way. Notebooks: code cells in
order, IPython magics and shell lines dropped, messages in cell numbers. Python 2: ``print``
statements, ``except E, e``, ``xrange``, ``raw_input``, ``dict.iteritems`` and ``/`` used as
an index rewritten in memory and listed; what cannot be rewritten is one line naming the
line and the fix, or, in a function the check does not need, skipped and listed.

While the file loads, ``sys.argv`` is ``[FILE]`` and stdin is empty: the tool's own
arguments and terminal are not the student's. Loading has a time limit (``timeout``):
a hang is a ``LoadError``, one line.
"""

from __future__ import annotations

import __future__
import abc
import ast
import builtins
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import linecache
import os
import re
import signal
import sys
import threading
import time
import tokenize
import types
from dataclasses import dataclass, field
from pathlib import Path


# the pieces, each a module of its own (sources, python2, selective, limits); their names are
# this package's too, as they were when loading was one module
from comparisons.loading.errors import LoadError, Skipped  # noqa: E402,F401
from comparisons.loading.limits import _Expired, _interrupting_timer, as_user, finishes, time_limit  # noqa: E402,F401
from comparisons.loading.python2 import *  # noqa: E402,F401,F403
from comparisons.loading.python2 import (_blocks, _defined_names, _expand_indent, _fix_for, _future_division,  # noqa: E402,F401
                                         _mixes_tabs, _parse, _py2_tokens, _speaks_python2)
from comparisons.loading.selective import *  # noqa: E402,F401,F403
from comparisons.loading.selective import (INERT_BASE_MODULES, INPUT_OUTPUT, NUMERIC_MODULES,  # noqa: E402,F401
                                           PURE_BUILTINS, _StubModule, _import_only, _inert_class, _plain_value,
                                           _root, _Simple, _target_names, _verdict)
from comparisons.loading.sources import AUTOMAGIC, _Chunk, _notebook_chunks, describe, where  # noqa: E402,F401

TIMEOUT = 20.0


@dataclass
class Loaded:
    """A file's module, and what loading it did not run or changed."""

    module: types.ModuleType
    path: Path
    skipped: list = field(default_factory=list)       # Skipped
    rewrites: list = field(default_factory=list)      # "line 3: print statement -> print()" (Python 2)
    functions: dict = field(default_factory=dict)     # name (Class.name for methods) -> where it is defined
    instances: dict = field(default_factory=dict, repr=False)   # class -> the one instance methods bind to
    helpers: list = field(default_factory=list)       # course helpers the suite's own definitions stood in for

    def function(self, name: str):
        """``name`` or ``Class.name`` of the file; a method is bound to an instance made for
        the check (``Class()`` when it takes no arguments, else without running ``__init__``)."""
        owner, _, attr = name.rpartition(".")
        if not owner:
            fn = getattr(self.module, name, None)
            return fn if callable(fn) else None
        cls = getattr(self.module, owner, None)
        if not isinstance(cls, type) or not callable(getattr(cls, attr, None)):
            return None
        if cls not in self.instances:        # one per class: its __init__ runs (at most) once
            self.instances[cls] = _instance(cls)
        return getattr(self.instances[cls], attr)

    def skipped_global(self, name: str) -> Skipped | None:
        """The skipped statement that would have defined global ``name``, if any."""
        for s in self.skipped:
            if name in s.names:
                return s
        return None

    def report_lines(self, limit: int = 12) -> list:
        """What the output says of loading: the Python 2 rewrites and what was not run."""
        lines = list(self.helpers)
        if self.rewrites:
            shown = "; ".join(self.rewrites[:limit]) + (f"; ... {len(self.rewrites) - limit} more"
                                                       if len(self.rewrites) > limit else "")
            lines.append(f"rewritten from Python 2 (in memory, the file is unchanged): {shown}")
        if self.skipped:
            # what was skipped for itself, each named; what only followed from it, by name
            primary = [s for s in self.skipped if ", not run (" not in s.why]
            following = [n for s in self.skipped if ", not run (" in s.why for n in sorted(s.names)]
            shown = "; ".join(map(str, primary[:limit]))
            more = f"; ... {len(primary) - limit} more (--json lists all)" if len(primary) > limit else ""
            if following:
                more += f"; and what depends on them: {', '.join(dict.fromkeys(following))}"
            lines.append(f"not run (top-level work the functions do not need): {shown}{more}")
        return lines


def _instance(cls):
    """``cls()`` when its ``__init__`` needs no argument (within a short time limit), else an
    instance made without running ``__init__``: the check sets what the method reads."""
    import inspect

    try:
        required = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = [None]
    if not required:
        try:
            with time_limit(5.0, f"{cls.__name__}()"):
                return cls()
        except (Exception, LoadError, SystemExit):
            pass
    return cls.__new__(cls)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Stubbed modules, and course helpers (``name.py`` in the file's folder or a --path
    folder) loaded selectively like the file itself."""

    def __init__(self, folders: list, stubs: set):
        self.folders, self.stubs = folders, stubs

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top in self.stubs:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if "." in fullname:
            return None
        for folder in self.folders:
            candidate = folder / f"{fullname}.py"
            if candidate.is_file():
                return importlib.util.spec_from_loader(fullname, self, origin=str(candidate))
        return None

    def create_module(self, spec):
        if spec.name.split(".")[0] in self.stubs:
            return _StubModule(spec.name, f"stubbed by --stub {spec.name.split('.')[0]}")
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        if isinstance(module, _StubModule):
            return
        origin = Path(module.__spec__.origin)
        module.__file__ = str(origin)
        _load_into(module, origin, [_Chunk(origin.read_text(encoding="utf-8", errors="replace"), str(origin), None)],
                   [])


def _statement_text(node, chunk: _Chunk) -> str:
    line = chunk.source.splitlines()[node.lineno - 1] if node.lineno <= len(chunk.source.splitlines()) else ""
    text = line.strip()
    return text if len(text) <= 44 else text[:41] + "..."


def _load_into(module, path: Path, chunks: list, skipped: list) -> Loaded:
    loaded = Loaded(module, path, skipped=list(skipped))
    namespace = module.__dict__
    state = {"bound": namespace, "modules": {}, "skipped_names": {}}
    flags = 0                  # __future__ imports apply to every later statement, as in the file
    for chunk in chunks:
        tree, python2 = _parse(chunk, loaded.rewrites, loaded.skipped)
        if python2:
            for old, new in PY2_NAMES.items():
                namespace.setdefault(old, getattr(builtins, new))
        for node in tree.body:
            here = where(chunk.filename, node.lineno)
            why = _verdict(node, state)
            if why is not None:
                s = Skipped(here, _statement_text(node, chunk), why, _bound_by(node))
                for n in s.names:
                    state["skipped_names"][n] = here
                    namespace.pop(n, None)
                loaded.skipped.append(s)
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                flags |= sum(getattr(__future__, a.name).compiler_flag for a in node.names
                             if hasattr(__future__, a.name))
            code = compile(ast.Module(body=[node], type_ignores=[]), chunk.filename, "exec", flags=flags,
                           dont_inherit=True)
            try:
                exec(code, namespace)
            except (ImportError, Exception) as exc:
                if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)):
                    raise LoadError(f"{path.name}, {here}: `{_statement_text(node, chunk)}` failed: "
                                    f"{type(exc).__name__}: {exc}") from None
                _missing_import(node, exc, here, chunk, loaded, state)
                continue
            except SystemExit as exc:
                raise LoadError(f"{path.name}, {here}: `{_statement_text(node, chunk)}` called "
                                f"sys.exit({exc.code!r})") from None
            for n in _bound_by(node):
                state["skipped_names"].pop(n, None)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    name = (alias.asname or alias.name).split(".")[0]
                    source = alias.name if isinstance(node, ast.Import) else (node.module or "")
                    state["modules"][name] = source.split(".")[0]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                loaded.functions[node.name] = here
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        loaded.functions[f"{node.name}.{item.name}"] = where(chunk.filename, item.lineno)
    return loaded


def _bound_by(node) -> set:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign):
        return _target_names(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return _target_names([node.target])
    return set()


def _missing_import(node, exc, here, chunk, loaded: Loaded, state) -> None:
    """A failed import binds placeholders (module docstring) and is listed, with its cause
    and the way round it."""
    if _course_helper(node, exc, here, chunk, loaded):
        return
    cause = f"{type(exc).__name__}: {exc}"
    origin = _helper_frame(exc)
    if origin:
        cause += f" (in {origin})"
    missing = getattr(exc, "name", None) or "it"
    why = f"import failed, {cause}; install {missing} or pass --stub {missing} if the check does not need it"
    s = Skipped(here, _statement_text(node, chunk), why)
    nodes = [node] if not isinstance(node, ast.Try) else [n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    for n in nodes:
        for alias in n.names:
            if alias.name == "*":
                continue
            name = (alias.asname or alias.name).split(".")[0]
            loaded.module.__dict__[name] = Missing(name, f"{here} `{_statement_text(node, chunk)}`: {cause}")
            s.names.add(name)
    loaded.skipped.append(s)


def _course_helper(node, exc, here, chunk, loaded: Loaded) -> bool:
    """A course's helper module not found (``from rnn_utils import *``): the suite's own
    definitions of its functions bound instead (``comparisons.course_helpers``), and said."""
    from comparisons.course_helpers import HELPERS

    if not isinstance(node, (ast.Import, ast.ImportFrom)):
        return False
    module = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name) or ""
    relative = isinstance(node, ast.ImportFrom) and node.level > 0
    # the module itself not found, or a package above it (``mytorch`` of ``mytorch.nn.activation``);
    # ``from .activation import *`` in a file loaded on its own has no package to look in
    missing = getattr(exc, "name", None) or module
    absent = isinstance(exc, ModuleNotFoundError) and (module == missing or module.startswith(missing + "."))
    if not (absent or (relative and isinstance(exc, ImportError))):
        return False
    helpers = HELPERS.get(module.split(".")[-1])
    if helpers is None or (not isinstance(node, ast.ImportFrom) and "." in module):
        return False
    bound = []
    if isinstance(node, ast.ImportFrom):
        for alias in node.names:
            names = list(helpers) if alias.name == "*" else [alias.name] if alias.name in helpers else []
            for name in names:
                loaded.module.__dict__[alias.asname or name] = helpers[name]
                bound.append(name)
    else:
        import types as _types
        loaded.module.__dict__[node.names[0].asname or module] = _types.SimpleNamespace(**helpers)
        bound = list(helpers)
    loaded.helpers.append(f"{module} not found beside the file: the suite's own {', '.join(bound)} used in its place "
                          f"({here}); give --path DIR, the folder holding the course's {module.split('.')[-1]}.py, "
                          f"to use its own")
    return True


def _helper_frame(exc) -> str | None:
    """'a4_helper.py, line 3' when the import failed inside a helper module of the course."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<") and "importlib" not in filename and Path(filename).suffix == ".py":
            found = f"{Path(filename).name}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return found


def source_trees(path, data: bytes | None = None) -> list:
    """The syntax trees of a ``.py`` or ``.ipynb`` (a notebook's code cells in order), read
    from its syntax alone (Python 2 rewritten, a block that does not parse left out): nothing
    of it runs. ``data``: its bytes, where the caller read them already."""
    file = Path(path)
    try:
        if file.suffix == ".ipynb":
            chunks = _notebook_chunks(file, data)[0]
        else:
            text = file.read_text(encoding="utf-8", errors="replace") if data is None else \
                data.decode("utf-8", errors="replace")
            chunks = [_Chunk(text, str(file), None)]
    except (LoadError, OSError):
        return []
    trees = []
    for chunk in chunks:
        try:
            trees.append(_parse(chunk, [], [])[0])
        except (RecursionError, MemoryError, ValueError):     # hostile nesting: no tree
            continue
    return trees


def defined_functions(path, data: bytes | None = None) -> set:
    """The names of the functions (``Class.name`` for methods) a ``.py`` or ``.ipynb``
    defines, read from its syntax alone: nothing of it runs (the grader's use: which file of
    a student's folder is the submission)."""
    names = set()
    for tree in source_trees(path, data):
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def imported_modules(trees) -> set:
    """The top-level modules the trees import by name: ``import torch``, ``from jax import
    grad``, ``importlib.import_module("torch")``, ``__import__("jax")`` with a literal name."""
    found = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if name in ("import_module", "__import__"):
                    found.add(node.args[0].value.split(".")[0])
    return found


def load(path, *, paths=(), stubs=(), timeout: float | None = TIMEOUT, what: str = "FILE",
         hard_timeout: bool = False) -> Loaded:
    """Load a ``.py`` or ``.ipynb`` as a module without running its top-level work (module
    docstring). ``paths``: folders of course helpers to make importable; ``stubs``: module
    names to replace by placeholders; ``hard_timeout``: see :func:`finishes` (for a
    process of the suite's own, never a user's). Raises LoadError (one line) when it cannot."""
    file = Path(path)
    if not file.is_file():
        raise LoadError(f"{what}: no such file {str(path)!r}")
    if file.suffix == ".ipynb":
        chunks, dropped = _notebook_chunks(file)
    else:
        try:
            with tokenize.open(file) as f:
                source = f.read()
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            raise LoadError(f"{what}: cannot read {str(path)!r} as Python source ({exc})") from None
        chunks, dropped = [_Chunk(source, str(file), None)], []
    folders = []
    for folder in [file.parent, Path.cwd(), *map(Path, paths)]:
        folder = folder.resolve()
        if not folder.is_dir():
            raise LoadError(f"--path: no such folder {str(folder)!r}")
        if folder not in folders:
            folders.append(folder)
    added = []
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
            added.append(str(folder))
    name = "_bptt_xval_user_" + re.sub(r"\W", "_", file.stem)
    module = types.ModuleType(name)
    module.__file__ = str(file)
    # course helpers (the file's folder, --path) load as the file does; the current folder is
    # only importable
    finder = _Finder([file.parent.resolve(), *(Path(p).resolve() for p in paths)], set(stubs))
    sys.meta_path.insert(0, finder)
    sys.modules[name] = module
    try:
        if hard_timeout and timeout:
            finishes(lambda: load(path, paths=paths, stubs=stubs, timeout=None, what=what), timeout,
                     f"{what}: loading {file.name}")
        with as_user(file), time_limit(timeout, f"{what}: loading {file.name}"):
            loaded = _load_into(module, file, chunks, dropped)
    finally:
        sys.meta_path.remove(finder)
        # registered while it loads (a dataclass needs its module there), not after: the
        # caller's process keeps no trace of the student's module, nor of the course helpers
        # it loaded (the next file, checked without --path, must not find this one's rnn_utils)
        sys.modules.pop(name, None)
        for key in [k for k, m in list(sys.modules.items()) if getattr(getattr(m, "__spec__", None), "loader", None)
                    is finder]:
            sys.modules.pop(key, None)
        # and its folders leave sys.path: another file checked in this process must not import
        # this one's course helpers (everything the file needs was imported while it loaded)
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)
    return loaded


# --- several files of one assignment ---------------------------------------------------------------

class Several:
    """Several loaded files of one assignment seen as one (``check a.py b.py``, ``check
    FOLDER/``): every file's functions (the first file to define a name keeps it), each said
    with its file, and what loading each did not run, each said with its file."""

    def __init__(self, loaded: list):
        self.parts = loaded
        self.path = loaded[0].path
        self.functions, self.owner = {}, {}
        for part in loaded:
            for name, where_ in part.functions.items():
                if name not in self.functions:
                    self.functions[name] = f"{part.path.name}, {where_}"
                    self.owner[name] = part
        self.rewrites = [f"{p.path.name}: {r}" for p in loaded for r in p.rewrites]
        self.skipped = [s for p in loaded for s in p.skipped]

    def function(self, name: str):
        part = self.owner.get(name)
        return part.function(name) if part is not None else None

    def skipped_global(self, name: str):
        for part in self.parts:
            s = part.skipped_global(name)
            if s is not None:
                return s
        return None

    def report_lines(self, limit: int = 12) -> list:
        return [f"{p.path.name}: {line}" for p in self.parts for line in p.report_lines(limit)]


def assignment_files(targets) -> list:
    """The files ``check`` reads for ``targets``: each file as given; a folder's ``*.py`` and
    ``*.ipynb`` (not its subfolders, not ``__init__.py`` or ``setup.py``), sorted."""
    files = []
    for target in targets:
        p = Path(target)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".py", ".ipynb") and f.is_file()
                            and f.name not in ("__init__.py", "setup.py", "conftest.py"))
        else:
            files.append(p)
    return list(dict.fromkeys(files))


def sibling_functions(loaded) -> dict:
    """Functions the file imports from the student's own files beside it (``from rnn_forward
    import rnn_forward``): name -> the function, for detection to find a pair split in two."""
    import inspect as _inspect

    folder = Path(loaded.path).resolve().parent
    own = Path(loaded.path).resolve()
    out = {}
    for name, value in vars(loaded.module).items():
        if name in loaded.functions or not _inspect.isfunction(value):
            continue
        source = Path(value.__code__.co_filename)
        if source.is_absolute() and source.resolve().parent == folder and source.resolve() != own:
            out[name] = value
    return out

