"""Whether the malignancy head reads anything: the shipped reader with the head fitted always against
the head fitted only where it beats the training rate (`train.reader.MALIGNANCY_SEARCH`), and how
often the inner cross-validation kept a head.

    python research/reader/malignancy_probe.py ../shared/mias > research/reader/malignancy.txt   # 14 minutes on the 2-core machine

Each setting is a full nested cross-validation on the shipped configuration's int16 features, the
same folds as `edge-train`; `choices` counts the malignancy head's strength (None: no head) over
every fit (each of the 5 test folds: 4 inner fits and one on all its training folds; then 5 + 1 for the
final model's reading stage and heads).
`AUC malignant among abnormal` is the AUC of P(malignant | abnormal) telling malignant from benign findings,
pooled over the test folds. With no head, P(malignant | abnormal) is each fold's training rate, the same for
every scan of a fold: that AUC then only says which folds had the higher rates, and 0.5 is its meaning.
"""

from __future__ import annotations

import collections
import dataclasses
import sys


def main(data_dir: str) -> None:
    from reader_probe import score, setup
    from train import reader

    config, data, folds, features = setup(data_dir, "int16")
    choose = reader._malignancy_choice
    for search in (False, True):
        chosen = collections.Counter()

        def counted(*args, **kwargs):
            c = choose(*args, **kwargs)
            chosen[c] += 1  # noqa: B023 (used in this iteration only)
            return c

        reader._malignancy_choice = counted
        try:
            line = score(data, features.board, features.float, folds,
                         dataclasses.replace(config.options, malignancy_search=search), malignancy=True)
        finally:
            reader._malignancy_choice = choose
        name = "head only where it beats the rate" if search else "head always fitted"
        counts = ", ".join(f"{c}: {n}" for c, n in sorted(chosen.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)))
        print(f"{name:34s} {line}  choices {{{counts or 'none made'}}}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
