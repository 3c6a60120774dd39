"""Python 2, rewritten in memory: ``print`` statements, ``except E, e``, ``xrange``,
``raw_input``, ``dict.iteritems``, ``/`` used as an index, and tabs mixed with spaces
expanded as Python 2 did (8 columns); what cannot be rewritten is named with its line.
"""

from __future__ import annotations

import ast
import io
import linecache
import re
import tokenize

from comparisons.loading.errors import Skipped
from comparisons.loading.sources import _Chunk

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
