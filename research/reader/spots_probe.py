"""Calcifications are 1-5 pixels at the full mini-MIAS resolution and all but gone at the model's
512: does a per-cell measure of small bright spots at 1024 pixels (a white top-hat, in pillow as
the board would compute it) help the cell head beside the trunk's features?

    python research/reader/spots_probe.py ../shared/mias   # about 10 minutes on the 2-core machine

Each cell of the 512-pixel grid (32 x 32 pixels at 1024) gets 5 numbers: the mean white top-hat
after openings of 5 and 9 pixels, the fraction of its pixels above 12 grey levels in each, and
the 5-pixel top-hat's maximum (log1p); the 256-pixel grid takes the mean of 2 x 2 of them. They
are appended to the int8 trunk's cell features (and the float network's, for the label agreement)
and the shipped reader is cross-validated as `edge-train` does, on the same folds.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
from PIL import Image, ImageFilter


def spots(image: np.ndarray, cell: int) -> np.ndarray:
    """(g, g, 5) small-bright-spot measures of each cell x cell block of one uint8 image."""
    picture = Image.fromarray(image)
    out = []
    for size in (5, 9):
        opened = np.asarray(picture.filter(ImageFilter.MinFilter(size)).filter(ImageFilter.MaxFilter(size)), np.float32)
        hat = image.astype(np.float32) - opened
        g = image.shape[0] // cell
        blocks = hat.reshape(g, cell, g, cell).transpose(0, 2, 1, 3).reshape(g, g, -1)
        out += [blocks.mean(-1), (blocks > 12).mean(-1) * 100]
        if size == 5:
            out.append(blocks.max(-1))
    return np.log1p(np.stack(out, -1))


def main(data_dir: str) -> None:
    from reader_probe import score, setup
    from train.data import load_dataset

    config, data, folds, features = setup(data_dir)
    options = dataclasses.replace(config.options, cell_seeds=1)  # one cell-head network, as it was run
    full = load_dataset(data.records, 2 * config.size)
    fine = np.stack([spots(im, 32) for im in full.images]).astype(np.float32)
    extra = [fine, fine.reshape(len(fine), 16, 2, 16, 2, -1).mean((2, 4))]
    spread = [f.std() for f in features.board]

    def join(scales):  # the measures scaled to the spread of the int8 trunk's features at each scale
        return [np.concatenate([f, e * s / e.std()], -1).astype(np.float32) for f, e, s in zip(scales, extra, spread)]

    for name, board, floats in (("shipped", features.board, features.float),
                                ("with the spot measures", join(features.board), join(features.float))):
        print(f"{name:24s} {score(data, board, floats, folds, options, calc=True)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
