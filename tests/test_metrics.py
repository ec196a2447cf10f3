"""The metric code against values computed by hand on a six-image table."""

from __future__ import annotations

import numpy as np
import pytest

from edge import LABELS
from train import metrics


def _onehot(names):
    probs = np.full((len(names), len(LABELS)), 0.01)
    for i, name in enumerate(names):
        probs[i, LABELS.index(name)] = 0.9
    return probs


@pytest.fixture
def table() -> metrics.Table:
    return metrics.Table(
        id=np.array([f"mdb00{i}" for i in range(1, 7)]),
        patient=np.array([1, 1, 2, 2, 3, 3]),
        fold=np.array([0, 0, 1, 1, 2, 2]),
        true_class=np.array(["CALC", "CALC", "NORM", "NORM", "SPIC", "NORM"]),
        severity=np.array(["M", "B", "", "", "M", ""]),
        probs=_onehot(["CALC", "NORM", "NORM", "CALC", "SPIC", "NORM"]),
        abnormal=np.array([0.9, 0.4, 0.3, 0.6, 0.8, 0.1]),
        malignant=np.array([0.7, 0.2, 0.1, 0.3, 0.6, 0.2]),
    )


def test_classification_figures_by_hand(table):
    matrix = metrics.confusion(table.y_class, table.predicted_class())
    calc, spic, norm = LABELS.index("CALC"), LABELS.index("SPIC"), LABELS.index("NORM")
    assert matrix[calc, calc] == 1 and matrix[calc, norm] == 1
    assert matrix[norm, norm] == 2 and matrix[norm, calc] == 1 and matrix[spic, spic] == 1
    assert matrix.sum() == 6
    # recalls CALC 1/2, SPIC 1, NORM 2/3 over the three classes present
    assert metrics.balanced_accuracy(table.y_class, table.predicted_class()) == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # F1: CALC 2*1/(2+2) = 0.5, SPIC 1, NORM 2*2/(3+3) = 2/3
    assert metrics.macro_f1(table.y_class, table.predicted_class()) == pytest.approx((0.5 + 1 + 2 / 3) / 3)


def test_macro_f1_counts_a_never_predicted_class_as_zero():
    y_true, y_pred = np.array([0, 0, 6, 6]), np.array([6, 6, 6, 6])
    # class 0: F1 0; class 6: precision 1/2, recall 1 -> 2/3
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx((0 + 2 / 3) / 2)
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx(0.5)


def test_score_figures_by_hand(table):
    # abnormal: 8 of the 9 (positive, negative) pairs are ordered correctly (0.4 < 0.6)
    assert metrics.auc(table.y_abnormal, table.abnormal) == pytest.approx(8 / 9)
    assert metrics.auc(table.y_malignant, table.malignant) == pytest.approx(1.0)
    # 80% specificity with 3 normals means no false positive: only 0.9 and 0.8 are above 0.6
    assert metrics.sensitivity_at_specificity(table.y_abnormal, table.abnormal, 0.8) == pytest.approx(2 / 3)
    assert metrics.threshold_for_sensitivity(table.y_abnormal, table.abnormal, 0.9) == pytest.approx(0.4)
    assert metrics.at_threshold(table.y_abnormal, table.abnormal, 0.4) == pytest.approx((1.0, 2 / 3))


def test_thresholds_are_chosen_without_the_test_fold(table):
    thresholds = metrics.cross_fitted_thresholds(table, 0.9)
    # fold 0 sees rows 2..5: one positive (0.8); folds 1 and 2 see positives whose lowest is 0.4
    assert thresholds == pytest.approx({0: 0.8, 1: 0.4, 2: 0.4})
    changed = table.take(np.arange(6))
    changed.abnormal[:2] = [0.01, 0.02]  # fold 0's own scores do not move fold 0's threshold
    assert metrics.cross_fitted_thresholds(changed, 0.9)[0] == pytest.approx(0.8)
    per_row = np.array([thresholds[k] for k in table.fold])
    figures = metrics.figures(table, per_row)
    assert figures["sensitivity_at_threshold"] == pytest.approx(2 / 3)
    assert figures["specificity_at_threshold"] == pytest.approx(2 / 3)


def test_majority_baseline(table):
    base = metrics.baseline(table)
    assert base["balanced_accuracy"] == pytest.approx(1 / 3)
    assert base["macro_f1"] == pytest.approx((2 * 3 / (3 + 6)) / 3)
    assert base["auc_abnormal"] == 0.5 and base["auc_malignant"] == 0.5
    assert base["sensitivity_at_80_specificity"] == 0.0
    assert base["sensitivity_at_threshold"] == 1.0 and base["specificity_at_threshold"] == 0.0


