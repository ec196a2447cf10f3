"""Fit and measure the not-a-mammogram gate (edge.scan.plausibility) on its two corpora (train.gate_corpus).

    OMP_NUM_THREADS=1 nice -n 19 python scripts/gate_corpus.py --mias ../shared/mias --rsna ../shared/rsna

About 35 minutes on one core of the 2-core development machine. Writes edge/scan/gate.tflite and
edge/scan/gate.json (what the device reads: the image network; the trees, the regression and
their limits) and research/gate/gate.json + gate.md (the figures).

1. The coarse copy of every image (edge.scan.plausibility.coarse_copy; cached in --work): the
   284 non-mammograms built here, each also in the FORMS of train.gate_corpus, and every real
   scan in each of its REAL_VARIANTS. Colour pictures, thumbnails and blank images are refused by
   the rules before the scores.
2. FEATURES of each, and the image network (train.gate_net) and its features of each.
3. Held out: 5 folds grouped by woman or by source picture (StratifiedGroupKFold, seed 0). In
   each, gradient-boosted trees on FEATURES and a logistic regression on the network's features
   are fitted on the other 4 folds, and each one's limit is set MARGIN below the lowest score of
   a real mammogram of those folds, where each is scored by a fit without it (3 inner grouped
   folds) as well as by the fold's own. A limit so allows for a real scan unlike any seen, as a
   new centre's will be. An image is refused when either score is below its limit.
4. The shipped gate: the same on all the data (its limits from 5 grouped folds of all the data),
   judged on every image through edge.scan.plausibility itself: the in-sample figures.

A real scan whose file holds no breast (the digital source has one: levels 0..8 of 255) is kept
in the corpus and its refusals are counted and named apart; it is left out of fitting.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.fileio import sha256_bytes  # noqa: E402
from edge.scan import plausibility  # noqa: E402
from train import gate_net  # noqa: E402
from train.gate_corpus import REAL_VARIANTS, iter_real, not_mammograms  # noqa: E402

FOLDS, INNER, SEED = 5, 3, 0
MARGIN = 1.0
"""Logit units between the lowest real score (out of fold) and the limit."""
TREES = {"max_depth": 3, "max_iter": 200, "learning_rate": 0.1, "min_samples_leaf": 20, "early_stopping": False}
REGRESSION_C = 0.1
"""The logistic regression's inverse penalty on the network's standardised features."""


def thumbnails(mias: Path | None, rsna: Path | None, cache: Path) -> list[dict]:
    """One row per image: what it is, which rule before the score refuses it, its coarse copy."""
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    from PIL import Image

    def row(image: np.ndarray, **about) -> dict:
        rule, shape = None, image.shape[:2]
        if image.ndim == 3:
            picture = Image.fromarray(image)
            rule = plausibility.colour_problem(picture) and "colour"
            image = np.asarray(picture.convert("L"))
        coarse = plausibility.coarse_copy(image)
        if rule is None and max(shape) < plausibility.MIN_LONG_SIDE:
            rule = "too small"
        elif rule is None and plausibility.blank(coarse):
            rule = "blank"
        return {**about, "shape": shape, "rule": rule, "coarse": coarse}

    rows, start = [], time.time()
    for item in not_mammograms(forms=True):
        rows.append(row(item.make(), mammogram=0, kind=item.kind, form=item.form, group=item.family, source="not a mammogram"))
    for source, woman, name, variant, image in iter_real(mias, rsna):
        rows.append(row(image, mammogram=1, kind=variant, group=woman, source=source, file=name))
    print(f"{len(rows)} coarse copies, {time.time() - start:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(rows))
    return rows


def cached(cache: Path, key: str, measured: list[int], compute) -> dict[int, np.ndarray]:
    """compute(k) of each measured row k, cached in `cache` while `key` and the rows are the same."""
    if cache.is_file():
        saved = np.load(cache)
        if "key" in saved.files and str(saved["key"]) == key and list(saved["rows"]) == measured:
            return dict(zip(measured, saved["values"]))
    values = np.array([compute(k) for k in measured])
    np.savez(cache, key=key, rows=measured, values=values)
    return dict(zip(measured, values))


def features(rows: list[dict], measured: list[int], cache: Path) -> dict[int, np.ndarray]:
    """FEATURES of each measured row (cached while FEATURES are the same)."""
    return cached(cache, ",".join(plausibility.FEATURES), measured, lambda k: plausibility.features(plausibility.turned(rows[k]["coarse"])))


def picture(coarse: np.ndarray) -> np.ndarray:
    """What the image network reads of a coarse copy."""
    return plausibility.network_input(plausibility.turned(coarse)[0])


def network_features(rows: list[dict], measured: list[int], cache: Path, out: Path) -> dict[int, np.ndarray]:
    """Build the image network (written to `out`) and its features of each measured row (cached
    while the network is the same)."""
    content = gate_net.tflite()
    if not out.is_file() or out.read_bytes() != content:
        out.write_bytes(content)
    plausibility._network.cache_clear()
    return cached(cache, sha256_bytes(content), measured, lambda k: plausibility.network_features(picture(rows[k]["coarse"])))


def fit_trees(x: np.ndarray, y: np.ndarray):
    """Gradient-boosted trees, the non-mammograms weighted up to as much as the real scans."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    weight = np.where(y == 1, 1.0, (y == 1).sum() / max((y == 0).sum(), 1))
    return HistGradientBoostingClassifier(random_state=SEED, **TREES).fit(x, y, sample_weight=weight)


