"""Patient-grouped, class-stratified folds on the real development split."""

from collections import Counter

import numpy as np

from edge import LABELS
from train.splits import patient_folds


def test_folds_keep_patients_together_and_test_each_image_once(records):
    folds = patient_folds(records, k=5, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]  # every image tested exactly once
    fold_of_patient: dict[int, set[int]] = {}
    for record, fold in zip(records, folds):
        fold_of_patient.setdefault(record.patient, set()).add(int(fold))
    assert all(len(f) == 1 for f in fold_of_patient.values())


def test_every_class_is_in_every_training_fold(records):
    folds = patient_folds(records, k=5, seed=0)
    for fold in range(5):
        training = Counter(r.label for r, f in zip(records, folds) if f != fold)
        assert set(training) == set(LABELS), (fold, training)


def test_folds_are_seeded(records):
    assert np.array_equal(patient_folds(records, seed=3), patient_folds(records, seed=3))
    assert not np.array_equal(patient_folds(records, seed=3), patient_folds(records, seed=4))
