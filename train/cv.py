"""`edge-train`'s one run: prepare, cache trunk features, nested patient-grouped CV, reports, final model.

One call (`run`) does what `edge-train` promises: prepare every scan once with the device's
`prepare`, compute the frozen trunk's cell features once per scale (cached on disk), fit the
reader (`train.reader`) on the training folds of each test fold, score the test fold, pool
the out-of-fold answers into the report, then fit the final heads and reading stage on every
development image and write the network with its `training.json` (`train.handoff`).
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from train import distil, handoff, metrics, reader, records as training_records, trunk
from train.data import Dataset, load_dataset
from train.splits import patient_folds

HEADLINE = (
    "auc_abnormal", "auc_malignant", "balanced_accuracy", "macro_f1", "sensitivity_at_80_specificity",
    "sensitivity_at_90_specificity", "sensitivity_at_threshold", "specificity_at_threshold", "accuracy",
    "woman_auc_abnormal", "woman_sensitivity", "woman_specificity",
)


@dataclass(frozen=True)
class Config:
    """The shipped configuration (see research/ablation/ablation.md for how it was chosen)."""

    size: int = 512  # model input side
    factors: tuple[int, ...] = (1, 2)  # the trunk reads the input at size / f for each f
    features: str = "int16"  # what the heads are fitted and read on: the quantized trunk's ("int16" or "int8" activations) or "float"
    distil_epochs: int = distil.EPOCHS  # quantization-aware distillation of the trunk first (0: ImageNet's weights as they are)
    folds: int = 5
    seed: int = 0
    options: reader.Options = field(default_factory=reader.Options)

    def to_json(self) -> dict:
        return asdict(self)


def default_cache() -> Path:
    """Where trunk features are cached between runs (keyed by pixels, trunk code and weights)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mias-edge" / "trunk"


def scale_features(dataset: Dataset, factors: tuple[int, ...], cache: Path | None, log=print, tuned=None) -> list[np.ndarray]:
    """The float trunk's cell features of every prepared scan at every scale, finest first."""
    out = []
    for f in factors:
        t0 = time.time()
        out.append(trunk.features(reader.scale_images(dataset.images, f), cache, tuned=tuned))
        log(f"trunk features at {dataset.size // f}x{dataset.size // f}: {out[-1].shape[1]}x{out[-1].shape[2]} cells ({time.time() - t0:.0f} s)")
    return out


def board_features(dataset: Dataset, config: Config, scales: list[np.ndarray], cache: Path | None, log=print,
                   tuned=None) -> list[np.ndarray]:
    """The features the heads are fitted and read on: the quantized trunk's (`config.features`) or the float ones.

    Why the quantized trunk's: with int8 activations its features differ from the float ones by a
    good part of their spread, so heads fitted on float features would be judged here on a
    computation no board runs. Fitted on the board's features, the cross-validated figures are the
    board's. With int16 activations (shipped) the two differ by a thousandth of the spread."""
    if config.features == "float":
        return scales
    t0 = time.time()
    out = trunk.quantized_features(dataset.images, config.factors, cache, tuned, config.features)
    log(f"{config.features}-activation trunk features, as the board computes them ({time.time() - t0:.0f} s)")
    return out


@dataclass(frozen=True)
class Features:
    """The trunk's weights and features for one configuration."""

    tuned: distil.Tuned | None  # None: ImageNet's weights as they are
    float: list[np.ndarray]  # the float network's, finest scale first
    board: list[np.ndarray]  # what the heads are fitted and read on (`board_features`)

    @property
    def twins(self) -> list[np.ndarray] | None:
        """The float network's features as a second view of the board's (`reader.KIND_TWINS`); None when they are the same."""
        return None if self.board is self.float else self.float


def trunk_features(dataset: Dataset, config: Config, cache: Path | None, progress=None, log=print) -> Features:
    """Distil the trunk for int8 (config.distil_epochs, cached), then compute its float and board features."""
    imagenet = scale_features(dataset, config.factors, cache, log)
    tuned = None
    if config.distil_epochs:
        t0 = time.time()
        images = [reader.scale_images(dataset.images, f) for f in config.factors]
        tuned = distil.cached(images, imagenet, config.distil_epochs, config.seed, cache, progress)
        log(f"trunk distilled for int8, {config.distil_epochs} epochs ({time.time() - t0:.0f} s)")
    floats = scale_features(dataset, config.factors, cache, log, tuned) if tuned else imagenet
    return Features(tuned, floats, board_features(dataset, config, floats, cache, log, tuned))


def evaluate(dataset: Dataset, scales: list[np.ndarray], folds: np.ndarray, options: reader.Options, progress=None,
             twins: list[np.ndarray] | None = None):
    """(predictions table, out-of-fold heat-maps) of the nested cross-validation (`twins`: `Features.twins`)."""
    result = reader.cross_validate(scales, dataset, folds, options, progress, twins)
    table = metrics.Table.from_records(
        dataset.records, folds, result.probs, result.abnormal, result.malignant,
        reader.read_beside(dataset, options.paired), result.threshold,
    )
    return table, result.heatmaps


