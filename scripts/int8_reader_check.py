"""The shipped int8 model against the computation that was cross-validated: its heads on the int8 trunk's features.

    python scripts/int8_reader_check.py ../shared/mias

`edge-convert`'s gate compares the int8 model with the float Keras network; for a model whose
heads were fitted on the int8 trunk's features (`train.cv.board_features`) the reference that
matters is those heads on those features. This refits the shipped heads exactly as `edge-train`
did (deterministic), reads every development scan alone through the board's `Classifier` and
through the heads, and prints how often the label agrees and how far P(abnormal) moves; first,
how far int8 moves the trunk's features (the figure the README and reports/cv quote as about 40%).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(data: str) -> None:
    from edge.classifier import Classifier
    from edge.reading import answer, heat_evidence
    from train import mias, reader, trunk
    from train.cv import Config, default_cache
    from train.data import load_dataset
    from train.splits import patient_folds

    config = Config()
    records = mias.load(Path(data))
    dataset = load_dataset(records, config.size)
    features = trunk.int8_features(dataset.images, config.factors, default_cache())
    for f, board in zip(config.factors, features):  # how far int8 moves the frozen trunk's features
        exact = trunk.features(reader.scale_images(dataset.images, f), default_cache())
        error = np.median((board - exact).std((0, 1, 2)) / (exact.std((0, 1, 2)) + 1e-6))
        print(f"scale 1/{f}: int8 trunk features move by a median {error:.0%} of their spread per channel")
    heads, _, _ = reader.final_reading(features, dataset, patient_folds(records, k=config.folds, seed=config.seed), config.options)
    expected = reader.outputs(features, heads)
    classifier = Classifier()
    threshold = classifier.manifest.triage_threshold
    agree, moved = 0, []
    for i in range(len(records)):
        prepared = classifier.prepare(records[i].pixels())
        board = classifier.answer(classifier.evidence(classifier.run(prepared.image), prepared))
        p = classifier.reading.p_abnormal(heat_evidence(expected.heatmap[i]))
        heads_answer = answer(p, expected.classes[i], expected.malignant[i], threshold)
        agree += board.label == heads_answer.label
        moved.append(abs(board.abnormal - heads_answer.abnormal))
    print(f"label agreement {agree / len(records):.3f} ({len(records)} scans, each read alone); "
          f"|dP(abnormal)| mean {np.mean(moved):.4f}, max {np.max(moved):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
