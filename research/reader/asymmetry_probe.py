"""Whether the reading stage reads better when it compares the two breasts cell by cell, not only by
their hottest cells: both prepared breasts have the chest wall on the left and are cropped at it
(`edge.preprocess`), so a cell of one heat-map lies near the same cell of the other's.

    python research/reader/asymmetry_probe.py ../shared/mias > research/reader/asymmetry.txt   # 8 minutes on the 2-core machine

Each setting adds to the shipped evidence of the two breasts (`edge.inference.reading.heat_evidence`, 4 numbers):
- `asymK`: [hottest, mean of the 5 hottest] of the asymmetry map, the scan's cell logits minus the
  largest logit of the other breast within K x K cells of the same place (K absorbs misalignment);
  `asymK alone`: the same without the other breast's own evidence;
- `at peakK`: the other breast's largest logit within K x K cells of the scan's hottest cell;
- `smoothK` (the evidence of both heat-maps averaged over K x K cells first) and `mean heat` (each
  heat-map's mean logit added) change each breast's own evidence, with no comparison of places;
- `whole breast C`: a third number a breast, the logit of an abnormal-vs-normal logistic regression
  (L2 strength C, balanced) on the breast's pooled cell features (`edge.inference.heads.pooled`, what the kind
  head reads), fitted with the heads on each inner and outer training set; `whole breast C alone`:
  that number only, to show what the pooled features know on their own.
Nested as `train.reader.cross_validate` runs it, on the shipped configuration's int16 features: the
heads are fitted once per inner and outer fold, and every setting's reading stage and threshold on
the same inner out-of-fold heat-maps; `shipped` reproduces `reports/cv`'s figures. Its `AUC malignant`
is P(abnormal)'s (the shipped P(malignant) is P(abnormal) times the training rate). Last, the pointing
game of the asymmetry map's peak against the heat-map's.
"""

from __future__ import annotations

import sys

import numpy as np
from edge.inference.reading import heat_logit as logit


def top(values: np.ndarray) -> np.ndarray:
    """(n, 2): [largest, mean of the 5 largest] of each map."""
    from edge.inference.reading import TOP_CELLS

    cells = np.sort(values.reshape(len(values), -1), 1)[:, ::-1]
    return np.stack([cells[:, 0], cells[:, :TOP_CELLS].mean(1)], 1)


def near(heat: np.ndarray, k: int) -> np.ndarray:
    """The largest logit within k x k cells of each cell."""
    from scipy.ndimage import maximum_filter

    return maximum_filter(logit(heat), size=(1, k, k), mode="nearest")


WHOLE_C = (0.01, 0.1)


def settings() -> dict:
    """name -> evidence(own, other) -> (n, d); own and other are (heat-maps, {C: whole-breast logits})."""
    from scipy.ndimage import uniform_filter

    from edge.inference.reading import heat_evidence

    def shipped(own, other):
        return np.stack([np.concatenate([heat_evidence(a), heat_evidence(b)]) for a, b in zip(own[0], other[0])])

    def asym(k, alone=False):
        def evidence(own, other):
            d = top(logit(own[0]) - near(other[0], k))
            return np.concatenate([shipped(own, other)[:, :2] if alone else shipped(own, other), d], 1)
        return evidence

    def at_peak(k):
        def evidence(own, other):
            peak = logit(own[0]).reshape(len(own[0]), -1).argmax(1)
            near_peak = near(other[0], k).reshape(len(peak), -1)[np.arange(len(peak)), peak]
            return np.concatenate([shipped(own, other), near_peak[:, None]], 1)
        return evidence

    def smooth(k):
        def evidence(own, other):
            return shipped(*[(uniform_filter(side[0], (1, k, k), mode="nearest"),) for side in (own, other)])
        return evidence

    def mean_heat(own, other):
        return np.concatenate([shipped(own, other)] + [logit(side[0]).mean((1, 2))[:, None] for side in (own, other)], 1)

    def whole(c, alone=False):
        def evidence(own, other):
            logits = np.stack([own[1][c], other[1][c]], 1)
            return logits if alone else np.concatenate([shipped(own, other), logits], 1)
        return evidence

    table = {"shipped": shipped}
    for k in (1, 3, 5, 7, 9):
        table[f"asym{k}"] = asym(k)
    for k in (3, 7):
        table[f"asym{k} alone"] = asym(k, alone=True)
    for k in (1, 5, 9):
        table[f"at peak{k}"] = at_peak(k)
    table.update({"smooth2": smooth(2), "smooth3": smooth(3), "mean heat": mean_heat})
    for c in WHOLE_C:
        table[f"whole breast {c}"] = whole(c)
        table[f"whole breast {c} alone"] = whole(c, alone=True)
    return table


