"""The offline Edge TPU readiness check: it passes the int8 contract model and flags what the compiler refuses."""

from __future__ import annotations

import numpy as np
import pytest

from convert.edgetpu import check_readiness
from train.quantizer import quantize
from tiny_support import tiny_model


@pytest.fixture(scope="module")
def calibration(records):
    from convert.quantize import prepared_images

    return prepared_images(records[:4], 64)


def test_int8_contract_model_is_ready(tiny_model_dir):
    readiness = check_readiness((tiny_model_dir / "model.tflite").read_bytes())
    assert readiness.ready, readiness.summary()
    assert readiness.cpu_ops == []
    assert readiness.input_types == ("UINT8",) and set(readiness.output_types) == {"UINT8"}
    assert 0 < readiness.parameter_bytes < 8 * 1024 * 1024


def test_float_model_is_flagged():
    import tensorflow as tf

    content = tf.lite.TFLiteConverter.from_keras_model(tiny_model()).convert()  # no quantization
    readiness = check_readiness(content)
    assert not readiness.ready
    assert any("CONV_2D" in p and "FLOAT32" in p for p in readiness.problems)
    assert any("inputs are FLOAT32" in p for p in readiness.problems)
    assert readiness.cpu_ops and readiness.cpu_ops[0].startswith("0:")


def test_one_float_op_in_an_int8_model_is_flagged(calibration):
    """An int8 model with float fallback allowed: only the op without an int8 kernel stays float."""
    import keras
    import tensorflow as tf

    scan = keras.Input(shape=(64, 64, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(scan))
    x = keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(x)  # CUMSUM: no int8 kernel
    model = keras.Model(scan, keras.layers.GlobalAveragePooling2D()(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None, :, :, None].astype(np.float32)] for image in calibration)
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    readiness = check_readiness(converter.convert())
    assert not readiness.ready
    assert any("CUMSUM" in p for p in readiness.problems), readiness.problems
    assert any(op.endswith("CUMSUM") for op in readiness.cpu_ops)
    assert not any("CONV_2D" in p for p in readiness.problems)  # the int8 conv is fine


def test_dynamic_batch_is_flagged(calibration):
    readiness = check_readiness(quantize(tiny_model(batch_size=None), calibration))
    assert not readiness.ready
    assert any("dynamic shape" in p and "-1" in p for p in readiness.problems), readiness.problems


def test_not_a_tflite_file_is_a_clear_error():
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match="not a TFLite model"):
        check_readiness(b"PK\x03\x04 this is a zip file")
