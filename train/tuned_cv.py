"""Patient-grouped cross-validation of the fine-tuned reader over every source at once, decided per woman.

Per test fold, on the other folds only: the trunk fine-tuned (`train.finetune`), its int8 cell
features, and the heads beside the network (`edge.inference.heads.Heads`):
- the lesion-cell head is the fine-tune's own (linear on the cells: the heat-map);
- the abnormality head: a logistic regression on the pooled features of every training scan;
- the malignancy head: the same on every training scan, malignant or not, so that P(malignant)
  ranks cancers by itself (`Heads.malignant_direct`);
- the kind head, on the training scans whose finding has a known kind (`train.reader.kind_head`).
The reading stage (`edge.inference.reading.Reading`, a scan alone or beside her other breast) and the
triage threshold are cross-fitted: fold k's are fitted on the out-of-fold evidence of the other
folds, never on fold k. The shipped ones are the same rule on every fold.

The threshold is chosen for the decision a health worker acts on: a woman is referred when any of
her scans is, so it is the highest threshold that refers `metrics.TARGET_SENSITIVITY` of the women
with a finding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import LABELS
from edge.inference.heads import Heads, outputs, pooled
from edge.inference.reading import Logistic, Reading, answer
from train import distil, finetune, metrics, reader
from train.data import Dataset

IMAGE_C = 0.01
"""Inverse L2 strength of the abnormality and malignancy heads on standardised pooled features:
on one fold of the two sources, 0.01 / 0.05 / 0.2 gave digital-source AUC 0.651 / 0.640 / 0.632."""
BASE = distil.SHIPPED / "distilled-0944e528802ee0502602.npz"
"""The stem's weights: the trunk distilled for int8 on the MIAS development scans' pixels (no labels)."""


@dataclass
class Evidence:
    """What the heads of one fold (or the final model) make of a set of scans."""

    ev: np.ndarray  # (n, 3) edge.inference.reading.scan_evidence
    classes: np.ndarray  # (n, 7) P(kind | abnormal)
    malignant: np.ndarray  # (n,) P(malignant)
    heatmap: np.ndarray  # (n, g, g)


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, bias, _ = reader._logistic(x, y, IMAGE_C)
    return coef[0], float(bias[0])


def fit_heads(scales: list[np.ndarray], data: Dataset, index: np.ndarray, tuned: finetune.Finetuned,
              options: reader.Options) -> Heads:
    """The heads beside the network, from the training scans `index` and the fine-tune's cell head."""
    pool = pooled(scales)
    abnormal_w, abnormal_b = _logistic(pool[index], data.abnormal[index])
    malignant_w, malignant_b = _logistic(pool[index], data.malignant[index])
    classes_w, classes_b = reader.kind_head(pool, scales[0].shape[-1], data, index, options)
    n = len(scales)
    return Heads((tuned.lesion_w,) * n, (tuned.lesion_b,) * n, classes_w, classes_b, malignant_w, malignant_b,
                 malignant_direct=True, abnormal_w=abnormal_w, abnormal_b=abnormal_b)


def read_scans(scales: list[np.ndarray], heads: Heads) -> Evidence:
    out = outputs(scales, heads)
    return Evidence(reader.evidence(out), out.classes, out.malignant, out.heatmap)


