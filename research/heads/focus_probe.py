"""Which pooling the kind and malignancy heads read: the probe behind `train.reader.FOCUS`.

    python research/heads/focus_probe.py ../shared/mias        # about 15 minutes on the 2-core machine

Nested CV on the int8 trunk features, the same folds as `edge-train`, only the pooling varied:
- `focus T` (shipped form): the malignancy head also reads softmax(T x cell logit)-pooled features;
- `kinds too T`: both heads read them;
- `top-5 cells`: both heads also read the mean features of each scale's 5 hottest cells (top-k
  does not compile for the Edge TPU: a bound on what the graph could gain, not a candidate).
Prints AUC abnormal (unchanged by construction), AUC malignant, balanced accuracy and macro-F1.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np


def top_cells(scales, heads, k: int = 5) -> np.ndarray:
    parts = []
    for scale, f in enumerate(scales):
        flat = f.reshape(len(f), -1, f.shape[-1])
        hottest = np.argsort(heads.cell_logits(f, scale).reshape(len(f), -1), axis=1)[:, -k:]
        parts += [f.mean((1, 2)), f.max((1, 2)), np.take_along_axis(flat, hottest[..., None], 1).mean(1)]
    return np.concatenate(parts, axis=1)


def both_heads(pool_of):
    """fit_heads / outputs whose kind and malignancy heads both read `pool_of(scales, heads)`."""
    from train import reader

    fit, out, plain = reader.fit_heads, reader.outputs, reader.pooled

    def fit_heads(scales, data, index, options):
        cells = fit(scales, data, index, dataclasses.replace(options, focus=0.0))
        reader.pooled = lambda *_: pool_of(scales, cells)
        try:
            return fit(scales, data, index, dataclasses.replace(options, focus=0.0))
        finally:
            reader.pooled = plain

    def outputs(scales, heads):
        reader.pooled = lambda *_: pool_of(scales, heads)
        try:
            return out(scales, heads)
        finally:
            reader.pooled = plain

    return fit_heads, outputs


def main(data: str) -> None:
    from train import metrics, mias, reader
    from train.cv import Config, board_features, default_cache, evaluate
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config(features="int8", distil_epochs=0,
                    options=dataclasses.replace(Config().options, context=0, cell_hidden=0))  # as it was run
    records = mias.load(Path(data))
    dataset = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    scales = board_features(dataset, config, [], default_cache(), log=lambda *_: None)
    variants = {f"focus {t:g}": (dataclasses.replace(config.options, focus=t), None) for t in (0.0, 1.0, 2.0, 5.0, 10.0)}
    variants["kinds too 2"] = (config.options, lambda s, heads: reader.pooled(s, dataclasses.replace(heads, focus=2.0)))
    variants["top-5 cells"] = (config.options, top_cells)
    for name, (options, pool_of) in variants.items():
        saved = reader.fit_heads, reader.outputs
        if pool_of:
            reader.fit_heads, reader.outputs = both_heads(pool_of)
        try:
            table, _ = evaluate(dataset, scales, folds, options)
        finally:
            reader.fit_heads, reader.outputs = saved
        f = metrics.figures(table, table.threshold)
        print(f"{name:12s} AUC abnormal {f['auc_abnormal']:.3f}  AUC malignant {f['auc_malignant']:.3f}  "
              f"balanced accuracy {f['balanced_accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
