"""Whether the cell head learns better from another mix of cells: how many negative cells are drawn per
normal training breast and per abnormal one (outside its circles). Every lesion cell is always in.

    python research/reader/cell_table_probe.py ../shared/mias 400,50 200,100 > research/reader/cell_table.txt   # 10 minutes a setting on the 2-core machine

Each setting is NORMAL,ABNORMAL[,SEED] (shipped: 200,50,0 = `train.reader.Options`' normal_cells,
abnormal_cells, seed; the seed starts the cell-head networks and draws the cells and inner folds):

    python research/reader/cell_table_probe.py ../shared/mias 200,50,5 400,50,5 200,50,10 400,50,10 >> research/reader/cell_table.txt

The shipped reader otherwise, nested as `edge-train` runs it, on the shipped configuration's int16
features; compare with reports/cv (AUC abnormal 0.790).
"""

from __future__ import annotations

import dataclasses
import sys


def main(data_dir: str, settings: list[str]) -> None:
    from reader_probe import score, setup

    config, data, folds, features = setup(data_dir, "int16")
    for setting in settings:
        normal, abnormal, seed = ([int(n) for n in setting.split(",")] + [config.options.seed])[:3]
        options = dataclasses.replace(config.options, normal_cells=normal, abnormal_cells=abnormal, seed=seed)
        print(f"{normal:4d} per normal, {abnormal:4d} per abnormal breast, seed {seed:2d}  "
              f"{score(data, features.board, features.float, folds, options)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