def fit_reading(ev: np.ndarray, partner: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Reading:
    """The reading stage from the evidence of `rows`; where no row has a partner, a partner weighs nothing."""
    rows = np.asarray(rows)
    coef, bias, _ = reader._logistic(ev[rows], y[rows], 1.0, balanced=False)
    single = Logistic(tuple(coef[0]), float(bias[0]))
    paired_rows = rows[partner[rows] >= 0]
    if len(np.unique(y[paired_rows])) < 2:
        return Reading(single, Logistic((*single.weights, *(0.0,) * ev.shape[1]), single.bias))
    x = np.concatenate([ev[paired_rows], ev[partner[paired_rows]]], axis=1)
    coef, bias, _ = reader._logistic(x, y[paired_rows], 1.0, balanced=False)
    return Reading(single, Logistic(tuple(coef[0]), float(bias[0])))


def woman_threshold(p: np.ndarray, y: np.ndarray, women: np.ndarray, target: float = metrics.TARGET_SENSITIVITY) -> float:
    """The highest threshold that refers `target` of the women with a finding (a woman: her highest scan)."""
    top, sick = woman_scores(p, y, women)
    return metrics.threshold_for_sensitivity(sick, top, target)


def woman_scores(p: np.ndarray, y: np.ndarray, women: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(her highest P(abnormal), whether she has a finding) of each woman."""
    names, inverse = np.unique(women, return_inverse=True)
    top, sick = np.full(len(names), -np.inf), np.zeros(len(names), int)
    np.maximum.at(top, inverse, p)
    np.maximum.at(sick, inverse, y.astype(int))
    return top, sick


@dataclass
class Result:
    """Out-of-fold answers of every scan and what the shipped model takes from them."""

    probs: np.ndarray
    abnormal: np.ndarray
    malignant: np.ndarray
    heatmaps: np.ndarray
    threshold: np.ndarray  # per scan: its fold's cross-fitted threshold
    evidence: np.ndarray  # out-of-fold scan evidence (for the shipped reading stage)
    reading: Reading  # the shipped reading stage, from every fold's out-of-fold evidence
    final_threshold: float


def cross_validate(data: Dataset, folds: np.ndarray, codes: list[np.ndarray], base: distil.Tuned,
                   options: reader.Options, epochs: int = finetune.EPOCHS, seed: int = 0, progress=None,
                   log=print) -> Result:
    """Fine-tune, fit and read each test fold from the other folds; cross-fit the reading and threshold."""
    n = len(data.records)
    y = data.abnormal.astype(int)
    women = np.array([r.woman + "@" + r.source for r in data.records])
    partner = reader.partners(data)
    masks = [finetune.breast(reader.scale_images(data.images, data.size // (c.shape[1] * 8)), c.shape[1] // 2) for c in codes]
    targets = finetune.targets(data)
    oof = Evidence(np.zeros((n, 3)), np.zeros((n, len(LABELS))), np.zeros(n), np.zeros((n, *masks[0].shape[1:]), np.float32))
    for k in sorted(set(folds.tolist())):
        t0 = time.time()
        training, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        tuned = finetune.finetune(codes, masks, targets, training, base, epochs, seed, progress)
        scales = [finetune.features(c, tuned.tuned) for c in codes]
        heads = fit_heads(scales, data, training, tuned, options)
        got = read_scans([f[test] for f in scales], heads)
        oof.ev[test], oof.classes[test], oof.malignant[test], oof.heatmap[test] = got.ev, got.classes, got.malignant, got.heatmap
        log(f"fold {k}: fine-tuned and read ({time.time() - t0:.0f} s)")
    probs, abnormal, malignant, threshold = np.zeros((n, len(LABELS))), np.zeros(n), np.zeros(n), np.zeros(n)
    for k in sorted(set(folds.tolist())):
        others, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        reading = fit_reading(oof.ev, partner, y, others)
        threshold[test] = woman_threshold(read(reading, oof.ev, partner, others), y[others], women[others])
        p = read(reading, oof.ev, partner, test)
        for row, i in enumerate(test):
            a = answer(p[row], oof.classes[i], oof.malignant[i], threshold[i], malignant_direct=True)
            probs[i] = [a.probabilities[label] for label in LABELS]
            abnormal[i], malignant[i] = a.abnormal, a.malignant
    everyone = np.arange(n)
    reading = fit_reading(oof.ev, partner, y, everyone)
    final = woman_threshold(read(reading, oof.ev, partner, everyone), y, women)
    return Result(probs, abnormal, malignant, oof.heatmap, threshold, oof.ev, reading, final)


def read(reading: Reading, ev: np.ndarray, partner: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """P(abnormal) of `rows`, each beside its partner when it has one."""
    return np.array([reading.p_abnormal(ev[i], ev[partner[i]] if partner[i] >= 0 else None) for i in rows])


def stem(data: Dataset, factors: tuple[int, ...], cache: Path | None, log=print) -> tuple[distil.Tuned, list[np.ndarray]]:
    """The stem's weights and its cached int8 codes of every scan at every scale."""
    base = distil.load(BASE)
    t0 = time.time()
    codes = [finetune.stem_codes(reader.scale_images(data.images, f), base, cache) for f in factors]
    log(f"stem codes at {', '.join(str(data.size // f) for f in factors)} ({time.time() - t0:.0f} s)")
    return base, codes
