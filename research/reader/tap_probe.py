"""Whether the heads read better from a second trunk tap beside block 11's cell features: block 9
(same stride 16, a smaller field of view: finer detail) or block 13 (stride 32, repeated onto the
stride-16 grid: a wider one), its channels concatenated to every cell's.

    python research/reader/tap_probe.py ../shared/mias 9 13 > research/reader/taps.txt   # 14 minutes a tap on the 2-core machine

The shipped reader otherwise, nested as `edge-train` runs it, on the shipped configuration's int16
block-11 features; the second tap's features are the float network's (the distilled trunk, as shipped),
which int16 activations reproduce within a thousandth of their spread. Compare with the shipped reader's
figures in reports/cv (block 11 alone: AUC abnormal 0.790).
"""

from __future__ import annotations

import sys

import numpy as np


def tap_features(data, factors, tuned, block: int, grid: list[int]) -> list[np.ndarray]:
    """Block `block`'s float features of every scan at every scale, on the grid of block 11's (uncached:
    the feature cache's key does not name the tap)."""
    from train import reader, trunk

    shipped, trunk.TAP = trunk.TAP, f"conv_pw_{block}_relu"
    try:
        out = [trunk.features(reader.scale_images(data.images, f), None, tuned=tuned) for f in factors]
    finally:
        trunk.TAP = shipped
    return [np.repeat(np.repeat(x, g // x.shape[1], 1), g // x.shape[1], 2) for x, g in zip(out, grid)]


def main(data_dir: str, blocks: list[int]) -> None:
    from reader_probe import score, setup

    config, data, folds, features = setup(data_dir, "int16")
    for block in blocks:
        extra = tap_features(data, config.factors, features.tuned, block, [f.shape[1] for f in features.board])
        board = [np.concatenate([f, x], -1) for f, x in zip(features.board, extra)]
        floats = [np.concatenate([f, x], -1) for f, x in zip(features.float, extra)]
        print(f"{f'block 11 + block {block}':20s} {score(data, board, floats, folds, config.options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(b) for b in sys.argv[2:]])
