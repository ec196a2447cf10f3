"""The results log: one SQLite row per classified (or failed) scan, committed scan by scan.

Why SQLite: one file, no server, and its write-ahead log makes each commit durable and atomic,
so a power cut or `kill -9` in the middle of a batch loses at most the scan being worked on
and never corrupts the rows before it. `synchronous=FULL` makes a commit reach the disk
before the next scan starts (a few ms on an SD card, small next to a classification).

Rows hold the file's path and sha256, the model's sha256, the outputs as JSON and what an
overlay is drawn from (the model's heat-map, 16x16 numbers, and where it lies on the scan);
never pixel data. A scan already logged without error for the same file hash and model hash
is answered from the log on the next run (unless --force), which is how an interrupted batch
resumes; its overlay is drawn again from the logged heat-map. `--force` reads it again and the
new row supersedes the old ones of that path (kept, marked with the id of the row that replaced them).

Schema versions (`PRAGMA user_version`): 1 the first log (no `drawing`, no `superseded_by`);
2 adds both columns. An older log is brought to version 2 when it is opened; its rows stay as
they were (an old row has no heat-map: its overlay cannot be redrawn, and the run says so).
`LogReader` reads a log of any version without writing it (edge-report), even while a batch
appends to it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from edge.errors import EdgeError

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,            -- UTC, ISO 8601
    file TEXT NOT NULL,            -- the path as given on the command line
    file_sha256 TEXT,              -- NULL when the file could not be read
    model_sha256 TEXT NOT NULL,
    outputs TEXT,                  -- the JSON record printed by --json (no file, no pixels); a failure: its id, if any
    error TEXT,                    -- NULL when classified
    patient TEXT                   -- DICOM patient fields (JSON), only with --log-patient-id
);
CREATE INDEX IF NOT EXISTS results_done ON results (file_sha256, model_sha256) WHERE error IS NULL;
"""
MIGRATIONS = {  # version -> what brings a log of the version before it there
    2: (
        "ALTER TABLE results ADD COLUMN drawing TEXT",  # JSON: heat-map and geometry, what an overlay is drawn from
        "ALTER TABLE results ADD COLUMN superseded_by INTEGER",  # the id of the row that replaced this one (--force)
    ),
}


