"""train.distil on real scans: the network carries the distilled weights exactly, and the int8 trunk moves less."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def scans(records):
    """16 real scans prepared at 128 px, read at 128 and 64 px, with the float ImageNet trunk's features."""
    from train import reader, trunk
    from train.data import load_dataset

    dataset = load_dataset(records[:16], 128)
    images = [reader.scale_images(dataset.images, f) for f in (1, 2)]
    return dataset, images, [trunk.features(x) for x in images]


@pytest.fixture(scope="module")
def tuned(scans):
    from train import distil

    _, images, teacher = scans
    return distil.distil(images, teacher, epochs=6)


def test_the_keras_trunk_computes_the_distilled_float_trunk(scans, tuned):
    """trunk.build(tuned=...) puts the folded weights in place of conv + batch norm: same float features."""
    import tensorflow as tf

    from train import distil, trunk

    _, images, _ = scans
    convs = distil.folded(128)
    for conv in convs:
        kernel, bias = tuned[conv.name]
        conv.kernel.assign(kernel)
        conv.bias.assign(bias)
    expected = distil._forward(convs, tf.constant(images[0][:4, :, :, None], tf.float32), quantized=False).numpy()
    assert np.abs(trunk.features(images[0][:4], tuned=tuned) - expected).max() < 1e-4
    assert np.abs(trunk.features(images[0][:4]) - expected).max() > 1e-3  # the weights did change


def test_distillation_brings_the_int8_trunk_closer_to_the_float_imagenet_trunk(scans, tuned, tmp_path):
    """The board's int8 features (converter + TFLite interpreter) of the distilled trunk drift less, and are cached by weights."""
    from train import distil, trunk

    dataset, _, teacher = scans
    before = trunk.quantized_features(dataset.images, (1, 2), tmp_path, activations="int8")
    after = trunk.quantized_features(dataset.images, (1, 2), tmp_path, tuned, "int8")
    assert len(list(tmp_path.glob("int8-*.npy"))) == 4  # one file per scale and weights: no stale reuse
    for b, a, t in zip(before, after, teacher):
        assert distil.drift(a, t) < 0.8 * distil.drift(b, t), (distil.drift(a, t), distil.drift(b, t))


def test_distilled_weights_are_cached_by_their_inputs(scans, tmp_path):
    from train import distil

    _, images, teacher = scans
    first = distil.cached([x[:4] for x in images], [t[:4] for t in teacher], 1, 0, tmp_path)
    assert len(list(tmp_path.glob("distilled-*.npz"))) == 1
    again = distil.cached([x[:4] for x in images], [t[:4] for t in teacher], 1, 0, tmp_path)
    assert all(np.array_equal(first[k][i], again[k][i]) for k in first for i in (0, 1))
    distil.cached([x[4:8] for x in images], [t[4:8] for t in teacher], 1, 0, tmp_path)
    assert len(list(tmp_path.glob("distilled-*.npz"))) == 2  # other scans: other weights


def test_the_development_split_gets_the_shipped_model_s_distilled_trunk(records, monkeypatch):
    """On the whole development split `cached` finds the shipped weights (train/weights) without
    distilling, and they are the trunk inside models/final.keras: `edge-train` then reproduces the
    shipped figures on any CPU. A change to train/distil.py or the trunk changes the key: distil
    anew and ship the new file, or the shipped model can no longer be rebuilt from this code."""
    import keras

    from train import distil, reader
    from train.data import load_dataset

    def refuse(*_args, **_kwargs):
        raise AssertionError(f"no shipped distilled trunk in {distil.SHIPPED} for this code (see the docstring)")

    monkeypatch.setattr(distil, "distil", refuse)
    dataset = load_dataset(records, 512)
    tuned = distil.cached([reader.scale_images(dataset.images, f) for f in (1, 2)], [], distil.EPOCHS, 0, None)
    shipped = Path(__file__).resolve().parents[1] / "models" / "final.keras"
    trunk = keras.models.load_model(shipped, compile=False).get_layer("trunk1")
    for name, (kernel, bias) in tuned.items():
        assert np.array_equal(trunk.get_layer(name).get_weights()[0], kernel), name
        assert np.array_equal(trunk.get_layer(name + "_bn").get_weights()[1], bias), name


def _converted_kernel_error(tuned, images) -> float:
    """Largest difference, as a share of its channel's peak, between a kernel of `tuned` and the
    int8 kernel the converter makes of it (dequantized, per channel), over every convolution."""
    import keras

    from train.quantizer import quantize
    from edge.runtime import make_interpreter
    from train import trunk

    inputs, cells = trunk.build(images.shape[1], batch_size=1, tuned=tuned)
    interpreter = make_interpreter(quantize(keras.Model(inputs, cells), images), kernels="builtin")
    stored = []
    for detail in interpreter.get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8 and len(detail["shape"]) == 4 and len(scales) > 1:
            axis = detail["quantization_parameters"]["quantized_dimension"]
            shape = [1] * 4
            shape[axis] = -1
            stored.append(interpreter.get_tensor(detail["index"]).astype(np.float32) * scales.reshape(shape))
    worst = 0.0
    for name, (kernel, _) in tuned.items():
        # TFLite's layouts: (out, h, w, in) for a convolution, (1, h, w, channels) for a depthwise one
        expected = kernel.transpose(3, 0, 1, 2)
        candidates = [np.abs(s - expected).max() for s in stored if s.shape == expected.shape]
        assert candidates, f"{name}: no int8 kernel of shape {expected.shape}"
        worst = max(worst, min(candidates) / np.abs(kernel).max())
    return worst


def test_distilled_kernels_are_what_the_int8_model_holds(scans, tuned):
    """The distilled kernels are on the converter's int8 grid: converting them changes no weight,
    so the float network differs from the int8 one only by the rounding of its activations. The
    ImageNet kernels (folded, off the grid) are moved by up to half a step: the check can fail."""
    from train import distil

    _, images, _ = scans
    assert _converted_kernel_error(tuned, images[0][:4]) < 1e-5
    imagenet = {c.name: (c.kernel.numpy(), c.bias.numpy()) for c in distil.folded(128)}
    assert _converted_kernel_error(imagenet, images[0][:4]) > 1e-3
