"""Patient-grouped cross-validation, the comparison of initialisations, and the final model.

One call (`run`) does what `edge-train` promises: prepare every scan once, train one model per
fold on the other folds only, score the held-out fold, pool the out-of-fold predictions into
the report, pick the better initialisation by a rule fixed in advance, then train the final
model on every development image and write it with its `training.json`.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge import LABELS
from train import metrics, mias
from train.data import Dataset, load_dataset
from train.fit import Config, Trainer, predict
from train.splits import patient_folds

SELECTION = ("auc_abnormal", "auc_malignant", "balanced_accuracy", "macro_f1")
"""The shipped initialisation is the one with the larger sum of these out-of-fold figures."""


def cross_validate(
    dataset: Dataset, folds: np.ndarray, config: Config, seed: int, progress=None, trainer: Trainer | None = None
) -> tuple[metrics.Table, np.ndarray, list[dict]]:
    """Out-of-fold predictions (table + heat-maps) and per-fold training histories."""
    n = len(dataset.records)
    probs = np.zeros((n, len(LABELS)))
    abnormal, malignant = np.zeros(n), np.zeros(n)
    heatmaps = None
    histories = []
    trainer = trainer or Trainer(config)
    for k in progress(sorted(set(folds)), desc=f"folds ({config.init})") if progress else sorted(set(folds)):
        test = np.flatnonzero(folds == k)
        training = np.flatnonzero(folds != k)
        model, history = trainer.fit(dataset.subset(training), int(seed + 1000 * (k + 1)), dataset.subset(test), progress)
        out = predict(model, dataset.subset(test))
        probs[test], abnormal[test], malignant[test] = out["classes"], out["abnormal"], out["malignant"]
        if heatmaps is None:
            heatmaps = np.zeros((n, *out["heatmap"].shape[1:]), np.float32)
        heatmaps[test] = out["heatmap"]
        histories.append({"fold": int(k), **history})
    records = dataset.records
    table = metrics.Table.from_records(records, folds, probs, abnormal, malignant)
    return table, heatmaps, histories


def heatmap_peaks(dataset: Dataset, heatmaps: np.ndarray) -> list[dict]:
    """Per image: tissue, circles and where the heat-map peaks, in scan coordinates."""
    rows = []
    grid = heatmaps.shape[1]
    stride = dataset.size / grid
    for record, geometry, heat in zip(dataset.records, dataset.geometries, heatmaps):
        i, j = np.unravel_index(int(np.argmax(heat)), heat.shape)
        row, col = geometry.to_scan((i + 0.5) * stride - 0.5, (j + 0.5) * stride - 0.5)
        hit = any((row - c.row) ** 2 + (col - c.col) ** 2 <= c.radius**2 for c in record.lesions)
        rows.append(
            {
                "id": record.id,
                "tissue": record.tissue,
                "circles": ";".join(f"{c.row} {c.col} {c.radius}" for c in record.lesions),
                "peak_row": round(float(row), 1),
                "peak_col": round(float(col), 1),
                "peak_value": round(float(heat.max()), 4),
                "hit": int(hit) if record.lesions else "",
            }
        )
    return rows


def write_cv_report(
    directory: Path, dataset: Dataset, table: metrics.Table, heatmaps: np.ndarray, histories: list[dict], config: Config
) -> dict:
    """predictions.csv, images.csv, history.json, overlays, then the report built from them."""
    from train import report

    directory.mkdir(parents=True, exist_ok=True)
    metrics.write_table(directory / "predictions.csv", table)
    peaks = heatmap_peaks(dataset, heatmaps)
    with open(directory / "images.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(peaks[0]))
        writer.writeheader()
        writer.writerows(peaks)
    (directory / "history.json").write_text(json.dumps({"config": config.to_json(), "folds": histories}, indent=1))
    report.overlays(directory / "overlays", dataset, table, heatmaps)
    return report.build(directory)


def score(document: dict) -> float:
    return float(sum(document["headline"][key]["value"] for key in SELECTION))


def run(
    data_dir: Path,
    out: Path,
    config: Config,
    folds: int = 5,
    seed: int = 0,
    compare: tuple[str, ...] = (),
    reports: Path | None = None,
    experiments: Path | None = None,
    limit: int | None = None,
    progress=None,
    log=print,
    command: str | None = None,
) -> dict:
    """Cross-validate (each initialisation in `compare`, or `config.init`), ship the better, train the final model."""
    started = time.time()
    records = mias.load(data_dir)
    if limit:
        records = records[:limit]
    log(f"preparing {len(records)} scans at {config.size}x{config.size}")
    dataset = load_dataset(records, config.size, progress=(lambda r: progress(r, desc="prepare")) if progress else None)
    fold_of = patient_folds(records, k=folds, seed=seed)
    out.mkdir(parents=True, exist_ok=True)

    candidates, trainers = {}, {}
    for init in compare or (config.init,):
        cfg = replace(config, init=init)
        t0 = time.time()
        trainers[init] = Trainer(cfg)
        table, heatmaps, histories = cross_validate(dataset, fold_of, cfg, seed, progress, trainers[init])
        document = write_cv_report(out / f"cv_{init}", dataset, table, heatmaps, histories, cfg)
        candidates[init] = {"config": cfg, "metrics": document, "table": table, "seconds": time.time() - t0}
        log(f"{init}: " + ", ".join(f"{k} {document['headline'][k]['value']:.3f}" for k in SELECTION) + f" ({time.time() - t0:.0f} s)")

    best = max(candidates, key=lambda init: score(candidates[init]["metrics"]))
    shipped = candidates[best]
    if reports:
        if reports.exists():
            shutil.rmtree(reports)
        shutil.copytree(out / f"cv_{best}", reports)
    if len(candidates) > 1:
        from train import report

        report.comparison(
            experiments or out / "experiments",
            {init: out / f"cv_{init}" for init in candidates},
            best,
            SELECTION,
            {init: c["seconds"] for init, c in candidates.items()},
        )

    log(f"final model ({best}) on all {len(records)} images")
    t0 = time.time()
    model, history = trainers[best].fit(dataset, seed, None, progress)
    final_seconds = time.time() - t0
    from train.model import export

    final_dir = out / "final"
    final_dir.mkdir(parents=True, exist_ok=True)
    exported = export(model, config.size, config.width)
    exported.save(final_dir / "model.keras")
    doc = shipped["metrics"]
    threshold = doc["triage"]["final_threshold"]
    headline = {
        key: doc["headline"][key]
        for key in (
            "auc_abnormal",
            "auc_malignant",
            "balanced_accuracy",
            "macro_f1",
            "sensitivity_at_80_specificity",
            "sensitivity_at_90_specificity",
            "sensitivity_at_threshold",
            "specificity_at_threshold",
            "accuracy",
        )
    }
    training = {
        "input_size": config.size,
        "input": {"shape": [1, config.size, config.size, 1], "dtype": "float32", "values": "uint8 grey levels 0..255 of edge.preprocess.prepare(scan, size=input_size).image; rescaled inside the model"},
        "labels": list(LABELS),
        "outputs": ["classes", "abnormal", "malignant", "heatmap"],
        "heatmap": {"grid": config.size // 16, "stride": 16, "meaning": "P(cell inside a lesion circle), on the model-input grid; map back with Prepared.geometry"},
        "triage": {
            "threshold": threshold,
            "target_sensitivity": metrics.TARGET_SENSITIVITY,
            "rule": "refer when P(abnormal) >= threshold",
            "chosen_on": f"pooled out-of-fold P(abnormal) of the {folds}-fold patient-grouped cross-validation of this configuration (the development split; never the hold-out)",
            "cv_sensitivity_at_threshold": doc["headline"]["sensitivity_at_threshold"],
            "cv_specificity_at_threshold": doc["headline"]["specificity_at_threshold"],
        },
        "metrics": {
            "what": f"out-of-fold, {folds}-fold patient-grouped cross-validation on the development split; 95% bootstrap CI over patients; baseline = NORM for every image / constant score",
            **headline,
        },
        "data": {
            "source": "mini-MIAS development split",
            "images": len(records),
            "patients": len({r.patient for r in records}),
            "classes": {label: sum(r.label == label for r in records) for label in LABELS},
            "split": f"train.splits.patient_folds(k={folds}, seed={seed})",
        },
        "config": {**shipped["config"].to_json(), "folds": folds},
        "init": best,
        "comparison": {init: {k: c["metrics"]["headline"][k]["value"] for k in SELECTION} for init, c in candidates.items()},
        "seed": seed,
        "command": command,
        "final_train_seconds": round(final_seconds, 1),
        "train_seconds": round(time.time() - started, 1),
    }
    (final_dir / "training.json").write_text(json.dumps(training, indent=1))
    (final_dir / "history.json").write_text(json.dumps(history, indent=1))
    log(f"done in {time.time() - started:.0f} s: {final_dir / 'model.keras'}")
    return training
