"""What the reader probes share: the shipped configuration's data, folds and trunk features, and one
setting's nested cross-validation scored the same way (imported by the `*_probe.py` scripts beside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def setup(data_dir: str, features: str = "int8"):
    """(config, dataset, folds, features) of the shipped configuration, as `edge-train` makes them, but
    for the board features: int8 activations by default, as the committed probe reports were made
    (research/reader/*.txt); "int16" for the shipped model's."""
    from train import mias
    from train.cv import Config, default_cache, trunk_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config(features=features)
    records = mias.load(Path(data_dir))
    data = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    return config, data, folds, trunk_features(data, config, default_cache(), log=lambda *_: None)


def labels(scales, heads, reading, threshold) -> np.ndarray:
    """Each scan's label from these features, every scan read alone (as `edge-convert`'s gate reads it)."""
    from edge.inference.reading import answer
    from train import reader

    out = reader.outputs(scales, heads)
    ev = reader.evidence(out)
    return np.array([answer(reading.p_abnormal(ev[i]), out.classes[i], out.malignant[i], threshold).label
                     for i in range(len(ev))])


def score(data, board, floats, folds, options, twins=None, macro_f1=True, calc=False, malignancy=False) -> str:
    """One setting: its out-of-fold figures, pointing game and, for the heads fitted on every scan, the
    float-vs-int8 label agreement, as one line."""
    from train import metrics, reader
    from train.cv import evaluate, heatmap_peaks

    table, heatmaps = evaluate(data, board, folds, options, twins=twins)
    figures = metrics.figures(table, table.threshold)
    peaks = heatmap_peaks(data, heatmaps)
    hits = [row["hit"] for row in peaks if row["hit"] != ""]
    calcs = [row["hit"] for row, record in zip(peaks, data.records) if row["hit"] != "" and record.label == "CALC"]
    heads, reading, threshold = reader.final_reading(board, data, folds, options, twins)
    same = np.mean(labels(board, heads, reading, threshold) == labels(floats, heads, reading, threshold))
    return (f"AUC abnormal {figures['auc_abnormal']:.3f}  AUC malignant {figures['auc_malignant']:.3f}  "
            f"balanced accuracy {figures['balanced_accuracy']:.3f}  "
            + (f"macro-F1 {figures['macro_f1']:.3f}  " if macro_f1 else "")
            + f"specificity at the threshold {figures['specificity_at_threshold']:.3f}  pointing {sum(hits)}/{len(hits)}"
            + (f" (CALC {sum(calcs)}/{len(calcs)})" if calc else "")
            + (f"  AUC malignant among abnormal {_among_abnormal(table):.3f}" if malignancy else "")
            + f"  float-vs-int8 label agreement {same:.3f}")


def _among_abnormal(table) -> float:
    """How well P(malignant | abnormal) tells the malignant findings from the benign ones, among the abnormal scans."""
    from train import metrics

    found = table.y_abnormal == 1
    return metrics.auc(table.y_malignant[found], table.malignant[found] / table.abnormal[found])
