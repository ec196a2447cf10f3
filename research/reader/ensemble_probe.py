"""How much the reader's figures hang on the cell head's random start, and whether several cell-head
networks from different starts (their mean logit) steady it: the probe behind `train.reader.CELL_SEEDS`.

    python research/reader/ensemble_probe.py ../shared/mias [SETTING ...]   # 3 to 7 minutes a setting on the 2-core machine
    python research/reader/ensemble_probe.py ../shared/mias seed=0 seed=1 seed=2 seed=3 seed=4 seeds=3 seed=1,seeds=3 \
        seeds=5 seed=1,seeds=5 seed=2,seeds=5 seed=3,seeds=5 > research/reader/ensemble.txt

Each setting is the shipped reader with only that changed: a full nested cross-validation on the
distilled trunk's int8 features, the same folds as `edge-train`. Printed as in
`research/reader/cell_head_probe.py`, with the float-vs-int8 label agreement of the final heads.
Settings: `seed=K` (one network, from start K; K also draws the cells and the kind head's inner
folds), `seeds=N` (N networks from starts K to K + N - 1, averaged), `seed=K,seeds=N`.
"""

from __future__ import annotations

import dataclasses
import sys


def main(data_dir: str, settings: list[str]) -> None:
    from reader_probe import score, setup

    config, data, folds, features = setup(data_dir)
    for setting in settings:
        parts = dict(p.split("=") for p in setting.split(","))
        options = dataclasses.replace(config.options, seed=int(parts.get("seed", 0)), cell_seeds=int(parts.get("seeds", 1)))
        print(f"{setting:18s} {score(data, features.board, features.float, folds, options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