def test_bootstrap_resamples_patients_and_is_seeded(table):
    per_row = np.full(6, 0.5)
    first = metrics.bootstrap(table, metrics.figures, per_row, reps=200, seed=1)
    assert first == metrics.bootstrap(table, metrics.figures, per_row, reps=200, seed=1)
    low, high = first["auc_abnormal"]
    assert 0 <= low <= 8 / 9 <= high <= 1

    seen = []

    def spy(sample, extra):
        seen.append(sample.patient)
        return {"n": float(len(sample))}

    metrics.bootstrap(table, spy, per_row, reps=50, seed=0)
    for patients in seen:  # both images of a woman travel together
        values, counts = np.unique(patients, return_counts=True)
        assert (counts % 2 == 0).all() and len(patients) == 6


def test_table_round_trips_through_csv(table, tmp_path):
    path = tmp_path / "predictions.csv"
    metrics.write_table(path, table)
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header) == metrics.COLUMNS
    back = metrics.read_table(path)
    assert np.array_equal(back.id, table.id) and np.array_equal(back.severity, table.severity)
    assert np.allclose(back.probs, table.probs) and np.allclose(back.abnormal, table.abnormal)


def test_evaluate_document(table):
    document = metrics.evaluate(table, {"mdb001": "F", "mdb002": "F", "mdb003": "G", "mdb004": "G", "mdb005": "D", "mdb006": "D"}, reps=50)
    assert document["headline"]["auc_abnormal"]["value"] == pytest.approx(8 / 9)
    assert document["headline"]["auc_abnormal"]["baseline"] == 0.5
    assert set(document["per_fold"]) == {"0", "1", "2"}
    assert set(document["by_tissue"]) == {"F", "G", "D"}
    assert document["triage"]["final_threshold"] == pytest.approx(0.4)


def test_the_label_follows_the_triage_threshold_as_on_the_device():
    """NORM exactly below the threshold, otherwise the most likely finding (edge.inference.reading)."""
    probs = np.array([[0.05, 0.30, 0.0, 0.0, 0.0, 0.05, 0.60], [0.05, 0.30, 0.0, 0.0, 0.0, 0.05, 0.60]])
    table = metrics.Table(
        np.array(["a", "b"]), np.array([1, 2]), np.array([0, 0]), np.array(["CIRC", "NORM"]), np.array(["B", ""]),
        probs, np.array([0.40, 0.40]), np.array([0.1, 0.1]),
    )
    assert list(table.predicted_class()) == [LABELS.index("NORM")] * 2
    assert list(table.predicted_class(np.array([0.3, 0.5]))) == [LABELS.index("CIRC"), LABELS.index("NORM")]


def _with_exam(table: metrics.Table, threshold: float) -> metrics.Table:
    """The six-image table as edge-train writes it: each woman's two breasts read side by side."""
    from dataclasses import replace

    partner = np.array(["mdb002", "mdb001", "mdb004", "mdb003", "mdb006", "mdb005"])
    return replace(table, woman=np.array(["w1", "w1", "w2", "w2", "w3", "w3"]), contralateral=partner,
                   threshold=np.full(len(table), threshold))


def test_figures_per_woman_by_hand(table):
    # women: w1 (finding; 0.9, 0.4), w2 (normal; 0.3, 0.6), w3 (finding; 0.8, 0.1)
    exam = _with_exam(table, 0.5)
    got = metrics.figures(exam, exam.threshold)
    assert got["woman_sensitivity"] == 1.0 and got["woman_specificity"] == 0.0  # w2's 0.6 refers her
    assert got["woman_auc_abnormal"] == pytest.approx(1.0)  # her higher breast: 0.9 and 0.8 above 0.6
    higher = metrics.figures(exam, np.full(len(exam), 0.7))
    assert higher["woman_sensitivity"] == 1.0 and higher["woman_specificity"] == 1.0
    # the highest threshold that refers both women with a finding: the lower of their higher breasts
    assert metrics.woman_threshold(exam.abnormal, exam.y_abnormal, exam.woman, target=1.0) == pytest.approx(0.8)
    base = metrics.baseline(exam)
    assert base["woman_sensitivity"] == 1.0 and base["woman_specificity"] == 0.0 and base["woman_auc_abnormal"] == 0.5
    document = metrics.evaluate(exam, reps=50)
    assert document["headline"]["woman_specificity"]["baseline"] == 0.0
    assert "90% of the women with a finding" in document["triage"]["rule"]
    assert document["triage"]["final_threshold"] == pytest.approx(0.8)  # 90% of two women is both


def test_a_woman_drawn_twice_counts_as_two_women():
    patients = np.array([1, 1, 2, 2, 3])
    for index, draw in metrics.drawn(patients, 20, np.random.default_rng(0)):
        assert len(np.unique(draw)) == 3  # three women drawn, whoever they are
        for d in np.unique(draw):
            assert len(np.unique(patients[index][draw == d])) == 1  # a draw is one woman's rows
