"""How much the reader's figures hang on the cell head's random start, and whether several cell-head
networks from different starts (their mean logit) steady it: the probe behind `train.reader.CELL_SEEDS`.

    python studies/ensemble_probe.py ../shared/mias [SETTING ...]   # 3 to 7 minutes a setting on the 2-core machine
    python studies/ensemble_probe.py ../shared/mias seed=0 seed=1 seed=2 seed=3 seed=4 seeds=3 seed=1,seeds=3 \
        seeds=5 seed=1,seeds=5 seed=2,seeds=5 seed=3,seeds=5 > reports/experiments/ensemble.txt

Each setting is the shipped reader with only that changed: a full nested cross-validation on the
distilled trunk's int8 features, the same folds as `edge-train`. Printed as in
`studies/cell_head_probe.py`, with the float-vs-int8 label agreement of the final heads.
Settings: `seed=K` (one network, from start K; K also draws the cells and the kind head's inner
folds), `seeds=N` (N networks from starts K to K + N - 1, averaged), `seed=K,seeds=N`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np


def main(data_dir: str, settings: list[str]) -> None:
    from edge.reading import answer
    from train import metrics, mias, reader
    from train.cv import Config, default_cache, evaluate, heatmap_peaks, trunk_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config()
    records = mias.load(Path(data_dir))
    data = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    features = trunk_features(data, config, default_cache(), log=lambda *_: None)

    def labels(scales, heads, reading, threshold):
        out = reader.outputs(scales, heads)
        ev = reader.evidence(out)
        return np.array([answer(reading.p_abnormal(ev[i]), out.classes[i], out.malignant[i], threshold).label
                         for i in range(len(ev))])

    for setting in settings:
        parts = dict(p.split("=") for p in setting.split(","))
        options = dataclasses.replace(config.options, seed=int(parts.get("seed", 0)), cell_seeds=int(parts.get("seeds", 1)))
        board, floats = features.board, features.float
        table, heatmaps = evaluate(data, board, folds, options)
        figures = metrics.figures(table, table.threshold)
        hits = [row["hit"] for row in heatmap_peaks(data, heatmaps) if row["hit"] != ""]
        heads, reading, threshold = reader.final_reading(board, data, folds, options)
        same = np.mean(labels(board, heads, reading, threshold) == labels(floats, heads, reading, threshold))
        print(f"{setting:18s} AUC abnormal {figures['auc_abnormal']:.3f}  AUC malignant {figures['auc_malignant']:.3f}  "
              f"balanced accuracy {figures['balanced_accuracy']:.3f}  macro-F1 {figures['macro_f1']:.3f}  specificity at the threshold "
              f"{figures['specificity_at_threshold']:.3f}  pointing {sum(hits)}/{len(hits)}  "
              f"float-vs-int8 label agreement {same:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
