"""The heads beside the quantized trunk (edge.inference.heads): the board computes what was cross-validated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge import LABELS
from edge.errors import EdgeError


@pytest.fixture(scope="module")
def small(records):
    """24 real scans at 64 px, heads fitted on the 16x8 trunk's features of the first 18 (as edge-train fits them)."""
    from train import reader, trunk
    from train.data import load_dataset

    dataset = load_dataset(records[:24], 64)
    features = trunk.quantized_features(dataset.images, (1, 2))
    heads = reader.fit_heads(features, dataset, np.arange(18), reader.Options(context=3))
    return dataset, features, heads


@pytest.fixture(scope="module")
def model_dir(small, tmp_path_factory):
    """The trunk network converted as edge-convert converts it, the heads and a reading stage in its manifest."""
    from convert import quantize
    from train import quantizer, reader

    dataset, features, heads = small
    network = reader.build_network(64, (1, 2))
    content = quantize.embed_heads(quantizer.quantize(network, quantizer.representative_images(dataset.images), "int16"), heads.to_json())
    names = reader.output_names(2)
    ev = reader.evidence(reader.outputs(features, heads))
    reading = reader.fit_reading(ev, reader.partners(dataset), dataset.abnormal.astype(int), np.arange(18))
    manifest = quantize.build_manifest(
        content, outputs=quantize.output_positions(network, content, dataset.images[:4], names),
        triage_threshold=0.5, target_sensitivity=0.9, reading=reading.to_json(), heads=heads.to_json(),
        info={"note": "heads fitted on 18 scans at 64 px: a test model"})
    folder = tmp_path_factory.mktemp("heads_model")
    quantize.write_model_folder(folder, content, manifest)
    return folder


def test_the_network_outputs_the_cell_features_of_each_scale(small):
    from train import reader, trunk
    from train.cv import check_network

    dataset, _, _ = small
    network = reader.build_network(64, (1, 2))
    assert [tuple(o.shape) for o in network.outputs] == [(1, 4, 4, trunk.CHANNELS), (1, 2, 2, trunk.CHANNELS)]
    assert network.output_names == ["cells0", "cells1"]
    floats = [trunk.features(reader.scale_images(dataset.images, f)) for f in (1, 2)]
    assert check_network(network, dataset, floats) < 1e-4


def test_a_network_with_its_heads_inside_splits_into_the_same_function(small):
    """split_model (how edge-train --strategy ships): the trunk network and edge.inference.heads compute what build_model computes."""
    from train import reader

    dataset, features, _ = small
    heads = reader.fit_heads(features, dataset, np.arange(18), reader.Options(context=3, cell_hidden=0))  # the graph's heads are linear
    inside = reader.build_model(64, heads, (1, 2))
    trunks, split = reader.split_model(inside, 64, (1, 2))
    assert split.context == heads.context == 3
    for got, want in zip(split.cell_w + (split.classes_w, split.malignant_w), heads.cell_w + (heads.classes_w, heads.malignant_w)):
        assert np.allclose(got, want, atol=1e-6)
    images = dataset.images[:3, :, :, None].astype(np.float32)
    classes, abnormal, malignant, heatmap = inside.predict(images, batch_size=1, verbose=0)
    out = reader.outputs(trunks.predict(images, batch_size=1, verbose=0), split)
    assert np.allclose(out.classes, classes, atol=1e-5) and np.allclose(out.heatmap, heatmap, atol=1e-5)
    assert np.allclose(out.malignant, malignant[:, 0], atol=1e-5) and np.allclose(out.abnormal, abnormal[:, 0], atol=1e-5)


def test_the_board_computes_the_cross_validated_heads_on_the_quantized_features(small, model_dir):
    """Classifier (builtin kernels, as the desktop runs) == edge.inference.heads on train.trunk.quantized_features, scan by scan."""
    from edge.inference.classifier import Classifier
    from train import reader

    dataset, features, heads = small
    expected = reader.outputs(features, heads)
    classifier = Classifier(model_dir / "model.tflite", kernels="builtin")
    for i in range(len(dataset.images)):
        prepared = classifier.prepare(dataset.records[i].pixels())
        assert np.array_equal(prepared.image, dataset.images[i])
        own = classifier.evidence(classifier.run(prepared.image), prepared)
        assert np.allclose(own.heatmap, expected.heatmap[i], atol=1e-9)
        assert np.allclose(own.classes, expected.classes[i], atol=1e-9)
        assert own.malignant_if_abnormal == pytest.approx(expected.malignant[i], abs=1e-9)


def test_edge_classify_answers_with_the_heads(model_dir, records):
    from classify_support import KEYS, json_lines, run_classify

    result = run_classify(records[4].path, records[5].path, "--model", model_dir / "model.tflite", "--json")
    assert result.returncode == 0, result.stderr
    answers = json_lines(result.stdout)
    assert len(answers) == 2 and all(KEYS <= set(a) for a in answers)
    for answer in answers:
        assert sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-3)
        assert answer["malignant"] <= answer["abnormal"] and answer["contralateral"]


