"""Fit and measure the not-a-mammogram gate (edge.scan.plausibility) on its two corpora (train.gate_corpus).

    python scripts/gate_corpus.py --mias ../shared/mias --rsna ../shared/rsna

1. Features of every image: the non-mammograms built here, and every real scan in each of its
   variants (about 20,000 images, about 10 minutes on one core; cached in --work).
2. Held-out folds (5, grouped: a woman, or one source picture and what was made from it, in one
   fold): a logistic regression on the training folds, its limit set below every real mammogram
   there with the margin, then the refusals of the held-out fold.
3. The same fit on everything (research/gate/gate.json, gate.md). It is NOT shipped: at
   no refusal of a real mammogram it refuses only a quarter of the non-mammograms, fewer than
   the pixel rules of edge.scan.plausibility; better features are needed first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.scan.plausibility import MIN_CONTRAST, MIN_SIDE  # noqa: E402
from train.gate_corpus import FEATURES, REAL_VARIANTS, coarse_upright, features, iter_real, not_mammograms, score, terms  # noqa: E402

FOLDS, SEED = 5, 0
MARGIN = 1.0
"""Logit units between the lowest real mammogram of the fitted data and the limit."""
C = 1.0


def measure(image: np.ndarray) -> tuple[str | None, np.ndarray | None]:
    """(why a rule before the score refuses it, or None; its features, or None when refused)."""
    from edge.scan.plausibility import colour_problem

    if image.ndim == 3:
        from PIL import Image

        picture = Image.fromarray(image)
        why = colour_problem(picture)
        if why:
            return why, None
        image = np.asarray(picture.convert("L"))
    if max(image.shape) < MIN_SIDE:
        return "too small", None
    coarse = coarse_upright(image)
    if int(coarse.max()) - int(coarse.min()) < MIN_CONTRAST:
        return "blank", None
    return None, features(coarse)


def table(mias: Path | None, rsna: Path | None, every: int, cache: Path) -> list[dict]:
    if cache.is_file():
        return json.loads(cache.read_text())
    rows, start = [], time.time()
    for item in not_mammograms():
        why, values = measure(item.make())
        rows.append({"mammogram": 0, "kind": item.kind, "group": item.family, "source": "not a mammogram",
                     "rule": why, "features": None if values is None else values.tolist()})
    print(f"{len(rows)} non-mammograms, {time.time() - start:.0f} s", flush=True)
    for k, (source, woman, name, variant, image) in enumerate(iter_real(mias, rsna, every)):
        why, values = measure(image)
        rows.append({"mammogram": 1, "kind": variant, "group": woman, "source": source, "file": name,
                     "rule": why, "features": None if values is None else values.tolist()})
        if k % 2000 == 0:
            print(f"{k} real images, {time.time() - start:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    """A logistic regression on the standardised features and their products, its limit MARGIN
    below the lowest real mammogram it was fitted on."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    expanded = np.array([terms(z) for z in (x - mean) / scale])
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=20000).fit(expanded, y)
    gate = {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}
    lowest = min(score(row, gate)[0] for row in x[y == 1])
    gate["limit"] = lowest - MARGIN
    return gate


def held_out(rows: list[dict]) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold

    scored = [r for r in rows if r["features"] is not None]
    x = np.array([r["features"] for r in scored])
    y = np.array([r["mammogram"] for r in scored])
    groups = np.array([r["group"] for r in scored])
    refused = np.zeros(len(scored), bool)
    for train, test in StratifiedGroupKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y, groups):
        gate = fit(x[train], y[train])
        refused[test] = [score(row, gate)[0] < gate["limit"] for row in x[test]]
    for r, out in zip(scored, refused):
        r["held_out_refused"] = bool(out)
    return counts(rows, "held_out_refused")


