"""A centre's own labelled scans: a folder with a `labels.csv`, read into the same records as MIAS.

One row per scan; the first line names the columns (any order, any case):

| column | required | value |
| --- | --- | --- |
| `file` | yes | the scan, relative to the folder: any format `edge-classify` reads (8- or 16-bit PNG, PGM, TIFF, JPEG, DICOM) |
| `woman` | yes | who she is (any text): her scans stay in one fold, and her two breasts are read side by side |
| `class` | one of `class` and `cancer` | a MIAS code (CALC, CIRC, SPIC, MISC, ARCH, ASYM or NORM), or `ABN`: a finding of unknown kind |
| `severity` | with `class` | `B` or `M` for a finding, empty for NORM |
| `cancer` | one of `class` and `cancer` | `1` for a scan of a breast with a cancer (a finding of unknown kind, malignant), `0` for a normal one |
| `side` | no | `L` or `R`, or empty when not known: a scan of unknown side is read alone, never beside another |
| `circles` | no | lesion circles `row,col,radius` in the scan's pixels, row counted from the TOP, several separated by `;` (quote the field: it holds commas); empty for a finding without a location |
| `tissue` | no | `F`, `G` or `D` (fatty, fatty-glandular, dense-glandular), or empty |
| `image` | no | the source's own name for the image (kept in reports only through `file`) |

Why these rules: the same facts the MIAS loader gets from `Info.txt`, without its traps (MIAS
counts y from the bottom; here rows count from the top, as the image is stored). A centre's data
often says no more than "cancer or not" per image: `cancer` (or `class` ABN) takes it as it is,
so a folder such as the RSNA screening subset (`file,woman,image,cancer`) is read unchanged. A
finding without circles is a lesion without a location: it counts for the scan, never at cell
level; a finding of unknown kind counts for P(abnormal) and P(malignant), never for the kind head.
One scan per known breast: a woman with two scans of one side is refused, since the reader would
not know which to compare with the other breast (scans of unknown side are never paired, so a
woman may have several). Every bad row is named in one error, and unknown columns are refused, so
a misspelt optional column cannot silently drop every circle.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path, PurePosixPath

from edge import LABELS
from edge.errors import EdgeError
from edge.fileio import read_text
from train.scan_record import LABELS_FILE, TISSUES, UNKNOWN_KIND, Lesion, ScanRecord

REQUIRED = ("file", "woman")
FINDING = (("class", "severity"), ("cancer",))
"""The two ways to say what a scan shows: exactly one of them, all its columns."""
OPTIONAL = ("side", "circles", "tissue", "image")
SIDES = {"L": "left", "R": "right", "": ""}
CANCER = {"1": (UNKNOWN_KIND, "M"), "0": ("NORM", None)}
"""The `cancer` column as (class, severity): a cancer is a malignant finding of unknown kind."""


def load(data_dir: str | Path) -> list[ScanRecord]:
    """The records of `data_dir/labels.csv`, in its row order; an `EdgeError` names every bad row."""
    data_dir = Path(data_dir)
    path = data_dir / LABELS_FILE
    rows = csv.reader(io.StringIO(read_text(path, "labels file", encoding="utf-8-sig"), newline=""))
    header = [name.strip().lower() for name in next(rows, [])]
    finding = [columns for columns in FINDING if any(name in header for name in columns)]
    missing = [name for name in REQUIRED + (finding[0] if len(finding) == 1 else ()) if name not in header]
    if len(finding) != 1:
        missing.append("class,severity or cancer (one of the two)")
    known = REQUIRED + OPTIONAL + tuple(name for columns in FINDING for name in columns)
    unknown = [name for name in header if name not in known]
    if missing or unknown or len(set(header)) != len(header):
        raise EdgeError(
            f"{path}: the first line must name the columns {','.join(REQUIRED)} and either class,severity or cancer "
            f"(and optionally {','.join(OPTIONAL)})"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + ("; a column is named twice" if len(set(header)) != len(header) else "")
        )
    records, problems = [], []
    first_line: dict[str, int] = {}  # file / id / breast -> the line that has it
    patients: dict[str, int] = {}
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"line {line}: {len(row)} fields, the header has {len(header)} (quote a circles field: it holds commas)")
            continue
        cells = dict(zip(header, (cell.strip() for cell in row)))
        file_key = f"file {cells['file']}"
        if cells["file"] and file_key in first_line:  # a repeated scan: nothing else about the row matters
            problems.append(f"line {line}: same file as line {first_line[file_key]}")
            continue
        first_line[file_key] = line
        record, errors = _record(data_dir, cells, patients)
        if record is not None:
            errors = _clashes(record, line, first_line)
        if errors:
            problems.append(f"line {line}: " + "; ".join(errors))
        else:
            records.append(record)
    if problems:
        raise EdgeError(f"{path} has rows that cannot be read:\n  " + "\n  ".join(problems))
    if not records:
        raise EdgeError(f"{path}: no scans listed (one row per scan after the header line)")
    return records


def _clashes(record: ScanRecord, line: int, first_line: dict[str, int]) -> list[str]:
    """What this row's scan shares with an earlier row's: its name in reports, or its breast."""
    errors = []
    for key, what in ((f"id {record.id}", f"name in reports ({record.id})"),
                      (f"breast {record.woman} {record.side}", "breast (one scan per breast: the reader compares it with the other breast)")):
        if key.startswith("breast") and not record.side:
            continue
        if key in first_line:
            errors.append(f"same {what} as line {first_line[key]}")
        first_line.setdefault(key, line)
    return errors


def _record(data_dir: Path, cells: dict[str, str], patients: dict[str, int]) -> tuple[ScanRecord | None, list[str]]:
    """The record of one row's cells, or None and what is wrong with it (every problem of the row)."""
    errors = []
    name, woman = cells["file"], cells["woman"]
    side, tissue = cells.get("side", "").upper(), cells.get("tissue", "").upper()
    if "cancer" in cells:
        label, severity = CANCER.get(cells["cancer"], ("", None))
    else:
        label, severity = cells["class"].upper(), cells["severity"].upper() or None
    path = data_dir / name
    if not name:
        errors.append("no file")
    elif not path.is_file():
        errors.append(f"file {name} not found")
    if not woman:
        errors.append("no woman")
    if side not in SIDES:
        errors.append(f"side {cells['side']!r} is not L, R or empty")
    if "cancer" in cells and not label:
        errors.append(f"cancer {cells['cancer']!r} is not 0 or 1")
    elif label not in LABELS + (UNKNOWN_KIND,):
        errors.append(f"class {cells['class']!r} is not a MIAS code ({', '.join(LABELS)}) or {UNKNOWN_KIND}")
    elif label == "NORM" and severity:
        errors.append(f"severity {severity} given for NORM (leave it empty)")
    elif label != "NORM" and severity not in ("B", "M"):
        errors.append(f"severity {cells['severity']!r} is not B or M (needed for {label})")
    if tissue and tissue not in TISSUES:
        errors.append(f"tissue {cells['tissue']!r} is not F, G or D")
    circles, circle_errors = _circles(cells.get("circles", ""))
    errors += circle_errors
    if circles and label == "NORM":
        errors.append("circles given for NORM")
    if errors:
        return None, errors
    lesions = tuple(Lesion(row, col, radius, severity) for row, col, radius in circles)
    patient = patients.setdefault(woman, len(patients) + 1)
    record = ScanRecord(
        id=str(PurePosixPath(name).with_suffix("")), path=path, patient=patient, woman=woman, side=SIDES[side],
        tissue=tissue, label=label, severity=severity, lesions=lesions,
        lesions_without_location=int(label != "NORM" and not lesions),
    )
    return record, []


def _circles(text: str) -> tuple[list[tuple[float, float, float]], list[str]]:
    """`row,col,radius;row,col,radius` as numbers (whole numbers stay int), and what is wrong with them."""
    circles, errors = [], []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            numbers = [float(v) for v in part.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
            errors.append(f"circle {part!r} is not row,col,radius")
        elif min(numbers[:2]) < 0 or numbers[2] <= 0:
            errors.append(f"circle {part!r} needs a row and column of at least 0 and a radius above 0")
        else:
            circles.append(tuple(int(v) if v.is_integer() else v for v in numbers))
    return circles, errors
