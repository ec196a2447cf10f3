"""The fine-tuned reader over two sources: a tiny real run (MIAS film scans and digital screening images),
its int8 simulation against the TFLite int8 network, its figures per source and its choice per woman."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

RSNA = Path(__file__).resolve().parents[1].parent / "shared" / "rsna"


@pytest.fixture(scope="module")
def two_sources(mias_dir):
    """24 MIAS scans (12 women, both breasts) and the first 36 digital images, prepared at 128 px."""
    from train import records
    from train.data import load_dataset

    if not (RSNA / "labels.csv").is_file():
        pytest.skip(f"{RSNA} is not here")
    loaded = records.load_all([mias_dir, RSNA])
    chosen = loaded[:24] + loaded[258:294]
    with pytest.warns(UserWarning):  # the digital JPEGs are grey stored as RGB, and say so
        data = load_dataset(chosen, 128)
    return data


@pytest.fixture(scope="module")
def tuned(two_sources):
    from train import finetune, tuned_cv

    base, codes = tuned_cv.stem(two_sources, (1, 2), None, log=lambda _: None)
    masks = finetune.breast_masks(two_sources.images, (1, 2))
    result = finetune.finetune(codes, masks, finetune.targets(two_sources), np.arange(len(two_sources.records)), base, epochs=1)
    return base, codes, result


def test_records_of_two_sources_keep_their_women_apart(two_sources):
    records = two_sources.records
    assert {r.source for r in records[:24]} == {"mias"} and {r.source for r in records[24:]} == {"rsna"}
    assert not {r.patient for r in records[:24]} & {r.patient for r in records[24:]}
    assert two_sources.class_index[24:][two_sources.abnormal[24:] == 1].tolist() == [-1] * int(two_sources.abnormal[24:].sum())


def test_the_stem_is_frozen_and_the_fine_tuned_blocks_lie_on_the_int8_grid(tuned):
    from train import distil, finetune

    base, _, result = tuned
    changed = [name for name in base if not np.array_equal(base[name][0], result.tuned[name][0])]
    stem_names = [c.name for c in distil.folded(128)][: [c.name for c in distil.folded(128)].index(finetune.STEM_END) + 1]
    assert changed and not set(changed) & set(stem_names)
    for name in changed:
        kernel = result.tuned[name][0]
        assert np.array_equal(distil.on_int8_grid(kernel, name.startswith("conv_dw")), kernel)


def test_the_simulated_int8_features_are_close_to_the_tflite_int8_networks(two_sources, tuned):
    """What the heads are fitted on in cross-validation (the int8 simulation) is near what the board computes:
    within a tenth or so of the features' spread, and nearer than the float network is. Not exact: the
    converter calibrates each activation's range on data, the simulation rounds on ReLU6's whole range."""
    from train import distil, finetune, reader, trunk

    _, codes, result = tuned
    board = trunk.quantized_features(two_sources.images, (1, 2), None, result.tuned, "int8")
    for f, scale, code in zip((1, 2), board, codes):
        simulated = finetune.features(code, result.tuned)
        floats = trunk.features(reader.scale_images(two_sources.images, f), tuned=result.tuned)
        assert distil.drift(simulated, scale) < 0.15
        assert distil.drift(simulated, scale) < distil.drift(floats, scale)


def test_a_tiny_run_reports_each_source_and_chooses_the_threshold_per_woman(two_sources, tmp_path, monkeypatch, mias_dir):
    from train import finetune, handoff, metrics, records, tuned_cv

    monkeypatch.setattr(records, "load_all", lambda dirs: list(two_sources.records))
    monkeypatch.setattr(finetune, "BATCH", 8)
    out = tuned_cv.run([mias_dir, RSNA], tmp_path, size=128, folds=3, epochs=1, log=lambda _: None)
    rows = tuned_cv.read_predictions(tmp_path / "cv" / "predictions.csv")
    assert sorted(rows["id"]) == sorted(r.id for r in two_sources.records)
    figures = json.loads((tmp_path / "cv" / "sources.json").read_text())
    assert set(figures["sources"]) == {"mias", "rsna"}
    mias = figures["sources"]["mias"]
    assert {"auc_abnormal", "auc_malignant", "woman_sensitivity", "woman_specificity", "balanced_accuracy"} <= set(mias)
    assert "woman_sensitivity" not in figures["sources"]["rsna"]  # no woman there has both breasts known
    assert all(len(mias[k]["ci95"]) == 2 and mias[k]["baseline"] is not None for k in ("auc_abnormal", "woman_sensitivity"))
    top, sick = metrics.woman_scores(rows["abnormal"], rows["abnormal_truth"], rows["woman"])
    final = figures["threshold"]
    assert final == pytest.approx(out.triage.threshold)
    read = handoff.read(tmp_path / "final" / "training.json")
    assert read.heads["malignant"]["of"] == "every scan" and "abnormal" in read.heads
    assert len(read.reading["single"]["weights"]) == 3
    assert len(top) == len({r.woman + r.source for r in two_sources.records}) and sick.sum() > 0

    # edge-convert over both sources: full int8 (what an Edge TPU takes), the heads in its manifest,
    # and the board's classifier reads a digital image with them (the gate is not asked of a 1-epoch model)
    from convert.pipeline import ConvertOptions, run as convert
    from edge.inference.classifier import Classifier

    converted = convert(ConvertOptions(tmp_path / "final" / "model.keras", [mias_dir, RSNA], tmp_path / "tflite",
                                       calibration=16, min_agreement=0.0, max_auc_drop=1.0))
    assert converted.passed and converted.readiness.ready, converted.readiness.problems
    assert converted.readiness.input_types == ("UINT8",) and converted.manifest.heads["malignant"]["of"] == "every scan"
    board = Classifier(tmp_path / "tflite" / "model.tflite", converted.manifest, kernels="default")
    digital = two_sources.records[-1]
    result = board.classify(digital.pixels())
    assert result.malignant <= result.abnormal and result.triage == ("refer" if result.abnormal >= final else "routine")


def test_the_woman_threshold_refers_the_target_share_of_women_with_a_finding():
    from train import metrics

    women = np.array(["a", "a", "b", "b", "c", "d", "e", "e", "f", "g"])
    y = np.array([0, 1, 0, 0, 1, 0, 1, 0, 0, 1])
    p = np.array([0.1, 0.7, 0.6, 0.2, 0.4, 0.3, 0.2, 0.9, 0.05, 0.8])
    t = metrics.woman_threshold(p, y, women, target=0.75)
    top, sick = metrics.woman_scores(p, y, women)
    assert top.tolist() == [0.7, 0.6, 0.4, 0.3, 0.9, 0.05, 0.8] and sick.tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert (top[sick == 1] >= t).mean() >= 0.75 and t == pytest.approx(0.7)


def test_heads_with_their_own_abnormality_and_malignancy_travel_and_answer_coherently():
    from edge.inference.heads import Heads, outputs
    from edge.inference.reading import Reading, answer

    rng = np.random.default_rng(0)
    c = 4
    heads = Heads((rng.normal(size=c),), (0.1,), rng.normal(size=(2 * c, 7)), np.zeros(7), rng.normal(size=2 * c), -1.0,
                  malignant_direct=True, abnormal_w=rng.normal(size=2 * c), abnormal_b=0.5)
    raw = json.loads(json.dumps(heads.to_json()))
    again = Heads.from_json(raw, 7)
    assert again.malignant_direct and np.allclose(again.abnormal_w, heads.abnormal_w) and again.abnormal_b == 0.5
    features = [rng.random((2, 3, 3, c))]
    out = outputs(features, again)
    pooled = np.concatenate([features[0].mean((1, 2)), features[0].max((1, 2))], 1)
    assert np.allclose(out.image, pooled @ heads.abnormal_w + 0.5)
    raw["malignant"]["of"] = "abnormal scans only, maybe"
    with pytest.raises(ValueError, match="knows only"):
        Heads.from_json(raw, 7)
    classes = np.full(7, 1 / 6)
    assert answer(0.3, classes, 0.6, 0.5, malignant_direct=True).malignant == pytest.approx(0.3)  # never above P(abnormal)
    assert answer(0.8, classes, 0.6, 0.5, malignant_direct=True).malignant == pytest.approx(0.6)
    assert answer(0.8, classes, 0.6, 0.5).malignant == pytest.approx(0.48)
    three = {"single": {"weights": [1, 1, 1], "bias": 0}, "paired": {"weights": [1] * 6, "bias": 0}}
    assert Reading.from_json(three).p_abnormal(np.zeros(3), np.zeros(3)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Reading.from_json({"single": {"weights": [1] * 4, "bias": 0}, "paired": {"weights": [1] * 8, "bias": 0}})
