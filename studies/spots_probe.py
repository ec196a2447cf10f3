"""Calcifications are 1-5 pixels at the full mini-MIAS resolution and all but gone at the model's
512: does a per-cell measure of small bright spots at 1024 pixels (a white top-hat, in pillow as
the board would compute it) help the cell head beside the trunk's features?

    python studies/spots_probe.py ../shared/mias   # about 10 minutes on the 2-core machine

Each cell of the 512-pixel grid (32 x 32 pixels at 1024) gets 5 numbers: the mean white top-hat
after openings of 5 and 9 pixels, the fraction of its pixels above 12 grey levels in each, and
the 5-pixel top-hat's maximum (log1p); the 256-pixel grid takes the mean of 2 x 2 of them. They
are appended to the int8 trunk's cell features (and the float network's, for the label agreement)
and the shipped reader is cross-validated as `edge-train` does, on the same folds.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def spots(image: np.ndarray, cell: int) -> np.ndarray:
    """(g, g, 5) small-bright-spot measures of each cell x cell block of one uint8 image."""
    picture = Image.fromarray(image)
    out = []
    for size in (5, 9):
        opened = np.asarray(picture.filter(ImageFilter.MinFilter(size)).filter(ImageFilter.MaxFilter(size)), np.float32)
        hat = image.astype(np.float32) - opened
        g = image.shape[0] // cell
        blocks = hat.reshape(g, cell, g, cell).transpose(0, 2, 1, 3).reshape(g, g, -1)
        out += [blocks.mean(-1), (blocks > 12).mean(-1) * 100]
        if size == 5:
            out.append(blocks.max(-1))
    return np.log1p(np.stack(out, -1))


def main(data_dir: str) -> None:
    from edge.reading import answer
    from train import metrics, mias, reader
    from train.cv import Config, default_cache, evaluate, heatmap_peaks, trunk_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config()
    options = dataclasses.replace(config.options, cell_seeds=1)  # one cell-head network, as it was run
    records = mias.load(Path(data_dir))
    data = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    features = trunk_features(data, config, default_cache(), log=lambda *_: None)
    full = load_dataset(records, 2 * config.size)
    fine = np.stack([spots(im, 32) for im in full.images]).astype(np.float32)
    coarse = fine.reshape(len(fine), 16, 2, 16, 2, -1).mean((2, 4))
    extra = [fine, coarse]
    scale = [f.std() for f in features.board]

    def join(scales):
        return [np.concatenate([f, e * s / e.std()], -1).astype(np.float32) for f, e, s in zip(scales, extra, scale)]

    def labels(scales, heads, reading, threshold):
        out = reader.outputs(scales, heads)
        ev = reader.evidence(out)
        return np.array([answer(reading.p_abnormal(ev[i]), out.classes[i], out.malignant[i], threshold).label
                         for i in range(len(ev))])

    for name, board, floats in (("shipped", features.board, features.float),
                                ("with the spot measures", join(features.board), join(features.float))):
        table, heatmaps = evaluate(data, board, folds, options)
        figures = metrics.figures(table, table.threshold)
        peaks = heatmap_peaks(data, heatmaps)
        hits = [row["hit"] for row in peaks if row["hit"] != ""]
        calc = [row["hit"] for row, r in zip(peaks, data.records) if row["hit"] != "" and r.label == "CALC"]
        heads, reading, threshold = reader.final_reading(board, data, folds, options)
        same = np.mean(labels(board, heads, reading, threshold) == labels(floats, heads, reading, threshold))
        print(f"{name:24s} AUC abnormal {figures['auc_abnormal']:.3f}  AUC malignant {figures['auc_malignant']:.3f}  "
              f"balanced accuracy {figures['balanced_accuracy']:.3f}  macro-F1 {figures['macro_f1']:.3f}  specificity at the threshold "
              f"{figures['specificity_at_threshold']:.3f}  pointing {sum(hits)}/{len(hits)} (CALC {sum(calc)}/{len(calc)})  "
              f"float-vs-int8 label agreement {same:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
