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

TIMEOUT = 20.0
#: builtins whose call computes a value and touches nothing outside the process
PURE_BUILTINS = {"abs", "bool", "complex", "dict", "divmod", "enumerate", "float", "frozenset", "int", "isinstance",
                 "len", "list", "max", "min", "pow", "range", "reversed", "round", "set", "slice", "sorted", "str",
                 "sum", "tuple", "zip", "type", "object", "map", "filter", "chr", "ord", "bytes", "hash", "iter",
                 "next", "all", "any", "repr", "format", "super", "property", "staticmethod", "classmethod"}
#: modules whose functions compute (a call of one is a simple value), but for these names
NUMERIC_MODULES = {"numpy", "math", "torch", "jax", "scipy", "random", "cmath", "fractions", "decimal",
                   "collections", "functools", "itertools", "operator", "string"}
INPUT_OUTPUT = {"load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "memmap", "save", "savez", "savetxt",
                "savez_compressed", "open", "tofile", "input", "DataSource", "read", "urlopen", "hub", "download"}


class LoadError(Exception):
    """The file cannot be loaded: one line that names the file, the line and the cause."""


@dataclass
class Skipped:
    where: str          # "line 12" or "cell 4, line 2"
    text: str           # the statement's first line, shortened
    why: str
    names: set = field(default_factory=set)    # the globals it would have set
    syntax: bool = False                       # it could not be parsed (else: parsed, not run)

    def __str__(self):
        return f"{self.where} `{self.text}` ({self.why})"


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


# --- reading the source: .py (Python 3 or 2) and .ipynb ------------------------------------

@dataclass
class _Chunk:
    source: str
    filename: str       # what tracebacks show
    cell: int | None    # the notebook's cell number (1-based), None for a .py


#: a line IPython runs as a shell command without its % (automagic): the command, then nothing
#: that makes it Python (an assignment, a call, an attribute, an index)
AUTOMAGIC = re.compile(r"^(cd|ls|pwd|ll|cat|mkdir|rm|cp|mv|pip|conda)(\s+(?![=(.\[+\-*/%<>!]).*)?\s*$")


def _notebook_chunks(path: Path, data: bytes | None = None) -> tuple[list, list]:
    """(the code cells as chunks, the cells dropped); ``data``: the notebook's bytes where
    they were read already (the grader reads a submission once, never by its path again)."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8") if data is None else data.decode("utf-8"))
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path.name}: not a Jupyter notebook ({type(exc).__name__}: {exc})") from None
    chunks, dropped = [], []
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = source.splitlines()
        if lines and lines[0].lstrip().startswith("%%"):
            magic = lines[0].split()[0]
            if magic not in ("%%time", "%%timeit", "%%capture"):
                dropped.append(Skipped(f"cell {number}", lines[0].strip()[:60], f"a {magic} cell: not Python"))
                continue
            lines[0] = ""
        for i, line in enumerate(lines):
            stripped = line.lstrip()
            # IPython's own syntax: magics, shell escapes, `x = !ls`, `np.dot?` help
            if stripped.startswith(("%", "!")) or re.match(r"^\w[\w.]*\s*=\s*[!%]", stripped) or \
                    re.match(r"^[\w.]+\?+$", stripped):
                lines[i] = line[:len(line) - len(stripped)] + "pass"
            elif AUTOMAGIC.match(line):
                # `cd '/content/drive/...'` without its %: IPython's automagic, not Python
                dropped.append(Skipped(f"cell {number}, line {i + 1}", stripped[:60],
                                       "an IPython automagic (a shell command without %): not Python"))
                lines[i] = "pass"
        chunks.append(_Chunk("\n".join(lines) + "\n", f"{path} [cell {number}]", number))
    return chunks, dropped


def where(filename: str, line: int) -> str:
    """'line 12' or 'cell 4, line 2' for a compiled chunk's filename and line."""
    m = re.search(r" \[cell (\d+)\]$", filename)
    return f"cell {m.group(1)}, line {line}" if m else f"line {line}"


def describe(filename: str, line: int) -> str:
    """'student.py, line 12' or 'assignment.ipynb, cell 4, line 3'."""
    name = Path(re.sub(r" \[cell \d+\]$", "", filename)).name
    return f"{name}, {where(filename, line)}"


