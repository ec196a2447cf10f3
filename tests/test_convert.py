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
