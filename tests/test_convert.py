"""The int8 converter end to end on a tiny contract-shaped model, and the manifest it writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge import LABELS
from edge.errors import EdgeError
from edge.inference.manifest import OUTPUT_NAMES, load_manifest, manifest_path_for, read_verified_model, save_manifest
from edge.runtime import make_interpreter


def test_tiny_model_converts_to_full_int8_with_uint8_io(tiny_model_dir):
    manifest = load_manifest(tiny_model_dir / "model.json")
    content = read_verified_model(manifest, tiny_model_dir / manifest.model_file)
    interpreter = make_interpreter(content)
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape"]) == [1, 64, 64, 1] and list(inp["shape_signature"]) == [1, 64, 64, 1]
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)
    outs = interpreter.get_output_details()
    assert all(d["dtype"] == np.uint8 for d in outs)
    assert manifest.input_size == 64 and manifest.input_dtype == "uint8" and manifest.labels == LABELS
    assert list(outs[manifest.outputs["classes"]]["shape"]) == [1, 7]
    assert list(outs[manifest.outputs["heatmap"]]["shape"]) == [1, 16, 16]
    for name in ("abnormal", "malignant"):
        assert list(outs[manifest.outputs[name]]["shape"]) == [1, 1]
    info = manifest.info
    assert info["versions"]["converter"].startswith("tensorflow")
    assert info["versions"]["runtime"].startswith("ai-edge-litert")
    assert info["quantization"]["input"]["scale"] == 1.0


def test_manifest_round_trips(tiny_model_dir, tmp_path):
    manifest = load_manifest(tiny_model_dir / "model.json")
    copy = tmp_path / "copy.json"
    save_manifest(manifest, copy)
    assert load_manifest(copy) == manifest
    assert json.loads(copy.read_text()) == json.loads((tiny_model_dir / "model.json").read_text())
    assert set(manifest.outputs) == set(OUTPUT_NAMES)


def test_model_with_wrong_sha256_is_refused(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    model = tmp_path / "m" / "model.tflite"
    manifest = load_manifest(manifest_path_for(model))
    assert read_verified_model(manifest, model)  # intact: accepted
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(EdgeError, match="does not match its manifest"):
        read_verified_model(manifest, model)


def test_output_positions_follow_the_float_model(tiny_model_dir, records):
    """Each manifest position holds the output of that name: checked against the float model itself,
    through the board's Classifier (which reads the outputs at the manifest's positions).

    Each output must be close to the float output of its name and fit it better than the float
    output of any other name of the same shape (abnormal and malignant are both (1, 1))."""
    from convert.quantize import prepared_images, run_keras
    from edge.inference.classifier import Classifier, Quantization
    from tiny_support import tiny_model

    model = tiny_model()  # same seed as the fixture: same weights
    classifier = Classifier(tiny_model_dir / "model.tflite")
    images = prepared_images(records[20:26], 64)
    expected = [dict(zip(OUTPUT_NAMES, run_keras(model, image))) for image in images]
    details = classifier.interpreter.get_output_details()
    quant = [Quantization.of(details[classifier.manifest.outputs[name]]) for name in OUTPUT_NAMES]
    got = [dict(zip(OUTPUT_NAMES, (q.dequantize(v) for q, v in zip(quant, classifier.run(image))))) for image in images]

    def error(name, other):
        if got[0][name].shape != expected[0][other].shape:
            return np.inf
        return float(np.mean([np.abs(g[name] - e[other]).mean() for g, e in zip(got, expected)]))

    for name in OUTPUT_NAMES:
        assert error(name, name) < 0.02, name
        assert error(name, name) < min(error(name, other) for other in OUTPUT_NAMES if other != name), name


def test_swapped_signature_is_caught(records):
    """If the signature pointed abnormal at malignant's tensor, the float comparison must refuse it."""
    from convert import quantize as q
    from train import quantizer
    from tiny_support import tiny_model

    model = tiny_model(seed=5)
    images = q.prepared_images(records[:6], 64)
    content = quantizer.quantize(model, images)
    good = q.output_positions(model, content, images[:4])
    original = q._positions_from_signature

    def swapped(*args):
        positions = dict(original(*args))
        positions["abnormal"], positions["malignant"] = positions["malignant"], positions["abnormal"]
        return positions

    try:
        q._positions_from_signature = swapped
        with pytest.raises(EdgeError, match="cannot tell outputs abnormal and malignant apart"):
            q.output_positions(model, content, images[:4])
    finally:
        q._positions_from_signature = original
    assert good["abnormal"] != good["malignant"]


