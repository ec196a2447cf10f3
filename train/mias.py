"""The mini-MIAS database: its truth table (`Info.txt`) and its scans, one `ScanRecord` per image.

Facts this module gets right (see the data's README): prose before the table; several rows per
image (one per lesion, same class, severity may differ: any malignant lesion makes the image
malignant); missing coordinates (mdb059, `*NOTE 3*` calcifications spread through the breast);
trailing spaces and CRLF; coordinates with the origin at the BOTTOM-left; odd numbers are right
breasts and even numbers left breasts, of patient (n + 1) // 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edge import LABELS
from edge.errors import EdgeError
from edge.results.exams import mias_woman
from train.scan_record import Lesion, ScanRecord

SCAN_SIZE = 1024
SCAN_FORMATS = (".pgm", ".png")
_ROW = re.compile(r"^(mdb\d{3})\s+([FGD])\s+([A-Z]{4})(?:\s+([BM]))?(?:\s+(\S+)\s+(\S+)(?:\s+(\S+))?)?")


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


def load(data_dir: str | Path) -> list[ScanRecord]:
    """Every image in `data_dir` that `Info.txt` describes, sorted by id.

    Raises an `EdgeError` naming every problem at once: a missing directory or `Info.txt`,
    images without a row, and rows without an image.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EdgeError(f"{data_dir}: no such data directory (point --data at the mini-MIAS folder or a folder with labels.csv)")
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


def _record(image_id: str, path: Path, rows: _Rows) -> ScanRecord:
    severity = ("M" if "M" in rows.severities else "B") if rows.label != "NORM" else None
    number = int(image_id[3:])
    return ScanRecord(image_id, path, (number + 1) // 2, mias_woman(number), "right" if number % 2 else "left",
                      rows.tissue, rows.label, severity, tuple(rows.lesions), rows.unlocated)
