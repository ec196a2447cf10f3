"""One record per training scan, whatever folder it came from: mini-MIAS or a centre's labels.csv.

Two readers fill the same `ScanRecord`: `train.mias` (the MIAS layout: `Info.txt` and
mdbNNN files) and `train.labels_csv` (any folder with a `labels.csv`). Everything after
loading (preparation, folds, training, reports, conversion) sees records only, so both
sources feed the same training and the same reports. `load` picks the reader.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import LABELS
from edge.decode import read_scan

TISSUES = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}
LABELS_FILE = "labels.csv"


@dataclass(frozen=True)
class Lesion:
    """An annotated circle in scan pixels (row from the top, column from the left)."""

    row: float
    col: float
    radius: float
    severity: str


@dataclass(frozen=True)
class ScanRecord:
    """One scan with everything its labels say about it."""

    id: str  # names the scan in reports: mdbNNN, or the labels.csv file without its suffix
    path: Path
    patient: int  # the woman's number: folds keep her scans together, (patient, side) pairs her breasts
    woman: str  # her name in reports, as edge-classify prints it (MIAS: mias-N)
    side: str  # "left" or "right"
    tissue: str  # F, G, D, or "" when not given
    label: str  # a MIAS code (edge.LABELS)
    severity: str | None  # "B", "M", or None for NORM
    lesions: tuple[Lesion, ...] = ()
    lesions_without_location: int = 0  # lesions known to exist but not drawn (never used at cell level)

    @property
    def abnormal(self) -> bool:
        return self.label != "NORM"

    @property
    def malignant(self) -> bool:
        return self.severity == "M"

    def pixels(self) -> np.ndarray:
        return read_scan(self.path)


def load(data_dir: str | Path) -> list[ScanRecord]:
    """The records of `data_dir`: its labels.csv when it has one, else the MIAS layout (Info.txt)."""
    if (Path(data_dir) / LABELS_FILE).is_file():
        from train import labels_csv

        return labels_csv.load(data_dir)
    from train import mias

    return mias.load(data_dir)


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
        "classes": {label: sum(r.label == label for r in records) for label in LABELS},
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
        "classes   " + ", ".join(f"{label} {by_label[label]}" for label in LABELS),
        f"severity  benign {by_severity['B']}, malignant {by_severity['M']}, normal {by_severity['-']}",
        "tissue    " + tissue + (f", not given {by_tissue['']}" if by_tissue[""] else ""),
        f"lesions   {located} with coordinates, {unlocated} without",
    ]
    return "\n".join(lines)