# --- Python 2 -------------------------------------------------------------------------------

PY2_NAMES = {"xrange": "range", "raw_input": "input", "unicode": "str", "basestring": "str", "long": "int"}
PY2_METHODS = {"iteritems": "items", "itervalues": "values", "iterkeys": "keys"}


def _py2_tokens(source: str) -> tuple[str, list]:
    """``print x`` -> ``print(x)``, ``except E, e`` -> ``except E as e``, ``.iteritems()``
    -> ``.items()``, by tokens (comments and strings untouched). Returns (source, notes)."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    pos = lambda rc: offsets[rc[0] - 1] + rc[1]   # noqa: E731
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source, []
    edits, notes = [], []
    starts = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}
    for i, tok in enumerate(tokens):
        previous = tokens[i - 1] if i else None
        at_start = previous is None or previous.type in starts or (previous.type == tokenize.OP and previous.string in (":", ";"))
        if tok.type == tokenize.NAME and tok.string == "print" and at_start:
            nxt = tokens[i + 1]
            if nxt.type == tokenize.OP and nxt.string in ("(", "=", ".", "[", ","):
                continue                                     # already a call (or a name)
            # the statement runs to the NEWLINE (or a ;) at bracket depth 0
            depth, j = 0, i + 1
            while j < len(tokens):
                t = tokens[j]
                if t.type == tokenize.OP and t.string in "([{":
                    depth += 1
                elif t.type == tokenize.OP and t.string in ")]}":
                    depth -= 1
                elif depth == 0 and (t.type in (tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER)
                                     or (t.type == tokenize.OP and t.string == ";")):
                    break
                j += 1
            start, end = pos(nxt.start), pos(tokens[j].start)
            body = source[start:end].rstrip()
            stream = ""
            if body.startswith(">>"):
                target, _, body = body[2:].partition(",")
                stream = f"file={target.strip()}"
            trailing = body.endswith(",")
            body = body[:-1].rstrip() if trailing else body
            args = ", ".join(a for a in (body, stream, 'end=" "' if trailing else "") if a)
            edits.append((pos(tok.start), end, f"print({args})"))
            notes.append(f"line {tok.start[0]}: print statement -> print()")
        elif tok.type == tokenize.NAME and tok.string == "except":
            # except E, e:  (a comma at depth 0 before the colon)
            depth = 0
            for j in range(i + 1, len(tokens)):
                t = tokens[j]
                if t.type == tokenize.OP and t.string in "([{":
                    depth += 1
                elif t.type == tokenize.OP and t.string in ")]}":
                    depth -= 1
                elif t.type == tokenize.OP and t.string == ":" and depth == 0:
                    break
                elif t.type == tokenize.OP and t.string == "," and depth == 0:
                    edits.append((pos(t.start), pos(t.end), " as"))
                    notes.append(f"line {t.start[0]}: except E, e -> except E as e")
                    break
        elif tok.type == tokenize.NAME and tok.string in PY2_METHODS and previous is not None \
                and previous.string == ".":
            edits.append((pos(tok.start), pos(tok.end), PY2_METHODS[tok.string]))
            notes.append(f"line {tok.start[0]}: .{tok.string}() -> .{PY2_METHODS[tok.string]}()")
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source, notes


class _IndexDivision(ast.NodeTransformer):
    """``/`` inside an index or a ``range()`` becomes ``//``: in Python 2 an index built with
    ``/`` had integer operands (a float index is an error there too), whose ``/`` is ``//``."""

    def __init__(self):
        self.notes = []

    def _floor(self, node):
        for sub in ast.walk(node):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Div):
                sub.op = ast.FloorDiv()
                self.notes.append(f"line {sub.lineno}: `/` in an index -> `//` (Python 2 divides integers so)")
        return node

    def visit_Subscript(self, node):
        self.generic_visit(node)
        node.slice = self._floor(node.slice)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("range", "xrange"):
            node.args = [self._floor(a) for a in node.args]
        return node


def _future_division(tree) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "division" for a in n.names)
               for n in tree.body)


def _speaks_python2(tree) -> bool:
    return any(isinstance(n, ast.Name) and n.id in PY2_NAMES for n in ast.walk(tree))


