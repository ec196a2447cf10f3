"""How far the int8 trunk's features move from the float ImageNet trunk's, before and after `train.distil`.

    python research/distil/distil_probe.py ../shared/mias       # about 15 minutes on the 2-core machine

The trunk is distilled on the scans of folds 1-4 only; the drift is measured on fold 0's scans,
which the distillation never saw, with the board's int8 model (the converter's quantization, the
TFLite interpreter). Drift: median over channels of std(int8 - float) / std(float).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data: str) -> None:
    from train import distil, mias, reader, trunk
    from train.cv import Config, default_cache, scale_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config()
    records = mias.load(Path(data))
    dataset = load_dataset(records, config.size)
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    seen, unseen = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    teacher = scale_features(dataset, config.factors, default_cache(), log=lambda *_: None)
    images = [reader.scale_images(dataset.images, f) for f in config.factors]
    tuned = distil.distil([x[seen] for x in images], [t[seen] for t in teacher], config.distil_epochs, config.seed)
    for name, weights in (("ImageNet weights", None), (f"distilled ({config.distil_epochs} epochs, folds 1-4)", tuned)):
        board = trunk.quantized_features(dataset.images[unseen], config.factors, None, weights, "int8")
        drift = [distil.drift(b, t[unseen]) for b, t in zip(board, teacher)]
        print(f"{name:36s} int8 drift on fold 0: " + ", ".join(
            f"{config.size // f} px {d:.3f}" for f, d in zip(config.factors, drift)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
