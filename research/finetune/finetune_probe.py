"""Study: does fine-tuning the ImageNet trunk on lesion / background patches beat the frozen trunk?

    python research/finetune/finetune_probe.py ../shared/mias 256 64 8     # input size, patch side, epochs

Per test fold of `train.splits.patient_folds(k=5, seed=0)`: the MobileNet v1 0.25 trunk
(`train.trunk`, batch norm frozen) plus a 1x1 cell head is trained for EPOCHS epochs of 2048
patches cut from the training folds' prepared scans (half centred on a lesion circle, half
anywhere in a normal breast, cells labelled by `train.data.heatmap_target`), then reads the
test fold's whole scans; P(abnormal) is the hottest cell, the scan read alone. Prints the
pooled out-of-fold AUC. Nothing here is tuned, so nothing is nested. Measured once: 0.539 at
256 px, 64 px patches, 8 epochs (the frozen trunk reads the same scans alone at 0.625).
"""

from __future__ import annotations

import sys

import numpy as np


def patches(dataset, index, rng, count: int, side: int):
    """(images, cell targets) of `count` patches from the scans `index`: lesion-centred and normal."""
    from train.data import Circle, heatmap_target

    located = [i for i in index if dataset.circles[i] and dataset.records[i].abnormal]
    normal = [i for i in index if not dataset.records[i].abnormal]
    size, half = dataset.size, side // 2
    images, targets = np.zeros((count, side, side), np.float32), []
    for k in range(count):
        lesion = k % 2 == 0
        i = int(rng.choice(located if lesion else normal))
        if lesion:
            circle = dataset.circles[i][rng.integers(len(dataset.circles[i]))]
            row, col = np.array([circle.row, circle.col]) + rng.uniform(-0.5, 0.5, 2) * min(circle.radius, half)
        else:
            inside = np.argwhere(dataset.images[i] > 20)
            row, col = inside[rng.integers(len(inside))]
        top = int(np.clip(round(row) - half, 0, size - side))
        left = int(np.clip(round(col) - half, 0, size - side))
        images[k] = dataset.images[i][top : top + side, left : left + side]
        moved = tuple(Circle(c.row - top, c.col - left, c.radius) for c in dataset.circles[i]) if lesion else ()
        targets.append(heatmap_target(moved, side, side // 16, False))
    return images[..., None], np.stack(targets)


def network(size: int, weights=None):
    import keras
    from keras import layers

    from train import trunk

    inputs, cells = trunk.build(size)
    model = keras.Model(inputs, layers.Reshape((size // 16, size // 16))(layers.Conv2D(1, 1, name="cells")(cells)))
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    if weights is not None:
        model.set_weights(weights)
    return model


def main(data: str, size: int, side: int, epochs: int) -> float:
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from train import mias
    from train.data import load_dataset
    from train.splits import patient_folds

    def loss(target, logit):
        return tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(target, logit, 4.0))

    records = mias.load(data)
    folds = patient_folds(records, k=5, seed=0)
    dataset = load_dataset(records, size)
    hottest = np.zeros(len(records))
    for k in range(5):
        keras.utils.set_random_seed(k)
        rng = np.random.default_rng(k)
        training, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        model = network(side)
        model.compile(keras.optimizers.Adam(3e-4), loss=loss)
        for _ in range(epochs):
            x, y = patches(dataset, training, rng, 2048, side)
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        whole = network(size, model.get_weights())
        logits = whole.predict(dataset.images[test, :, :, None].astype(np.float32), batch_size=8, verbose=0)
        hottest[test] = logits.reshape(len(test), -1).max(1)
        print(f"fold {k}: AUC {roc_auc_score(dataset.abnormal[test], hottest[test]):.3f}", flush=True)
    pooled = float(roc_auc_score(dataset.abnormal, hottest))
    print(f"pooled out-of-fold AUC abnormal (scan alone, hottest cell): {pooled:.3f}")
    return pooled


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
