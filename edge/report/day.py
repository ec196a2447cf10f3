"""The day's results for the referral hospital, from the results log: what `edge-report` writes.

`edge.report.write` writes three files, all from one read-only snapshot of the log (`edge.results.log.LogReader`, so a
batch may go on appending meanwhile): `report.html`, the page a person reads, prints and sends
(`edge.report.page`: women to refer first, then routine ones, then scans that failed or were
refused); `results.csv` and `results.json`, one row per scan for the hospital's own systems.

A year of a busy centre is some 50 000 rows, so rows are streamed, never held: the snapshot is
read twice (the tables, the counts, the women to refer and the failures; then the routine
women), the women are formed in a window of recent rows (a woman's two scans are logged one
after the other), and pictures are made for the selected range only, for at most
`max_pictures` scans, each from the scan file itself.
"""

from __future__ import annotations

import base64
import io
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from edge.errors import EdgeError
from edge.results.log import LoggedRow, LogReader, os_path
from edge.words import FINDINGS, local_time

CSV_COLUMNS = {  # results.csv, in this order (docs/report.md lists them too)
    "row": "the results log's row id",
    "time": "when the row was logged, UTC (ISO 8601)",
    "local_time": "the same moment in this machine's local time",
    "id": "the --id the scan was read under",
    "woman": "the woman the scan belongs to (MIAS name, --exam or --exams)",
    "side": "left or right breast, when known",
    "file": "the scan's path as given to edge-classify",
    "file_sha256": "the sha256 of the scan file",
    "contralateral": "the other breast's file it was read beside",
    "status": "refer, routine or failed",
    "label": "the MIAS code of the most likely finding (NORM: none)",
    "finding": "that finding in words",
    "abnormal": "P(abnormal)",
    "malignant": "P(malignant)",
    "note": "a note on the reading (a partner that could not be used...)",
    "quality": "a scan-quality note",
    "inverted": "True when the scan was of inverted polarity and read as its negative",
    "forced": "why the scan did not look like a mammogram, when it was read on request all the same (--read-anyway)",
    "error": "why the scan failed or was refused",
    "model_sha256": "the sha256 of the model that read it",
}
PICTURE_SIDE = 360
"""Pixels on a thumbnail's longer side: sharp at the page's 224 px and at 40 mm on A4."""
WINDOW = 1000
"""Scans kept waiting for their other breast; partners are logged together, so a few would do."""


@dataclass(frozen=True)
class Selection:
    """Which rows a report covers: logged at `since` or after and before `until` (UTC ISO text,
    None: no bound), read under `visit_id` (None: any), and how the page names that range."""

    since: str | None = None
    until: str | None = None
    visit_id: str | None = None
    name: str = "the whole log"

    def rows(self, reader: LogReader) -> Iterator[LoggedRow]:
        for row in reader.rows(self.since, self.until):
            if self.visit_id is None or (row.outputs or {}).get("id") == self.visit_id:
                yield row


