"""The one post-training quantizer (int8 weights; int16 or int8 activations) and its calibration set.

Training fits the heads on the features of the trunk quantized here (`train.trunk.quantized_features`),
and `edge-convert` quantizes the shipped network with the same function, so the board computes the
features the heads were fitted on. It lives on the training side so that `convert` depends on `train`
and never the other way round.

TensorFlow is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Sequence

import numpy as np

from edge.errors import EdgeError


def as_model_input(image: np.ndarray) -> np.ndarray:
    """A prepared uint8 (S, S) image as the float model's input: (1, S, S, 1) float32, values 0..255."""
    return np.asarray(image, dtype=np.float32)[None, :, :, None]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mildly changed copy of a prepared image, for calibration sets larger than the data.

    Only changes the board could meet: a small zoom and shift (another crop of the same
    breast) and a small gamma (another film exposure). No mirroring: `prepare` always puts the
    chest wall on the left, so a mirrored input would be one the model never sees.
    """
    from PIL import Image

    size = image.shape[0]
    zoom = rng.uniform(1.0, 1.1)
    side = size / zoom
    top, left = rng.uniform(0, size - side, 2)
    crop = Image.fromarray(image).resize(
        (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
    )
    gamma = rng.uniform(0.85, 1.15)
    out = 255.0 * (np.asarray(crop, dtype=np.float32) / 255.0) ** gamma
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def representative_images(images: np.ndarray, count: int = 300, seed: int = 0) -> np.ndarray:
    """`count` calibration images: every real image once (shuffled), then augmented copies if more are asked for."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    chosen = [images[i] for i in order[:count]]
    while len(chosen) < count:
        chosen.append(augment(images[rng.integers(len(images))], rng))
    return np.stack(chosen)


ACTIVATIONS = ("int16", "int8")  # the integer type of the activations; weights are int8 either way


def quantize(model: Any, images: Sequence[np.ndarray] | np.ndarray, activations: str = "int8") -> bytes:
    """Full-integer TFLite bytes of a Keras `model`, calibrated on prepared uint8 `images` (N, S, S).

    Post-training quantization with the default optimizations and integer builtin ops only (a
    float op would make the conversion fail rather than slip through). `activations`:
    - "int8": int8 weights and activations, uint8 input and outputs (what the Edge TPU runs);
    - "int16": int8 weights, int16 activations (TFLite's 16x8 mode), int16 input and outputs. Its
      activations are rounded 256 times more finely, so a network with int8-grid weights computes
      what the float one does (the shipped trunk: to a thousandth of its features' spread).
    The batch dimension is whatever the model's `keras.Input` fixed; the readiness check
    refuses anything but 1.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if len(images) == 0:
        raise EdgeError("no representative images: the quantizer needs real prepared scans")

    def representative_dataset():
        for image in images:
            yield [as_model_input(image)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    if activations not in ACTIVATIONS:
        raise EdgeError(f"activations must be one of {', '.join(ACTIVATIONS)}, not {activations!r}")
    if activations == "int16":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    try:
        # Keras prints the traced signature on stdout and TF warns that the uint8 input has no
        # statistics (it needs none: its range comes from the calibration data). Keep stdout clean.
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and friends with long texts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeError(f"{activations} conversion failed: {first}") from None
