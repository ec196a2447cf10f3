"""Score `edge-classify --json` answers against a folder's labels.csv (`file,woman,...,cancer`).

    edge-classify ../shared/rsna/images --json > answers.jsonl
    python scripts/score_source.py ../shared/rsna answers.jsonl [PREDICTIONS] [--json FILE]

A source the model never learnt from is an external test: every image is read alone, and the
figures (AUC cancer vs not of P(malignant) and of P(abnormal), sensitivity and specificity of the
triage) come with 95% CIs from resampling women and with their baselines. Refused images are
counted, not scored. PREDICTIONS, an `edge-train --trunk fine-tuned` run's out-of-fold
predictions.csv over the same folder, adds the paired AUC difference of P(malignant) on the same
images (those predictions minus these answers, 95% CI from resampling women). `--json FILE` also
writes the figures as a record: the model card quotes reports/digital/rsna.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from train.metrics import at_threshold, auc, resampled


def figures(y: np.ndarray, abnormal: np.ndarray, malignant: np.ndarray, refer: np.ndarray) -> dict[str, float]:
    """The figures of one sample; NaN where it lacks a class (a resample of few women may)."""
    sensitivity, specificity = at_threshold(y, refer.astype(float), 0.5)
    return {"auc_malignant": auc(y, malignant), "auc_abnormal": auc(y, abnormal), "sensitivity": sensitivity, "specificity": specificity}


BASELINE = {"auc_malignant": 0.5, "auc_abnormal": 0.5, "sensitivity": 1.0, "specificity": 0.0}
"""What refer-everyone (sensitivity, specificity) and a coin (AUC) give."""


def score(folder: str, answers: str, predictions: str | None = None, reps: int = 1000, seed: int = 0) -> dict:
    """The record: what was read and refused, each figure with its 95% CI and baseline, the paired difference."""
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
    record = {
        "model": next(iter(read.values()))["model"], "folder": folder, "images": len(names), "women": len(unique),
        "cancer_images": int(y.sum()), "refused": refused, "missing": len(labels) - len(names) - len(refused),
        "figures": {key: {"value": v, "ci95": [float(b) for b in np.nanpercentile([s[key] for s in samples], [2.5, 97.5])],
                          "baseline": BASELINE[key]} for key, v in value.items()},
        "paired": None,
    }
    if predictions:
        from train.metrics import paired_auc_difference
        from train.tuned_cv import read_predictions

        rows = read_predictions(Path(predictions))
        theirs = {Path(i).name: m for i, m, s in zip(rows["id"], rows["malignant"], rows["source"]) if s == Path(folder).resolve().name}
        stems = [Path(n).stem for n in names]
        both = np.array([s in theirs for s in stems])
        other = np.array([theirs[s] for s in np.array(stems)[both]])
        d = paired_auc_difference(y[both], other, malignant[both], women[both], reps, seed)
        record["paired"] = {"predictions": predictions, "images": int(both.sum()), "value": d["value"], "ci95": list(d["ci95"])}
    return record


def table(record: dict) -> str:
    refused = record["refused"]
    lines = [f"model {record['model'][:12]} on {record['folder']}: {record['images']} images of {record['women']} women read "
             f"({record['cancer_images']} cancer), {len(refused)} refused{': ' + ', '.join(refused) if refused else ''}; "
             f"{record['missing']} missing", "| figure | value | 95% CI | baseline |", "| --- | --- | --- | --- |"]
    for key, f in record["figures"].items():
        lines.append(f"| {key} | {f['value']:.3f} | {f['ci95'][0]:.3f}-{f['ci95'][1]:.3f} | {f['baseline']:.3f} |")
    if record["paired"]:
        d = record["paired"]
        lines.append(f"paired AUC of P(malignant), {d['predictions']} minus these answers, on {d['images']} images: "
                     f"{d['value']:+.3f} (95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the source's folder, with labels.csv")
    parser.add_argument("answers", help="edge-classify --json lines for its images")
    parser.add_argument("predictions", nargs="?", help="an edge-train --trunk fine-tuned run's predictions.csv")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the record here")
    args = parser.parse_args(argv)
    record = score(args.folder, args.answers, args.predictions)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(table(record), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
