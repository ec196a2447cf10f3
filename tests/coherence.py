"""The one probability model every answer obeys (edge.inference.reading), as a check on a printed record."""

from __future__ import annotations

import math

from edge import LABELS
TOLERANCE = 2e-4  # records keep 4 decimals


def coherence_problems(record: dict, threshold: float) -> list[str]:
    """What is wrong with a JSON record of edge-classify; [] when it is coherent."""
    p = record["probabilities"]
    abnormal, malignant = record["abnormal"], record["malignant"]
    problems = []
    if list(p) != list(LABELS):
        problems.append(f"probabilities are not the 7 MIAS codes in order: {list(p)}")
    if not math.isclose(sum(p.values()), 1.0, abs_tol=4 * TOLERANCE):
        problems.append(f"probabilities sum to {sum(p.values())}")
    if not math.isclose(p["NORM"], 1.0 - abnormal, abs_tol=TOLERANCE):
        problems.append(f"P(NORM) {p['NORM']} is not 1 - P(abnormal) {abnormal}")
    if not 0.0 <= malignant <= abnormal + TOLERANCE <= 1.0 + TOLERANCE:
        problems.append(f"P(malignant) {malignant} is not within 0..P(abnormal) {abnormal}")
    if record["triage"] != ("refer" if abnormal >= threshold else "routine"):
        problems.append(f"triage {record['triage']} does not follow P(abnormal) {abnormal} and threshold {threshold}")
    if (record["label"] == "NORM") != (record["triage"] == "routine"):
        problems.append(f"label {record['label']} with triage {record['triage']}")
    findings = {k: v for k, v in p.items() if k != "NORM"}
    if record["label"] != "NORM" and findings[record["label"]] < max(findings.values()) - TOLERANCE:
        problems.append(f"label {record['label']} is not the most likely finding {max(findings, key=findings.get)}")
    return problems