_PY2_HINTS = [(r"^\s*exec\s+[^(=]", "exec statement: write exec(code)"),
              (r"`", "backquotes: write repr(x)"),
              (r"\b0\d+\b", "octal literal: write 0o17 for 017"),
              (r"\bur?['\"]", "ur'' string: write r''"),
              (r"<>", "`<>`: write `!=`"),
              (r"^\s*raise\s+\w+\s*,", "raise E, msg: write raise E(msg)")]


def _fix_for(line: str) -> str:
    for pattern, fix in _PY2_HINTS:
        if re.search(pattern, line):
            return f"Python 2 {fix}"
    return "fix the syntax (or, if it is Python 2, write it as Python 3)"


def _blocks(source: str) -> list:
    """The top-level blocks of a source that does not parse: (first line, text) each, a
    block starting at every line at column 0 that does not continue the one before."""
    lines = source.splitlines(keepends=True)
    blocks, start = [], 0
    continuing = ("else", "elif", "except", "finally", ")", "]", "}", "#")
    for i, line in enumerate(lines):
        if i == 0 or not line.strip() or line[0].isspace() or line.startswith(continuing):
            continue
        before = lines[i - 1].rstrip()
        if before.endswith(("\\", ",", "(", "[", "{")) or before.startswith("@"):
            continue
        blocks.append((start + 1, "".join(lines[start:i])))
        start = i
    blocks.append((start + 1, "".join(lines[start:])))
    return blocks


def _parse(chunk: _Chunk, rewrites: list, skipped: list):
    """The chunk's statements (line numbers of the chunk), Python 2 rewritten where it must be."""
    label = chunk.filename
    prefix = "" if chunk.cell is None else f"cell {chunk.cell}, "
    try:
        tree = ast.parse(chunk.source, label)
        python2 = _speaks_python2(tree)
        source = chunk.source
    except SyntaxError:
        source = chunk.source
        if _mixes_tabs(source):
            # Python 2 read a tab as reaching the next multiple of 8 columns; Python 3 refuses the mix
            source = "".join(_expand_indent(line) for line in source.splitlines(keepends=True))
            rewrites.append(prefix + "tabs in indentation expanded to 8 columns, as Python 2 read them")
        source, notes = _py2_tokens(source)
        python2 = True
        rewrites += [prefix + n for n in notes]
        try:
            tree = ast.parse(source, label)
        except SyntaxError:
            tree = None
    if tree is None:
        # parse block by block: a Python 2 line in a function the check never calls must not
        # stop the others from being checked (only a block that fails is lost, and named)
        body = []
        for first, text in _blocks(source):
            padded = "\n" * (first - 1) + text
            try:
                body += ast.parse(padded, label).body
            except SyntaxError as exc:
                line = exc.lineno or first
                original = chunk.source.splitlines()          # the rewrite keeps every line where it was
                bad = (original[line - 1] if 0 < line <= len(original) else "").strip()
                skipped.append(Skipped(f"{prefix}line {line}", bad[:60], f"SyntaxError: {exc.msg}; {_fix_for(bad)}",
                                       _defined_names(text), syntax=True))
        tree = ast.Module(body=body, type_ignores=[])
    if python2:
        if not _future_division(tree):
            division = _IndexDivision()
            tree = ast.fix_missing_locations(division.visit(tree))
            rewrites += [prefix + n for n in dict.fromkeys(division.notes)]
        used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in PY2_NAMES})
        rewrites += [f"{prefix}{n} -> {PY2_NAMES[n]}" for n in used]
    linecache.cache[label] = (len(source), None, source.splitlines(keepends=True), label)
    return tree, python2


def _mixes_tabs(source: str) -> bool:
    indents = [line[:len(line) - len(line.lstrip(" \t"))] for line in source.splitlines()]
    return any("\t" in i for i in indents) and any(" " in i for i in indents)


def _expand_indent(line: str) -> str:
    body = line.lstrip(" \t")
    return line[:len(line) - len(body)].expandtabs(8) + body


def _defined_names(text: str) -> set:
    return set(re.findall(r"^(?:def|class)\s+(\w+)", text, flags=re.M)) | \
        set(re.findall(r"^(\w+)\s*=", text, flags=re.M))


# --- which top-level statements run ---------------------------------------------------------

def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


