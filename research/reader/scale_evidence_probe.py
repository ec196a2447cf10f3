"""Whether the reading stage reads better from each scale's heat evidence than from the averaged heat-map's:
[hottest cell, mean of the 5 hottest] of the 512- and the 256-pixel cell probabilities apart (4 numbers a
breast, 8 beside the other breast) instead of those of their mean (2 and 4).

    python research/reader/scale_evidence_probe.py ../shared/mias > research/reader/scale_evidence.txt   # 17 minutes on the 2-core machine

The shipped reader otherwise, nested as `edge-train` runs it, on the shipped configuration's int16 features.
The device computes the averaged heat-map's evidence (`edge.inference.reading.heat_evidence`); shipping this would
change what the board computes and the manifest's reading stage.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass

import numpy as np


def main(data_dir: str) -> None:
    from reader_probe import score, setup

    from edge.inference import heads
    from edge.inference.reading import heat_evidence
    from train import reader

    @dataclass(frozen=True)
    class ByScale(heads.Outputs):
        scales: tuple = ()  # each scale's cell probabilities on the finest grid

    def outputs(scales, fitted):
        out = heads.outputs(scales, fitted)
        grid = scales[0].shape[1]
        each = tuple(heads._upsample(heads._sigmoid(fitted.cell_logits(f, k)), grid // f.shape[1]) for k, f in enumerate(scales))
        return ByScale(out.classes, out.abnormal, out.malignant, out.heatmap, each)

    def evidence(out):
        return np.stack([np.concatenate([heat_evidence(h[i]) for h in out.scales]) for i in range(len(out.heatmap))])

    config, data, folds, features = setup(data_dir, "int16")
    print(f"{'averaged heat-map':22s} {score(data, features.board, features.float, folds, config.options)}", flush=True)
    reader.outputs, reader.evidence = outputs, evidence
    width = 2 * len(config.factors)
    for name in ("cross_validate", "final_reading"):  # their evidence arrays hold 2 numbers a scan
        source = inspect.getsource(getattr(reader, name)).replace("np.zeros((n, 2))", f"np.zeros((n, {width}))")
        exec(source, reader.__dict__)
    print(f"{'each scale apart':22s} {score(data, features.board, features.float, folds, config.options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
