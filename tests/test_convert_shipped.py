"""The default model shipped in `edge/models/` is the one its manifest and its committed fidelity report describe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from convert.edgetpu import check_readiness
from edge import LABELS
from edge.inference.heads import Heads, output_names
from edge.inference.manifest import expected_outputs, load_manifest, read_verified_model
from edge.runtime import make_interpreter

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "edge" / "models"
REPORT = REPO / "reports" / "fidelity" / "fidelity.json"


def test_shipped_model_matches_manifest_and_report():
    manifest = load_manifest(MODELS / "model.json")
    read_verified_model(manifest, MODELS / manifest.model_file)
    report = json.loads(REPORT.read_text())
    assert report["context"]["sha256"] == manifest.sha256, "reports/fidelity is not about the shipped model"
    assert report["fidelity"]["passed"] and report["fidelity"]["scans"] == 258
    thresholds = report["fidelity"]["thresholds"]
    assert report["fidelity"]["top1_agreement"] >= thresholds["min_agreement"]
    assert report["fidelity"]["auc_drop"] <= thresholds["max_auc_drop"]
    assert (thresholds["min_agreement"], thresholds["max_auc_drop"]) == (0.97, 0.02), "the shipped model passes the default gate"
    assert report["context"]["kernels"]["xnnpack_vs_float"]["passed"]
    assert manifest.labels == LABELS and set(manifest.outputs) == set(expected_outputs(manifest.heads))
    assert manifest.heads is not None, "the shipped model runs its heads in float beside the quantized trunk"
    assert manifest.heads == json.loads((REPO / "models" / "training.json").read_text())["heads"]
    assert 0 < manifest.triage_threshold < 1 and manifest.target_sensitivity == 0.9
    info = manifest.info
    for key in ("data", "metrics", "quantization", "versions", "fidelity", "edgetpu_readiness", "source"):
        assert info.get(key), key
    assert info["versions"]["converter"].startswith("tensorflow") and info["versions"]["runtime"]
    assert info["fidelity"]["top1_agreement"] == report["fidelity"]["top1_agreement"]


def test_shipped_model_is_16x8_static_and_fits_its_manifest():
    """int8 weights, int16 activations (TFLite's 16x8 mode): int16 input taking grey levels 0..255 whole."""
    manifest = load_manifest(MODELS / "model.json")
    content = read_verified_model(manifest, MODELS / manifest.model_file)
    interpreter = make_interpreter(content)
    (inp,) = interpreter.get_input_details()
    size = manifest.input_size
    assert list(inp["shape_signature"]) == [1, size, size, 1] and inp["dtype"] == np.int16
    scale, zero_point = inp["quantization"]
    assert zero_point == 0 and 255 / 32767 * 0.99 <= scale <= 255 / 32767 * 1.01  # each grey level its own input value
    outputs = interpreter.get_output_details()
    heads = Heads.from_json(manifest.heads, len(LABELS))
    grids = [size // 16, size // 32]  # the trunk's stride 16 at scales 1 and 2
    for name, grid in zip(output_names(2), grids):
        assert list(outputs[manifest.outputs[name]]["shape"]) == [1, grid, grid, heads.channels], name
        assert outputs[manifest.outputs[name]]["dtype"] == np.int16
    readiness = check_readiness(content)
    assert readiness.to_dict()["problems"] == manifest.info["edgetpu_readiness"]["problems"]
    assert readiness.input_types == ("INT16",) and not readiness.ready  # an Edge TPU needs edge-convert --activations int8
    assert manifest.info["quantization"]["activations"].startswith("int16")
    assert len(content) < 2 * 1024 * 1024  # the board budget from issue 3
