"""Whether the pointing game misses by the heat-map's coarseness: the shipped reader's out-of-fold
heat-maps (cells of 32 scan pixels), their peak taken as the hottest cell's centre (shipped) or at
a sub-cell place: the heat-weighted centre of the K x K cells around the hottest one (weights above
the window's lowest value), or the hottest cell of the map smoothed first.

    python research/reader/peak_probe.py ../shared/mias > research/reader/peaks.txt   # 8 minutes on the 2-core machine

Also prints how far outside their circle the shipped peaks that miss fall. Nothing here changes
P(abnormal); every estimate is read on the same heat-maps.
"""

from __future__ import annotations

import sys

import numpy as np


def hottest(heat: np.ndarray) -> tuple[float, float]:
    """The hottest cell (as `train.cv.heatmap_peaks` and the board take the peak)."""
    return tuple(float(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))


def centroid(k: int):
    """The heat-weighted centre of the k x k cells around the hottest one."""
    def peak(heat: np.ndarray) -> tuple[float, float]:
        i, j = (int(v) for v in hottest(heat))
        r = k // 2
        top, left = max(0, i - r), max(0, j - r)
        window = heat[top:i + r + 1, left:j + r + 1]
        weight = window - window.min()
        if weight.sum() <= 0:
            return float(i), float(j)
        rows, cols = np.mgrid[top:top + window.shape[0], left:left + window.shape[1]]
        return float((weight * rows).sum() / weight.sum()), float((weight * cols).sum() / weight.sum())
    return peak


def smoothed(smooth):
    """The hottest cell of the heat-map after `smooth`."""
    return lambda heat: hottest(smooth(heat))


def main(data_dir: str) -> None:
    from reader_probe import setup
    from scipy.ndimage import gaussian_filter, uniform_filter

    from train.cv import evaluate

    config, data, folds, features = setup(data_dir, "int16")
    _, heatmaps = evaluate(data, features.board, folds, config.options)
    located = [i for i, record in enumerate(data.records) if record.lesions]

    def outside(i: int, peak) -> float:
        """Scan pixels from the peak to the nearest circle's edge (<= 0: inside)."""
        row, col = data.geometries[i].cell_centre_to_scan(*peak(heatmaps[i]), heatmaps[i].shape)
        return min(np.hypot(row - c.row, col - c.col) - c.radius for c in data.records[i].lesions)

    estimates = {
        "hottest cell (shipped)": hottest,
        "3x3 weighted centre": centroid(3),
        "5x5 weighted centre": centroid(5),
        "hottest after a 3x3 mean": smoothed(lambda h: uniform_filter(h, 3, mode="nearest")),
        "hottest after a Gaussian (1 cell)": smoothed(lambda h: gaussian_filter(h, 1.0, mode="nearest")),
    }
    for name, peak in estimates.items():
        hits = sum(outside(i, peak) <= 0 for i in located)
        print(f"{name:36s} pointing {hits}/{len(located)}", flush=True)
    misses = np.array([d for d in (outside(i, hottest) for i in located) if d > 0])
    print(f"shipped misses: {len(misses)}; outside their circle by at most 16 / 32 / 64 scan pixels: "
          f"{(misses <= 16).sum()} / {(misses <= 32).sum()} / {(misses <= 64).sum()} (a cell is 32 pixels)")


if __name__ == "__main__":
    main(sys.argv[1])
