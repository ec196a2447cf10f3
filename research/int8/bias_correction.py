"""Bias correction of the int8 trunk (`research/int8/bias.py`), judged as the shipped configuration is: same folds, heads refitted.

    python research/int8/bias_correction.py ../shared/mias        # about 6 minutes on the 2-core machine

The shipped network (`reader.build_network` with the shipped distilled trunk) is converted as
`edge-train` converts it for the heads' features, once as it ships and once with its
convolutions' biases corrected against the float network (`correct_biases` in research/int8/bias.py).
On each set of int8 features the nested cross-validation of `edge-train` is run on the same folds
(out-of-fold figures, and the paired bootstrap of the AUC differences over women), and the final
heads are fitted as `edge-train` fits them; then the gate's figure: how often the float network
and the int8 one, read through those heads, give the same label (each scan alone, builtin
kernels, as `edge-convert` reads them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from board_features import model_features


def main(data_dir: str) -> None:
    from bias import correct_biases
    from convert.quantize import float_tflite
    from train.quantizer import quantize, representative_images
    from edge.inference.heads import outputs
    from edge.inference.reading import answer
    from train import cv, metrics, reader, records
    from train.data import load_dataset
    from train.splits import patient_folds

    config = cv.Config(features="int8")  # a study of int8 activations: the features the int8 models shipped with
    chosen = records.load(Path(data_dir))
    dataset = load_dataset(chosen, config.size)
    folds = patient_folds(chosen, k=config.folds, seed=config.seed)
    features = cv.trunk_features(dataset, config, cv.default_cache(), log=lambda *_: None)
    network = reader.build_network(config.size, config.factors, tuned=features.tuned)

    calibration = representative_images(dataset.images)
    content = correct_biases(quantize(network, calibration), float_tflite(network), calibration)
    corrected = model_features(content, dataset.images)

    tables = {}
    for name, scales in (("as shipped", features.board), ("biases corrected", corrected)):
        table, _ = cv.evaluate(dataset, scales, folds, config.options)
        tables[name] = table
        heads, reading, threshold = reader.final_reading(scales, dataset, folds, config.options)
        answers = []
        for side in (features.float, scales):
            out = outputs(side, heads)
            evidence = reader.evidence(out)
            answers.append([answer(reading.p_abnormal(evidence[i]), out.classes[i], out.malignant[i], threshold)
                            for i in range(len(evidence))])
        same = np.mean([a.label == b.label for a, b in zip(*answers)])
        triage = sum(a.triage != b.triage for a, b in zip(*answers))
        figures = metrics.figures(table, table.threshold)
        print(f"{name}: AUC abnormal {figures['auc_abnormal']:.3f}, AUC malignant {figures['auc_malignant']:.3f}, "
              f"balanced accuracy {figures['balanced_accuracy']:.3f}, macro-F1 {figures['macro_f1']:.3f}, "
              f"specificity at the threshold {figures['specificity_at_threshold']:.3f}; "
              f"float vs int8 label agreement {same:.3f} ({triage} triage changes)")
    a, b = tables["biases corrected"], tables["as shipped"]
    for what, y, x, z in (("abnormal", a.y_abnormal, a.abnormal, b.abnormal), ("malignant", a.y_malignant, a.malignant, b.malignant)):
        d = metrics.paired_auc_difference(y, x, z, a.patient)
        print(f"AUC {what}, corrected minus shipped: {d['value']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")


if __name__ == "__main__":
    main(sys.argv[1])
