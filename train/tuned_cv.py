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
from edge.inference.reading import Reading, answer
from train import distil, finetune, metrics, reader, trunk
from train.data import Dataset

IMAGE_C = 0.01
"""Inverse L2 strength of the abnormality and malignancy heads on standardised pooled features:
on one fold of the two sources, 0.01 / 0.05 / 0.2 gave digital-source AUC 0.651 / 0.640 / 0.632."""
def base_weights() -> distil.Tuned:
    """The stem's weights: the trunk distilled for int8 on the MIAS development scans' pixels (no labels), as shipped."""
    shipped = sorted(distil.SHIPPED.glob("distilled-*.npz"))
    if len(shipped) != 1:
        raise FileNotFoundError(f"{distil.SHIPPED}: expected one distilled-*.npz, found {len(shipped)}")
    return distil.load(shipped[0])


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
                   log=print, learn_from: np.ndarray | None = None) -> Result:
    """Fine-tune, fit and read each test fold from the other folds; cross-fit the reading and threshold.

    `learn_from` (a mask over the scans; default all) limits what any fold learns from, so that an
    ablation on the same folds reads every scan with a model that saw only some sources."""
    n = len(data.records)
    learn = np.ones(n, bool) if learn_from is None else learn_from
    y = data.abnormal.astype(int)
    women = data.women
    partner = reader.partners(data)
    masks = finetune.breast_masks(data.images, tuple(data.size // (c.shape[1] * 8) for c in codes))
    targets = finetune.targets(data)
    oof = Evidence(np.zeros((n, 3)), np.zeros((n, len(LABELS))), np.zeros(n), np.zeros((n, *masks[0].shape[1:]), np.float32))
    for k in sorted(set(folds.tolist())):
        t0 = time.time()
        training, test = np.flatnonzero((folds != k) & learn), np.flatnonzero(folds == k)
        tuned = finetune.finetune(codes, masks, targets, training, base, epochs, seed, progress)
        scales = [finetune.features(c, tuned.tuned) for c in codes]
        heads = fit_heads(scales, data, training, tuned, options)
        got = read_scans([f[test] for f in scales], heads)
        oof.ev[test], oof.classes[test], oof.malignant[test], oof.heatmap[test] = got.ev, got.classes, got.malignant, got.heatmap
        log(f"fold {k}: fine-tuned and read ({time.time() - t0:.0f} s)")
    probs, abnormal, malignant, threshold = np.zeros((n, len(LABELS))), np.zeros(n), np.zeros(n), np.zeros(n)
    for k in sorted(set(folds.tolist())):
        others, test = np.flatnonzero((folds != k) & learn), np.flatnonzero(folds == k)
        reading = reader.fit_reading(oof.ev, partner, y, others)
        threshold[test] = metrics.woman_threshold(reader.read(reading, oof.ev, partner, others, True), y[others], women[others])
        p = reader.read(reading, oof.ev, partner, test, True)
        for row, i in enumerate(test):
            a = answer(p[row], oof.classes[i], oof.malignant[i], threshold[i], malignant_direct=True)
            probs[i] = [a.probabilities[label] for label in LABELS]
            abnormal[i], malignant[i] = a.abnormal, a.malignant
    everyone = np.flatnonzero(learn)
    reading = reader.fit_reading(oof.ev, partner, y, everyone)
    final = metrics.woman_threshold(reader.read(reading, oof.ev, partner, everyone, True), y[everyone], women[everyone])
    return Result(probs, abnormal, malignant, oof.heatmap, threshold, oof.ev, reading, final)


def stem(data: Dataset, factors: tuple[int, ...], cache: Path | None, log=print) -> tuple[distil.Tuned, list[np.ndarray]]:
    """The stem's weights and its cached int8 codes of every scan at every scale."""
    base = base_weights()
    t0 = time.time()
    codes = [finetune.stem_codes(reader.scale_images(data.images, f), base, cache) for f in factors]
    log(f"stem codes at {', '.join(str(data.size // f) for f in factors)} ({time.time() - t0:.0f} s)")
    return base, codes


# --- figures per source and per woman ----------------------------------------------------------


def _figures(rows: dict, index: np.ndarray, women: np.ndarray | None = None) -> dict[str, float]:
    """Every figure of one source on the scans `index` of the out-of-fold `rows` (`women`: each
    scan's woman, when not `rows["woman"][index]`: a bootstrap sample's draws)."""
    y, p, m, t = rows["abnormal_truth"][index], rows["abnormal"][index], rows["malignant"][index], rows["threshold"][index]
    out = {"auc_abnormal": metrics.auc(y, p), "auc_malignant": metrics.auc(rows["malignant_truth"][index], m),
           "auc_malignant_by_abnormal": metrics.auc(rows["malignant_truth"][index], p)}
    out["sensitivity_at_threshold"], out["specificity_at_threshold"] = metrics.at_threshold(y, p, t)
    known = index[rows["kind"][index] >= 0]
    if len(known) and (rows["kind"][known] != LABELS.index("NORM")).any():
        predicted = np.where(rows["abnormal"][known] >= rows["threshold"][known], rows["kind_shown"][known], LABELS.index("NORM"))
        out["balanced_accuracy"] = metrics.balanced_accuracy(rows["kind"][known], predicted)
        out["macro_f1"] = metrics.macro_f1(rows["kind"][known], predicted)
    both = rows["paired"][index]
    if both.any():
        women = rows["woman"][index] if women is None else women
        out.update(metrics.woman_figures(p[both], y[both], t[both], women[both]))
    return out


def by_source(rows: dict, reps: int = 1000, seed: int = 0) -> dict:
    """Per source: each figure with its 95% CI (bootstrap over women) and its baseline."""
    base = {"auc_abnormal": 0.5, "auc_malignant": 0.5, "auc_malignant_by_abnormal": 0.5, "woman_auc_abnormal": 0.5,
            "balanced_accuracy": 1 / len(LABELS), "sensitivity_at_threshold": 1.0, "specificity_at_threshold": 0.0,
            "woman_sensitivity": 1.0, "woman_specificity": 0.0}
    rng = np.random.default_rng(seed)
    out = {}
    for source in sorted(set(rows["source"].tolist())):
        index = np.flatnonzero(rows["source"] == source)
        value = _figures(rows, index)
        women = np.unique(rows["woman"][index])
        samples: dict[str, list[float]] = {k: [] for k in value}
        for sample, draw in metrics.drawn(rows["woman"][index], reps, rng):
            got = _figures(rows, index[sample], draw)
            for k in value:
                samples[k].append(got.get(k, np.nan))
        out[source] = {"images": len(index), "women": len(women), "abnormal_images": int(rows["abnormal_truth"][index].sum()),
                       **{k: {"value": v, "ci95": [float(np.nanpercentile(samples[k], 2.5)), float(np.nanpercentile(samples[k], 97.5))],
                              "baseline": base.get(k)} for k, v in value.items()}}
    return out


def oof_rows(data: Dataset, folds: np.ndarray, result: Result) -> dict:
    """The out-of-fold answers as columns (what predictions.csv holds)."""
    partner = reader.partners(data)
    findings = np.where(np.arange(len(LABELS)) == LABELS.index("NORM"), -np.inf, result.probs)
    return {
        "id": np.array([r.id for r in data.records]), "source": np.array([r.source for r in data.records]),
        "woman": data.women, "fold": folds,
        "kind": data.class_index, "kind_shown": findings.argmax(1),
        "abnormal_truth": data.abnormal.astype(int), "malignant_truth": data.malignant.astype(int),
        "abnormal": result.abnormal, "malignant": result.malignant, "threshold": result.threshold,
        "paired": partner >= 0, "probs": result.probs,
    }


def write_predictions(path: Path, rows: dict) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "source", "woman", "fold", "true_class", "abnormal_truth", "malignant_truth", "paired",
                      *LABELS, "abnormal", "malignant", "threshold"])
        for i in range(len(rows["id"])):
            kind = LABELS[rows["kind"][i]] if rows["kind"][i] >= 0 else "ABN"
            out.writerow([rows["id"][i], rows["source"][i], rows["woman"][i], int(rows["fold"][i]), kind,
                          int(rows["abnormal_truth"][i]), int(rows["malignant_truth"][i]), int(rows["paired"][i]),
                          *(f"{v:.6f}" for v in rows["probs"][i]), f"{rows['abnormal'][i]:.6f}",
                          f"{rows['malignant'][i]:.6f}", f"{rows['threshold'][i]:.6f}"])


