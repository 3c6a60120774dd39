"""The gradebook in a real database: ``OUT/gradebook.sqlite`` (the standard library's sqlite3).

One transaction per finished submission: a row is written once, in O(1) (not the whole book
again, as rewriting ``gradebook.json`` after every submission did: O(N^2) bytes for a class
of N); a crash loses at most the submission being graded; a run again resumes from what is
there; and the database can be read while grading runs (write-ahead logging: readers never
wait for the grader). ``gradebook.json``, ``.csv`` and ``.html`` are exported from it once, at
the end.

    meta(part TEXT, key TEXT, value TEXT)             settings, fingerprint, cases, ... as JSON
    rows(part TEXT, name TEXT, sha256 TEXT, row TEXT, graded_at REAL)

``part`` is the rubric's part ("" for a one-part grade, ``--convention X``): an assignment's
parts share one database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = ("CREATE TABLE IF NOT EXISTS meta (part TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
          "PRIMARY KEY (part, key))",
          "CREATE TABLE IF NOT EXISTS rows (part TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, "
          "row TEXT NOT NULL, graded_at REAL NOT NULL, PRIMARY KEY (part, name))")


class Store:
    """``OUT/gradebook.sqlite``: :meth:`start` a grading run, :meth:`put` each finished row."""

    def __init__(self, path, part: str = ""):
        self.path, self.part = Path(path), part
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")          # durable at each checkpoint; WAL keeps it consistent
        with self.db:
            for statement in SCHEMA:
                self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta WHERE part = ?",
                                                             (self.part,))}

    def start(self, book: dict, *, force: bool) -> dict:
        """Begin a run for ``book`` (its settings, fingerprint, cases ...): the rows kept from a
        run of the same fingerprint (none with ``force`` or another fingerprint)."""
        keep = not force and self.meta().get("fingerprint") == book["fingerprint"]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if not keep:
                self.db.execute("DELETE FROM rows WHERE part = ?", (self.part,))
            self.db.execute("DELETE FROM meta WHERE part = ?", (self.part,))
            self.db.executemany("INSERT INTO meta VALUES (?, ?, ?)",
                                [(self.part, k, json.dumps(v, sort_keys=True)) for k, v in book.items() if k != "rows"])
        return self.rows()

    def rows(self) -> dict:
        return {name: json.loads(row) for name, row in self.db.execute(
            "SELECT name, row FROM rows WHERE part = ? ORDER BY name", (self.part,))}

    def put(self, name: str, row: dict) -> None:
        """One finished submission, in one transaction."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)",
                            (self.part, name, row.get("sha256", ""), json.dumps(row, sort_keys=True), time.time()))

    def drop(self, names) -> None:
        with self.db:
            self.db.executemany("DELETE FROM rows WHERE part = ? AND name = ?", [(self.part, n) for n in names])

    def book(self) -> dict:
        """The whole gradebook, as ``gradebook.json`` holds it."""
        return {**self.meta(), "rows": self.rows()}
