"""Probe: does the gate's image network, fine-tuned end to end, refuse more non-mammograms held out
than the logistic regression on its frozen features, when each limit is set honestly?

    nice -n 19 python research/gate/finetune_probe.py --work /tmp/gate_corpus [--folds 3]

Reads the coarse copies that scripts/gate_corpus.py cached in --work (run it first); the same 5
outer folds and the same trees. In each fold, beside the committed parts (trees and regression,
their limits from 3 inner grouped folds), train.gate_net's network with a logit on its pooled
features, fine-tuned (EPOCHS epochs, each of every non-mammogram and REALS real scans at random,
classes weighted alike, flipped at random), then int8 and scored as the board scores. Its limit
is MARGIN below the lowest real score of 2 inner grouped halves, each scored by a fit on the
other. About 8 minutes a fold. The record is in network.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import gate_corpus as g  # noqa: E402

from edge.fileio import sha256_bytes  # noqa: E402
from edge.scan import plausibility  # noqa: E402

EPOCHS, REALS, RATE = 4, 2000, 3e-4


def int8_logits(pictures, labels, fitted, scored) -> np.ndarray:
    """Fine-tune the network with a logit on pictures[fitted], make it int8 (calibrated on a
    sample of them) and return its logits of pictures[scored]."""
    import keras
    from keras import layers

    from edge.runtime import Quantization, make_interpreter
    from train import gate_net
    from train.quantizer import quantize, representative_images

    keras.utils.set_random_seed(g.SEED)
    base = gate_net.keras_model()
    model = keras.Model(base.input, layers.Dense(1)(layers.Dropout(0.2)(base.output)))
    model.compile(keras.optimizers.Adam(RATE), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(g.SEED)
    y = labels[fitted]
    others, real = fitted[y == 0], fitted[y == 1]
    for _ in range(EPOCHS):
        take = rng.permutation(np.concatenate([others, rng.choice(real, min(REALS, len(real)), replace=False)]))
        batch = pictures[take][..., None].astype(np.float32)
        flip = rng.random(len(take)) < 0.5
        batch[flip] = batch[flip, ::-1]
        weight = np.where(labels[take] == 1, 1.0, min(REALS, len(real)) / len(others)).astype(np.float32)
        model.fit(batch, labels[take].astype(np.float32), sample_weight=weight, batch_size=32, epochs=1, verbose=0)
    rng = np.random.default_rng(g.SEED)
    chosen = [k for kind in (0, 1) for k in rng.permutation(fitted[y == kind])[: g.CALIBRATION // 2]]
    interpreter = make_interpreter(quantize(model, representative_images(pictures[chosen]), "int8"), threads=1, kernels="builtin")
    given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    logits = []
    for k in scored:
        interpreter.set_tensor(given["index"], pictures[k][None, :, :, None])
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out["index"]).ravel()[0])
    return Quantization.of(out).dequantize(np.array(logits))


def main() -> None:
    from sklearn.model_selection import StratifiedGroupKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gate_corpus"))
    parser.add_argument("--folds", type=int, default=g.FOLDS, help="stop after this many outer folds")
    args = parser.parse_args()
    rows = g.thumbnails(None, None, args.work / "coarse.pkl")
    measured = [k for k, r in enumerate(rows) if r["rule"] is None]
    values = g.features(rows, measured, args.work / "features.npz")
    seen = g.cached(args.work / "probe_network.npz", sha256_bytes(plausibility.NETWORK_FILE.read_bytes()), measured,
                    lambda k: plausibility.network_features(g.picture(rows[k]["coarse"])))
    scored = [k for k in measured if rows[k].get("file") != "822_1942326353.jpg"]  # the file without a breast
    x = np.array([values[k] for k in scored], dtype=np.float64)
    n = np.array([seen[k] for k in scored], dtype=np.float64)
    pictures = np.stack([g.picture(rows[k]["coarse"]) for k in scored])
    y = np.array([rows[k]["mammogram"] for k in scored])
    groups = np.array([rows[k]["group"] for k in scored])
    splits = StratifiedGroupKFold(g.FOLDS, shuffle=True, random_state=g.SEED).split(x, y, groups)
    for fold, (train, test) in zip(range(args.folds), splits):
        below = {}
        for name, data, fit in (("trees", x, g.fit_trees), ("regression", n, g.fit_regression)):
            line = g.limit(fit, data[train], y[train], groups[train], g.INNER)
            below[name] = fit(data[train], y[train]).decision_function(data[test]) < line
        lowest = min(int8_logits(pictures, y, train[a], train[b][y[train[b]] == 1]).min()
                     for a, b in StratifiedGroupKFold(2, shuffle=True, random_state=g.SEED + 1).split(train, y[train], groups[train]))
        below["fine-tuned"] = int8_logits(pictures, y, train, test) < lowest - g.MARGIN
        for parts in (("trees", "regression"), ("trees", "fine-tuned")):
            out = below[parts[0]] | below[parts[1]]
            print(f"fold {fold}, {' | '.join(parts)}: {int(out[y[test] == 0].sum())} of {int((y[test] == 0).sum())} "
                  f"scored non-mammograms refused, {int(out[y[test] == 1].sum())} real", flush=True)


if __name__ == "__main__":
    main()
