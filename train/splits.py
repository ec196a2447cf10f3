"""Patient-grouped, class-stratified folds: both breasts of a woman always land in the same fold."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from train.scan_record import ScanRecord


def patient_folds(records: list[ScanRecord], k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of each record, in the records' order."""
    labels = [r.label for r in records]
    groups = [r.patient for r in records]
    folds = np.full(len(records), -1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(records)), labels, groups)):
        folds[test] = fold
    return folds
