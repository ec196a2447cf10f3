"""How far can a threshold take each MIAS reader per woman? The ceiling of every committed out-of-fold run.

    python research/woman/ceiling.py     # the table of research/woman/ceiling.md

The skill issue asks, per woman (referred when either breast is), sensitivity >= 0.90 with
specificity >= 0.30 on MIAS. For each committed out-of-fold predictions file (the shipped
cross-validation `reports/cv/predictions.csv` and every arm of `research/ablation/`), a woman
scores her higher breast's P(abnormal); the threshold is then chosen on the same women
(`train.metrics.threshold_for_sensitivity`, 90%): an in-sample, optimistic specificity, the most
any threshold could give that reader. 95% intervals resample women (1,000 draws).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from train import metrics
from train.metrics import woman_scores

REPO = Path(__file__).resolve().parents[2]
TARGET = 0.90


def ceiling(path: Path, reps: int = 1000) -> dict:
    table = metrics.read_table(path)
    sick_scan = (table.true_class != "NORM").astype(int)
    women = np.array([f"mias-{(int(i[3:]) + 1) // 2}" for i in table.id])  # MIAS: mdb001 and mdb002 are one woman
    top, sick = woman_scores(table.abnormal, sick_scan, women)

    def figures(index: np.ndarray) -> tuple[float, float]:
        y, s = sick[index], top[index]
        threshold = metrics.threshold_for_sensitivity(y, s, TARGET)
        return metrics.auc(y, s), metrics.at_threshold(y, s, threshold)[1]

    rng = np.random.default_rng(0)
    draws = np.array([figures(rng.integers(0, len(sick), len(sick))) for _ in range(reps)])
    auc, specificity = figures(np.arange(len(sick)))
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {"scan_auc": metrics.auc(sick_scan, table.abnormal), "auc": auc, "auc_ci": (low[0], high[0]),
            "specificity": specificity, "specificity_ci": (low[1], high[1]), "women": len(sick), "normal": int((sick == 0).sum())}


def partner_split(path: Path) -> str:
    """Per-scan AUC of the abnormal scans against the normal breasts of women with a finding, and
    against the scans of normal women: where the per-scan figure is earned."""
    table = metrics.read_table(path)
    abnormal = table.true_class != "NORM"
    women = np.array([(int(i[3:]) + 1) // 2 for i in table.id])
    partner = ~abnormal & np.isin(women, women[abnormal])
    parts = []
    for name, negatives in (("their partner scans", partner), ("the scans of normal women", ~abnormal & ~partner)):
        rows = abnormal | negatives
        parts.append(f"against {name} ({negatives.sum()}) AUC {metrics.auc(abnormal[rows].astype(int), table.abnormal[rows]):.3f}, "
                     f"median P(abnormal) {np.median(table.abnormal[negatives]):.2f}")
    return f"The shipped reader's abnormal scans (median P(abnormal) {np.median(table.abnormal[abnormal]):.2f}): " + "; ".join(parts) + "."


def main() -> None:
    runs = [REPO / "reports" / "cv" / "predictions.csv", *sorted((REPO / "research" / "ablation").glob("*/predictions.csv"))]
    print("| run | AUC per scan | AUC per woman (95% CI) | best specificity per woman at 90% sensitivity (95% CI) |")
    print("| --- | ---: | ---: | ---: |")
    for path in runs:
        r = ceiling(path)
        name = "the shipped reader, `reports/cv`" if path.parent.name == "cv" else f"`{path.parent.name}`"
        print(f"| {name} | {r['scan_auc']:.3f} | {r['auc']:.3f} ({r['auc_ci'][0]:.3f}-{r['auc_ci'][1]:.3f}) "
              f"| {r['specificity']:.3f} ({r['specificity_ci'][0]:.3f}-{r['specificity_ci'][1]:.3f}) |")
    print(f"\n{partner_split(runs[0])}")
    print(f"\n{r['women']} women, {r['normal']} of them normal; baseline AUC 0.5, specificity 0 at sensitivity 1.")


if __name__ == "__main__":
    sys.exit(main())
