"""Which pooled features and strength the kind and malignancy heads read: the probe behind `train.reader.KIND_C`.

    python research/heads/kind_probe.py ../shared/mias        # about 2 minutes on the 2-core machine, features cached

Per test fold of `edge-train`'s folds, a kind head (6-class) and a malignancy head are fitted on
the training folds' abnormal scans and read the test fold; they are combined with the shipped
out-of-fold P(abnormal) and thresholds of `reports/cv/predictions.csv` (which these heads do not
change), so balanced accuracy, macro-F1 and AUC malignant are out of fold. Not nested: each line
is one fixed choice, and looking at them to choose is tuning on these folds (the shipped kind
head chooses among the candidates this printed inside each training fold instead).
"""

from __future__ import annotations

import dataclasses

import sys
from pathlib import Path

import numpy as np


def main(data_dir: str) -> None:
    from edge import LABELS
    from edge.inference.reading import answer
    from train import metrics, mias, reader
    from train.cv import Config, default_cache, trunk_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config(features="int8", options=dataclasses.replace(Config().options, cell_hidden=0))  # as it was run
    records = mias.load(Path(data_dir))
    data = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    scales = trunk_features(data, config, default_cache(), log=lambda *_: None).board
    table = metrics.read_table("reports/cv/predictions.csv")
    assert list(table.id) == [r.id for r in records], "reports/cv is not of these scans"

    def top_cells(heads, k=5):
        parts = []
        for scale, f in enumerate(scales):
            z = heads.cell_logits(f, scale).reshape(len(f), -1)
            hottest = np.argsort(z, 1)[:, -k:]
            parts.append(np.take_along_axis(f.reshape(len(f), -1, f.shape[-1]), hottest[..., None], 1).mean(1))
        return np.concatenate(parts, 1)

    average = np.concatenate([f.mean((1, 2)) for f in scales], 1)
    variants = {f"average and max, C {c}": (lambda h: reader.pooled(scales), c) for c in (0.005, 0.01, 0.02, 0.05, 0.1, 0.3)}
    variants |= {f"average, C {c}": (lambda h: average, c) for c in (0.005, 0.01, 0.02, 0.05, 0.1, 0.3)}
    variants["average and max + top-5 cells, C 0.05"] = (lambda h: np.concatenate([reader.pooled(scales), top_cells(h)], 1), 0.05)
    variants["top-5 cells, C 0.05"] = (top_cells, 0.05)
    for name, (features, c) in variants.items():
        kinds, malignant = np.zeros((len(records), len(LABELS))), np.zeros(len(records))
        for k in sorted(set(folds.tolist())):
            training, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            x = features(reader.fit_heads(scales, data, training, config.options))
            abnormal = np.array([i for i in training if data.records[i].abnormal])
            coef, bias, seen = reader._logistic(x[abnormal], data.class_index[abnormal], c)
            logits = np.full((len(test), len(LABELS)), -np.inf)
            logits[:, seen] = x[test] @ coef.T + bias
            kinds[test] = np.exp(logits - logits.max(1, keepdims=True))
            coef, bias, _ = reader._logistic(x[abnormal], data.malignant[abnormal], c)
            malignant[test] = 1 / (1 + np.exp(-(x[test] @ coef[0] + bias[0])))
        answers = [answer(table.abnormal[i], kinds[i], malignant[i], table.threshold[i]) for i in range(len(records))]
        labels = np.array([LABELS.index(a.label) for a in answers])
        print(f"{name:40s} balanced accuracy {metrics.balanced_accuracy(data.class_index, labels):.3f}  "
              f"macro-F1 {metrics.macro_f1(data.class_index, labels):.3f}  "
              f"AUC malignant {metrics.auc(data.malignant, table.abnormal * malignant):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
