"""Study: what does each source add? The fine-tuned reader learnt from MIAS alone, the digital source alone, or both.

    python research/finetune/ablation.py ../shared/mias ../shared/rsna --both reports/cv/predictions.csv

The folds are `edge-train`'s (5, patient-grouped over both sources, seed 0), and every scan of both
sources is read out of fold; an arm learns (fine-tune, heads, reading stage, threshold) only from
the training folds' scans of its source. The arm "both" is `edge-train --trunk fine-tuned`'s own
out-of-fold predictions, given by `--both`. Writes each arm's predictions.csv and sources.json,
and ablation.md: every figure per source and arm, and the paired AUC differences (arm minus both,
95% CI from resampling women) beside this file. About 30 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent / "ablation"


def run_arm(mias: Path, rsna: Path, arm: str) -> dict:
    import warnings

    from edge.scan.decode import ColourScanWarning
    from train import reader, records, tuned_cv
    from train.cv import default_cache
    from train.data import load_dataset
    from train.splits import patient_folds

    found = records.load_all([mias, rsna])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ColourScanWarning)
        data = load_dataset(found, 512)
    folds = patient_folds(found, k=5, seed=0)
    base, codes = tuned_cv.stem(data, (1, 2), default_cache())
    learn = np.array([r.source == arm for r in found])
    result = tuned_cv.cross_validate(data, folds, codes, base, reader.Options(seed=0), learn_from=learn)
    rows = tuned_cv.oof_rows(data, folds, result)
    tuned_cv.write_predictions(HERE / arm / "predictions.csv", rows)
    return rows


def paired(rows: dict[str, dict]) -> list[str]:
    """Markdown rows: each arm minus both, per source and AUC."""
    from train.metrics import auc, paired_auc_difference

    both = rows["both"]
    out = ["| learnt from | read | AUC | arm | both | arm minus both (95% CI) |", "| --- | --- | --- | --- | --- | --- |"]
    for arm, got in rows.items():
        if arm == "both":
            continue
        assert (got["id"] == both["id"]).all(), "the arms read the scans in different orders"
        for source in sorted(set(both["source"].tolist())):
            index = np.flatnonzero(both["source"] == source)
            for score, truth in (("abnormal", "abnormal_truth"), ("malignant", "malignant_truth")):
                y = both[truth][index]
                d = paired_auc_difference(y, got[score][index], both[score][index], both["woman"][index])
                out.append(f"| {arm} | {source} | {score} | {auc(y, got[score][index]):.3f} | {auc(y, both[score][index]):.3f} | "
                           f"{d['value']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}) |")
    return out


def main() -> None:
    from train import tuned_cv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mias", type=Path)
    parser.add_argument("rsna", type=Path)
    parser.add_argument("--both", type=Path, required=True, help="edge-train --trunk fine-tuned's predictions.csv")
    parser.add_argument("--reuse", action="store_true", help="read the arms' predictions.csv already written")
    args = parser.parse_args()
    rows = {"both": tuned_cv.read_predictions(args.both)}
    for directory in (args.mias, args.rsna):
        arm = directory.resolve().name
        saved = HERE / arm / "predictions.csv"
        rows[arm] = tuned_cv.read_predictions(saved) if args.reuse and saved.exists() else run_arm(args.mias, args.rsna, arm)
    lines = ["# Ablation: what each source adds to the fine-tuned reader", "",
             f"Written by `python research/finetune/ablation.py ../shared/mias ../shared/rsna --both {args.both}`. "
             "Same 5 patient-grouped folds; every scan read out of fold; an arm learns only from its source's "
             "training-fold scans. Paired differences resample women.", "", *paired(rows), ""]
    for arm, got in rows.items():
        document = {"threshold": float(np.median(got["threshold"])), "sources": tuned_cv.by_source(got)}
        if arm != "both":
            (HERE / arm / "sources.json").write_text(json.dumps(document, indent=1))
        lines += [f"## Learnt from {arm}", "", tuned_cv.sources_section(document).split("\n\n", 2)[2], ""]
    (HERE / "ablation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
