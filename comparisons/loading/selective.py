"""Which top-level statements run: imports, definitions and *simple* assignments, once
every name they read is defined; loops, calls, file reads, argument parsing and what
depends on them are skipped and named. Failed imports bind a placeholder (``Missing``).
"""

from __future__ import annotations

import abc
import ast
import builtins
import types



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
