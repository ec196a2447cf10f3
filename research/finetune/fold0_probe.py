"""Study: which setting of the two-source fine-tune keeps its skill? One fold, four settings.

    python research/finetune/fold0_probe.py ../shared/mias ../shared/rsna VARIANT [EPOCHS [SCORES.npz [SIZE]]]
    python research/finetune/fold0_probe.py compare A.npz B.npz

VARIANT: `scratch` (Adam 3e-4, lesion cells from MIAS only, every scan weighs alike: today's
`train.finetune` defaults), `cells` (Adam 5e-4, every normal scan's cells as negatives), `weights`
(Adam 5e-4, each source weighted by 1/sqrt(its scans)), `pipeline` (Adam 5e-4, both). Fold 0 of 5
patient-grouped folds stratified by source and label; EPOCHS epochs (default 5); prints the test fold's AUC of a
logistic regression (C 0.01) on the pooled int8 features, and of the hottest lesion cell, per source;
SCORES.npz keeps the test fold's scores, SIZE is the input size in pixels (default 512), and `compare` prints the paired AUC differences of two runs
(A minus B) per source, with 95% CIs from resampling the test fold's women.
The figures in two_sources.md were measured on the same scans prepared with an earlier polarity
check (the median level of the image's border), which inverted 339 digital images instead of 338.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(mias: str, rsna: str, variant: str, epochs: str = "5", scores: str | None = None, size: str = "512") -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    from train import finetune, records, tuned_cv
    from train.cv import default_cache
    from train.data import load_dataset

    data = load_dataset(records.load_all([Path(mias), Path(rsna)]), int(size))
    source = np.array([r.source != data.records[0].source for r in data.records], int)
    woman = np.array([f"{r.source}/{r.woman}" for r in data.records])
    abn, mal = data.abnormal, data.malignant
    base, codes = tuned_cv.stem(data, (1, 2), default_cache())
    masks = finetune.breast_masks(data.images, (1, 2))
    folds = np.zeros(len(abn), int)
    split = StratifiedGroupKFold(5, shuffle=True, random_state=0).split(abn, source * 2 + abn.astype(int), woman)
    for k, (_, test) in enumerate(split):
        folds[test] = k
    train, test = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    target = finetune.targets(data)
    cells, weight = target.cells.copy(), target.weight.copy()
    if variant in ("pipeline", "cells"):
        cells[(source == 1) & (abn == 0)] = 0.0
    if variant in ("pipeline", "weights"):
        w = np.where(source == 0, 1 / np.sqrt((source == 0).sum()), 1 / np.sqrt((source == 1).sum()))
        weight = (w / w.mean()).astype(np.float32)
    if variant != "scratch":
        finetune.LEARNING_RATE = 5e-4
    tuned = finetune.finetune(codes, masks, finetune.Targets(cells, abn, mal, weight), train, base, epochs=int(epochs))
    features = [finetune.features(c, tuned.tuned) for c in codes]
    pool = np.concatenate([np.concatenate([f.mean((1, 2)), f.max((1, 2))], 1) for f in features], 1)
    x = (pool - pool[train].mean(0)) / (pool[train].std(0) + 1e-3)
    out = [variant, f"{epochs} epochs", f"{size} px"]
    kept = {"source": source[test], "woman": woman[test], "abnormal": abn[test], "malignant": mal[test]}
    for name, y in (("abnormal", abn), ("malignant", mal)):
        p = LogisticRegression(C=0.01, max_iter=1000, class_weight="balanced").fit(x[train], y[train]).decision_function(x[test])
        kept[f"pooled {name}"] = p
        for s in (0, 1):
            rows = source[test] == s
            out.append(f"pooled {'mias digital'.split()[s]} {name} {roc_auc_score(y[test][rows], p[rows]):.3f}")
    hottest = np.max([np.einsum("nhwc,c->nhw", f[test], tuned.lesion_w).reshape(len(test), -1).max(1) for f in features], 0)
    kept["hottest abnormal"] = hottest
    for s in (0, 1):
        rows = source[test] == s
        out.append(f"hottest {'mias digital'.split()[s]} abnormal {roc_auc_score(abn[test][rows], hottest[rows]):.3f}")
    print(*out)
    if scores:
        np.savez(scores, **kept)


def compare(a: str, b: str) -> None:
    from train.metrics import paired_auc_difference

    first, second = np.load(a), np.load(b)
    assert np.array_equal(first["woman"], second["woman"]), "two runs of the same fold"
    for name in ("pooled abnormal", "pooled malignant", "hottest abnormal"):
        y = first[name.split()[1]]
        for s, source in enumerate(("mias", "digital")):
            rows = first["source"] == s
            d = paired_auc_difference(y[rows], first[name][rows], second[name][rows], first["woman"][rows])
            print(f"{name} {source}: {d['value']:+.3f} (95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")


if __name__ == "__main__":
    compare(*sys.argv[2:4]) if sys.argv[1] == "compare" else main(*sys.argv[1:7])
