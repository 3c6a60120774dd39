"""Text that came from a submission, made safe to show: capped, its control characters
escaped, and spreadsheet formulas neutralised.

Everything a child hands back or a student names (file names, printed output, exception
messages, loading notes) passes through here before it reaches the instructor's terminal
or a gradebook file. The three dangers, each measured on the landed grader (issue 40):

- **Size.** One 30 MB field made every gradebook file 30 MB: each field is capped
  (:func:`cap`), with how much was left out.
- **Control characters.** A name holding ``\\r`` or an ANSI escape redrew the grader's
  progress line ("[9/9] forged.py: agree"), and a bare ``\\r`` split a CSV row in two in a
  spreadsheet. Every C0/C1 control, bidirectional override and line separator is written
  as its escape (``\\r``, ``\\x1b``, ``\\u202e``); :func:`escape` says whether it changed
  anything, so the row can say so.
- **Formulas.** A cell beginning with ``=``, ``+``, ``-``, ``@``, tab or CR is a formula to
  Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``): OWASP's advice ("CSV
  Injection") is to prefix it with a single quote, which :func:`csv_cell` does.
"""

from __future__ import annotations

import unicodedata

#: the most characters of one field kept (names, messages), and of printed output
FIELD_MAX = 2000
OUTPUT_MAX = 20 * 1024            # characters: the grader keeps 16 KB of each stream
NAME_MAX = 200
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Cc: C0 and C1 controls; Cf: format characters (the bidirectional overrides U+202A-202E,
# U+2066-2069, zero-width joiners); Zl, Zp: line and paragraph separators (U+2028, U+2029)
_UNSAFE = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def cap(text: str, limit: int = FIELD_MAX) -> str:
    """``text`` cut at ``limit`` characters, saying how many more there were."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f" [... {len(text) - limit} more characters not kept]"


def _unsafe(ch: str, keep: str) -> bool:
    return ch not in keep and (ch in _NAMED or unicodedata.category(ch) in _UNSAFE)


def escape(text: str, keep: str = "") -> tuple[str, bool]:
    """(``text`` with every control or format character written as its escape, whether any
    was). ``keep``: characters left as they are (``"\\n"`` in printed output shown on a
    page). A backslash is doubled only where the text needed escaping, so ordinary text
    (a Windows path in a message) reads as it was."""
    if not any(_unsafe(ch, keep + "\\") for ch in text):
        return text, False
    out = []
    for ch in text:
        if not _unsafe(ch, keep):
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out), True


def clean(text, limit: int = FIELD_MAX, keep: str = "") -> tuple[str, bool]:
    """:func:`cap` then :func:`escape`: (safe text, whether characters were escaped)."""
    return escape(cap("" if text is None else str(text), limit), keep)


def terminal(text) -> str:
    """One line for the instructor's terminal: capped and escaped, newlines too."""
    return clean(text, NAME_MAX * 2)[0]


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text: a string beginning with a formula character
    gets a leading single quote (OWASP); numbers and empty cells are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
