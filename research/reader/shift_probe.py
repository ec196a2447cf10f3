"""Whether the cell head learns better from more views of the same training scans: each prepared scan
moved by part of a cell (the 16-pixel cell grid then cuts every lesion elsewhere), or mirrored top to
bottom, its circles moved with it. Only the cell head's training table sees the views; everything
read (inner evidence, test folds) is the scans as they are.

    python research/reader/shift_probe.py ../shared/mias none shift8 flip > research/reader/views.txt
    # 7, 23 and 13 minutes on the 2-core machine: the views multiply the cell head's training table

Settings: `none` (the shipped reader), `shiftS[,T...]` (views moved by S pixels down, right, and
both, at the 512-pixel input), `flip` (mirrored top to bottom), joined by `+` (`shift8+flip`).
The views' features are the float network's (the board's int16 ones differ by a thousandth of
their spread); the scans' own are the board's, as `edge-train` fits them.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np


def moved(data, dy: int, dx: int, flip: bool = False):
    """`data` with every image moved by (dy, dx) pixels (zeros come in) or mirrored top to bottom, circles with it."""
    from train.data import Circle

    images = np.zeros_like(data.images)
    size = data.size
    images[:, max(dy, 0) : size + min(dy, 0), max(dx, 0) : size + min(dx, 0)] = data.images[
        :, max(-dy, 0) : size + min(-dy, 0), max(-dx, 0) : size + min(-dx, 0)
    ]
    circles = [tuple(Circle(c.row + dy, c.col + dx, c.radius) for c in scan) for scan in data.circles]
    if flip:
        images = images[:, ::-1].copy()
        circles = [tuple(Circle(size - 1 - c.row, c.col, c.radius) for c in scan) for scan in circles]
    return dataclasses.replace(data, images=images, circles=circles)


def views_of(data, setting: str, factors, tuned, cache):
    """[(dataset, [float features per scale])] of one setting's views."""
    from train import reader, trunk

    views = []
    for part in setting.split("+"):
        if part == "none":
            continue
        if part == "flip":
            moves = [(0, 0, True)]
        else:
            moves = [m for s in part[len("shift"):].split(",") for m in ((int(s), 0, False), (0, int(s), False), (int(s), int(s), False))]
        for dy, dx, flip in moves:
            view = moved(data, dy, dx, flip)
            views.append((view, [trunk.features(reader.scale_images(view.images, f), cache, tuned=tuned) for f in factors]))
    return views


def with_views(views):
    """Patch `train.reader._cell_table` so the training table holds the views of the same scans too."""
    from edge.inference.heads import neighbourhood
    from train import reader

    original = reader._cell_table
    by_grid = {}

    def table(features, data, index, breast, options, rng, extra=()):
        x, y, w = original(features, data, index, breast, options, rng, extra)
        grid = features.shape[1]
        if grid not in by_grid:
            by_grid[grid] = [
                (neighbourhood(next(f for f in scales if f.shape[1] == grid), options.context), view,
                 reader.breast_cells(view.images, grid))
                for view, scales in views
            ]
        parts = [(x, y, w)] + [original(f, view, index, b, options, rng) for f, view, b in by_grid[grid]]
        return tuple(np.concatenate(p) for p in zip(*parts))

    reader._cell_table = table
    return original


def main(data_dir: str, settings: list[str]) -> None:
    from reader_probe import score, setup
    from train import reader
    from train.cv import default_cache

    config, data, folds, features = setup(data_dir, "int16")
    for setting in settings:
        views = views_of(data, setting, config.factors, features.tuned, default_cache())
        original = with_views(views)
        try:
            print(f"{setting:18s} {score(data, features.board, features.float, folds, config.options)}", flush=True)
        finally:
            reader._cell_table = original


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