def heatmap_peaks(dataset: Dataset, heatmaps: np.ndarray) -> list[dict]:
    """Per image: tissue, circles and where the heat-map peaks, in scan coordinates."""
    rows = []
    for record, geometry, heat in zip(dataset.records, dataset.geometries, heatmaps):
        i, j = np.unravel_index(int(np.argmax(heat)), heat.shape)
        row, col = geometry.cell_centre_to_scan(i, j, heat.shape)
        hit = any((row - c.row) ** 2 + (col - c.col) ** 2 <= c.radius**2 for c in record.lesions)
        rows.append(
            {
                "id": record.id,
                "tissue": record.tissue,
                "circles": ";".join(f"{c.row} {c.col} {c.radius}" for c in record.lesions),
                "peak_row": round(float(row), 1),
                "peak_col": round(float(col), 1),
                "peak_value": round(float(heat.max()), 4),
                "hit": int(hit) if record.lesions else "",
            }
        )
    return rows


def write_images(path: Path, dataset: Dataset, heatmaps: np.ndarray) -> None:
    """images.csv: `heatmap_peaks` of every scan (what the pointing game is counted from)."""
    peaks = heatmap_peaks(dataset, heatmaps)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(peaks[0]))
        writer.writeheader()
        writer.writerows(peaks)


def write_cv_report(directory: Path, dataset: Dataset, table: metrics.Table, heatmaps: np.ndarray) -> dict:
    """predictions.csv, images.csv, overlays, then the report built from them."""
    from train import report

    directory.mkdir(parents=True, exist_ok=True)
    metrics.write_table(directory / "predictions.csv", table)
    write_images(directory / "images.csv", dataset, heatmaps)
    report.overlays(directory / "overlays", dataset, table, heatmaps)
    return report.build(directory)


def check_network(model, dataset: Dataset, scales: list[np.ndarray], count: int = 3) -> float:
    """Largest difference between the Keras network's outputs and the cached float cell features of a
    few real scans: the network is the trunk whose features the heads were fitted on."""
    got = model.predict(dataset.images[:count, :, :, None].astype(np.float32), batch_size=1, verbose=0)
    got = got if isinstance(got, list) else [got]
    return float(max(np.abs(np.asarray(g) - f[:count]).max() for g, f in zip(got, scales)))


def run(
    data_dir: Path,
    out: Path,
    config: Config,
    reports: Path | None = None,
    cache: Path | None = None,
    limit: int | None = None,
    progress=None,
    log=print,
    command: str | None = None,
) -> handoff.Handoff:
    """Cross-validate the reader, write the report, fit and write the final model with its handoff."""
    started = time.time()
    records = training_records.load(data_dir)
    if limit:
        records = records[:limit]
    log(f"preparing {len(records)} scans at {config.size}x{config.size}")
    dataset = load_dataset(records, config.size, progress=(lambda r: progress(r, desc="prepare")) if progress else None)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    trunk_out = trunk_features(dataset, config, cache, progress, log)
    scales, board = trunk_out.float, trunk_out.board

    t0 = time.time()
    table, heatmaps = evaluate(dataset, board, folds, config.options, progress, trunk_out.twins)
    cv_dir = reports or out / "cv"
    document = write_cv_report(cv_dir, dataset, table, heatmaps)
    log("out of fold: " + ", ".join(f"{k} {document['headline'][k]['value']:.3f}" for k in HEADLINE[:4]) + f" ({time.time() - t0:.0f} s)")

    t0 = time.time()
    heads, reading, threshold = reader.final_reading(board, dataset, folds, config.options, trunk_out.twins)
    model = reader.build_network(config.size, config.factors, tuned=trunk_out.tuned)
    difference = check_network(model, dataset, scales)
    if difference > 1e-3:
        raise RuntimeError(f"the Keras network's cell features differ from the cached ones by {difference:.2g}")
    result = handoff.Handoff(
        input_size=config.size,
        triage=handoff.Triage(
            threshold,
            metrics.TARGET_SENSITIVITY,
            f"the women of the {config.folds}-fold patient-grouped cross-validation on the development split, a woman "
            "referred when either breast is (pooled out-of-fold P(abnormal), read beside the other breast); never the hold-out",
        ),
        reading=reading.to_json(),
        heads=heads.to_json(),
        outputs=reader.output_names(len(config.factors)),
        metrics={
            "what": f"out-of-fold, {config.folds}-fold patient-grouped nested cross-validation on the development "
            "split; 95% bootstrap CI over patients; baseline = NORM for every image / constant score",
            **{key: document["headline"][key] for key in HEADLINE if key in document["headline"]},
        },
        data=training_records.described(records, data_dir, f"train.splits.patient_folds(k={config.folds}, seed={config.seed})"),
        record={
            "model": "ImageNet MobileNet v1 0.25 trunk"
            + (f" distilled for int8 ({config.distil_epochs} epochs)" if config.distil_epochs else ", frozen")
            + " at scales "
            + ", ".join(f"{config.size // f}" for f in config.factors)
            + "; lesion-cell, class and malignancy heads"
            + (f" (the cell head reading each cell's {config.options.context}x{config.options.context} neighbourhood too)"
               if config.options.context else "")
            + (f", the cell head a network with a hidden layer of {config.options.cell_hidden} units"
               + (f" (the mean of {config.options.cell_seeds} from different random starts)" if config.options.cell_seeds > 1 else "")
               if config.options.cell_hidden else "")
            + (f" fitted on the quantized trunk's features (int8 weights, {config.features} activations)"
               if config.features != "float" else "")
            + ", run in float beside the quantized network; two-breast reading stage",
            "config": config.to_json(),
            "network_vs_cached_features_max_difference": difference,
            "command": command,
            "final_seconds": round(time.time() - t0, 1),
            "train_seconds": round(time.time() - started, 1),
        },
    )
    handoff.write(out / "final", model, result)
    log(f"done in {time.time() - started:.0f} s: {out / 'final' / 'model.keras'}")
    return result
