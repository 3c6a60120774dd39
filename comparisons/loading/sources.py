"""Reading a file's source: a ``.py`` as it is, a notebook's code cells in order (IPython
magics, shell lines and automagics such as ``cd`` dropped and named), and where a line is
in the student's terms ("cell 4, line 2").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from comparisons.loading.errors import LoadError, Skipped

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
