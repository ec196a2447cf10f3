"""The cell head's form (a logistic regression, or one hidden ReLU layer of a few sizes and L2 strengths), and the kind head's twins.

    python research/reader/cell_head_probe.py ../shared/mias > research/reader/cell_head.txt   # about 40 minutes on the 2-core machine

The probe behind `train.reader.CELL_HIDDEN`. Each setting is the shipped reader with only the cell
head changed, a full nested cross-validation on the distilled trunk's int8 features and the same
folds as `edge-train`. Printed per setting: the out-of-fold figures (AUC abnormal and malignant,
balanced accuracy, specificity at the threshold, the pointing game) and, for the heads fitted on
every scan as `edge-train` fits the final ones, how often the float network's features and the
int8 trunk's give the same label (each scan read alone, as `edge-convert`'s gate reads it). The
shipped setting was chosen by looking at these rows, so its figures are optimistic by that choice;
the spread across settings says how much. The last row is the shipped cell head with the kind head
also learning from the float network's features (`train.reader.KIND_TWINS`, off in the shipped reader).
"""

from __future__ import annotations

import dataclasses
import sys

SETTINGS = ((0, 0.0, False), (16, 3.0, False), (32, 1.0, False), (32, 10.0, False), (64, 10.0, False), (64, 30.0, False),
            (128, 10.0, False), (64, 10.0, True))
"""(hidden units, L2 strength, kind twins); 0 units: the logistic regression shipped before."""


def main(data_dir: str) -> None:
    from reader_probe import score, setup

    config, data, folds, features = setup(data_dir)
    for units, alpha, twins in SETTINGS:
        options = dataclasses.replace(config.options, cell_hidden=units, cell_alpha=alpha, kind_twins=twins,
                                      cell_seeds=1)  # one network each, as it was run
        name = (f"{units} units, L2 {alpha:g}" if units else "logistic regression") + (", kind twins" if twins else "")
        print(f"{name:34s} {score(data, features.board, features.float, folds, options, features.twins, macro_f1=False)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
