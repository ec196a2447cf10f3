"""Whether the trunk reads lesions better after a contrast step beyond `prepare`'s percentile stretch:
the breast's grey levels equalised (Pillow's `ImageOps.equalize` inside the breast), or sharpened
(Pillow's unsharp mask, radius and percent as named: `unsharp_8_150`), background kept black.

    python research/reader/contrast_probe.py ../shared/mias none equalize unsharp_8_150 unsharp_4_50 > research/reader/contrast.txt   # 8 minutes a variant on the 2-core machine

The ImageNet trunk as it is (no distillation: it would have to be redone for each input) and its
float features, read by the shipped reader nested as `edge-train` runs it; `none` is the baseline.
The heads are fitted and read on the float features, so the float-vs-int8 agreement printed is 1 by
construction.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps


def contrast(name: str, image: np.ndarray) -> np.ndarray:
    """One prepared scan (uint8) after the contrast step `name`; outside the breast stays black."""
    breast = image > 8  # as `train.reader.breast_cells` tells breast from background
    picture = Image.fromarray(image)
    if name == "none":
        out = picture
    elif name == "equalize":
        out = ImageOps.equalize(picture, mask=Image.fromarray(breast.astype(np.uint8) * 255))
    elif name.startswith("unsharp_"):
        radius, percent = map(int, name.split("_")[1:])
        out = picture.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=0))
    else:
        raise SystemExit(f"unknown contrast step {name!r}: none, equalize or unsharp_RADIUS_PERCENT")
    return np.where(breast, np.asarray(out), 0).astype(np.uint8)


def main(data_dir: str, names: list[str]) -> None:
    from reader_probe import score

    from train import mias
    from train.cv import Config, default_cache, scale_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config(features="float", distil_epochs=0)
    records = mias.load(Path(data_dir))
    data = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    for name in names:
        changed = dataclasses.replace(data, images=np.stack([contrast(name, image) for image in data.images]))
        floats = scale_features(changed, config.factors, default_cache(), log=lambda *_: None)
        print(f"{name:14s} {score(changed, floats, floats, folds, config.options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
