"""Quantization-aware distillation: the trunk's weights tuned so that its int8 version computes what the float ImageNet trunk computes.

Why: post-training int8 moves the frozen trunk's cell features by about 44% of their spread
per channel on mammograms. Every activation is rounded to 1/255 of ReLU6's range and the
roundings add up over 11 blocks, while the signal of a lesion is a small change of those
features. Here the trunk (batch norms folded into the convolutions) is trained with its
weights rounded as the converter rounds them (per channel, symmetric int8) and its
activations rounded to the int8 grid (straight-through gradients). The target is the float
ImageNet trunk's own features on the same scans, and the float trunk is held near them too,
so float and int8 both keep what ImageNet learnt. Only the scans' pixels are used, never
their labels, like the converter's calibration; the folds see no labels through it.

Measured (`python research/distil/distil_probe.py ../shared/mias`): on the scans of a fold left out of
the distillation, the int8 trunk's features move by 17% of their spread instead of 46% at 512
pixels, 14% instead of 38% at 256.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train import trunk

EPOCHS = 4
"""Passes over every scan at every scale; the held-out drift stops falling after about two."""
LEARNING_RATE = 1e-4
"""Adam's, decayed to 0 along a cosine: the last epochs settle rather than wander."""
BATCH = 4
SHIPPED = Path(__file__).with_name("weights")
"""Where distilled weights that ship with the repository lie, named by the same key as the cache. The
distillation's float kernels differ between CPUs (the same command gave out-of-fold AUC abnormal
0.762 on one x86 machine and 0.748 on another), so the development split's distilled trunk ships
and `edge-train` reproduces the shipped model's figures on any machine; other scans are distilled anew."""

Tuned = dict[str, tuple[np.ndarray, np.ndarray]]
"""Per convolution of the trunk (Keras layer name): its kernel with the batch norm folded in, and its bias."""


@dataclass
class _Conv:
    name: str
    depthwise: bool
    strides: tuple[int, int]
    padding: str
    pad: tuple | None  # the ZeroPadding2D before it, if any
    kernel: object  # tf.Variable
    bias: object


def folded(size: int, tuned: Tuned | None = None) -> list[_Conv]:
    """The trunk's convolutions up to its tap, batch norms folded in, as trainable variables (`tuned`: those weights instead)."""
    import keras
    import tensorflow as tf
    from keras import layers

    inputs, cells = trunk.build(size)
    model = keras.Model(inputs, cells)
    convs, pad = [], None
    for layer in model.layers:
        if isinstance(layer, layers.ZeroPadding2D):
            pad = layer.padding
        elif isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            bn = model.get_layer(layer.name + "_bn")
            gamma, beta, mean, var = bn.get_weights()
            factor = gamma / np.sqrt(var + bn.epsilon)
            depthwise = isinstance(layer, layers.DepthwiseConv2D)
            kernel = layer.get_weights()[0] * (factor[None, None, :, None] if depthwise else factor)
            bias = beta - mean * factor
            if tuned is not None:
                kernel, bias = tuned[layer.name]
            convs.append(_Conv(layer.name, depthwise, tuple(layer.strides), layer.padding.upper(), pad,
                               tf.Variable(np.asarray(kernel, np.float32)), tf.Variable(np.asarray(bias, np.float32))))
            pad = None
            if layer.name + "_relu" == trunk.TAP:
                return convs
    raise RuntimeError(f"the trunk has no layer {trunk.TAP}")


WEIGHT_LEVELS = 127
"""The converter's int8 weights: per output channel, symmetric, 127 levels a side of zero."""


def _channel_axes(depthwise: bool) -> tuple[int, int, int]:
    """The axes a kernel's output channel spans, as Keras lays out (depthwise) convolution kernels."""
    return (0, 1, 3) if depthwise else (0, 1, 2)