def test_heads_round_trip_and_refuse_what_does_not_fit(small):
    from edge.inference.heads import Heads, _matrix, outputs

    _, features, heads = small
    assert heads.cell_hidden, "the shipped cell head has a hidden layer"
    raw = heads.to_json()
    again = Heads.from_json(json.loads(json.dumps(raw)), len(LABELS))
    assert again.to_json() == raw  # the written form is a fixed point: the model file's heads are the board's
    assert np.allclose(outputs(features, again).heatmap, outputs(features, heads).heatmap, rtol=0, atol=1e-6)  # float32 hidden weights
    assert np.array_equal(outputs(features, again).heatmap, outputs(features, Heads.from_json(again.to_json(), len(LABELS))).heatmap)
    hidden = raw["cell_hidden"][0]["weights"]
    with_lists = {**raw, "cell_hidden": [{**h, "weights": _matrix(h["weights"]).tolist()} for h in raw["cell_hidden"]]}
    assert Heads.from_json(with_lists, len(LABELS)).to_json() == raw  # manifests written before the packed form still load
    for broken, words in (
        ({**raw, "cell": raw["cell"][:1]}, "hidden layers"),  # one scale's cell head missing
        ({**{k: v for k, v in raw.items() if k != "cell_hidden"}, "cell": raw["cell"][:1]}, "classes head"),
        ({**raw, "context": 0}, "classes head"),  # the cell weights then read 256 channels
        ({**raw, "cell": [raw["cell"][0], {**raw["cell"][1], "weights": raw["cell"][1]["weights"][:8]}]}, "one weight vector"),
        ({**raw, "cell": [{**c, "weights": c["weights"][:8]} for c in raw["cell"]]}, "hidden layers"),
        ({**raw, "focus": 2.0}, "malignancy head"),
        ({**raw, "context": 4}, "odd"),
        ({**raw, "cell_hidden": raw["cell_hidden"][:1]}, "hidden layers"),
        ({**raw, "cell_hidden": [{**h, "bias": h["bias"][:3]} for h in raw["cell_hidden"]]}, "hidden layers"),
        ({**raw, "cell_hidden": [{**h, "weights": {**hidden, "shape": [7, 9]}} for h in raw["cell_hidden"]]}, "packed weights"),
        ({**raw, "cell_hidden": [{**h, "weights": {**hidden, "float32": "not base64!"}} for h in raw["cell_hidden"]]}, "base64|Invalid"),
    ):
        with pytest.raises(ValueError, match=words):
            Heads.from_json(broken, len(LABELS))


def test_the_model_file_holds_its_heads_and_refuses_edited_ones(model_dir, tmp_path):
    """The heads ride inside the .tflite (its sha256 covers them): a manifest with other heads is refused."""
    import shutil

    from convert import quantize
    from edge.inference.classifier import Classifier
    from edge.inference.heads import canonical

    content = (model_dir / "model.tflite").read_bytes()
    raw = json.loads((model_dir / "model.json").read_text())
    assert canonical(raw["heads"]) in content
    with pytest.raises(EdgeError, match="already holds heads"):
        quantize.embed_heads(content, raw["heads"])
    for name in ("model.tflite", "model.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    raw["heads"]["cell"][0]["bias"] += 0.5  # a quieter heat-map, the sha256 of the model unchanged
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match="heads in its manifest are not the ones inside the model"):
        Classifier(tmp_path / "model.tflite")


def test_a_manifest_whose_heads_do_not_fit_its_model_is_refused(model_dir, tmp_path, monkeypatch):
    import shutil

    from edge.inference import classifier as classifier_module
    from edge.inference.classifier import Classifier
    from edge.inference.heads import _matrix, _packed

    monkeypatch.setattr(classifier_module, "held_in", lambda content, raw: True)  # past the file check: the shapes' own checks
    for name in ("model.tflite", "model.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    raw = json.loads((model_dir / "model.json").read_text())
    raw["outputs"] = {"classes": 0, "abnormal": 1, "malignant": 2, "heatmap": 3}
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match="outputs must be cells0, cells1"):
        Classifier(tmp_path / "model.tflite")
    raw = json.loads((model_dir / "model.json").read_text())
    raw["heads"]["classes"]["bias"] = raw["heads"]["classes"]["bias"][:6]
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match="heads are invalid"):
        Classifier(tmp_path / "model.tflite")
    raw = json.loads((model_dir / "model.json").read_text())
    raw["heads"]["cell_hidden"] = [{**h, "weights": _packed(_matrix(h["weights"])[:20])} for h in raw["heads"]["cell_hidden"]]  # 10 channels and their mean
    raw["heads"]["malignant"]["weights"] = raw["heads"]["malignant"]["weights"][:40]
    raw["heads"]["classes"]["weights"] = raw["heads"]["classes"]["weights"][:40]
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match=r"output cells0 has shape \(1, 4, 4, 128\), expected \(1, g, g, 10\)"):
        Classifier(tmp_path / "model.tflite")