def test_positions_without_a_signature_come_from_the_float_model(records, monkeypatch):
    """With no usable signature the outputs are matched by fitting the float model: same answer."""
    from convert import quantize as q
    from train import quantizer
    from tiny_support import tiny_model

    model = tiny_model(seed=7)
    images = q.prepared_images(records[:6], 64)
    content = quantizer.quantize(model, images)
    from_signature = q.output_positions(model, content, images[:4])
    monkeypatch.setattr(q, "_positions_from_signature", lambda *args: None)
    assert q.output_positions(model, content, images[:4]) == from_signature


def test_the_gate_runs_the_board_classifier_on_both_sides(tiny_model_dir, records):
    """int8: exactly what Classifier.classify answers; float: the Keras outputs through the same
    postprocess, unquantized (so within an output step of postprocess on them quantized)."""
    from convert import board
    from convert.quantize import run_keras
    from edge.inference.classifier import Classifier
    from edge.preprocess import prepare
    from tiny_support import tiny_model

    manifest = load_manifest(tiny_model_dir / "model.json")
    content = read_verified_model(manifest, tiny_model_dir / "model.tflite")
    classifier = Classifier.from_bytes(content, manifest)
    scan = records[3].pixels()
    prepared = prepare(scan, manifest.input_size)
    assert board.int8_result(classifier, prepared).to_record() == Classifier(tiny_model_dir / "model.tflite").classify(scan).to_record()

    floats = board.float_result(classifier, tiny_model(), prepared)  # the fixture's weights
    details = classifier.interpreter.get_output_details()
    quantized = []
    for name, values in zip(OUTPUT_NAMES, run_keras(tiny_model(), prepared.image)):
        detail = details[manifest.outputs[name]]
        scale, zero_point = detail["quantization"]
        quantized.append(np.clip(np.rint(values / scale + zero_point), 0, 255).astype(detail["dtype"]))
    on_the_grid = classifier.postprocess(tuple(quantized), prepared)
    assert floats.label in manifest.labels and floats.triage in ("refer", "routine")
    for name in manifest.labels:
        assert floats.probabilities[name] == pytest.approx(on_the_grid.probabilities[name], abs=0.01)
    assert floats.abnormal == pytest.approx(on_the_grid.abnormal, abs=0.01)
    assert floats.malignant == pytest.approx(on_the_grid.malignant, abs=0.01)
    assert np.abs(floats.heatmap - on_the_grid.heatmap).max() <= 0.01
    assert floats.probabilities != on_the_grid.probabilities  # the float side really is unquantized
    with pytest.raises(EdgeError, match="sha256"):
        Classifier.from_bytes(content + b"x", manifest)


def _tiny_trunk():
    """Convolutions and ReLU6 down to a feature grid, as the shipped trunk (its outputs have no sigmoid,
    whose int16 table would set its own floor)."""
    import keras

    from train.distil import on_int8_grid

    keras.utils.set_random_seed(0)
    layers = keras.layers
    scan = keras.Input(shape=(64, 64, 1), batch_size=1, name="scan")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(scan)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = layers.Conv2D(16, 1, activation="relu6")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    model = keras.Model(scan, layers.Conv2D(16, 1, activation="relu6", name="cells0")(x))
    for layer in model.layers:  # kernels on the converter's int8 grid, as the shipped trunk's: only activations round
        if hasattr(layer, "kernel"):
            depthwise = isinstance(layer, layers.DepthwiseConv2D)
            layer.kernel.assign(on_int8_grid(layer.kernel.numpy(), depthwise))
    return model


def test_int16_activations_compute_what_the_float_model_computes(records):
    """TFLite's 16x8 mode (int8 weights, int16 activations, int16 input): on real scans a trunk's
    features stay far closer to the float network's than with int8 activations, and the input takes
    every grey level of the prepared pixels through the board's table."""
    from convert.quantize import interpreter_outputs, prepared_images, run_keras
    from train.quantizer import quantize

    model = _tiny_trunk()
    images = prepared_images(records[:8], 64)
    errors = {}
    for activations in ("int8", "int16"):
        interpreter = make_interpreter(quantize(model, images, activations))
        assert interpreter.get_input_details()[0]["dtype"] == (np.int16 if activations == "int16" else np.uint8)
        errors[activations] = max(float(np.abs(interpreter_outputs(interpreter, image)[0] - run_keras(model, image)[0]).max())
                                  for image in images)
    assert errors["int16"] < errors["int8"] / 20, errors  # 1.6e-6 against 2.2e-4 here


def test_unknown_activations_are_refused(records):
    from convert.quantize import prepared_images
    from train.quantizer import quantize
    from tiny_support import tiny_model

    with pytest.raises(EdgeError, match="activations must be one of int16, int8"):
        quantize(tiny_model(), prepared_images(records[:2], 64), "int4")