def bound(text: str, end: bool = False) -> str:
    """A --since / --until value (a local date `2026-12-01`, or a local date and time
    `2026-12-01T14:30`, or one with an offset) as the UTC ISO text the log's `time` is compared
    with. A date given as the end of a range means the end of that day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end else day, time())
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date (2026-12-01) or a date and time (2026-12-01T14:30)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as the centre's day is
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def status(row: LoggedRow) -> str:
    """refer, routine or failed (a failure's row keeps at most its id in `outputs`)."""
    if row.error is not None or "triage" not in (row.outputs or {}):
        return "failed"
    return row.outputs["triage"]


def refused(row: LoggedRow) -> bool:
    """A failure because the image plainly is not a mammogram (edge.scan.plausibility)."""
    from edge.scan.plausibility import PREFIX

    return PREFIX in (row.error or "")


def women(rows: Iterable[LoggedRow], window: int = WINDOW) -> Iterator[tuple[LoggedRow, ...]]:
    """Answered scans grouped by woman, in log order: two scans read beside each other (each the
    other's `contralateral`) are one woman, right breast first as a radiologist hangs them; any
    other scan stands alone. A scan waits for its partner among the last `window` scans only, so
    memory stays bounded however long the log."""
    pending: deque[list] = deque()  # [scans, waiting for a partner] in log order of the first scan
    waiting: dict[tuple[str, str], list] = {}  # (file, its partner's file) -> entry of `pending`
    for row in rows:
        partner = row.outputs.get("contralateral")
        entry = waiting.pop((partner, row.file), None) if partner else None
        if entry is not None:
            entry[0].append(row)
            entry[1] = False
        else:
            entry = [[row], partner is not None]
            pending.append(entry)
            if partner:
                earlier = waiting.pop((row.file, partner), None)
                if earlier is not None:  # the same scan again before its partner came: the earlier one stands alone
                    earlier[1] = False
                waiting[(row.file, partner)] = entry
        while pending and (not pending[0][1] or len(pending) > window):
            yield _hung(_closed(pending.popleft(), waiting))
    while pending:
        yield _hung(_closed(pending.popleft(), waiting))


def _closed(entry: list, waiting: dict) -> list[LoggedRow]:
    """The scans of an entry leaving the window; no longer waiting for a partner."""
    if entry[1]:
        first = entry[0][0]
        waiting.pop((first.file, first.outputs.get("contralateral")), None)
    return entry[0]


def _hung(scans: list[LoggedRow]) -> tuple[LoggedRow, ...]:
    order = {"right": 0, "left": 1}
    return tuple(sorted(scans, key=lambda row: order.get(row.outputs.get("side"), 2)))


def woman_status(scans: tuple[LoggedRow, ...]) -> str:
    """A woman is referred when any of her scans is."""
    return "refer" if any(status(row) == "refer" for row in scans) else "routine"


@dataclass
class Counts:
    """What the selected rows hold, counted in the first pass (the page's summary needs it first)."""

    scans: int = 0
    failed: int = 0
    refused: int = 0
    women: dict[str, int] = field(default_factory=lambda: {"refer": 0, "routine": 0})
    first: str | None = None
    last: str | None = None
    models: dict[str, int] = field(default_factory=dict)  # model sha256 -> scans it read (a few models at most)
    replaced: int = 0  # rows left out: replaced by a later reading (--force)

    def add(self, row: LoggedRow) -> None:
        self.scans += 1
        self.first = self.first or row.time
        self.last = row.time
        self.models[row.model_sha256] = self.models.get(row.model_sha256, 0) + 1
        if status(row) == "failed":
            self.failed += 1
            self.refused += refused(row)


def csv_row(row: LoggedRow) -> list[Any]:
    """The row's values in CSV_COLUMNS order."""
    outputs = row.outputs or {}
    label = outputs.get("label")
    values = {**outputs, "row": row.id, "time": row.time, "local_time": local_time(row.time), "file": row.file,
              "file_sha256": row.file_sha256, "status": status(row), "finding": FINDINGS.get(label, label),
              "error": row.error, "model_sha256": row.model_sha256}
    return ["" if values.get(name) is None else values[name] for name in CSV_COLUMNS]


def json_row(row: LoggedRow) -> dict[str, Any]:
    """The row as results.json gives it: where it is in the log, then the record edge-classify logged."""
    head = {"row": row.id, "time": row.time, "file": row.file, "file_sha256": row.file_sha256,
            "model_sha256": row.model_sha256, "status": status(row)}
    return {**head, **(row.outputs or {}), **({"error": row.error} if row.error is not None else {})}


class Pictures:
    """Thumbnails for the page (JPEG, base64), each made from the scan file at its logged path
    (relative paths from `scans_dir`) and its logged heat-map, and only when the file's sha256 is
    the one logged: never another woman's scan that now lies at that path. At most `limit` tried."""

    def __init__(self, scans_dir: Path, limit: int) -> None:
        self.scans_dir, self.limit = scans_dir, limit
        self.made = self.missing = self.over_limit = 0

    def of(self, row: LoggedRow) -> tuple[str | None, str | None]:
        """(a data: URI, or None; a note for the reader: why there is no picture, or no heat-map).
        The limit bounds the work: a scan whose file is gone counts as one tried."""
        if self.made + self.missing >= self.limit:
            self.over_limit += 1
            return None, f"no picture: pictures are made for at most {self.limit} scans (edge-report --max-pictures)"
        try:
            image, note = self._image(row)
        except EdgeError as exc:
            self.missing += 1
            return None, f"no picture: {exc}"
        except Exception as exc:  # noqa: BLE001 - one picture must never end the report
            self.missing += 1
            return None, f"no picture: unexpected {exc.__class__.__name__} ({exc}); please report it"
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=82)
        self.made += 1
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), note

    def _image(self, row: LoggedRow):
        from edge.scan.decode import check_scan_file, read_scan
        from edge.fileio import sha256_file
        from edge.results.overlay import blend, downsized

        path = self.scans_dir / os_path(row.file)
        check_scan_file(path)  # a FIFO now at that path must not stall the report
        if sha256_file(path) != row.file_sha256:
            raise EdgeError("the file at this path is not the scan that was read (its content changed)")
        scan = read_scan(path)
        if row.drawing is None:
            note = "no heat-map: the log kept none for this reading (written before it kept heat-maps)"
            return downsized(scan, PICTURE_SIDE).convert("RGB"), note
        from edge.results.log import heatmap_and_geometry

        heatmap, geometry = heatmap_and_geometry(row.drawing)
        return blend(scan, heatmap, geometry, PICTURE_SIDE), None
