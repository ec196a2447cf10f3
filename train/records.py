"""One record per training scan, whatever folder it came from: mini-MIAS or a centre's labels.csv.

Two readers fill the same `ScanRecord` (`train.scan_record`): `train.mias` (the MIAS layout: `Info.txt` and
mdbNNN files) and `train.labels_csv` (any folder with a `labels.csv`). Everything after
loading (preparation, folds, training, reports, conversion) sees records only, so both
sources feed the same training and the same reports. `load` picks the reader.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from edge import LABELS
from edge.errors import EdgeError
from train import labels_csv, mias
from train.scan_record import LABELS_FILE, TISSUES, UNKNOWN_KIND, ScanRecord


def load(data_dir: str | Path) -> list[ScanRecord]:
    """The records of `data_dir`: its labels.csv when it has one, else the MIAS layout (Info.txt);
    each names the folder as its `source`."""
    loaded = labels_csv.load(data_dir) if (Path(data_dir) / LABELS_FILE).is_file() else mias.load(data_dir)
    name = Path(data_dir).resolve().name
    return [replace(r, source=name) for r in loaded]


def load_all(data_dirs: list[str | Path]) -> list[ScanRecord]:
    """The records of several folders, one source each: their women numbered apart (a woman of one
    source is never taken for a woman of another)."""
    names = [Path(d).resolve().name for d in data_dirs]
    if len(set(names)) != len(names):
        raise EdgeError(f"two data folders share a name ({', '.join(names)}): figures are reported per folder name")
    out: list[ScanRecord] = []
    for data_dir in data_dirs:
        offset = max((r.patient for r in out), default=0)
        out += [replace(r, patient=r.patient + offset) for r in load(data_dir)]
    return out


def source(data_dir: str | Path) -> str:
    """What `load` reads in `data_dir`, in words for the training record."""
    data_dir = Path(data_dir)
    if (data_dir / LABELS_FILE).is_file():
        return f"{LABELS_FILE} of {data_dir.name}"
    return "mini-MIAS development split"


def described(records: list[ScanRecord], data_dir: str | Path, split: str) -> dict:
    """What a model was trained on, for `training.json`'s `data`."""
    return {
        "source": source(data_dir),
        "images": len(records),
        "patients": len({r.patient for r in records}),
        "classes": {label: sum(r.label == label for r in records) for label in LABELS + (UNKNOWN_KIND,)},
        "split": split,
    }


def summary(records: list[ScanRecord]) -> str:
    """A readable account of what was loaded: counts per class, severity and tissue, lesions."""
    by_label = Counter(r.label for r in records)
    by_severity = Counter(r.severity or "-" for r in records)
    by_tissue = Counter(r.tissue for r in records)
    located = sum(len(r.lesions) for r in records)
    unlocated = sum(r.lesions_without_location for r in records)
    tissue = ", ".join(f"{name} ({code}) {by_tissue[code]}" for code, name in TISSUES.items())
    lines = [
        f"images    {len(records)}",
        f"patients  {len({r.patient for r in records})}",
        "classes   " + ", ".join(f"{label} {by_label[label]}" for label in LABELS)
        + (f", of unknown kind ({UNKNOWN_KIND}) {by_label[UNKNOWN_KIND]}" if by_label[UNKNOWN_KIND] else ""),
        f"severity  benign {by_severity['B']}, malignant {by_severity['M']}, normal {by_severity['-']}",
        "tissue    " + tissue + (f", not given {by_tissue['']}" if by_tissue[""] else ""),
        f"lesions   {located} with coordinates, {unlocated} without",
    ]
    return "\n".join(lines)
