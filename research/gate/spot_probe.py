"""Does one spot view hold the gate's limits down, and do paddles drawn on the real scans lift them?

    OMP_NUM_THREADS=2 nice -n 19 python research/gate/spot_probe.py --work /tmp/gate_corpus > research/gate/spot_probe.txt

Reads the cache `scripts/gate_corpus.py --work` left (coarse copies, features, the network's
features) and repeats its held-out measure (the same outer and inner folds, trees, regression and
limits) in three arms:
- the 8 forms of each real scan only (no paddle drawn);
- the same, the spot view 25323_1743461841.jpg left out of the scores that set the limits (it is
  still fitted and judged): how much that one image costs;
- every real variant, the two with a paddle included: the committed gate's held-out figure.
Each arm also gives the lowest margin held out above the limits, of the spot view's forms and of
any other real image. About 20 minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import gate_corpus as gate  # noqa: E402

SPOT_VIEW = "25323_1743461841.jpg"


def held_out(x, n, y, groups, counted) -> np.ndarray:
    """Each row's margin held out: the lower of its two scores' distance above their limits (below
    0: refused), by trees and a regression fitted without its fold, with limits from the `counted`
    real rows of the training folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    margin = np.full(len(y), np.inf)
    for train, test in StratifiedGroupKFold(gate.FOLDS, shuffle=True, random_state=gate.SEED).split(x, y, groups):
        for data, fit in ((x, gate.fit_trees), (n, gate.fit_regression)):
            line = gate.limit(fit, data[train], y[train], groups[train], gate.INNER, counted[train])
            margin[test] = np.minimum(margin[test], fit(data[train], y[train]).decision_function(data[test]) - line)
    return margin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gate_corpus"), help="scripts/gate_corpus.py's --work")
    args = parser.parse_args()
    rows = pickle.loads((args.work / "coarse.pkl").read_bytes())
    pixel, network = np.load(args.work / "features.npz"), np.load(args.work / "network.npz")
    assert list(pixel["rows"]) == list(network["rows"]), "the caches are of different rows: rerun scripts/gate_corpus.py"
    empty = {r["file"] for r in rows if r["mammogram"] and r["kind"] == "as is" and r["rule"] == "blank"}
    keep = [i for i, k in enumerate(pixel["rows"]) if rows[k].get("file") not in empty]
    scored = [rows[k] for k in pixel["rows"][keep]]
    x, n = pixel["values"][keep].astype(np.float64), network["values"][keep].astype(np.float64)
    y = np.array([r["mammogram"] for r in scored])
    groups = np.array([r["group"] for r in scored])
    paddle = np.array([bool(r["mammogram"]) and r["kind"].startswith("paddle") for r in scored])
    spot = np.array([r.get("file") == SPOT_VIEW for r in scored])
    made = np.array([not r["mammogram"] and r["form"] == "as made" for r in scored])
    ruled = sum(not r["mammogram"] and r["form"] == "as made" and r["rule"] is not None for r in rows)
    tried = sum(not r["mammogram"] and r["form"] == "as made" for r in rows)
    print(f"{tried} non-mammograms ({ruled} refused by a rule before the scores); real images {int(y.sum())} "
          f"({int(paddle.sum())} of them with a paddle drawn), the file without a breast left out")
    for title, rows_in, counted in (("the 8 forms only", ~paddle, np.ones(len(y), bool)),
                                    ("the 8 forms only, the spot view not setting the limits", ~paddle, ~spot),
                                    ("with the paddle variants (the committed gate)", np.ones(len(y), bool), np.ones(len(y), bool))):
        use = np.flatnonzero(rows_in)
        margin = np.full(len(y), np.inf)
        margin[use] = held_out(x[use], n[use], y[use], groups[use], counted[use])
        refused = margin < 0
        wrongly = sorted(f"{r['file']} ({r['kind']})" for r, out in zip(scored, refused) if out and r["mammogram"])
        real = (y == 1) & rows_in & ~spot
        print(f"\n{title}:\n  not mammograms refused held out: {ruled + int((refused & made).sum())} of {tried}"
              f"\n  real images refused held out: {len(wrongly)}" + (f": {', '.join(wrongly)}" if wrongly else "")
              + f"\n  lowest margin above the limits (logits): the spot view's forms {margin[spot & rows_in].min():.2f}, "
              f"every other real image {margin[real].min():.2f}", flush=True)


if __name__ == "__main__":
    main()
