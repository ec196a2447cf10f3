"""The int8 converter end to end on a tiny contract-shaped model, and the manifest it writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge import LABELS
from edge.errors import EdgeError
from edge.manifest import OUTPUT_NAMES, load_manifest, manifest_path_for, read_verified_model, save_manifest
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
    """Each manifest position holds the output of that name: checked against the float model itself.

    The named position must be close to the float output and fit it better than any other
    output of the same shape (abnormal and malignant are both (1, 1))."""
    from convert.quantize import prepared_images, run_keras, run_tflite
    from convert.tiny import tiny_model

    model = tiny_model()  # same seed as the fixture: same weights
    manifest = load_manifest(tiny_model_dir / "model.json")
    interpreter = make_interpreter((tiny_model_dir / "model.tflite").read_bytes())
    images = prepared_images(records[20:26], 64)
    expected = [dict(zip(OUTPUT_NAMES, run_keras(model, image))) for image in images]
    got = [run_tflite(interpreter, image) for image in images]

    def error(name, position):
        if got[0][position].shape != expected[0][name].shape:
            return np.inf
        return float(np.mean([np.abs(g[position] - e[name]).mean() for g, e in zip(got, expected)]))

    for name, position in manifest.outputs.items():
        assert error(name, position) < 0.02, name
        others = [error(name, p) for p in range(4) if p != position]
        assert error(name, position) < min(others), name


def test_swapped_signature_is_caught(records):
    """If the signature pointed abnormal at malignant's tensor, the float comparison must refuse it."""
    from convert import quantize as q
    from convert.tiny import tiny_model

    model = tiny_model(seed=5)
    images = q.prepared_images(records[:6], 64)
    content = q.quantize(model, images)
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
    from convert.tiny import tiny_model

    model = tiny_model(seed=7)
    images = q.prepared_images(records[:6], 64)
    content = q.quantize(model, images)
    from_signature = q.output_positions(model, content, images[:4])
    monkeypatch.setattr(q, "_positions_from_signature", lambda *args: None)
    assert q.output_positions(model, content, images[:4]) == from_signature
