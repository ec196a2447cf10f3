"""A tiny Keras model that obeys the training contract: the tests' stand-in for a trained model.

Random (seeded) weights, a few thousand parameters, 64x64 input: it converts in about a
second and exercises everything the real model does (rescaling inside the model, four outputs
of which two share a shape, a heat-map output), without waiting for a training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

TINY_SIZE = 64


def tiny_model(size: int = TINY_SIZE, seed: int = 0, batch_size: int | None = 1) -> Any:
    """A seeded Keras model with the contract's input and the outputs classes, abnormal, malignant, heatmap."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    scan = keras.Input(shape=(size, size, 1), batch_size=batch_size, name="scan")
    x = layers.Rescaling(1.0 / 255.0)(scan)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    heat = layers.Conv2D(1, 1, activation="sigmoid")(x)
    heatmap = layers.Reshape((size // 4, size // 4), name="heatmap")(heat)
    pooled = layers.GlobalAveragePooling2D()(x)
    classes = layers.Dense(7, activation="softmax", name="classes")(pooled)
    abnormal = layers.Dense(1, activation="sigmoid", name="abnormal")(pooled)
    malignant = layers.Dense(1, activation="sigmoid", name="malignant")(pooled)
    return keras.Model(scan, [classes, abnormal, malignant, heatmap], name="tiny")


def build_tiny_model_dir(records: Sequence[Any], folder: str | Path, size: int = TINY_SIZE, seed: int = 0) -> Path:
    """Convert `tiny_model` with `records` (real MIAS scans) as calibration; write model.tflite + model.json."""
    from convert.quantize import build_manifest, output_positions, prepared_images, write_model_folder
    from train.quantizer import quantize

    model = tiny_model(size, seed)
    images = prepared_images(records, size)
    content = quantize(model, images)
    manifest = build_manifest(
        content,
        outputs=output_positions(model, content, images[:4]),
        triage_threshold=0.5,
        target_sensitivity=0.9,
        info={
            "note": "tiny random-weight test model, NOT a trained model",
            "data": {"calibration": [getattr(r, "id", "?") for r in records]},
            "metrics": {},
        },
    )
    write_model_folder(folder, content, manifest)
    return Path(folder)
