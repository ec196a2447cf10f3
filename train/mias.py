"""The mini-MIAS database: its truth table (`Info.txt`) and its scans, one record per image.

Facts this module gets right (see the data's README): prose before the table; several rows per
image (one per lesion, same class, severity may differ: any malignant lesion makes the image
malignant); missing coordinates (mdb059, `*NOTE 3*` calcifications spread through the breast);
trailing spaces and CRLF; coordinates with the origin at the BOTTOM-left; odd numbers are right
breasts and even numbers left breasts, of patient (n + 1) // 2.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge import LABELS
from edge.decode import read_scan
from edge.errors import EdgeError

SCAN_SIZE = 1024
SCAN_FORMATS = (".pgm", ".png")
TISSUES = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}
_ROW = re.compile(r"^(mdb\d{3})\s+([FGD])\s+([A-Z]{4})(?:\s+([BM]))?(?:\s+(\S+)\s+(\S+)(?:\s+(\S+))?)?")


@dataclass(frozen=True)
class Lesion:
    """An annotated circle in image coordinates (row from the top, column from the left)."""

    row: int
    col: int
    radius: int
    severity: str


@dataclass(frozen=True)
class MiasRecord:
    """One image of the database, with everything `Info.txt` says about it."""

    id: str
    path: Path
    tissue: str
    label: str
    severity: str | None  # "B", "M", or None for NORM
    lesions: tuple[Lesion, ...] = ()
    lesions_without_location: int = 0

    @property
    def number(self) -> int:
        return int(self.id[3:])

    @property
    def patient(self) -> int:
        return (self.number + 1) // 2

    @property
    def side(self) -> str:
        return "right" if self.number % 2 else "left"

    @property
    def abnormal(self) -> bool:
        return self.label != "NORM"

    @property
    def malignant(self) -> bool:
        return self.severity == "M"

    def pixels(self) -> np.ndarray:
        return read_scan(self.path)


@dataclass
class _Rows:
    tissue: str
    label: str
    severities: list[str] = field(default_factory=list)
    lesions: list[Lesion] = field(default_factory=list)
    unlocated: int = 0


def parse_info(text: str) -> dict[str, _Rows]:
    """Truth-table rows of `Info.txt`, grouped by image id. Prose lines are skipped."""
    table: dict[str, _Rows] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line.startswith("mdb"):
            continue
        match = _ROW.match(line)
        if not match or match.group(3) not in LABELS:
            problems.append(f"line {number}: cannot read {line!r}")
            continue
        image_id, tissue, label, severity, x, y, radius = match.groups()
        rows = table.setdefault(image_id, _Rows(tissue, label))
        if rows.label != label:
            problems.append(f"line {number}: {image_id} has classes {rows.label} and {label}")
        if severity:
            rows.severities.append(severity)
        if x and y and radius and (x + y + radius).isdigit():
            rows.lesions.append(Lesion(SCAN_SIZE - int(y), int(x), int(radius), severity or "B"))
        elif label != "NORM":
            rows.unlocated += 1
    if problems:
        raise EdgeError("Info.txt has rows that cannot be read:\n  " + "\n  ".join(problems))
    return table


def load(data_dir: str | Path) -> list[MiasRecord]:
    """Every image in `data_dir` that `Info.txt` describes, sorted by id.

    Raises an `EdgeError` naming every problem at once: a missing directory or `Info.txt`,
    images without a row, and rows without an image.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EdgeError(f"{data_dir}: no such data directory (point --data at the mini-MIAS folder)")
    info = data_dir / "Info.txt"
    try:
        table = parse_info(info.read_text(encoding="ascii", errors="replace"))
    except OSError as exc:
        raise EdgeError(f"{info}: cannot read the MIAS truth table ({exc.strerror})") from None
    scans = _scan_files(data_dir)
    problems = [f"{image_id}: image without a row in Info.txt" for image_id in sorted(set(scans) - set(table))]
    problems += [f"{image_id}: row in Info.txt without an image" for image_id in sorted(set(table) - set(scans))]
    if problems:
        raise EdgeError(f"{data_dir} does not match its Info.txt:\n  " + "\n  ".join(problems))
    return [_record(image_id, scans[image_id], rows) for image_id, rows in sorted(table.items())]


def _scan_files(data_dir: Path) -> dict[str, Path]:
    scans: dict[str, Path] = {}
    for path in sorted(data_dir.glob("mdb[0-9][0-9][0-9].*")):
        if path.suffix.lower() in SCAN_FORMATS:
            scans.setdefault(path.stem, path)  # .pgm sorts before .png: the original wins
    return scans


def _record(image_id: str, path: Path, rows: _Rows) -> MiasRecord:
    severity = ("M" if "M" in rows.severities else "B") if rows.label != "NORM" else None
    return MiasRecord(image_id, path, rows.tissue, rows.label, severity, tuple(rows.lesions), rows.unlocated)


def summary(records: list[MiasRecord]) -> str:
    """A readable account of what was loaded: counts per class, severity and tissue, lesions."""
    by_label = Counter(r.label for r in records)
    by_severity = Counter(r.severity or "-" for r in records)
    by_tissue = Counter(r.tissue for r in records)
    located = sum(len(r.lesions) for r in records)
    unlocated = sum(r.lesions_without_location for r in records)
    lines = [
        f"images    {len(records)}",
        f"patients  {len({r.patient for r in records})}",
        "classes   " + ", ".join(f"{label} {by_label[label]}" for label in LABELS),
        f"severity  benign {by_severity['B']}, malignant {by_severity['M']}, normal {by_severity['-']}",
        "tissue    " + ", ".join(f"{name} ({code}) {by_tissue[code]}" for code, name in TISSUES.items()),
        f"lesions   {located} with coordinates, {unlocated} without",
    ]
    return "\n".join(lines)
