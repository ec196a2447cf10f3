"""The Keras network: a small residual CNN built for an int8 Edge TPU, with four named outputs.

Design, and why:
- Input (S, S, 1) float32 holding the uint8 grey levels of `edge.preprocess.prepare` (0..255);
  the rescale to 0..1 is the model's first layer, so the device feeds pixels as they are.
- Plain 3x3 convolutions + batch norm (folded at conversion) + ReLU, residual adds, stride-2
  convolutions for down-sampling: every op is an int8 TFLite builtin the Edge TPU maps, and
  plain convolutions train several times faster on a 2-core CPU than depthwise-separable ones
  (measured: 19 vs 100 ms per 256x256 image per step), which is what bounds this project.
- Outputs, in this order: `classes` (7-way softmax, edge.LABELS order), `abnormal` and
  `malignant` (sigmoids), `heatmap` (S/16 x S/16 sigmoid cells, trained against the lesion
  circles). The heads read average- and max-pooled features of the last two stages: max
  pooling lets one small lesion decide, average pooling sees the whole breast.
- The network is fully convolutional up to global pooling, so the same layers train on small
  lesion/background patches (patch pre-training) and on whole images; weights move by name.
- Fixed `batch_size=1` for export (the Edge TPU rejects a dynamic batch); training uses the
  same layers with a free batch size, and weights move between the two by layer name.
"""

from __future__ import annotations

import keras
from keras import layers

from edge import LABELS

OUTPUTS = ("classes", "abnormal", "malignant", "heatmap")
HEATMAP_STRIDE = 16
BASE_CHANNELS = (8, 16, 32, 64, 128)
"""Stem (S/2), then stages at S/4, S/8, S/16 (heat-map), S/32."""


def _conv(x, channels: int, name: str, stride: int = 1, relu: bool = True):
    x = layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _stage(x, channels: int, name: str):
    """Down-sample by 2, then one residual block of two 3x3 convolutions."""
    x = _conv(x, channels, f"{name}_down", stride=2)
    y = _conv(x, channels, f"{name}_a")
    y = _conv(y, channels, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def _features(inputs, width: float):
    """Backbone shared by the whole-image model and the patch model: (S/16 map, S/32 map, pooled)."""
    channels = [max(8, int(round(c * width))) for c in BASE_CHANNELS]
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = _conv(x, channels[0], "stem", stride=2)
    for index, c in enumerate(channels[1:4], 1):
        x = _stage(x, c, f"stage{index}")
    f16 = x
    f32 = _stage(f16, channels[4], "stage4")
    pooled = layers.Concatenate(name="pooled")(
        [
            layers.GlobalAveragePooling2D(name="avg32")(f32),
            layers.GlobalMaxPooling2D(name="max32")(f32),
            layers.GlobalMaxPooling2D(name="max16")(f16),
        ]
    )
    return f16, f32, pooled


def build(size: int, width: float = 1.0, batch_size: int | None = 1, dropout: float = 0.3) -> keras.Model:
    """The whole-image model with the four outputs the device reads."""
    if size % 32:
        raise ValueError(f"input size must be a multiple of 32, got {size}")
    inputs = keras.Input(shape=(size, size, 1), batch_size=batch_size, name="scan")
    f16, _, pooled = _features(inputs, width)
    h = _conv(f16, f16.shape[-1], "heat")
    grid = size // HEATMAP_STRIDE
    heat_logit = layers.Conv2D(1, 1, name="heat_cells")(h)
    heat = layers.Activation("sigmoid", name="heat_sigmoid")(heat_logit)
    heatmap = layers.Reshape((grid, grid), name="heatmap")(heat)
    # the most lesion-like cell is evidence for every head (multiple-instance reading)
    heat_max = layers.GlobalMaxPooling2D(name="heat_max")(heat_logit)
    pooled = layers.Concatenate(name="pooled_heat")([pooled, heat_max])
    pooled = layers.BatchNormalization(name="pooled_bn")(pooled)
    pooled = layers.Dropout(dropout, name="dropout")(pooled)
    classes = layers.Dense(len(LABELS), activation="softmax", name="classes")(pooled)
    # P(abnormal) reads only the most lesion-like cell: the image is abnormal where a lesion is
    abnormal = layers.Dense(1, activation="sigmoid", name="abnormal")(heat_max)
    malignant = layers.Dense(1, activation="sigmoid", name="malignant")(pooled)
    return keras.Model(inputs, [classes, abnormal, malignant, heatmap], name="mias_edge")


def copy_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy weights layer by layer where names and shapes agree; returns how many layers moved."""
    by_name = {layer.name: layer for layer in source.layers}
    moved = 0
    for layer in target.layers:
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            moved += 1
    return moved


def export(trained: keras.Model, size: int, width: float) -> keras.Model:
    """A copy of `trained` with the fixed batch size of 1 the device and the Edge TPU need."""
    model = build(size, width, batch_size=1)
    copy_weights(trained, model)
    return model
