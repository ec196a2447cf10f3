"""Reading a woman's exam: one coherent probability model over one scan, or over both breasts.

The int8 model gives per-scan evidence: a heat-map of lesion-like cells, the kind of finding
were the scan abnormal (`classes`, P(class | abnormal)), and P(malignant | abnormal). This
module turns the evidence of a scan, and of the other breast of the same woman when there is
one, into the answer. It is numpy only and runs the same on the board and in training, where
its coefficients are fitted (inside training folds), so the cross-validated figures are the
figures of this very code.

Why the other breast: dense tissue, the pectoral muscle and the breast edge look alike on both
sides, a lesion does not. A scan's hottest cells are compared with the other breast's.

One probability model, so the outputs never contradict each other:
- P(abnormal) from the heat-map (and the partner's), by a logistic regression;
- P(NORM) = 1 - P(abnormal); P(class) = P(abnormal) * P(class | abnormal);
- P(malignant) = P(abnormal) * P(malignant | abnormal), or, from a malignancy head of its own
  (trained on every scan, so that it ranks cancers by itself), min(P(malignant), P(abnormal));
- triage "refer" when P(abnormal) reaches the threshold; the label is NORM exactly when the
  triage is "routine", otherwise the most likely finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge import LABELS
TOP_CELLS = 5
"""The evidence of a scan: its hottest cell and the mean of its TOP_CELLS hottest cells."""
EPS = 1.0 / 512
"""Heat-map values are clipped to [EPS, 1 - EPS] before the logit: an int8 heat-map has steps of 1/256."""
NORM = LABELS.index("NORM")


def heat_logit(heat) -> np.ndarray:
    """The logit of heat-map values, clipped to [EPS, 1 - EPS] first."""
    p = np.clip(np.asarray(heat, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def heat_evidence(heatmap: np.ndarray) -> np.ndarray:
    """[logit of the hottest cell, logit of the mean of the TOP_CELLS hottest] of one heat-map (any shape)."""
    cells = np.sort(np.asarray(heatmap, np.float64).reshape(-1))[::-1]
    return heat_logit([cells[0], cells[:TOP_CELLS].mean()])


def scan_evidence(heatmap: np.ndarray, image_logit: float | None = None) -> np.ndarray:
    """What the reading stage reads of one scan: `heat_evidence`, then the abnormality head's logit
    when the model has one (`edge.inference.heads.Heads.abnormal_w`: what the whole image says, beside its hottest cells)."""
    ev = heat_evidence(heatmap)
    return ev if image_logit is None else np.append(ev, float(image_logit))


@dataclass(frozen=True)
class Logistic:
    """P = sigmoid(weights . x + bias)."""

    weights: tuple[float, ...]
    bias: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, np.float64) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"weights": [float(w) for w in self.weights], "bias": float(self.bias)}

    @classmethod
    def from_json(cls, raw: dict[str, Any], inputs: int) -> "Logistic":
        weights = tuple(float(w) for w in raw["weights"])
        if len(weights) != inputs:
            raise ValueError(f"expected {inputs} weights, got {len(weights)}")
        return cls(weights, float(raw["bias"]))


@dataclass(frozen=True)
class Reading:
    """The exam-level stage: P(abnormal) of a lone scan, and of a scan read beside its partner."""

    single: Logistic  # on scan_evidence(own)
    paired: Logistic  # on [scan_evidence(own), scan_evidence(other)]

    def p_abnormal(self, own: np.ndarray, other: np.ndarray | None = None) -> float:
        """`own`, `other`: scan_evidence of the scan and of the other breast (None: read alone)."""
        if other is None:
            return float(self.single(own))
        return float(self.paired(np.concatenate([own, other])))

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence": f"[logit(hottest heat-map cell), logit(mean of the {TOP_CELLS} hottest)"
                        + (", abnormality head's logit]" if len(self.single.weights) == 3 else "]"),
            "single": self.single.to_json(),
            "paired": self.paired.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Reading":
        inputs = len(raw["single"]["weights"])
        if inputs not in (2, 3):
            raise ValueError(f"the reading stage reads 2 or 3 numbers of a scan, not {inputs}")
        return cls(Logistic.from_json(raw["single"], inputs), Logistic.from_json(raw["paired"], 2 * inputs))


@dataclass(frozen=True)
class Answer:
    """The coherent answer for one scan."""

    label: str
    probabilities: dict[str, float]  # the 7 MIAS codes, summing to 1
    abnormal: float
    malignant: float
    triage: str  # "refer" or "routine"


def answer(p_abnormal: float, classes: np.ndarray, malignant_if_abnormal: float, threshold: float,
           labels: tuple[str, ...] = LABELS, malignant_direct: bool = False) -> Answer:
    """The answer from P(abnormal), the model's P(class | abnormal) and P(malignant | abnormal)
    (`malignant_direct`: that argument is P(malignant) itself)."""
    scores = np.clip(np.asarray(classes, np.float64).reshape(-1), 0.0, None)
    norm = labels.index("NORM")
    scores[norm] = 0.0
    total = scores.sum()
    kinds = scores / total if total > 0 else np.where(np.arange(len(labels)) == norm, 0.0, 1.0 / (len(labels) - 1))
    p_abnormal = float(np.clip(p_abnormal, 0.0, 1.0))
    probabilities = {name: float(p_abnormal * kinds[i]) for i, name in enumerate(labels)}
    probabilities[labels[norm]] = 1.0 - p_abnormal
    triage = "refer" if p_abnormal >= threshold else "routine"
    label = labels[int(np.argmax(kinds))] if triage == "refer" else labels[norm]
    m = float(np.clip(malignant_if_abnormal, 0.0, 1.0))
    malignant = min(m, p_abnormal) if malignant_direct else p_abnormal * m
    return Answer(label, probabilities, p_abnormal, malignant, triage)
