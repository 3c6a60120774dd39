"""What loading says: a file that cannot be loaded (``LoadError``, one line) and a
statement it did not run (``Skipped``).
"""

from __future__ import annotations

from dataclasses import dataclass, field



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
