"""Do two runs give the same decisions? `edge-classify --json` records of the same scans compared.

Why not bit-identity: LiteRT's XNNPACK, TFLite's builtin and reference kernels and the two runtimes
round int8 arithmetic differently in the last bits, and the fast kernels are what a board should
run. What must not move is what a health worker acts on. The bounds (`BOUNDS`): the same triage on
at least 99.5% of scans, the same label on 99%, every probability within 0.05 and the median
difference at most 0.005 (a near-tie may flip; a drift may not).
"""

from __future__ import annotations

import numpy as np

BOUNDS = {"same_triage": 0.995, "same_label": 0.99, "max_difference": 0.05, "median_difference": 0.005}


def _probabilities(record: dict) -> list[float]:
    return [*record["probabilities"].values(), record["abnormal"], record["malignant"]]


def agreement(reference: list[dict], records: list[dict]) -> dict[str, float]:
    """Shares of the same triage and label, and the largest and median probability difference, over the
    scans both runs read (a scan refused by either is counted apart: refusals are the gate's, not the kernels')."""
    if len(reference) != len(records) or any(a["file"] != b["file"] for a, b in zip(reference, records)):
        raise ValueError("the two runs did not read the same scans in the same order")
    refused = sum("error" in a or "error" in b for a, b in zip(reference, records))
    both = [(a, b) for a, b in zip(reference, records) if "error" not in a and "error" not in b]
    reference, records = [a for a, _ in both], [b for _, b in both]
    diff = np.abs(np.array([_probabilities(a) for a in reference]) - np.array([_probabilities(b) for b in records]))
    return {
        "scans": len(records),
        "refused_by_either": refused,
        "same_triage": float(np.mean([a["triage"] == b["triage"] for a, b in zip(reference, records)])),
        "same_label": float(np.mean([a["label"] == b["label"] for a, b in zip(reference, records)])),
        "max_difference": float(diff.max()) if diff.size else 0.0,
        "median_difference": float(np.median(diff)) if diff.size else 0.0,
    }


def within_bounds(figures: dict[str, float]) -> bool:
    return (figures["same_triage"] >= BOUNDS["same_triage"] and figures["same_label"] >= BOUNDS["same_label"]
            and figures["max_difference"] <= BOUNDS["max_difference"]
            and figures["median_difference"] <= BOUNDS["median_difference"])