def read_predictions(path: Path) -> dict:
    import csv

    with open(path, newline="") as handle:
        lines = list(csv.DictReader(handle))
    col = lambda name, kind=str: np.array([kind(r[name]) for r in lines])  # noqa: E731
    findings = np.array([[float(r[c]) if c != "NORM" else -np.inf for c in LABELS] for r in lines])
    return {"id": col("id"), "source": col("source"), "woman": col("woman"), "fold": col("fold", int),
            "kind": np.array([LABELS.index(r["true_class"]) if r["true_class"] in LABELS else -1 for r in lines]),
            "kind_shown": findings.argmax(1), "abnormal_truth": col("abnormal_truth", int),
            "malignant_truth": col("malignant_truth", int), "abnormal": col("abnormal", float),
            "malignant": col("malignant", float), "threshold": col("threshold", float),
            "paired": col("paired", int).astype(bool), "probs": np.array([[float(r[c]) for c in LABELS] for r in lines])}


def run(data_dirs: list[Path], out: Path, size: int = 512, factors: tuple[int, ...] = (1, 2), folds: int = 5, seed: int = 0,
        epochs: int = finetune.EPOCHS, reports: Path | None = None, cache: Path | None = None, limit: int | None = None,
        progress=None, log=print, command: str | None = None):
    """`edge-train` over one or more folders: cross-validate, report per source, then the shipped model and its handoff."""
    import json
    import warnings

    from edge.scan.decode import ColourScanWarning
    from train import handoff, records as training_records
    from train.data import load_dataset
    from train.splits import patient_folds

    started = time.time()
    records = training_records.load_all(data_dirs)
    if limit:
        records = records[:limit]
    log(f"preparing {len(records)} scans at {size}x{size}")
    with warnings.catch_warnings():  # a grey scan stored as RGB (the digital source's JPEGs) is expected here
        warnings.simplefilter("ignore", ColourScanWarning)
        data = load_dataset(records, size, progress=(lambda r: progress(r, desc="prepare")) if progress else None)
    fold = patient_folds(records, k=folds, seed=seed)
    base, codes = stem(data, factors, cache, log)
    options = reader.Options(seed=seed)
    result = cross_validate(data, fold, codes, base, options, epochs, seed, progress, log)
    rows = oof_rows(data, fold, result)
    cv_dir = reports or out / "cv"
    write_predictions(cv_dir / "predictions.csv", rows)
    figures = by_source(rows)
    document = {"threshold": result.final_threshold, "sources": figures}
    (cv_dir / "sources.json").write_text(json.dumps(document, indent=1))
    (cv_dir / "sources.md").write_text(sources_section(document) + "\n")
    log("out of fold: " + "; ".join(f"{s}: AUC abnormal {f['auc_abnormal']['value']:.3f}, malignant {f['auc_malignant']['value']:.3f}"
                                    for s, f in figures.items()))

    t0 = time.time()
    everyone = np.arange(len(records))
    masks = finetune.breast_masks(data.images, factors)
    tuned = finetune.finetune(codes, masks, finetune.targets(data), everyone, base, epochs, seed, progress)
    board = trunk.quantized_features(data.images, factors, cache, tuned.tuned, "int8")
    heads = fit_heads(board, data, everyone, tuned, options)
    model = reader.build_network(size, factors, tuned=tuned.tuned)
    config = {"size": size, "factors": list(factors), "features": "int8", "folds": folds, "seed": seed,
              "trunk": f"fine-tuned after {finetune.STEM_END}, {epochs} epochs", "options": {"paired": True}}
    result_handoff = handoff.Handoff(
        input_size=size,
        triage=handoff.Triage(result.final_threshold, metrics.TARGET_SENSITIVITY,
                              f"per woman (referred when any of her scans is): pooled out-of-fold P(abnormal) of the "
                              f"{folds}-fold patient-grouped cross-validation over {', '.join(sorted(figures))}; never a hold-out"),
        reading=result.reading.to_json(),
        heads=heads.to_json(),
        outputs=reader.output_names(len(factors)),
        metrics={"what": f"out-of-fold, {folds}-fold patient-grouped cross-validation; 95% bootstrap CI over women; per source",
                 "sources": figures},
        data={"sources": [training_records.described([r for r in records if r.source == Path(d).resolve().name], d,
                                                     f"patient_folds(k={folds}, seed={seed})") for d in data_dirs]},
        record={"model": f"MobileNet v1 0.25: stem distilled for int8 (ImageNet), blocks after {finetune.STEM_END} fine-tuned "
                         f"quantization-aware on {', '.join(sorted(figures))} ({epochs} epochs); heads beside the int8 network",
                "config": config, "command": command, "final_seconds": round(time.time() - t0, 1),
                "train_seconds": round(time.time() - started, 1)},
    )
    handoff.write(out / "final", model, result_handoff)
    log(f"done in {time.time() - started:.0f} s: {out / 'final' / 'model.keras'}")
    return result_handoff


