"""A training scan's record and its lesions: what every reader of training data fills (`train.records.load`
picks the reader), kept apart from the readers so that they import it and `records` imports them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.scan.decode import read_scan

TISSUES = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}
LABELS_FILE = "labels.csv"
UNKNOWN_KIND = "ABN"
"""The label of a finding whose kind is not known (a labels.csv `cancer` row, or class ABN): it counts
for P(abnormal) and P(malignant), never for the kind of finding."""


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
    side: str  # "left", "right", or "" when not known (never paired with another scan)
    tissue: str  # F, G, D, or "" when not given
    label: str  # a MIAS code (edge.LABELS), or UNKNOWN_KIND
    severity: str | None  # "B", "M", or None for NORM
    lesions: tuple[Lesion, ...] = ()
    lesions_without_location: int = 0  # lesions known to exist but not drawn (never used at cell level)
    source: str = ""  # the folder it came from: figures are reported per source

    @property
    def abnormal(self) -> bool:
        return self.label != "NORM"

    @property
    def kind_known(self) -> bool:
        return self.label != UNKNOWN_KIND

    @property
    def malignant(self) -> bool:
        return self.severity == "M"

    def pixels(self) -> np.ndarray:
        return read_scan(self.path)
