"""The results log: one SQLite row per classified (or failed) scan, committed scan by scan.

Why SQLite: one file, no server, and its write-ahead log makes each commit durable and atomic,
so a power cut or `kill -9` in the middle of a batch loses at most the scan being worked on
and never corrupts the rows before it. `synchronous=FULL` makes a commit reach the disk
before the next scan starts (a few ms on an SD card, small next to a classification).

Rows hold the file's path and sha256, the model's sha256 and the outputs as JSON; never pixel
data. A scan already logged without error for the same file hash and model hash is skipped
on the next run (unless --force), which is how an interrupted batch resumes.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,            -- UTC, ISO 8601
    file TEXT NOT NULL,            -- the path as given on the command line
    file_sha256 TEXT,              -- NULL when the file could not be read
    model_sha256 TEXT NOT NULL,
    outputs TEXT,                  -- the JSON record printed by --json (no file, no pixels)
    error TEXT,                    -- NULL when classified
    patient TEXT                   -- DICOM patient fields (JSON), only with --log-patient-id
);
CREATE INDEX IF NOT EXISTS results_done ON results (file_sha256, model_sha256) WHERE error IS NULL;
"""


class ResultsLog:
    """An open results database; use as a context manager or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.is_dir():
                raise EdgeError(f"{self.path}: the folder for the results log does not exist")
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise EdgeError(f"{self.path}: cannot use this file as a results log ({exc})") from None

    def __enter__(self) -> "ResultsLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def find(self, file_sha256: str, model_sha256: str) -> dict[str, Any] | None:
        """The latest successful record for this file and model, with its `time`, or None."""
        row = self._db.execute(
            "SELECT time, outputs FROM results WHERE file_sha256 = ? AND model_sha256 = ? AND error IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (file_sha256, model_sha256),
        ).fetchone()
        if row is None:
            return None
        record = json.loads(row[1]) if row[1] else {}
        record["logged"] = row[0]
        return record

    def add(
        self,
        file: str,
        file_sha256: str | None,
        model_sha256: str,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        patient: dict[str, Any] | None = None,
    ) -> None:
        """Append one row in its own transaction (committed before this returns)."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        payload = json.dumps(outputs, sort_keys=False) if outputs is not None else None
        patient_json = json.dumps(patient) if patient else None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO results (time, file, file_sha256, model_sha256, outputs, error, patient) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, _text(file), file_sha256, model_sha256, payload, _text(error), patient_json),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise EdgeError(f"{self.path}: cannot write to the results log ({exc})") from None

    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first (for tests and reports)."""
        cursor = self._db.execute("SELECT * FROM results ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _text(value: str | None) -> str | None:
    """A file name that is not valid UTF-8 (bytes from an old USB stick, decoded by Python with
    surrogate escapes) is stored with those bytes written as \\udcXX, not refused by SQLite."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")