NAMES = {
    "auc_abnormal": "AUC abnormal vs normal (per scan)", "auc_malignant": "AUC malignant vs rest, of P(malignant)",
    "auc_malignant_by_abnormal": "AUC malignant vs rest, of P(abnormal)", "sensitivity_at_threshold": "sensitivity at the threshold (per scan)",
    "specificity_at_threshold": "specificity at the threshold (per scan)", "balanced_accuracy": "balanced accuracy of the label shown",
    "macro_f1": "macro-F1 of the label shown", "woman_auc_abnormal": "AUC per woman (her higher breast)",
    "woman_sensitivity": "sensitivity per woman (referred if either breast is)", "woman_specificity": "specificity per woman (sent home routine)",
}
SECTION = "## Per source and per woman"


def sources_section(document: dict) -> str:
    """The Markdown section of the per-source figures (`sources.json`)."""
    lines = [SECTION, "",
             f"Out of fold, patient-grouped; 95% CI from 1,000 bootstrap resamples of women; one shipped triage threshold "
             f"({document['threshold']:.3f}), chosen for 90% of women with a finding to be referred. Baselines: a constant "
             "score (AUC 0.5), the label NORM for all (balanced accuracy 1/7), refer everyone (sensitivity 1, specificity 0). "
             "Per-woman figures only where both breasts are known. Regenerated by `edge-train` (or "
             "`python -m train.tuned_cv reports/cv --docs docs/model.md` from `reports/cv/predictions.csv`).", ""]
    for source, figures in document["sources"].items():
        lines += [f"**{source}**: {figures['images']} images of {figures['women']} women, {figures['abnormal_images']} abnormal.", "",
                  "| figure | value | 95% CI | baseline |", "| --- | --- | --- | --- |"]
        for key, name in NAMES.items():
            if key in figures:
                f = figures[key]
                base = "" if f["baseline"] is None else f"{f['baseline']:.3f}"
                lines.append(f"| {name} | {f['value']:.3f} | {f['ci95'][0]:.3f}-{f['ci95'][1]:.3f} | {base} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Recompute `sources.json` from a run's `predictions.csv` and write the section into a docs page."""
    import argparse
    import json

    from train.doc_blocks import replace_section

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("cv", type=Path)
    parser.add_argument("--docs", type=Path)
    args = parser.parse_args(argv)
    rows = read_predictions(args.cv / "predictions.csv")
    document = json.loads((args.cv / "sources.json").read_text())
    document["sources"] = by_source(rows)
    (args.cv / "sources.json").write_text(json.dumps(document, indent=1))
    (args.cv / "sources.md").write_text(sources_section(document) + "\n")
    if args.docs:
        args.docs.write_text(replace_section(args.docs.read_text(), SECTION, sources_section(document)))


if __name__ == "__main__":
    main()