def whole_breast(pool, y, training, rows, c) -> np.ndarray:
    """The logit of an abnormal-vs-normal logistic regression on pooled features, fitted on `training`, at `rows`."""
    from train import reader

    coef, bias, _ = reader._logistic(pool[training], y[training], c)
    return pool[rows] @ coef[0] + bias[0]


def fold_outputs(data, scales, folds, options):
    """(inner, outer, classes, malignant): inner[a] = (heat-maps, {C: whole-breast logits}) of outer fold a's
    training scans, inner out of fold; outer the same out of fold; the out-of-fold kinds and P(malignant | abnormal)."""
    from edge import LABELS
    from edge.inference.heads import pooled
    from train import reader

    n, ks = len(data.records), sorted(set(folds.tolist()))
    pool, y = pooled(scales), data.abnormal.astype(int)

    def blank():
        return np.zeros((n, *scales[0].shape[1:3])), {c: np.zeros(n) for c in WHOLE_C}

    def fill(maps, training, rows):
        heads = reader.fit_heads(scales, data, training, options)
        out = reader.outputs([f[rows] for f in scales], heads)
        maps[0][rows] = out.heatmap
        for c in WHOLE_C:
            maps[1][c][rows] = whole_breast(pool, y, training, rows, c)
        return out

    inner, outer = [blank() for _ in ks], blank()
    classes, malignant = np.zeros((n, len(LABELS))), np.zeros(n)
    for a, k in enumerate(ks):
        for j in ks:
            if j != k:
                fill(inner[a], np.flatnonzero((folds != k) & (folds != j)), np.flatnonzero(folds == j))
        test = np.flatnonzero(folds == k)
        out = fill(outer, np.flatnonzero(folds != k), test)
        classes[test], malignant[test] = out.classes, out.malignant
    return inner, outer, classes, malignant


def at(maps, rows):
    """(heat-maps, {C: whole-breast logits}) of `rows`."""
    return maps[0][rows], {c: v[rows] for c, v in maps[1].items()}


def read(evidence, inner, outer, y, folds, partner):
    """(P(abnormal), threshold) of every scan, out of fold: the reading stage and threshold fitted on inner evidence."""
    from train import metrics, reader

    p, threshold = np.zeros(len(y)), np.zeros(len(y))
    for a, k in enumerate(sorted(set(folds.tolist()))):
        training, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        x = evidence(at(inner[a], training), at(inner[a], partner[training]))
        coef, bias, _ = reader._logistic(x, y[training], 1.0, balanced=False)
        sigmoid = lambda x: 1 / (1 + np.exp(-(x @ coef[0] + bias[0])))  # noqa: B023 (used in this iteration only)
        threshold[test] = metrics.threshold_for_sensitivity(y[training], sigmoid(x))
        p[test] = sigmoid(evidence(at(outer, test), at(outer, partner[test])))
    return p, threshold


def main(data_dir: str) -> None:
    from reader_probe import setup

    from edge import LABELS
    from edge.inference.reading import answer
    from train import metrics, reader
    from train.cv import heatmap_peaks

    config, data, folds, features = setup(data_dir, "int16")
    inner, outer, classes, malignant = fold_outputs(data, features.board, folds, config.options)
    y, partner = data.abnormal.astype(int), reader.partners(data)
    assert (partner >= 0).all(), "every development scan has its other breast"
    truth = np.array([LABELS.index(r.label) for r in data.records])
    patients = np.array([r.patient for r in data.records])
    reference = None
    for name, evidence in settings().items():
        p, threshold = read(evidence, inner, outer, y, folds, partner)
        reference = p if reference is None else reference
        label = np.array([LABELS.index(answer(p[i], classes[i], malignant[i], threshold[i]).label) for i in range(len(p))])
        difference = metrics.paired_auc_difference(y, p, reference, patients)
        print(f"{name:24s} AUC abnormal {metrics.auc(y, p):.3f}  AUC malignant {metrics.auc(data.malignant, p):.3f}  "
              f"balanced accuracy {metrics.balanced_accuracy(truth, label):.3f}  macro-F1 {metrics.macro_f1(truth, label):.3f}  "
              f"specificity at the threshold {metrics.at_threshold(y, p, threshold)[1]:.3f}  "
              f"AUC vs shipped {difference['value']:+.3f} ({difference['ci95'][0]:+.3f} to {difference['ci95'][1]:+.3f})", flush=True)

    def pointing(maps):
        hits = [row["hit"] for row in heatmap_peaks(data, maps) if row["hit"] != ""]
        return f"{sum(hits)}/{len(hits)}"

    heat = outer[0]
    print(f"pointing game: heat-map {pointing(heat)}; asymmetry map (K = 1, 3, 5, 7, 9) "
          + ", ".join(pointing(logit(heat) - near(heat[partner], k)) for k in (1, 3, 5, 7, 9)))


if __name__ == "__main__":
    main(sys.argv[1])
