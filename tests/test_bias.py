"""research/int8/bias.py on the real trunk and real scans: only biases move, and the int8 features come nearer the float ones."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trunk_and_scans(records):
    """The ImageNet trunk at 128 px (its two copies, as the shipped network has them at two scales,
    share constants in the int8 file), 8 scans to correct on and 8 others to judge on."""
    import keras
    from keras import layers

    from train import trunk
    from train.data import load_dataset

    inputs = keras.Input(shape=(128, 128, 1), batch_size=1, name="scan")
    outputs = []
    for f in (1, 2):
        x = inputs if f == 1 else layers.AveragePooling2D(f, name=f"pool{f}")(inputs)
        scale_in, cells = trunk.build(128 // f, batch_size=1)
        outputs.append(keras.Model(scale_in, cells, name=f"trunk{f}")(x))
    images = load_dataset(records[:16], 128).images
    return keras.Model(inputs, outputs), images[:8], images[8:]


def _mean_error(content: bytes, model, images: np.ndarray) -> float:
    """Median over the outputs' channels of |mean int8 - mean float| over the scans, in units of the channel's spread."""
    from edge.inference.classifier import Quantization
    from edge.runtime import make_interpreter

    interpreter = make_interpreter(content)
    index = interpreter.get_input_details()[0]["index"]
    details = sorted(interpreter.get_output_details(), key=lambda d: -int(np.prod(d["shape"])))
    got = [[] for _ in details]
    for image in images:
        interpreter.set_tensor(index, image[None, :, :, None])
        interpreter.invoke()
        for k, d in enumerate(details):
            got[k].append(Quantization.of(d).dequantize(interpreter.get_tensor(d["index"]))[0])
    expected = model.predict(images[..., None].astype(np.float32), batch_size=1, verbose=0)
    errors = [np.abs((np.stack(g) - e).mean((0, 1, 2))) / (e.std((0, 1, 2)) + 1e-6) for g, e in zip(got, expected)]
    return float(np.median(np.concatenate(errors)))


def test_bias_correction_moves_only_biases_and_brings_int8_nearer_float(trunk_and_scans):
    from research.int8.bias import correct_biases
    from convert.quantize import float_tflite
    from train.quantizer import quantize
    from edge.runtime import make_interpreter

    model, calibration, others = trunk_and_scans
    plain = quantize(model, calibration)
    corrected = correct_biases(plain, float_tflite(model), calibration)

    def constants(content):
        interpreter = make_interpreter(content)
        return {d["name"]: (d["dtype"], interpreter.get_tensor(d["index"])) for d in interpreter.get_tensor_details()
                if d["dtype"] in (np.int8, np.int32) and len(d["shape"]) in (1, 4) and d["name"].startswith("arith")}

    before, after = constants(plain), constants(corrected)
    moved = [name for name in before if not np.array_equal(before[name][1], after[name][1])]
    assert moved and all(before[name][0] == np.int32 for name in moved)  # biases only, never an int8 weight
    assert _mean_error(corrected, model, others) < 0.8 * _mean_error(plain, model, others)


def test_bias_correction_refuses_a_float_model_of_another_network(trunk_and_scans):
    import keras

    from research.int8.bias import correct_biases
    from convert.quantize import float_tflite
    from train.quantizer import quantize
    from edge.errors import EdgeError
    from train import trunk

    model, calibration, _ = trunk_and_scans
    inputs, cells = trunk.build(128, batch_size=1)
    with pytest.raises(EdgeError, match="bias correction"):
        correct_biases(quantize(model, calibration), float_tflite(keras.Model(inputs, cells)), calibration)
