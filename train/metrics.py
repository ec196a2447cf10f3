"""Every reported figure, as pure functions of the out-of-fold predictions table.

The table is `reports/cv/predictions.csv` (one row per development image): nothing else is
needed to recompute a number, except tissue type for the subgroup figures (from `images.csv`).
Confidence intervals are percentile bootstraps that resample PATIENTS (both breasts of a woman
together), because images of one woman are not independent. Every figure sits beside the
majority-class baseline: NORM for every image, and a constant score (ROC AUC 0.5).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edge import LABELS
COLUMNS = ("id", "patient", "fold", "true_class", "severity", *LABELS, "abnormal", "malignant")
EXAM_COLUMNS = ("woman", "contralateral", "threshold")
"""Optional: the woman, the partner scan read beside (empty: read alone), the test fold's triage
threshold as chosen inside its training folds (without it, `cross_fitted_thresholds`)."""
TARGET_SENSITIVITY = 0.9
NORM = LABELS.index("NORM")


@dataclass(frozen=True)
class Table:
    """The predictions table as arrays, one entry per image."""

    id: np.ndarray
    patient: np.ndarray
    fold: np.ndarray
    true_class: np.ndarray  # MIAS codes
    severity: np.ndarray  # "B", "M" or ""
    probs: np.ndarray  # (n, 7) in LABELS order
    abnormal: np.ndarray  # P(abnormal)
    malignant: np.ndarray  # P(malignant)
    woman: np.ndarray | None = None
    contralateral: np.ndarray | None = None
    threshold: np.ndarray | None = None

    @classmethod
    def from_records(cls, records, fold, probs, abnormal, malignant, contralateral=None, threshold=None) -> "Table":
        """Out-of-fold outputs of the records (train.scan_record.ScanRecord) as a table."""
        exam = ()
        if contralateral is not None:
            exam = (np.array([r.woman for r in records]), np.asarray(contralateral), np.asarray(threshold, float))
        return cls(
            np.array([r.id for r in records]),
            np.array([r.patient for r in records]),
            np.asarray(fold).astype(int),
            np.array([r.label for r in records]),
            np.array([r.severity or "" for r in records]),
            probs,
            abnormal,
            malignant,
            *exam,
        )

    def __len__(self) -> int:
        return len(self.id)

    def take(self, index: np.ndarray) -> "Table":
        return Table(*(None if getattr(self, f) is None else getattr(self, f)[index] for f in self.__dataclass_fields__))

    @property
    def y_class(self) -> np.ndarray:
        return np.array([LABELS.index(c) for c in self.true_class])

    @property
    def y_abnormal(self) -> np.ndarray:
        return (self.true_class != "NORM").astype(int)

    @property
    def y_malignant(self) -> np.ndarray:
        return (self.severity == "M").astype(int)

    def predicted_class(self, thresholds: np.ndarray | None = None) -> np.ndarray:
        """The label the device prints (edge.inference.reading): NORM below the triage threshold, otherwise
        the most likely finding. Without thresholds: the most probable of the 7 classes."""
        if thresholds is None:
            return self.probs.argmax(1)
        findings = np.where(np.arange(len(LABELS)) == NORM, -np.inf, self.probs)
        return np.where(self.abnormal >= thresholds, findings.argmax(1), NORM)


def read_table(path: str | Path) -> Table:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = set(COLUMNS) - set(rows[0] if rows else COLUMNS)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    exam = ()
    if rows and set(EXAM_COLUMNS) <= set(rows[0]):
        exam = tuple(np.array([r[c] for r in rows]) for c in EXAM_COLUMNS[:2]) + (np.array([float(r["threshold"]) for r in rows]),)
    return Table(
        np.array([r["id"] for r in rows]),
        np.array([int(r["patient"]) for r in rows]),
        np.array([int(r["fold"]) for r in rows]),
        np.array([r["true_class"] for r in rows]),
        np.array([r["severity"] for r in rows]),
        np.array([[float(r[c]) for c in LABELS] for r in rows]).reshape(len(rows), len(LABELS)),
        np.array([float(r["abnormal"]) for r in rows]),
        np.array([float(r["malignant"]) for r in rows]),
        *exam,
    )


def write_table(path: str | Path, table: Table) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        exam = table.threshold is not None
        writer.writerow(COLUMNS + (EXAM_COLUMNS if exam else ()))
        for i in range(len(table)):
            writer.writerow(
                [table.id[i], int(table.patient[i]), int(table.fold[i]), table.true_class[i], table.severity[i]]
                + [f"{p:.6f}" for p in table.probs[i]]
                + [f"{table.abnormal[i]:.6f}", f"{table.malignant[i]:.6f}"]
                + ([table.woman[i], table.contralateral[i], f"{table.threshold[i]:.6f}"] if exam else [])
            )


# --- classification -------------------------------------------------------------------------


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class absent from y_true)."""
    matrix = confusion(y_true, y_pred)
    support = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true."""
    return float(np.nanmean(per_class_recall(y_true, y_pred)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the classes present in y_true (a never-predicted class scores 0)."""
    matrix = confusion(y_true, y_pred)
    tp, support, predicted = np.diag(matrix), matrix.sum(1), matrix.sum(0)
    present = support > 0
    denominator = support + predicted
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return float(f1[present].mean())