class _Simple(ast.NodeVisitor):
    """Is an expression a simple value (module docstring)? ``why`` says what is not."""

    def __init__(self, bound: set, modules: dict, skipped_names: dict):
        self.bound, self.modules, self.skipped_names = bound, modules, skipped_names
        self.why = None
        self.local = set()

    def fail(self, why):
        if self.why is None:
            self.why = why

    def visit_Name(self, node):
        if node.id in self.local or node.id in self.bound:
            return
        if node.id in self.skipped_names:
            self.fail(f"reads `{node.id}`, not run ({self.skipped_names[node.id]})")
        elif not hasattr(builtins, node.id):
            self.fail(f"reads `{node.id}`, which is not defined")

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in PURE_BUILTINS and func.id not in self.bound:
                pass
            elif func.id == "open" or func.id == "input":
                return self.fail(f"calls {func.id}(): reads outside the program")
            elif isinstance(self.bound.get(func.id), type):
                if not _inert_class(self.bound[func.id], self.bound.get("__name__")):
                    return self.fail(f"calls {func.id}(...), defined in the file")
            elif self.modules.get(func.id) in NUMERIC_MODULES:
                pass                                         # from numpy import zeros
            else:
                return self.fail(f"calls {func.id}(...)")
        elif isinstance(func, ast.Attribute):
            root = _root(func)
            chain = ast.unparse(func)
            if root in self.modules and self.modules[root] in NUMERIC_MODULES:
                if any(part in INPUT_OUTPUT for part in chain.split(".")):
                    return self.fail(f"calls {chain}(): reads or writes files")
            elif root in self.bound and _plain_value(self.bound[root]):
                if func.attr in INPUT_OUTPUT:                 # a_string.read? an array's tofile
                    return self.fail(f"calls {chain}()")
            else:
                return self.fail(f"calls {chain}()")
        else:
            return self.fail("calls a computed function")
        self.generic_visit(node)

    def _comprehension(self, node):
        for gen in node.generators:
            self.local |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
        self.generic_visit(node)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Lambda(self, node):
        pass                                                  # defining it runs nothing

    def visit_Await(self, node):
        self.fail("awaits")

    visit_Yield = visit_YieldFrom = visit_NamedExpr = visit_Await


# bases whose construction runs no code of the user's or a course's: the language's and the
# standard library's plain objects (object, dict, threading.local, abc.ABC, typing.NamedTuple...)
INERT_BASE_MODULES = {"builtins", "_thread", "threading", "_threading_local", "collections", "abc", "typing"}


def _inert_class(cls, module_name) -> bool:
    """Does making an instance of ``cls`` run nothing but the standard library's constructors?
    True for a class of the file (or its file's bases) that defines no __init__, __new__ or
    __post_init__ (a dataclass's generated __init__ counts) and has no metaclass of its own,
    on standard-library bases: manual.rnn's ``_workspace = _Workspace()`` (a threading.local
    holding class attributes), a student's ``cache = Cache()``. A class with an __init__ may
    load data or train (``model = CharRNN(...)``): it is not run."""
    if type(cls) not in (type, abc.ABCMeta):
        return False
    for k in cls.__mro__:
        if k is object or k.__module__ in INERT_BASE_MODULES:
            continue
        if k.__module__ != module_name or any(m in vars(k) for m in ("__init__", "__new__", "__post_init__")):
            return False
    return True


def _plain_value(value) -> bool:
    """An array, number, string or container: its methods compute (a user's object's may train)."""
    module = type(value).__module__.split(".")[0]
    return module in ("builtins", "numpy", "torch", "jax", "jaxlib") and not callable(value)


def _target_names(targets) -> set:
    names = set()
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
    return names


def _import_only(nodes) -> bool:
    return all(isinstance(n, (ast.Import, ast.ImportFrom, ast.Pass, ast.Expr, ast.FunctionDef, ast.ClassDef,
                              ast.Assign)) and (not isinstance(n, ast.Expr) or isinstance(n.value, ast.Constant))
               and (not isinstance(n, ast.Assign) or isinstance(n.value, (ast.Constant, ast.Name, ast.Attribute)))
               for n in nodes)


