"""The shipped model against the computation that was cross-validated: its heads on the quantized trunk's features.

    python scripts/reader_check.py ../shared/mias [MODEL.tflite]   # default: the shipped model

`edge-convert`'s gate compares the quantized model with the float Keras network; for a model whose
heads were fitted on the quantized trunk's features (`train.cv.board_features`) the reference that
matters is those heads on those features. This refits the shipped heads exactly as `edge-train`
did (deterministic), reads every development scan alone through the board's `Classifier`
(builtin kernels, as the desktop and Coral configs run it) and through the heads, and prints how
often the label agrees and how far P(abnormal) moves; first, how far quantization moves the trunk's
features from the float network's. With the heads beside the quantized trunk (`edge.inference.heads`) the two
agree exactly; with heads inside an int8 graph they did not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data: str, model: str | None = None) -> None:
    from edge.inference.classifier import Classifier
    from edge.inference.reading import answer, heat_evidence
    from train import distil, mias, reader
    from train.cv import Config, default_cache, scale_features, trunk_features
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config()
    records = mias.load(Path(data))
    dataset = load_dataset(records, config.size)
    trunk = trunk_features(dataset, config, default_cache(), log=lambda *_: None)  # cached by edge-train
    features = trunk.board
    imagenet = scale_features(dataset, config.factors, default_cache(), log=lambda *_: None)
    for f, board, exact, teacher in zip(config.factors, features, trunk.float, imagenet):
        print(f"scale 1/{f}: the board trunk's features move by a median {distil.drift(board, exact):.1%} of their spread per "
              f"channel from the float network's, {distil.drift(board, teacher):.1%} from the float ImageNet trunk's")
    folds = patient_folds(records, k=config.folds, seed=config.seed)
    heads, _, _ = reader.final_reading(features, dataset, folds, config.options, trunk.twins)
    expected = reader.outputs(features, heads)
    classifier = Classifier(model)
    threshold = classifier.manifest.triage_threshold
    agree, moved, malignant, heat = 0, [], [], []
    for i in range(len(records)):
        prepared = classifier.prepare(records[i].pixels())
        evidence = classifier.evidence(classifier.run(prepared.image), prepared)
        board = classifier.answer(evidence)
        p = classifier.reading.p_abnormal(heat_evidence(expected.heatmap[i]))
        heads_answer = answer(p, expected.classes[i], expected.malignant[i], threshold)
        agree += board.label == heads_answer.label
        moved.append(abs(board.abnormal - heads_answer.abnormal))
        malignant.append(abs(evidence.malignant_if_abnormal - expected.malignant[i]))
        heat.append(np.abs(evidence.heatmap - expected.heatmap[i]).max())
    print(f"label agreement {agree / len(records):.3f} ({len(records)} scans, each read alone); "
          f"|dP(abnormal)| mean {np.mean(moved):.4f}, max {np.max(moved):.4f}; "
          f"|dP(malignant | abnormal)| mean {np.mean(malignant):.4f}; largest heat-map cell difference, "
          f"mean over scans {np.mean(heat):.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
