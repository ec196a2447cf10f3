"""Whether the cell head learns better from fewer input dimensions: its standardised inputs (a cell's
128 trunk features and their 3x3-neighbourhood mean) projected on their first k principal components,
fitted on each training table's cells (no labels), the projection then folded into the hidden layer,
so the board would compute the same one-hidden-layer network.

    python research/reader/cell_dims_probe.py ../shared/mias 32 16 64 > research/reader/cell_dims.txt   # 8 minutes a k on the 2-core machine

The shipped reader otherwise (all 256 inputs), nested as `edge-train` runs it, on the shipped
configuration's int16 features; compare with reports/cv (AUC abnormal 0.790).
"""

from __future__ import annotations

import sys

import numpy as np


def on_components(fit, k: int):
    """`train.reader._cell_fit` on the first k principal components of the standardised cell table."""
    def fitted(x, y, weight, options):
        mean, scale = x.mean(0).astype(np.float64), x.std(0).astype(np.float64) + 1e-3
        standard = (x - mean) / scale
        components = np.linalg.svd(standard - standard.mean(0), full_matrices=False)[2][:k].T
        hidden, w, b = fit(standard @ components, y, weight, options)
        project = components / scale[:, None]  # x -> components, standardisation folded in
        shift = (mean / scale) @ components
        if hidden is None:
            return None, project @ w, b - float(shift @ w)
        return (project @ hidden[0], hidden[1] - shift @ hidden[0]), w, b
    return fitted


def main(data_dir: str, ks: list[int]) -> None:
    from reader_probe import score, setup

    from train import reader

    config, data, folds, features = setup(data_dir, "int16")
    shipped = reader._cell_fit
    for k in ks:
        reader._cell_fit = on_components(shipped, k)
        print(f"{k:3d} components  {score(data, features.board, features.float, folds, config.options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(k) for k in sys.argv[2:]])