def _verdict(node, state) -> str | None:
    """None: run ``node``; else why it is skipped."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                         ast.Pass, ast.Global)):
        return None
    if isinstance(node, ast.Expr):
        if isinstance(node.value, ast.Constant):
            return None
        if isinstance(node.value, ast.Call):
            return f"a top-level call of {ast.unparse(node.value.func)}()"
        return "a top-level expression"
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        if "__name__" in test:
            return "the __main__ block"
        return f"a top-level if {test[:30]}"
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return "a top-level loop"
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return "a with block (files, devices)"
    if isinstance(node, ast.Try):
        if _import_only(node.body) and all(_import_only(h.body) for h in node.handlers):
            return None
        return "a top-level try block"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        value = node.value
        if value is None:
            return None
        check = _Simple(state["bound"], state["modules"], state["skipped_names"])
        check.visit(value)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, (ast.Attribute, ast.Subscript)):
                    check.visit(sub.value)
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            check.visit(ast.Name(id=node.target.id, ctx=ast.Load()))     # x += 1 reads x
        return check.why
    if isinstance(node, ast.Assert):
        return "an assert on the file's results"
    if isinstance(node, ast.Delete):
        return "a del"
    return f"a top-level {type(node).__name__.lower()}"


class Missing:
    """What a failed (or stubbed) import binds: using it raises, naming the import."""

    def __init__(self, name: str, why: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_why", why)

    def _fail(self, *_, **__):
        raise ImportError(f"`{self._name}` is not available: {self._why}")

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Missing(f"{self._name}.{attr}", self._why)

    __call__ = __getitem__ = __iter__ = __len__ = __add__ = __mul__ = __matmul__ = _fail

    def __repr__(self):
        return f"<not available: {self._name} ({self._why})>"


class _StubModule(types.ModuleType):
    def __init__(self, name: str, why: str):
        super().__init__(name)
        self.__path__ = []                                   # a package: submodules stub too
        self._why = why

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Missing(f"{self.__name__}.{attr}", self._why)


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


# --- running -------------------------------------------------------------------------------

@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """SIGALRM after ``seconds`` (in the main thread; elsewhere the caller's own limit, such
    as the grader's, holds): a loop that never ends becomes a LoadError. A loop inside one C
    call (``sum(range(10**12))``) never returns to the interpreter to see the signal, nor
    lets a watchdog thread run: :func:`finishes` is the command line's answer to that."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    if not (hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")):
        # Windows has neither: a timer thread interrupts the main thread instead
        with _interrupting_timer(seconds, what):
            yield
        return

    def expired(*_):
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _interrupting_timer(seconds: float, what: str):
    """:func:`time_limit` where SIGALRM does not exist: ``_thread.interrupt_main`` from a timer
    thread raises KeyboardInterrupt in the main thread at its next bytecode; only the one the
    timer caused becomes the LoadError (a user's own Ctrl-C stays theirs)."""
    import _thread

    fired = threading.Event()

    def fire():
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)") from None
        raise
    finally:
        timer.cancel()


def finishes(load_it, seconds: float, what: str) -> None:
    """Raise LoadError unless ``load_it()`` finishes within ``seconds`` in a forked copy of
    this process (its output discarded, then it ends): a hang inside one C call can only be
    stopped from outside. For the command line's own process, before torch or JAX start
    threads; the real load follows in this process (loading runs only definitions and simple
    assignments, so twice costs milliseconds)."""
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:                                           # the copy: load, and end
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            load_it()
        finally:
            os._exit(0)
    deadline = time.monotonic() + seconds + 1.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise LoadError(f"{what} did not finish in {seconds:g} s (a loop at import time?)")


class _Expired(BaseException):
    """Not an Exception: a student's ``except Exception`` must not swallow the time limit."""


@contextlib.contextmanager
def as_user(path):
    """The student's process as they would run it: ``sys.argv == [FILE]``, stdin empty."""
    argv, stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = [str(path)], io.StringIO("")
    try:
        yield
    finally:
        sys.argv, sys.stdin = argv, stdin


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

    if not isinstance(exc, ModuleNotFoundError) or not isinstance(node, (ast.Import, ast.ImportFrom)):
        return False
    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
    helpers = HELPERS.get((module or "").split(".")[0])
    if helpers is None or getattr(exc, "name", module) != module:
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
                          f"({here}); give --path DIR, the folder holding the course's {module}.py, to use its own")
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