def on_int8_grid(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """`kernel` rounded as the converter rounds it (`WEIGHT_LEVELS`), so that converting it loses nothing.

    Why: the quantized pass of the distillation runs with these weights, and so does the int8
    model. Left unrounded, the float network differs from the int8 one in its weights as well as
    in its rounded activations, which moves the float reference away from the board for nothing."""
    peak = np.abs(kernel).max(axis=_channel_axes(depthwise), keepdims=True)
    step = np.where(peak > 0, peak / WEIGHT_LEVELS, 1.0)
    return (np.round(kernel / step) * step).astype(np.float32)


def straight_through(value, rounded):
    """`rounded` forward, the gradient of `value` backward (how a rounding is trained through)."""
    import tensorflow as tf

    return value + tf.stop_gradient(rounded - value)


def on_grid(value, low: float, high: float):
    """`value` on the grid of an int8 tensor of range [low, high], as the converter calibrates it."""
    import tensorflow as tf

    step = (high - low) / 255.0
    return straight_through(value, tf.clip_by_value(tf.round((value - low) / step), 0, 255) * step + low)


def _forward(convs: list[_Conv], x, quantized: bool):
    """The trunk on grey levels x (n, s, s, 1); `quantized`: weights and activations on the int8 grid."""
    x = x / 127.5 - 1.0
    if quantized:
        x = on_grid(x, -1.0, 1.0)
    return blocks(convs, x, quantized)


def blocks(convs: list[_Conv], x, quantized: bool):
    """The convolutions `convs` (each with its ReLU6) on x; `quantized`: weights and outputs on the int8 grid."""
    import tensorflow as tf

    for conv in convs:
        if conv.pad is not None:
            (top, bottom), (left, right) = conv.pad
            x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
        kernel = conv.kernel
        if quantized:
            peak = tf.stop_gradient(tf.reduce_max(tf.abs(kernel), axis=_channel_axes(conv.depthwise), keepdims=True))
            step = tf.where(peak > 0, peak / WEIGHT_LEVELS, 1.0)
            kernel = straight_through(kernel, tf.round(kernel / step) * step)
        if conv.depthwise:
            x = tf.nn.depthwise_conv2d(x, kernel, (1, *conv.strides, 1), conv.padding)
        else:
            x = tf.nn.conv2d(x, kernel, conv.strides, conv.padding)
        x = tf.clip_by_value(x + conv.bias, 0.0, 6.0)  # ReLU6
        if quantized:
            x = on_grid(x, 0.0, 6.0)
    return x


def distil(images: list[np.ndarray], teacher: list[np.ndarray], epochs: int = EPOCHS, seed: int = 0,
           progress=None) -> Tuned:
    """Tuned weights from scans at each scale (`images[k]`: (n, s, s) grey levels) and the float
    ImageNet trunk's features of them (`teacher[k]`); the kernels on the converter's int8 grid."""
    import keras
    import tensorflow as tf

    convs = folded(images[0].shape[1])
    variables = [v for conv in convs for v in (conv.kernel, conv.bias)]
    steps = epochs * sum(-(-len(x) // BATCH) for x in images)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, max(steps, 1)))
    spread = [tf.constant(1.0 / (t.std((0, 1, 2)) + 1e-3), tf.float32) for t in teacher]

    @tf.function(reduce_retracing=True)
    def step(x, target, inverse_spread):
        with tf.GradientTape() as tape:
            loss = sum(tf.reduce_mean(tf.square((_forward(convs, x, q) - target) * inverse_spread)) for q in (True, False))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    for _ in progress(range(epochs), desc="distil for int8") if progress else range(epochs):
        for x, target, inverse in zip(images, teacher, spread):
            order = rng.permutation(len(x))
            for start in range(0, len(x), BATCH):
                rows = order[start:start + BATCH]
                step(tf.constant(x[rows, :, :, None], tf.float32), tf.constant(target[rows]), inverse)
    return {conv.name: (on_int8_grid(conv.kernel.numpy(), conv.depthwise), conv.bias.numpy()) for conv in convs}


def drift(features: np.ndarray, reference: np.ndarray) -> float:
    """Median over channels of std(features - reference) / std(reference): how far int8 features move."""
    return float(np.median((features - reference).std((0, 1, 2)) / (reference.std((0, 1, 2)) + 1e-6)))


def key(images: list[np.ndarray], epochs: int, seed: int) -> str:
    """What distilled weights depend on: the pixels at each scale, this file, the trunk and the settings."""
    h = hashlib.sha256()
    for x in images:
        h.update(trunk.cache_key(x).encode())
    h.update(Path(__file__).read_bytes())
    h.update(f"{epochs}-{seed}".encode())
    return h.hexdigest()[:20]


def cached(images: list[np.ndarray], teacher: list[np.ndarray], epochs: int, seed: int, cache: Path | None,
           progress=None) -> Tuned:
    """`distil`, found by its `key` among the shipped weights (`SHIPPED`) or in `cache`, else computed and cached."""
    name = f"distilled-{key(images, epochs, seed)}.npz"
    for path in (SHIPPED / name, Path(cache) / name if cache is not None else None):
        if path is not None and path.is_file():
            return load(path)
    tuned = distil(images, teacher, epochs, seed, progress)
    if cache is not None:
        save(tuned, Path(cache) / name)
    return tuned


def load(path: Path) -> Tuned:
    """Weights as `save` wrote them."""
    with np.load(path) as stored:
        layers = sorted({entry.rsplit("/", 1)[0] for entry in stored.files})
        return {layer: (stored[f"{layer}/kernel"], stored[f"{layer}/bias"]) for layer in layers}


def save(tuned: Tuned, path: Path) -> None:
    """Write `tuned` as `cached` reads it (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{name}/{part}": array for name, (k, b) in tuned.items() for part, array in (("kernel", k), ("bias", b))})
    os.replace(tmp, path)