# --- scores ---------------------------------------------------------------------------------


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (the larger label positive, ties counted half); NaN when only one class is present.
    Mann-Whitney on average ranks, in numpy: the bootstraps call it thousands of times, and
    sklearn's input checks cost 50 times the arithmetic."""
    y, score = np.asarray(y), np.asarray(score, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return float("nan")
    positive = y == y.max()
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def sensitivity_at_specificity(y: np.ndarray, score: np.ndarray, specificity: float) -> float:
    """Highest sensitivity among the ROC points whose specificity is at least `specificity`.

    The points are those sklearn's roc_curve keeps (drop_intermediate: a point on a straight run
    of the curve is dropped, so a threshold inside such a run is not looked at), as every
    committed report has them; computed in numpy for the bootstraps' sake."""
    y, score = np.asarray(y), np.asarray(score, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    positive, ranked = (y == y.max())[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]  # each threshold's last row
    tps, fps = np.cumsum(positive)[last], np.cumsum(~positive)[last]
    if len(fps) > 2:
        kept = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[kept], fps[kept]
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    return float(tpr[fpr <= 1 - specificity + 1e-12].max())


def threshold_for_sensitivity(y: np.ndarray, score: np.ndarray, target: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold t such that at least `target` of the positives score >= t."""
    positives = np.sort(score[y == 1])
    if len(positives) == 0:
        return float("nan")
    k = int(np.floor(len(positives) * (1 - target) + 1e-9))
    return float(positives[min(k, len(positives) - 1)])


def woman_scores(p: np.ndarray, y: np.ndarray, women: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(her highest P(abnormal), whether she has a finding) of each woman."""
    names, inverse = np.unique(women, return_inverse=True)
    top, sick = np.full(len(names), -np.inf), np.zeros(len(names), int)
    np.maximum.at(top, inverse, p)
    np.maximum.at(sick, inverse, y.astype(int))
    return top, sick


def woman_threshold(p: np.ndarray, y: np.ndarray, women: np.ndarray, target: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold that refers `target` of the women with a finding: the decision a health
    worker acts on is the woman, referred when any of her scans is (so her highest scan decides)."""
    top, sick = woman_scores(p, y, women)
    return threshold_for_sensitivity(sick, top, target)


def woman_figures(p: np.ndarray, y: np.ndarray, threshold: np.ndarray, women: np.ndarray) -> dict[str, float]:
    """Per woman, referred when any of her scans is: sensitivity and specificity at each scan's
    threshold (a woman's scans share a fold, so one threshold), and the AUC of her highest P(abnormal)."""
    top, sick = woman_scores(p, y, women)
    referred, _ = woman_scores((p >= threshold).astype(float), y, women)
    sensitivity, specificity = at_threshold(sick, referred, 1.0)
    return {"woman_auc_abnormal": auc(sick, top), "woman_sensitivity": sensitivity, "woman_specificity": specificity}


def at_threshold(y: np.ndarray, score: np.ndarray, threshold: np.ndarray | float) -> tuple[float, float]:
    """(sensitivity, specificity) when `score >= threshold` means "refer"."""
    refer = score >= threshold
    with np.errstate(invalid="ignore"):
        sensitivity = float(refer[y == 1].mean()) if (y == 1).any() else float("nan")
        specificity = float((~refer[y == 0]).mean()) if (y == 0).any() else float("nan")
    return sensitivity, specificity


def cross_fitted_thresholds(table: Table, target: float = TARGET_SENSITIVITY) -> dict[int, float]:
    """The triage threshold each test fold gets, chosen without it.

    For fold k: the 90%-sensitivity threshold of the out-of-fold scores of the OTHER folds (the
    images fold k's model trained on, scored by models that did not train on them). Fold k's
    own scores and labels are never looked at. The final model's threshold is the same rule on
    all folds.
    """
    return {
        int(k): threshold_for_sensitivity(table.y_abnormal[table.fold != k], table.abnormal[table.fold != k], target)
        for k in np.unique(table.fold)
    }


# --- the report's figures -------------------------------------------------------------------


def figures(table: Table, thresholds: np.ndarray | None = None) -> dict[str, float]:
    """Every scalar figure of the report on one table. `thresholds`: one per row (cross-fitted)."""
    y_class, predicted = table.y_class, table.predicted_class(thresholds)
    y_ab, y_mal = table.y_abnormal, table.y_malignant
    out = {
        "accuracy": float((y_class == predicted).mean()),
        "balanced_accuracy": balanced_accuracy(y_class, predicted),
        "macro_f1": macro_f1(y_class, predicted),
        "auc_abnormal": auc(y_ab, table.abnormal),
        "auc_malignant": auc(y_mal, table.malignant),
        "sensitivity_at_80_specificity": sensitivity_at_specificity(y_ab, table.abnormal, 0.8),
        "sensitivity_at_90_specificity": sensitivity_at_specificity(y_ab, table.abnormal, 0.9),
    }
    if thresholds is not None:
        sens, spec = at_threshold(y_ab, table.abnormal, thresholds)
        out["sensitivity_at_threshold"], out["specificity_at_threshold"] = sens, spec
        if table.contralateral is not None:  # per woman, wherever both breasts are known
            both = table.contralateral != ""
            out.update(woman_figures(table.abnormal[both], y_ab[both], np.asarray(thresholds)[both], table.woman[both]))
    recall = per_class_recall(y_class, predicted)
    out.update({f"recall_{label}": float(r) for label, r in zip(LABELS, recall)})
    return out


def baseline(table: Table) -> dict[str, float]:
    """The majority-class baseline: NORM for every image, the same score for every image."""
    probs = np.zeros_like(table.probs)
    probs[:, NORM] = 1.0
    constant = np.full(len(table), 0.5)
    base = Table(table.id, table.patient, table.fold, table.true_class, table.severity, probs, constant, constant,
                 table.woman, table.contralateral)
    out = figures(base, np.full(len(table), 0.5))  # a constant score at its own threshold: refer all
    out.update(figures(base))  # ... and NORM for every image (the class figures)
    return out


def resampled(patients: np.ndarray, reps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`reps` bootstrap samples of the rows, each drawing whole patients (women) with replacement."""
    for index, _ in drawn(patients, reps, rng):
        yield index


def drawn(patients: np.ndarray, reps: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`resampled`, with each row's draw: a woman drawn twice is two women of the sample, so figures
    per woman group the rows by draw, not by name."""
    unique = np.unique(patients)
    rows_of = {p: np.flatnonzero(patients == p) for p in unique}
    for _ in range(reps):
        picks = [rows_of[p] for p in rng.choice(unique, size=len(unique), replace=True)]
        yield np.concatenate(picks), np.repeat(np.arange(len(picks)), [len(rows) for rows in picks])


def bootstrap(
    table: Table,
    statistic: Callable[[Table, np.ndarray], dict[str, float]],
    extra: np.ndarray,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every figure of `statistic`, resampling patients with replacement."""
    samples: dict[str, list[float]] = {}
    for index, draw in drawn(table.patient, reps, np.random.default_rng(seed)):
        sample = table.take(index)
        if sample.woman is not None:
            sample = replace(sample, woman=draw)
        for key, value in statistic(sample, extra[index]).items():
            samples.setdefault(key, []).append(value)
    return {
        key: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5)))
        for key, v in samples.items()
        if np.isfinite(v).any()
    }


def evaluate(table: Table, tissue: dict[str, str] | None = None, reps: int = 1000, seed: int = 0) -> dict:
    """The whole metrics document: pooled figures with CIs and baselines, per fold, by tissue."""
    if table.threshold is not None:  # chosen inside each test fold's training folds (nested)
        fold_threshold = {int(k): float(table.threshold[table.fold == k][0]) for k in np.unique(table.fold)}
    else:
        fold_threshold = cross_fitted_thresholds(table)
    thresholds = np.array([fold_threshold[int(k)] for k in table.fold])
    pooled = figures(table, thresholds)
    intervals = bootstrap(table, figures, thresholds, reps=reps, seed=seed)
    base = baseline(table)
    headline = {
        key: {"value": value, "ci95": list(intervals.get(key, (float("nan"),) * 2)), "baseline": base[key]}
        for key, value in pooled.items()
    }
    folds = {}
    for k in np.unique(table.fold):
        rows = table.fold == k
        folds[str(int(k))] = {"n": int(rows.sum()), "threshold": fold_threshold[int(k)], **figures(table.take(rows), thresholds[rows])}
    spread = {}
    for key in pooled:
        values = np.array([f[key] for f in folds.values()], dtype=float)
        if np.isfinite(values).any():
            spread[key] = {
                "mean": float(np.nanmean(values)),
                "sd": float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan"),
                "min": float(np.nanmin(values)),
                "max": float(np.nanmax(values)),
            }
    result = {
        "n_images": len(table),
        "n_patients": int(len(np.unique(table.patient))),
        "labels": list(LABELS),
        "confusion_matrix": confusion(table.y_class, table.predicted_class(thresholds)).tolist(),
        "confusion_rows": "true class (edge.LABELS order); columns: predicted class (NORM below the fold's triage threshold)",
        "headline": headline,
        "triage": {
            "target_sensitivity": TARGET_SENSITIVITY,
            "rule": (
                "per test fold: the highest threshold that refers 90% of the women with a finding (a woman is referred "
                "when any of her scans is), on the inner out-of-fold P(abnormal) of its training folds"
                if table.threshold is not None
                else "per test fold: the 90%-sensitivity threshold of the other folds' out-of-fold P(abnormal)"
            ),
            "fold_thresholds": {str(k): v for k, v in fold_threshold.items()},
            "final_threshold": (woman_threshold(table.abnormal, table.y_abnormal, table.woman) if table.woman is not None
                                else threshold_for_sensitivity(table.y_abnormal, table.abnormal)),
        },
        "per_fold": folds,
        "per_fold_spread": spread,
        "bootstrap": {"reps": reps, "seed": seed, "unit": "patient", "interval": "percentile 95%"},
    }
    if tissue:
        groups = np.array([tissue.get(i, "?") for i in table.id])
        result["by_tissue"] = {}
        for code in ("F", "G", "D"):
            rows = groups == code
            if rows.any():
                sub = table.take(rows)
                ci = bootstrap(sub, figures, thresholds[rows], reps=reps, seed=seed)
                fig = figures(sub, thresholds[rows])
                result["by_tissue"][code] = {
                    "n_images": int(rows.sum()),
                    "n_abnormal": int(sub.y_abnormal.sum()),
                    **{
                        key: {"value": fig[key], "ci95": list(ci.get(key, (float("nan"),) * 2))}
                        for key in (
                            "auc_abnormal",
                            "auc_malignant",
                            "balanced_accuracy",
                            "sensitivity_at_threshold",
                            "specificity_at_threshold",
                        )
                    },
                }
    return result


def paired_auc_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, patients: np.ndarray,
                          reps: int = 2000, seed: int = 0) -> dict[str, float | list[float]]:
    """AUC(a) - AUC(b) on the same scans, with a 95% CI from resampling patients (both scores together)."""
    differences = []
    for index in resampled(patients, reps, np.random.default_rng(seed)):
        if len(np.unique(y[index])) == 2:
            differences.append(auc(y[index], a[index]) - auc(y[index], b[index]))
    return {
        "value": auc(y, a) - auc(y, b),
        "ci95": [float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))],
    }


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of a probability: 0 is perfect, 0.25 a constant 0.5; lower is better calibrated and sharper."""
    return float(np.mean((np.asarray(p, float) - y) ** 2))