def fit_regression(x: np.ndarray, y: np.ndarray):
    """A logistic regression on standardised features, both classes weighted alike."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=REGRESSION_C, class_weight="balanced", max_iter=5000)).fit(x, y)


def limit(fit, x, y, groups, folds: int, counted: np.ndarray | None = None) -> float:
    """MARGIN below the lowest real score (of the real rows `counted`, by default all), each scored
    by a `fit` without its group and by the `fit` on all of `x`."""
    from sklearn.model_selection import StratifiedGroupKFold

    counted = (y == 1) if counted is None else (y == 1) & counted
    lowest = fit(x, y).decision_function(x[counted]).min()
    for train, test in StratifiedGroupKFold(folds, shuffle=True, random_state=SEED + 1).split(x, y, groups):
        chosen = test[counted[test]]
        if chosen.size:
            lowest = min(lowest, fit(x[train], y[train]).decision_function(x[chosen]).min())
    return float(lowest - MARGIN)


def export_regression(model, line: float, digest: str) -> dict:
    """The regression as edge.scan.plausibility.network_score reads it."""
    scaler, regression = model[0], model[-1]
    return {"sha256": digest, "limit": round(line, 4), "C": REGRESSION_C,
            "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
            "coef": regression.coef_[0].tolist(), "intercept": float(regression.intercept_[0])}


def export(model, lowest_real: float, real_x: np.ndarray) -> dict:
    """The trees as arrays (edge.scan.plausibility.score reads them), the limit, and the range of
    each feature over the real scans (0.5th..99.5th percentile: what the refusal's words compare)."""
    trees = [predictors[0].nodes for predictors in model._predictors]
    size = max(len(nodes) for nodes in trees)
    depth = int(max(nodes["depth"].max() for nodes in trees))

    def table(field, fill, leaf_fill=None):
        out = np.full((len(trees), size), fill, dtype=float)
        for t, nodes in enumerate(trees):
            values = nodes[field].astype(float)
            if leaf_fill is not None:
                values[nodes["is_leaf"].astype(bool)] = leaf_fill
            out[t, : len(nodes)] = values
        return out

    feature = table("feature_idx", -1, -1).astype(int)
    threshold = np.where(feature >= 0, table("num_threshold", 0.0), 0.0)
    value = np.where(feature < 0, table("value", 0.0), 0.0)
    low, high = np.percentile(real_x, (0.5, 99.5), axis=0)
    return {
        "about": "edge.scan.plausibility's gate, written by scripts/gate_corpus.py; figures in docs/reliability.md",
        "features": list(plausibility.FEATURES),
        "limit": round(lowest_real, 4),
        "margin": MARGIN,
        "trees": {"depth": depth, "baseline": float(np.ravel(model._baseline_prediction)[0]),
                  "feature": feature.tolist(), "threshold": threshold.tolist(),
                  "left": table("left", 0).astype(int).tolist(), "right": table("right", 0).astype(int).tolist(),
                  "value": value.tolist()},
        "real_low": [float(f"{v:.6g}") for v in low], "real_high": [float(f"{v:.6g}") for v in high],
    }


def counts(rows: list[dict], refused: list[bool]) -> dict:
    """Refusals per corpus and per real variant (a rule before the scores counts as a refusal). Of
    the non-mammograms, the pictures as made, and with their FORMS (`all_forms`)."""
    every = [(r, bool(out)) for r, out in zip(rows, refused) if not r["mammogram"]]
    fake = [(r, o) for r, o in every if r["form"] == "as made"]
    real = [(r, bool(out)) for r, out in zip(rows, refused) if r["mammogram"]]
    out = {"not_mammograms": {"tried": len(fake), "refused": sum(o for _, o in fake),
                              "by_rule_before_the_score": sum(r["rule"] is not None for r, _ in fake),
                              "read": sorted(r["kind"] for r, o in fake if not o),
                              "all_forms": [sum(o for _, o in every), len(every)]},
           "real": {"tried": len(real), "refused": sum(o for _, o in real),
                    "refused_files": sorted(f"{r['file']} ({r['kind']})" for r, o in real if o)}}
    for source in sorted({r["source"] for r, _ in real}):
        out["real"][source] = {variant: [sum(o for r, o in real if r["source"] == source and r["kind"] == variant),
                                         sum(r["source"] == source and r["kind"] == variant for r, _ in real)]
                               for variant in REAL_VARIANTS}
    distinct = {}
    for r, o in fake:
        distinct.setdefault(r["coarse"].tobytes(), o)
    out["not_mammograms"]["distinct"] = [sum(distinct.values()), len(distinct)]
    return out


def parts(rows: list[dict], ruled: np.ndarray, trees: np.ndarray, network: np.ndarray) -> str:
    """Of the non-mammograms as made: how many each part of the gate refuses (with the others or alone)."""
    made = np.array([not r["mammogram"] and r["form"] == "as made" for r in rows])
    return (f"the rules {int((made & ruled).sum())}, the trees {int((made & trees).sum())} "
            f"({int((made & trees & ~network & ~ruled).sum())} alone), the network {int((made & network).sum())} "
            f"({int((made & network & ~trees & ~ruled).sum())} alone)")


def markdown(report: dict) -> str:
    """research/gate/gate.md: the refusals on each corpus, held out and in sample."""
    lines = ["# The not-a-mammogram gate on its corpora", "",
             "Written by `OMP_NUM_THREADS=1 nice -n 19 python scripts/gate_corpus.py --mias ../shared/mias --rsna ../shared/rsna` "
             "(about 35 minutes on one core); the numbers are in `gate.json` beside this file, the gate itself in "
             "`edge/scan/gate.json` and `edge/scan/gate.tflite`. Gradient-boosted trees (depth 3, 200 rounds) on the "
             f"{len(report['features'])} features of `edge.scan.plausibility.FEATURES`, and a logistic regression on the "
             f"{report['network_features']} pooled features of the image network (`train.gate_net`); each limit "
             f"{report['margin']} logit below the lowest out-of-fold score of a real mammogram; an image is refused when "
             "either score is below its limit.", ""]
    for key, title in (("held_out", f"Held out: {report['folds']} folds grouped by woman or by source picture, "
                                    "each image judged by a gate fitted without its fold (limit set inside the training folds)"),
                       ("in_sample", "In sample: the shipped gate (fitted on everything) on every image, through edge.scan.plausibility")):
        fig = report["figures"][key]
        fake, real = fig["not_mammograms"], fig["real"]
        lines += [f"## {title}", "",
                  f"- Not mammograms: **{fake['refused']} of {fake['tried']} refused** ({fake['refused'] / fake['tried']:.1%}); "
                  f"{fake['by_rule_before_the_score']} of them by a rule before the score (colour, too small, blank). "
                  f"Counting identical pictures once: {fake['distinct'][0]} of {fake['distinct'][1]}. "
                  f"With each also inverted, rotated, padded and small: {fake['all_forms'][0]} of {fake['all_forms'][1]} "
                  f"({fake['all_forms'][0] / fake['all_forms'][1]:.1%}).",
                  *([f"- Refused by each part alone: {fig['by_part']}."] if "by_part" in fig else []),
                  f"- Real mammograms: **{real['refused']} of {real['tried']} refused**"
                  + (f": {', '.join(real['refused_files'])}" if real["refused_files"] else "") + ".", "",
                  "| source | " + " | ".join(REAL_VARIANTS) + " |", "| --- |" + " --- |" * len(REAL_VARIANTS)]
        for source in ("MIAS", "digital"):
            if source in real:
                lines.append(f"| {source} | " + " | ".join(f"{n} / {of}" for n, of in real[source].values()) + " |")
        lines += ["", "Not mammograms read: " + (", ".join(f"{kind} ({n})" for kind, n in Counter(fake["read"]).most_common()) or "none") + ".", ""]
    lines += [f"The file without a breast ({', '.join(report['empty']) or 'none'}) is counted in the real corpus above; "
              "it is refused in every variant (as blank where it is 8-bit), which is the right answer for an empty picture; "
              f"the other {report['showing_a_breast']:,} real images show a breast.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    from sklearn.model_selection import StratifiedGroupKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mias", type=Path, help="the MIAS folder (mdbNNN.png)")
    parser.add_argument("--rsna", type=Path, help="the digital screening folder (images/, labels.csv)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gate_corpus"), help="where the coarse copies are cached")
    parser.add_argument("--out", type=Path, default=REPO / "research" / "gate", help="where gate.json and gate.md go")
    parser.add_argument("--gate", type=Path, default=plausibility.GATE_FILE, help="the gate file the device reads")
    args = parser.parse_args()
    rows = thumbnails(args.mias, args.rsna, args.work / "coarse.pkl")
    start = time.time()
    empty = sorted({r["file"] for r in rows if r["mammogram"] and r["kind"] == "as is" and r["rule"] == "blank"})
    measured = [k for k, r in enumerate(rows) if r["rule"] is None]
    values = features(rows, measured, args.work / "features.npz")
    scored = [k for k in measured if rows[k].get("file") not in empty]
    x = np.array([values[k] for k in scored], dtype=np.float64)
    y = np.array([rows[k]["mammogram"] for k in scored])
    groups = np.array([rows[k]["group"] for k in scored])
    print(f"features of {len(x)} images, {time.time() - start:.0f} s", flush=True)

    seen = network_features(rows, measured, args.work / "network.npz", plausibility.NETWORK_FILE)
    n = np.array([seen[k] for k in scored], dtype=np.float64)
    digest = sha256_bytes(plausibility.NETWORK_FILE.read_bytes())
    print(f"network features, {time.time() - start:.0f} s", flush=True)

    ruled = np.array([row["rule"] is not None for row in rows])
    held, by_trees, by_network = ruled.copy(), np.zeros(len(rows), bool), np.zeros(len(rows), bool)
    unfitted = [k for k in measured if k not in set(scored)]  # the file without a breast: judged, never fitted
    for fold, (train, test) in enumerate(StratifiedGroupKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y, groups)):
        for data, fit, below, own in ((x, fit_trees, by_trees, values), (n, fit_regression, by_network, seen)):
            model = fit(data[train], y[train])
            line = limit(fit, data[train], y[train], groups[train], INNER)
            for k, o in zip(test, model.decision_function(data[test]) < line):
                below[scored[k]] = o
            for k in unfitted:
                if rows[k]["group"] in set(groups[test]):
                    below[k] = model.decision_function(own[k][None].astype(np.float64))[0] < line
        out = np.array([by_trees[scored[k]] or by_network[scored[k]] for k in test])
        print(f"fold {fold}: {int(out[y[test] == 0].sum())} of {int((y[test] == 0).sum())} scored non-mammograms "
              f"refused, {int(out[y[test] == 1].sum())} real, {time.time() - start:.0f} s", flush=True)
    held |= by_trees | by_network
    figures = {"held_out": counts(rows, list(held))}
    figures["held_out"]["by_part"] = parts(rows, ruled, by_trees, by_network)

    trees, regression = fit_trees(x, y), fit_regression(n, y)
    gate = export(trees, limit(fit_trees, x, y, groups, FOLDS), x[y == 1])
    gate["network"] = export_regression(regression, limit(fit_regression, n, y, groups, FOLDS), digest)
    args.gate.write_text(json.dumps(gate, separators=(",", ":")) + "\n")
    plausibility._gate.cache_clear()
    gate = plausibility._gate()
    scores = {k: plausibility.score(v, gate) for k, v in values.items()}
    network_scores = {k: plausibility.network_score(v, gate) for k, v in seen.items()}
    assert np.allclose(trees.decision_function(x), [scores[k] for k in scored], atol=1e-3), "the exported trees differ from the fitted ones"
    assert np.allclose(regression.decision_function(n), [network_scores[k] for k in scored], atol=1e-3), "the exported regression differs"
    below_trees = np.array([k in scores and scores[k] < gate["limit"] for k in range(len(rows))])
    below_network = np.array([k in network_scores and network_scores[k] < gate["network"]["limit"] for k in range(len(rows))])
    figures["in_sample"] = counts(rows, list(ruled | below_trees | below_network))
    figures["in_sample"]["by_part"] = parts(rows, ruled, below_trees, below_network)
    reasons = Counter(plausibility.reason(values[k], gate) if below_trees[k] else plausibility.NETWORK_REASON
                      for k, row in enumerate(rows) if not row["mammogram"] and not ruled[k] and (below_trees[k] or below_network[k]))
    figures["in_sample"]["not_mammograms"]["reasons"] = dict(reasons.most_common())
    report = {"features": list(plausibility.FEATURES), "network_features": int(n.shape[1]), "folds": FOLDS, "inner_folds": INNER,
              "margin": MARGIN, "trees": TREES, "regression_C": REGRESSION_C, "limit": gate["limit"],
              "network_limit": gate["network"]["limit"], "empty": [str(e) for e in empty],
              "showing_a_breast": sum(r["mammogram"] and r["file"] not in empty for r in rows), "figures": figures}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gate.md").write_text(markdown(report))
    print(json.dumps({k: {c: {name: v for name, v in f[c].items() if name not in ("read", "refused_files")}
                          if isinstance(f[c], dict) else f[c] for c in f} for k, f in figures.items()}, indent=1))


if __name__ == "__main__":
    main()