@dataclass(frozen=True)
class Entry:
    """A logged answer: the record as --json printed it (with `logged`, its UTC time), the path it
    was logged under, and what its overlay is drawn from (None for a row of a version-1 log)."""

    record: dict[str, Any]
    file: str
    drawing: dict[str, Any] | None


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
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise EdgeError(f"{self.path}: cannot use this file as a results log ({exc})") from None

    def _migrate(self) -> None:
        """Bring a log of an older schema to SCHEMA_VERSION in one transaction; refuse a newer one."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EdgeError(f"{self.path}: results log of schema {version}, written by a newer mias-edge; update mias-edge")
        if version == SCHEMA_VERSION:
            return
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    if statement.split("ADD COLUMN ")[1].split()[0] not in columns:  # a fresh table: CREATE gave version 1's
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def __enter__(self) -> "ResultsLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def find(self, file_sha256: str, model_sha256: str) -> dict[str, Any] | None:
        """The latest standing successful record for this file and model, with its `time`, or None."""
        entry = self.find_entry(file_sha256, model_sha256)
        return None if entry is None else entry.record

    def find_entry(self, file_sha256: str, model_sha256: str) -> Entry | None:
        """`find`, with the path the answer was logged under and what its overlay is drawn from."""
        row = self._db.execute(
            "SELECT time, outputs, file, drawing FROM results WHERE file_sha256 = ? AND model_sha256 = ? "
            "AND error IS NULL AND superseded_by IS NULL ORDER BY id DESC LIMIT 1",
            (file_sha256, model_sha256),
        ).fetchone()
        if row is None:
            return None
        record = json.loads(row[1]) if row[1] else {}
        record["logged"] = record.get("logged", row[0])  # a copied row keeps the time of the reading
        return Entry(record, row[2], json.loads(row[3]) if row[3] else None)

    def add(
        self,
        file: str,
        file_sha256: str | None,
        model_sha256: str,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        patient: dict[str, Any] | None = None,
        drawing: dict[str, Any] | None = None,
        supersede: bool = False,
    ) -> None:
        """Append one row in its own transaction (committed before this returns). `supersede`: the
        scan was read again (--force, or beside another partner); the rows of the same path, file
        hash and model standing so far are marked as replaced by this one, and kept. A copy under
        another path keeps its own row: two files of the same content named in one batch are two
        answers, and the report lists both."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        payload = json.dumps(outputs, sort_keys=False) if outputs is not None else None
        patient_json = json.dumps(patient) if patient else None
        drawing_json = json.dumps(drawing, separators=(",", ":")) if drawing else None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO results (time, file, file_sha256, model_sha256, outputs, error, patient, drawing) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (now, _text(file), file_sha256, model_sha256, payload, _text(error), patient_json, drawing_json),
                )
                if supersede and file_sha256 is not None:
                    self._db.execute(
                        "UPDATE results SET superseded_by = ? WHERE file = ? AND file_sha256 = ? AND model_sha256 = ? "
                        "AND id != ? AND superseded_by IS NULL",
                        (cursor.lastrowid, _text(file), file_sha256, model_sha256, cursor.lastrowid),
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


@dataclass(frozen=True)
class LoggedRow:
    """One row as a reader of the log sees it (None where a column is empty or, in a version-1
    log, absent)."""

    id: int
    time: str  # UTC, ISO 8601
    file: str  # as stored: a name that was not valid UTF-8 keeps \udcXX escapes (see `os_path`)
    file_sha256: str | None
    model_sha256: str
    outputs: dict[str, Any] | None
    error: str | None
    drawing_json: str | None  # parsed only when asked for (`drawing`): most readers never draw

    @property
    def drawing(self) -> dict[str, Any] | None:
        return json.loads(self.drawing_json) if self.drawing_json else None


class LogReader:
    """A results log opened read-only (SQLite `mode=ro`: this connection cannot write it), of any
    schema version, while edge-classify may be appending. Inside `with`, every query reads one
    snapshot (one read transaction): the rows committed when the first query ran, however many
    passes a reader makes and whatever a batch commits meanwhile (WAL lets both go on)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgeError(f"{self.path}: no such results log")
        try:
            try:
                version, columns = self._open("mode=ro")
            except sqlite3.OperationalError:
                if os.access(self.path.parent, os.W_OK):
                    raise
                # A folder this user cannot write (a read-only USB stick): SQLite cannot make the
                # -shm file a WAL log's readers share, and no batch can be appending there either.
                version, columns = self._open("mode=ro&immutable=1")
        except sqlite3.DatabaseError as exc:
            raise EdgeError(f"{self.path}: cannot read this file as a results log ({exc})") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise EdgeError(f"{self.path}: results log of schema {version}, written by a newer mias-edge; update mias-edge")
        if not {"id", "time", "file", "file_sha256", "model_sha256", "outputs", "error"} <= columns:
            self._db.close()
            raise EdgeError(f"{self.path}: not a results log (no results table of edge-classify)")
        self._drawing = "drawing" if "drawing" in columns else "NULL"
        self._standing = "superseded_by IS NULL" if "superseded_by" in columns else "1"

    def _open(self, flags: str) -> tuple[int, set[str]]:
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{flags}", uri=True, timeout=30.0, isolation_level=None)
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            return version, {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        except sqlite3.DatabaseError:
            self._db.close()
            raise

    def __enter__(self) -> "LogReader":
        self._db.execute("BEGIN")  # deferred: the snapshot is taken by the first query
        return self

    def __exit__(self, *exc_info) -> None:
        self._db.execute("COMMIT")
        self._db.close()

    def rows(self, since: str | None = None, until: str | None = None) -> Iterator[LoggedRow]:
        """The standing rows (not replaced by a later reading, `--force`) logged at `since` or after
        and before `until` (UTC ISO text, as `time`; None: no bound), oldest first, one at a time."""
        where, values = self._range(since, until)
        try:
            cursor = self._db.execute(
                f"SELECT id, time, file, file_sha256, model_sha256, outputs, error, {self._drawing} FROM results "
                f"WHERE {self._standing} AND {where} ORDER BY id", values)
            for row in cursor:
                yield LoggedRow(*row[:5], _outputs(row[5]), *row[6:])
        except sqlite3.DatabaseError as exc:  # a damaged page, a disk error
            raise EdgeError(f"{self.path}: cannot read the results log ({exc})") from None

    def replaced(self, since: str | None = None, until: str | None = None) -> int:
        """How many rows in the range were replaced by a later reading (left out by `rows`)."""
        where, values = self._range(since, until)
        return self._db.execute(f"SELECT count(*) FROM results WHERE NOT ({self._standing}) AND {where}", values).fetchone()[0]

    @staticmethod
    def _range(since: str | None, until: str | None) -> tuple[str, tuple[str, ...]]:
        bounds = [("time >= ?", since), ("time < ?", until)]
        return " AND ".join([clause for clause, value in bounds if value is not None] or ["1"]), tuple(
            value for _, value in bounds if value is not None)


def _outputs(stored: str | None) -> dict[str, Any] | None:
    """The logged JSON record, its texts spelt as the `file` column spells them: a file name that
    was not UTF-8 (JSON keeps it as \\udcXX escapes of surrogates) comes back as `_text` wrote the
    path, so a scan's `contralateral` is its partner's `file`, and every text can be written as UTF-8."""
    if not stored:
        return None
    record = json.loads(stored)
    return _texts(record) if "\\ud" in stored else record


def _texts(value):
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {key: _texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_texts(item) for item in value]
    return value


def os_path(stored: str) -> str:
    """A logged file name as the operating system spells it: `_text`'s \\udcXX escapes turned back
    into the surrogate escapes Python uses for bytes that are not UTF-8."""
    return re.sub(r"\\udc([89a-f][0-9a-f])", lambda m: chr(0xDC00 + int(m.group(1), 16)), stored)


def _text(value: str | None) -> str | None:
    """A file name that is not valid UTF-8 (bytes from an old USB stick, decoded by Python with
    surrogate escapes) is stored with those bytes written as \\udcXX, not refused by SQLite."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def drawing_of(heatmap, geometry) -> dict[str, Any]:
    """What an overlay is drawn from, as the log keeps it: the heat-map (model-input grid) as the
    8-bit levels the picture is drawn with (base64, 256 bytes for 16x16 cells) and its
    `edge.preprocess.Geometry`. Model outputs and where they lie, not pixels of the scan."""
    import base64
    from dataclasses import asdict

    import numpy as np

    levels = np.rint(np.clip(np.asarray(heatmap, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return {"heat": base64.b64encode(levels.tobytes()).decode("ascii"), "shape": list(levels.shape), "geometry": asdict(geometry)}


def heatmap_and_geometry(drawing: dict[str, Any]):
    """`drawing_of` undone: (heat-map as float32 0..1, Geometry)."""
    import base64

    import numpy as np

    from edge.preprocess import Geometry

    levels = np.frombuffer(base64.b64decode(drawing["heat"]), dtype=np.uint8).reshape(drawing["shape"])
    geometry = dict(drawing["geometry"])
    geometry["scan_shape"] = tuple(geometry["scan_shape"])
    return levels.astype(np.float32) / 255.0, Geometry(**geometry)