def counts(rows: list[dict], key: str) -> dict:
    """Refusals per corpus (a rule before the score counts as a refusal) and per real variant."""
    def refused(r):
        return r["rule"] is not None or r.get(key, False)

    fake = [r for r in rows if not r["mammogram"]]
    real = [r for r in rows if r["mammogram"]]
    out = {"not_mammograms": {"tried": len(fake), "refused": sum(map(refused, fake)),
                              "by_rule_before_the_score": sum(r["rule"] is not None for r in fake)},
           "real": {"tried": len(real), "refused": sum(map(refused, real))}}
    for source in sorted({r["source"] for r in real}):
        out["real"][source] = {variant: [sum(refused(r) for r in real if r["source"] == source and r["kind"] == variant),
                                         sum(r["source"] == source and r["kind"] == variant for r in real)]
                               for variant in REAL_VARIANTS}
    out["not_mammograms"]["read"] = sorted(r["kind"] for r in fake if not refused(r))
    return out


def markdown(report: dict) -> str:
    """research/gate/gate.md: the refusals on each corpus, held out and fitted on everything."""
    lines = ["# A learned not-a-mammogram gate on its corpora (not shipped)", "",
             "Written by `python scripts/gate_corpus.py --mias ../shared/mias --rsna ../shared/rsna` "
             "(about 15 minutes on one core); the numbers are in `gate.json` beside this file. This learned gate is a "
             "study: it refuses fewer non-mammograms than the pixel rules of `edge.scan.plausibility`, which are what runs. "
             f"Held out: {report['folds']} folds grouped by woman or by source picture; in each, the gate is fitted "
             f"on the other folds with its limit {report['margin']} logit below their lowest real mammogram.", ""]
    for key, title in (("held_out", "Held out (each image judged by a gate fitted without its fold)"),
                       ("shipped", "The same gate fitted on everything (not shipped)")):
        fig = report["figures"][key]
        fake, real = fig["not_mammograms"], fig["real"]
        lines += [f"## {title}", "",
                  f"- Not mammograms: **{fake['refused']} of {fake['tried']} refused** ({fake['refused'] / fake['tried']:.1%}); "
                  f"{fake['by_rule_before_the_score']} of them by a rule before the score (colour, too small, blank).",
                  f"- Real mammograms: **{real['refused']} of {real['tried']} refused** ({real['refused'] / real['tried']:.2%}).", "",
                  "| source | " + " | ".join(REAL_VARIANTS) + " |", "| --- |" + " --- |" * len(REAL_VARIANTS)]
        for source in ("MIAS", "digital"):
            if source in real:
                lines.append(f"| {source} | " + " | ".join(f"{n} / {of}" for n, of in real[source].values()) + " |")
        lines += ["", "Not mammograms read: " + (", ".join(f"{kind} ({n})" for kind, n in Counter(fake["read"]).most_common()) or "none") + ".", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mias", type=Path, help="the MIAS folder (mdbNNN.png)")
    parser.add_argument("--rsna", type=Path, help="the digital screening folder (images/, labels.csv)")
    parser.add_argument("--every", type=int, default=1, help="every N-th real scan only (a quick look)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gate_corpus"), help="where the feature table is cached")
    parser.add_argument("--out", type=Path, default=REPO / "research" / "gate", help="where gate.json and gate.md go")
    args = parser.parse_args()
    rows = table(args.mias, args.rsna, args.every, args.work / f"features_every{args.every}.json")
    figures = {"held_out": held_out(rows)}
    scored = [r for r in rows if r["features"] is not None]
    gate = fit(np.array([r["features"] for r in scored]), np.array([r["mammogram"] for r in scored]))
    for r in scored:
        r["shipped_refused"] = score(np.array(r["features"]), gate)[0] < gate["limit"]
    figures["shipped"] = counts(rows, "shipped_refused")
    reasons = Counter()
    for r in rows:
        if not r["mammogram"] and r["rule"] is None and r["shipped_refused"]:
            reasons[list(FEATURES)[int(np.argmin(score(np.array(r["features"]), gate)[1]))]] += 1
    figures["shipped"]["not_mammograms"]["deciding_feature"] = dict(reasons.most_common())
    report = {"gate": {name: [round(v, 6) for v in value] if isinstance(value, list) else round(value, 6)
                       for name, value in gate.items()},
              "features": list(FEATURES), "folds": FOLDS, "margin": MARGIN, "every": args.every, "figures": figures}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gate.md").write_text(markdown(report))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
