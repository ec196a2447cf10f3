"""The cross-validation report, rebuilt from the committed files alone.

    python -m train.report reports/cv            # or reports/cv/predictions.csv

reads `predictions.csv` (and, beside it, `images.csv` for tissue and heat-map peaks, when
present) and writes `metrics.json`, `summary.md`, `confusion.png` and `roc.png` into the same folder.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from edge import LABELS
from train.doc_blocks import replace_section, rewrite
from train import metrics

NOTE = "Research software, not a medical device."
ABLATION_BEFORE = ("trunk 512 + 256 distilled, int16 activations, the shipped reader with the malignancy head always fitted "
                   "(shipped before: 126441c18662)")
"""The ablation's paired reference (research/ablation): the model shipped before the malignancy head had to beat the training rate."""
ABLATION_FLOAT = "frozen trunk 512 + 256, cell head with its 3x3 neighbourhood"
"""The ablation row of a linear cell head on the float frozen trunk's features: what a lossless int8 trunk would give it."""

_NAMES = {
    "balanced_accuracy": "7-class balanced accuracy",
    "macro_f1": "7-class macro-F1",
    "accuracy": "7-class accuracy",
    "auc_abnormal": "normal-vs-abnormal ROC AUC",
    "auc_malignant": "malignant-vs-rest ROC AUC",
    "sensitivity_at_80_specificity": "sensitivity at 80% specificity",
    "sensitivity_at_90_specificity": "sensitivity at 90% specificity",
    "sensitivity_at_threshold": "sensitivity at the triage threshold",
    "specificity_at_threshold": "specificity at the triage threshold",
    "woman_auc_abnormal": "per woman: ROC AUC of her higher breast's P(abnormal)",
    "woman_sensitivity": "per woman: sensitivity at the triage threshold (referred when either breast is)",
    "woman_specificity": "per woman: specificity at the triage threshold (sent home when both breasts are routine)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finite(value):
    """The document with NaN (an undefined figure, e.g. AUC of a one-class subgroup) as null: strict JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_images(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pointing_game(images: list[dict]) -> dict:
    """How often the heat-map peak lies inside an annotated circle, over abnormal images with one."""
    with_circle = [row for row in images if row.get("hit", "") != ""]
    hits = np.array([int(row["hit"]) for row in with_circle])
    out = {"n_images": len(with_circle), "hits": int(hits.sum()) if len(hits) else 0}
    out["hit_rate"] = float(hits.mean()) if len(hits) else float("nan")
    if len(hits):
        rng = np.random.default_rng(0)
        rates = [hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(1000)]
        out["ci95"] = [float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))]
    return out


def build(directory: str | Path) -> dict:
    """Recompute every figure from the folder's CSV files; write metrics.json, summary.md, pictures."""
    directory = Path(directory)
    if directory.suffix == ".csv":
        directory = directory.parent
    table = metrics.read_table(directory / "predictions.csv")
    images = read_images(directory / "images.csv")
    tissue = {row["id"]: row["tissue"] for row in images} or None
    document = metrics.evaluate(table, tissue)
    if images:
        document["pointing_game"] = pointing_game(images)
    (directory / "metrics.json").write_text(json.dumps(finite(document), indent=1, allow_nan=False))
    plot_confusion(document, directory / "confusion.png")
    plot_roc(table, document, directory / "roc.png")
    (directory / "summary.md").write_text(summary(document, table))
    return document


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _fmt(entry: dict, digits: int = 3) -> str:
    low, high = entry["ci95"]
    return f"{_num(entry['value'], digits)} ({_num(low, digits)}–{_num(high, digits)})"


TARGETS = {  # figure: (wanted, the least acceptable)
    "auc_abnormal": (0.80, 0.75),
    "auc_malignant": (0.75, 0.68),
    "balanced_accuracy": (0.35, 0.25),
    "macro_f1": (0.30, 0.22),
    "specificity_at_threshold": (0.40, 0.40),
    "woman_sensitivity": (0.90, 0.90),
    "woman_specificity": (0.30, 0.30),
}
"""The project's targets for the out-of-fold figures (issue 10; per woman, the decision a health worker acts on: issue 30)."""


def _targets(document: dict) -> list[tuple[str, str, str, str]]:
    """(target, figure, wanted, reached) of every target; reached is yes, floor only or **no**."""
    found = []
    for key, (wanted, floor) in TARGETS.items():
        if key not in document["headline"]:  # per-woman figures need both breasts of some women
            continue
        entry = document["headline"][key]
        value = entry["value"]
        known = value is not None and np.isfinite(value)
        reached = "yes" if known and value >= wanted else "floor only" if known and value >= floor else "**no**"
        found.append((_NAMES[key], _fmt(entry), f">= {wanted:.2f} (>= {floor:.2f})", reached))
    game = document.get("pointing_game")
    if game:
        rate = game["hit_rate"]
        found.append(("pointing game (heat-map peak in the circle)", _num(rate), ">= 0.50",
                      "yes" if np.isfinite(rate) and rate >= 0.5 else "**no**"))
    return found


def target_rows(document: dict) -> list[str]:
    """One line per target: the figure with its CI, the target and its floor, and which was reached."""
    rows = ["| target | out-of-fold (95% CI) | wanted (at least) | reached |", "| --- | --- | --- | --- |"]
    return rows + [f"| {name} | {figure} | {wanted} | {reached} |" for name, figure, wanted, reached in _targets(document)]


def missed_targets(document: dict) -> list[str]:
    """A paragraph naming the targets not reached and the levers left (empty when every target is met)."""
    missed = [name for name, _, _, reached in _targets(document) if reached != "yes"]
    if not missed:
        return []
    return [
        "Not reached: " + ", ".join(missed) + ". The levers left, in the order we would try them: more women (a centre's own scans through "
        "`labels.csv`: 91 abnormal scans teach six kinds of finding poorly); a full-resolution stage for "
        "calcifications, whose clusters are one or two pixels at this input size (their heat-map peaks fall in the "
        "circle least often of all kinds, `reports/cv/images.csv`), a learnt one: hand-made small-spot measures at "
        "1024 pixels beside the trunk's features did not help (`research/reader/spots.txt`); a wider pretrained trunk (only MobileNet v1 "
        "0.25's ImageNet weights are at hand; reading the full 1024-pixel scan with it did not help, "
        "`research/ablation`). Tried here and lost: more evidence for the reading stage (each scale's "
        "apart, the two breasts compared cell by cell, a whole-breast head: `research/reader/scale_evidence.txt`, "
        "`research/reader/asymmetry.txt`), more views of the training scans for the cell head "
        "(`research/reader/views.txt`), its inputs wider (a second trunk tap, `research/reader/taps.txt`) "
        "or narrower (principal components, `research/reader/cell_dims.txt`), and a contrast step before the trunk "
        "(`research/reader/contrast.txt`); the heat-map's peak placed inside its cell moves the pointing game by "
        "3 scans at most, from 39 of 88 (`research/reader/peaks.txt`).",
        "",
    ]


def referral_sentence(document: dict) -> str:
    sens = document["headline"]["sensitivity_at_threshold"]
    spec = document["headline"]["specificity_at_threshold"]
    sentence = (
        f"At the triage threshold the model found {_fmt(sens)} of abnormal scans and kept "
        f"{_fmt(spec)} of normal ones as routine"
    )
    if spec["value"] is not None and spec["value"] < 0.5:
        sentence += ": it would refer most normal scans too"
    sentence += "."
    if "woman_sensitivity" in document["headline"]:
        women, normal = document["headline"]["woman_sensitivity"], document["headline"]["woman_specificity"]
        sentence += (f" Per woman, the decision a health worker acts on (referred when either breast is), it referred "
                     f"{_fmt(women)} of the women with a finding and sent {_fmt(normal)} of the normal women home as routine.")
    return sentence


def malignancy_sentence(training: dict) -> str:
    """What P(malignant) is made of when the shipped model has no malignancy head (else nothing to say)."""
    from edge.inference.manifest import no_malignancy_head
    from train.reader import KIND_C

    rate = no_malignancy_head(training.get("heads"))
    if rate is None:
        return ""
    return (
        "The shipped model has no malignancy head: P(malignant) is P(abnormal) times the share of malignant findings "
        f"among the abnormal development scans ({rate:.2f}). An inner patient-grouped cross-validation of those scans "
        f"compared a head on the pooled features, at {len(KIND_C)} strengths, with that rate alone, and no head beat it, as in "
        "every training fold of the committed cross-validation (`train.reader.MALIGNANCY_SEARCH`, "
        "`research/reader/malignancy.txt`): the model does "
        "not tell malignant findings from benign ones, and its malignant-vs-rest AUC is its skill at finding them."
    )


def headline_rows(document: dict, keys=None) -> list[str]:
    keys = keys or [k for k in _NAMES if k in document["headline"]]
    rows = ["| figure | out-of-fold (95% CI) | majority baseline |", "| --- | --- | --- |"]
    for key in keys:
        entry = document["headline"][key]
        rows.append(f"| {_NAMES[key]} | {_fmt(entry)} | {_num(entry['baseline'])} |")
    return rows


def summary(document: dict, table: metrics.Table) -> str:
    lines = [
        "# Cross-validation report",
        "",
        f"{NOTE} Out-of-fold predictions of patient-grouped, class-stratified "
        f"{len(document['per_fold'])}-fold cross-validation on the mini-MIAS development split "
        f"({document['n_images']} images, {document['n_patients']} women). Every figure is recomputed "
        "from `predictions.csv` by `python -m train.report` (tissue and heat-map peaks from `images.csv`). "
        "95% CIs: percentile bootstrap over patients "
        f"({document['bootstrap']['reps']} resamples). Baseline: NORM for every image and a constant "
        "score (ROC AUC 0.5; at a constant threshold every scan is referred).",
        "",
        *headline_rows(document),
        "",
        "## Triage threshold",
        "",
        f"Target sensitivity {document['triage']['target_sensitivity']:.0%}. Rule: {document['triage']['rule']}. "
        "Fold thresholds: "
        + ", ".join(f"fold {k}: {v:.3f}" for k, v in document["triage"]["fold_thresholds"].items())
        + f". The same rule on the pooled out-of-fold scores gives {document['triage']['final_threshold']:.3f}; the shipped "
        "model's threshold is chosen the same way on its own final reading stage (`training.json`, triage).",
        "",
        "## Confusion matrix (rows: true class, columns: predicted)",
        "",
        "| true \\ predicted | " + " | ".join(LABELS) + " | recall |",
        "| --- | " + " | ".join("---" for _ in LABELS) + " | --- |",
    ]
    for label, row in zip(LABELS, document["confusion_matrix"]):
        recall = document["headline"][f"recall_{label}"]
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + f" | {_fmt(recall, 2)} |")
    lines += ["", "## Per fold", "", "| fold | n | threshold | bal. acc. | macro-F1 | AUC abnormal | AUC malignant | sens. at thr. | spec. at thr. |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, f in document["per_fold"].items():
        lines.append(
            f"| {k} | {f['n']} | {f['threshold']:.3f} | {f['balanced_accuracy']:.3f} | {f['macro_f1']:.3f} | "
            f"{f['auc_abnormal']:.3f} | {f['auc_malignant']:.3f} | {f['sensitivity_at_threshold']:.3f} | {f['specificity_at_threshold']:.3f} |"
        )
    spread = document["per_fold_spread"]
    lines += ["", "Spread over folds (mean ± sd, min–max): " + "; ".join(
        f"{_NAMES[k]} {spread[k]['mean']:.3f} ± {spread[k]['sd']:.3f} ({spread[k]['min']:.3f}–{spread[k]['max']:.3f})"
        for k in ("balanced_accuracy", "macro_f1", "auc_abnormal", "auc_malignant") if k in spread
    ) + "."]
    if "by_tissue" in document:
        lines += ["", "## By breast tissue", "", "| tissue | images | abnormal | AUC abnormal | AUC malignant | bal. acc. | sens. at thr. | spec. at thr. |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        from train.scan_record import TISSUES

        for code, group in document["by_tissue"].items():
            lines.append(
                f"| {TISSUES[code]} ({code}) | {group['n_images']} | {group['n_abnormal']} | {_fmt(group['auc_abnormal'])} | "
                f"{_fmt(group['auc_malignant'])} | {_fmt(group['balanced_accuracy'])} | {_fmt(group['sensitivity_at_threshold'])} | "
                f"{_fmt(group['specificity_at_threshold'])} |"
            )
    if "pointing_game" in document:
        game = document["pointing_game"]
        ci = game.get("ci95", [float("nan")] * 2)
        lines += [
            "",
            "## Where the heat-map points",
            "",
            f"Pointing game (out-of-fold): the heat-map's peak cell centre lies inside an annotated circle for "
            f"{game['hits']} of {game['n_images']} abnormal images with a circle: {game['hit_rate']:.3f} "
            f"(95% CI {ci[0]:.3f}–{ci[1]:.3f}, bootstrap over images). A cell is 16 input pixels, about 60 scan pixels: "
            "small circles are hard to hit at this resolution.",
        ]
    lines += [
        "",
        "Pictures: `confusion.png`, `roc.png`, `training_curves.png`, `overlays/` (heat-maps of a few abnormal scans, "
        "out-of-fold, annotated circle in green).",
        "",
    ]
    return "\n".join(lines)


def plot_confusion(document: dict, path: Path) -> None:
    plt = _plt()
    matrix = np.array(document["confusion_matrix"])
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=100)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color="white" if normalised[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(LABELS)), LABELS, fontsize=8)
    ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ba = document["headline"]["balanced_accuracy"]
    ax.set_title(f"Out-of-fold confusion (balanced acc. {_fmt(ba, 2)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_roc(table: metrics.Table, document: dict, path: Path) -> None:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=100)
    for y, score, key, name in (
        (table.y_abnormal, table.abnormal, "auc_abnormal", "abnormal vs normal"),
        (table.y_malignant, table.malignant, "auc_malignant", "malignant vs rest"),
    ):
        if len(np.unique(y)) > 1:
            fpr, tpr, _ = roc_curve(y, score)
            ax.plot(fpr, tpr, label=f"{name}: AUC {_fmt(document['headline'][key], 2)}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="constant score (AUC 0.5)")
    sens, spec = document["headline"]["sensitivity_at_threshold"]["value"], document["headline"]["specificity_at_threshold"]["value"]
    ax.plot([1 - spec], [sens], "o", color="C3", label="triage threshold (chosen on training folds)")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("Out-of-fold ROC", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def overlays(directory: Path, dataset, table: metrics.Table, heatmaps: np.ndarray, count: int = 4) -> list[Path]:
    """Out-of-fold heat-maps over the model input of the first abnormal scan with a circle of a few classes."""
    from PIL import Image

    plt = _plt()
    directory.mkdir(parents=True, exist_ok=True)
    chosen, seen = [], set()
    for i, record in enumerate(dataset.records):
        if record.lesions and record.label not in seen:
            chosen.append(i)
            seen.add(record.label)
        if len(chosen) == count:
            break
    paths = []
    for i in chosen:
        record = dataset.records[i]
        image = dataset.images[i]
        size = image.shape[0]
        heat = np.asarray(Image.fromarray(heatmaps[i]).resize((size, size), Image.Resampling.BILINEAR))
        fig, ax = plt.subplots(figsize=(2.8, 2.8), dpi=100)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap="inferno", alpha=0.45, vmin=0, vmax=1)
        for circle in dataset.circles[i]:
            ax.add_patch(plt.Circle((circle.col, circle.row), circle.radius, fill=False, color="lime", lw=1.2))
        label = LABELS[int(table.predicted_class(table.threshold)[i])] if table.threshold is not None else LABELS[int(table.probs[i].argmax())]
        ax.set_title(f"{record.id} {record.label}: P(abn) {table.abnormal[i]:.2f}, read as {label}", fontsize=7)
        ax.axis("off")
        fig.tight_layout()
        path = directory / f"{record.id.replace('/', '_')}_{record.label}.png"  # a labels.csv id may name a subfolder
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _optional_json(path: str | Path | None):
    """The JSON file at `path`, or None when no path is given or no file is there (a report without it)."""
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def model_card(directory: str | Path, training_path: str | Path | None = None, comparison_path: str | Path | None = None,
               digital_path: str | Path | None = None) -> str:
    """MODEL_CARD.md, its figures copied from the report folder's metrics.json and the digital source's
    record (scripts/score_source.py --json), never typed by hand."""
    directory = Path(directory)
    digital = _optional_json(digital_path)
    document = json.loads((directory / "metrics.json").read_text())
    training = _optional_json(training_path) or {}
    compared = _optional_json(comparison_path)
    record = training.get("record", {})
    triage = training.get("triage", {})
    lines = [
        "# Model card: mias-edge mammogram exam reader",
        "",
        "**Research software, not a medical device.** Trained and evaluated on 258 film mammograms (mini-MIAS, "
        "digitised in the early 1990s). Never validated on a clinical population or on digital mammography. Its "
        "answers must not be used to decide anyone's care.",
        "",
        "## Intended use",
        "",
        "A demonstration of offline triage on a Raspberry Pi or Coral Edge TPU: for one mediolateral-oblique film "
        "mammogram it gives 7 MIAS class probabilities, P(abnormal), P(malignant), a refer/routine decision at a "
        "stated sensitivity and a coarse heat-map. Out of scope: diagnosis, screening decisions, CC views, digital "
        "(FFDM/DBT) mammograms, populations other than the one MIAS was drawn from.",
        "",
        "## Model",
        "",
        f"- {record.get('model', '?')} (`train/trunk.py`, `train/reader.py`). Input "
        f"{training.get('input_size', '?')}x{training.get('input_size', '?')}x1 (uint8 grey levels of "
        "`edge.preprocess.prepare`), batch 1. The quantized network is the trunk alone, in TFLite's 16x8 mode: int8 "
        "weights, int16 activations, integer builtins (convolutions, depthwise convolutions, ReLU6, average pooling) "
        "that compute the float network's features to about a thousandth of their spread on any CPU. Its outputs are "
        "the cell features of each scale, and the heads run in float beside it (`edge/inference/heads.py`, weights in the "
        "manifest), so the board computes what was cross-validated (the cell head's hidden weights rounded to "
        "float32). The Edge TPU runs int8 activations only: `edge-convert --activations int8` makes that model, "
        "which does not pass the converter's agreement gate (see docs/convert.md).",
        "- The trunk is ImageNet MobileNet v1 (alpha 0.25, Apache-2.0 weights in `train/weights/`), distilled for "
        "int8 (`train/distil.py`: trained with int8-rounded weights and activations to reproduce the float ImageNet "
        "trunk's own features, from the scans' pixels only, never their labels), then frozen. Learnt on "
        "the training folds, on its cell features as the board computes them: a lesion-cell head (the heat-map: is this 16x16-pixel cell "
        "inside an annotated lesion circle, from the cell's features and its 3x3 neighbourhood's mean; a small network "
        "with one hidden layer of 64 ReLU units, L2-regularised; the mean of 5 such networks fitted from different "
        "random starts, since one network's figures hang on its start), and, by regularised logistic regression, P(kind of finding | abnormal) from pooled features of the abnormal scans (whole-breast "
        "average and maximum, or the average alone, and the L2 strength: chosen inside each training fold by an inner "
        "patient-grouped cross-validation among candidates set after a probe on these folds), "
        "P(malignant | abnormal) from the whole-breast average and maximum, and the reading stage "
        "(`edge/inference/reading.py`): P(abnormal) from the hottest cells of the scan and of the other breast of the same woman.",
        "- One probability model: P(NORM) = 1 - P(abnormal); P(malignant) = P(abnormal) x P(malignant | abnormal); the "
        "label is NORM exactly when the triage is routine. A scan without its partner is read alone by the same "
        "model's single-breast stage.",
        f"- Triage: refer when P(abnormal) >= {triage.get('threshold', float('nan')):.3f}, chosen for {triage.get('target_sensitivity', 0.9):.0%} "
        f"sensitivity on {triage.get('chosen_on', '?')}.",
        "",
        "## Data",
        "",
        "The mini-MIAS database (J Suckling et al. (1994), *The Mammographic Image Analysis Society Digital Mammogram "
        "Database*, Excerpta Medica, International Congress Series 1069, pp. 375-378), research-use licence. "
        f"Development split: {document['n_images']} images of {document['n_patients']} women: "
        + ", ".join(f"{k} {v}" for k, v in training.get("data", {}).get("classes", {}).items() if v)
        + ". The images of 32 further women are held out of this repository for an independent check.",
        "",
        "## Evaluation protocol",
        "",
        f"Patient-grouped, class-stratified {len(document['per_fold'])}-fold cross-validation (`train/splits.py`): both "
        "breasts of a woman in the same fold; every scan prepared by the device's own `prepare`; nested: for each test "
        "fold, the heads are fitted on the other folds, the reading stage and the triage threshold on those folds' own "
        "inner out-of-fold evidence. The configuration (input size, scales, reading beside the other breast) was chosen "
        "on these folds (`research/ablation/ablation.md`), which makes the figures slightly optimistic. Figures below are pooled out-of-fold, "
        "with 95% bootstrap CIs resampling women, beside the majority-class baseline (NORM for every scan, constant score).",
        "",
        *headline_rows(document),
        "",
        "### Against the project's targets",
        "",
        *target_rows(document),
        "",
        *missed_targets(document),
        referral_sentence(document),
        "",
        *([malignancy, ""] if (malignancy := malignancy_sentence(training)) else []),
    ]
    game = document.get("pointing_game")
    if game:
        ci = game.get("ci95", [None, None])
        lines += [
            f"Pointing game: the heat-map peak falls inside an annotated circle for {game['hits']} of {game['n_images']} "
            f"abnormal scans with a circle ({_num(game['hit_rate'])}, 95% CI {_num(ci[0])}–{_num(ci[1])}).",
            "",
        ]
    if "by_tissue" in document:
        from train.scan_record import TISSUES

        lines += [
            "## Subgroups by breast tissue",
            "",
            "| tissue | images | abnormal | AUC abnormal | AUC malignant | bal. acc. | sens. at thr. | spec. at thr. |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for code, group in document["by_tissue"].items():
            lines.append(
                f"| {TISSUES[code]} ({code}) | {group['n_images']} | {group['n_abnormal']} | {_fmt(group['auc_abnormal'])} | "
                f"{_fmt(group['auc_malignant'])} | {_fmt(group['balanced_accuracy'])} | {_fmt(group['sensitivity_at_threshold'])} | "
                f"{_fmt(group['specificity_at_threshold'])} |"
            )
        lines.append("")
    if compared:
        lines += [
            "## Ablation (same folds; `research/ablation/ablation.md`)",
            "",
            "| row | AUC abnormal | AUC malignant | bal. acc. | AUC abnormal minus the previous model (paired) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, row in compared.items():
            lines.append(f"| {name} | {_fmt(row['auc_abnormal'])} | {_fmt(row['auc_malignant'])} | "
                         f"{_fmt(row['balanced_accuracy'])} | {_fmt(row['auc_abnormal_minus_previous'])} |")
        lines += ["", "The ablation's rows chose each fold's triage threshold per scan (90% of the abnormal scans), as "
                  "the models before this one did; their balanced accuracies are at that rule, and their AUCs do not "
                  "depend on it.", ""]
    recalls = {label: document["headline"][f"recall_{label}"] for label in LABELS}
    lines += [
        "## Known failure modes and limits",
        "",
        "- Per-class recall out-of-fold: " + ", ".join(f"{k} {_fmt(v, 2)}" for k, v in recalls.items()) + ". Classes with "
        "11-20 examples are learned poorly; a wrong class among the abnormal ones is common.",
        "- Calcification clusters of a few pixels at 1024x1024 shrink to one or two input pixels: the model sees "
        "them badly.",
        "- Asymmetry is defined by comparing the two breasts; the reading stage compares only the hottest cells of "
        "both sides, not their whole tissue pattern.",
        "- Dense breasts hide lesions; see the tissue table above for how the figures move with density.",
        "- The threshold is set to refer 90% of the women with a finding on the cross-validation pool; the "
        "sensitivity actually reached at a fold's threshold, per woman and per scan, is reported above and is below "
        "90% when folds differ. Per scan it is lower than per woman: a woman with a finding in one breast is referred "
        "when either breast scores above the threshold.",
        "- Film artefacts, labels and scanner differences outside MIAS were never seen in training; `prepare` removes "
        "labels but cannot make a different population look like MIAS.",
        *([_digital_line(digital)] if digital else []),
        "- Figures come from 258 images of 129 women; the confidence intervals are wide and the shipped configuration "
        "was chosen on the same cross-validation, which makes its figures slightly optimistic.",
        "",
        "Speed and size of the quantized model on this machine and on boards: `reports/fidelity/` and `reports/bench/` "
        "(written by `edge-convert` and `edge-bench`).",
        "",
        "Regenerate: see docs/model.md. This card is written by "
        "`python -m train.report reports/cv --card MODEL_CARD.md` from `reports/cv/metrics.json`, `models/training.json`, "
        "`research/ablation/ablation.json` and `reports/digital/rsna.json`.",
        "",
    ]
    return "\n".join(lines)


SECTION = "## Model and evaluation"


def _cold_record(directory: Path) -> dict:
    return json.loads((directory / "cold_run.json").read_text()).get("record", {})


def _cold_minutes(directory: Path) -> float:
    """Wall time of a run that computed every trunk feature itself (the handoff of `edge-train --cache EMPTY`)."""
    return _cold_record(directory).get("train_seconds", float("nan")) / 60


def _cold_command(directory: Path) -> str:
    return _cold_record(directory).get("command", "?")


def readme_section(directory: str | Path, training_path: str | Path, comparison_path: str | Path | None = None) -> str:
    """The README's "Model and evaluation" section, its figures copied from the committed reports."""
    directory = Path(directory)
    document = json.loads((directory / "metrics.json").read_text())
    training = json.loads(Path(training_path).read_text())
    compared = _optional_json(comparison_path)
    keys = [
        "auc_abnormal", "auc_malignant", "balanced_accuracy", "macro_f1",
        "sensitivity_at_80_specificity", "sensitivity_at_90_specificity",
        "sensitivity_at_threshold", "specificity_at_threshold", "woman_auc_abnormal", "woman_sensitivity", "woman_specificity",
    ]
    keys = [k for k in keys if k in document["headline"]]
    minutes = training.get("record", {}).get("train_seconds", float("nan")) / 60
    folder = directory.as_posix()
    overlay = sorted((directory / "overlays").glob("*.png"))
    lines = [
        SECTION,
        "",
        f"The shipped model (`models/final.keras`, manifest `models/training.json`) reads a woman's exam: an "
        f"ImageNet MobileNet v1 trunk (distilled for int8 and run with int8 weights and int16 activations) reads each {training['input_size']}x{training['input_size']} prepared scan at "
        f"two scales, heads learnt on the lesion circles give a heat-map, and a reading stage compares the scan's "
        "hottest cells with the other breast's (see `MODEL_CARD.md`). Every figure below is out-of-fold from nested, "
        f"patient-grouped {len(document['per_fold'])}-fold cross-validation on the development split, with its 95% "
        "bootstrap CI (resampling women) and the majority-class baseline (NORM for every scan, constant score), copied "
        f"from `{folder}/metrics.json` by the report step. Research software, not a medical device.",
        "",
        *headline_rows(document, keys),
        "",
        "Against the project's targets:",
        "",
        *target_rows(document),
        "",
        *missed_targets(document),
        referral_sentence(document) + " "
        "Triage threshold: " + f"{training['triage']['threshold']:.3f} on P(abnormal) (refer at or above), chosen so that "
        "90% of the women with a finding are referred (a woman is referred when either breast is) on the pooled out-of-fold "
        "scores; in the cross-validation each test fold got the threshold chosen the same way on its own training folds' "
        "inner out-of-fold scores, which gave the sensitivities and specificities in the table."
        + (" " + malignancy if (malignancy := malignancy_sentence(training)) else ""),
    ]
    game = document.get("pointing_game")
    if game:
        lines += ["", f"Pointing game (heat-map peak inside an annotated circle, out-of-fold): {game['hits']} of "
                  f"{game['n_images']} abnormal scans with a circle ({_num(game['hit_rate'])})."]
    if compared:
        shipped = next((name for name in compared if "(shipped)" in name), None)
        previous = next(iter(compared))
        lines += ["", f"Ablation on the same folds (`research/ablation/ablation.md`): {previous}, AUC abnormal "
                  f"{_fmt(compared[previous]['auc_abnormal'])}"
                  + (f"; shipped, {_fmt(compared[shipped]['auc_abnormal'])}, a paired difference of "
                     f"{_fmt(compared[shipped]['auc_abnormal_minus_previous'])}" if shipped else "")
                  + (f"; the model shipped before it ({ABLATION_BEFORE}), {_fmt(compared[ABLATION_BEFORE]['auc_abnormal'])}, "
                     f"the shipped one's paired gain over it {_fmt(compared[shipped]['auc_abnormal_minus_before'])}, "
                     f"malignant-vs-rest AUC {_fmt(compared[ABLATION_BEFORE]['auc_malignant'])} against the shipped "
                     f"{_fmt(compared[shipped]['auc_malignant'])}"
                     if ABLATION_BEFORE in compared and shipped and "auc_abnormal_minus_before" in compared[shipped] else "")
                  + (f"; the reader with a linear cell head on the float frozen trunk's features, {_fmt(compared[ABLATION_FLOAT]['auc_abnormal'])}: "
                     "what a lossless quantized trunk would reach" if ABLATION_FLOAT in compared else "")
                  + ". Chosen on these folds: the input size, the scales, whether the trunk is distilled (kept with "
                  "int16 activations, where the ImageNet weights as they are read worse), reading beside the other breast, the cell "
                  "head's neighbourhood (none, 3x3 or 5x5), its hidden layer (none, or 16, 32, 64 or 128 units at a few L2 "
                  "strengths) and how many such networks it averages (1, 3 or 5, each at several random starts), the focused pooling of the malignancy head (off), the kind "
                  "head's candidate poolings and strengths, 'no malignancy head' as a candidate (added after the head fitted always "
                  "ranked malignant findings among the abnormal scans no better than chance out of fold) and, in "
                  "probes, the cell head's regularisation and the trunk's tap (a handful of candidates each, so the "
                  "shipped figures are slightly optimistic; the reader's seed, too, is at the high end of its spread: "
                  "AUC abnormal 0.790 at seed 0, the shipped one, against 0.787 and 0.775 at seeds 5 and 10, `research/reader/cell_table.txt`). The distillation's length was set by its drift on a "
                  "fold it did not see (`research/distil/distil_probe.py`), with no labels. Fitted inside training folds: "
                  "everything else, including which of its candidates the kind head takes and whether there is a "
                  "malignancy head at all (inner patient-grouped cross-validations of the abnormal training scans)."]
    lines += [
        "",
        f"![confusion matrix]({folder}/confusion.png) ![ROC]({folder}/roc.png)",
    ]
    if overlay:
        lines += ["", f"![heat-map overlay]({overlay[0].as_posix()})"]
    lines += [
        "",
        "Regenerate everything (nested cross-validation, reports, final model; "
        f"{minutes:.0f} minutes wall time on the 2-core development machine for the committed run"
        + (f", {_cold_minutes(directory):.0f} minutes from an empty feature cache in an earlier run (`{folder}/cold_run.json`: "
           f"`{_cold_command(directory)}`, on the machine shared with other jobs)" if (directory / "cold_run.json").is_file() else "")
        + "):",
        "```bash",
        training.get("record", {}).get("command") or "edge-train --data ../shared/mias --out runs/main --reports reports/cv",
        "cp runs/main/final/model.keras models/final.keras && cp runs/main/final/training.json models/training.json",
        "python -m train.report reports/cv --card MODEL_CARD.md --readme docs/model.md",
        "```",
        "The last line recomputes every figure from `reports/cv/predictions.csv` (and `images.csv`) alone.",
        "",
    ]
    return "\n".join(lines)


def _digital_line(record: dict) -> str:
    """The card's line on the digital source the model never learnt from, from score_source.py's record."""
    figures = record["figures"]
    return (f"- Digital screening mammograms from another source, never learnt from ({record['images']:,} images of "
            f"{record['women']} women of `{record['folder']}` read, {len(record['refused'])} refused): AUC cancer vs not of "
            f"P(malignant) {_fmt(figures['auc_malignant'])}, against 0.5 by chance; the triage refers "
            f"{_fmt(figures['sensitivity'])} of the cancer images and sends home {_fmt(figures['specificity'])} of the "
            "others (refer-everyone: 1 and 0). docs/model.md, 'On digital mammograms from another source'.")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", help="report folder or its predictions.csv")
    parser.add_argument("--card", help="also write the model card here (e.g. MODEL_CARD.md)")
    parser.add_argument("--training", default="models/training.json", help="training.json of the shipped model")
    parser.add_argument("--comparison", default="research/ablation/ablation.json", help="the ablation's rows")
    parser.add_argument("--digital", default="reports/digital/rsna.json", help="the digital source's record (score_source.py --json)")
    parser.add_argument("--readme", help="also rewrite this page's 'Model and evaluation' section (docs/model.md)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    document = build(args.reports)
    print("\n".join(headline_rows(document)))
    if args.card:
        folder = Path(args.reports).parent if args.reports.endswith(".csv") else Path(args.reports)
        Path(args.card).write_text(model_card(folder, args.training, args.comparison, args.digital))
    if args.readme:
        folder = Path(args.reports).parent if args.reports.endswith(".csv") else Path(args.reports)
        path = Path(args.readme)
        section = readme_section(folder, args.training, args.comparison)
        rewrite(path, lambda text: replace_section(text, SECTION, section, after="## Evaluation protocol"))


if __name__ == "__main__":
    main()
