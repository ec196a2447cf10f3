"""Score `edge-classify --json` answers against a folder's labels.csv (`file,woman,...,cancer`).

    edge-classify ../shared/rsna/images --json > answers.jsonl
    python scripts/score_source.py ../shared/rsna answers.jsonl [PREDICTIONS]

A source the model never learnt from is an external test: every image is read alone, and the
figures (AUC cancer vs not of P(malignant) and of P(abnormal), sensitivity and specificity of the
triage) come with 95% CIs from resampling women and with their baselines. Refused images are
counted, not scored. PREDICTIONS, an `edge-train --trunk fine-tuned` run's out-of-fold
predictions.csv over the same folder, adds the paired AUC difference of P(malignant) on the same
images (those predictions minus these answers, 95% CI from resampling women).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from train.metrics import auc, resampled


def figures(y: np.ndarray, abnormal: np.ndarray, malignant: np.ndarray, refer: np.ndarray) -> dict[str, float]:
    return {"auc_malignant": auc(y, malignant), "auc_abnormal": auc(y, abnormal),
            "sensitivity": float(refer[y == 1].mean()), "specificity": float(1 - refer[y == 0].mean())}


def main(folder: str, answers: str, predictions: str | None = None, reps: int = 1000, seed: int = 0) -> None:
    with open(Path(folder) / "labels.csv", newline="") as handle:
        labels = {Path(row["file"]).name: row for row in csv.DictReader(handle)}
    read, refused = {}, []
    for line in Path(answers).read_text().splitlines():
        answer = json.loads(line)
        name = Path(answer["file"]).name
        (refused.append(name) if "error" in answer else read.__setitem__(name, answer))
    names = [n for n in labels if n in read]
    y = np.array([int(labels[n]["cancer"]) for n in names])
    women = np.array([labels[n]["woman"] for n in names])
    abnormal = np.array([read[n]["abnormal"] for n in names])
    malignant = np.array([read[n]["malignant"] for n in names])
    refer = np.array([read[n]["triage"] == "refer" for n in names])
    value = figures(y, abnormal, malignant, refer)
    unique = np.unique(women)
    samples = [figures(y[i], abnormal[i], malignant[i], refer[i]) for i in resampled(women, reps, np.random.default_rng(seed))]
    model = next(iter(read.values()))["model"][:12]
    print(f"model {model} on {folder}: {len(names)} images of {len(unique)} women read ({int(y.sum())} cancer), "
          f"{len(refused)} refused{': ' + ', '.join(refused) if refused else ''}; {len(labels) - len(names) - len(refused)} missing")
    print("| figure | value | 95% CI | baseline |\n| --- | --- | --- | --- |")
    baseline = {"auc_malignant": 0.5, "auc_abnormal": 0.5, "sensitivity": 1.0, "specificity": 0.0}
    for key, v in value.items():
        low, high = np.percentile([s[key] for s in samples], [2.5, 97.5])
        print(f"| {key} | {v:.3f} | {low:.3f}-{high:.3f} | {baseline[key]:.3f} |")
    if predictions:
        from train.metrics import paired_auc_difference
        from train.tuned_cv import read_predictions

        rows = read_predictions(Path(predictions))
        theirs = {Path(i).name: m for i, m, s in zip(rows["id"], rows["malignant"], rows["source"]) if s == Path(folder).resolve().name}
        stems = [Path(n).stem for n in names]
        both = np.array([s in theirs for s in stems])
        other = np.array([theirs[s] for s in np.array(stems)[both]])
        d = paired_auc_difference(y[both], other, malignant[both], women[both], reps, seed)
        print(f"paired AUC of P(malignant), {predictions} minus these answers, on {int(both.sum())} images: "
              f"{d['value']:+.3f} (95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
