"""Training pipeline on a handful of real scans: targets, the reader's heads and network, handoff, end to end."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from edge import LABELS
from edge.errors import EdgeError
from train import data as tdata
from train.data import Circle

ALLOWED_LAYERS = {
    "InputLayer", "Functional", "Rescaling", "Activation", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
    "ZeroPadding2D", "Concatenate", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "AveragePooling2D", "Resizing",
    "Average", "Add", "Dense", "Reshape", "Softmax", "Multiply",
}


def test_heatmap_target():
    target = tdata.heatmap_target((Circle(8.0, 40.0, 3.0),), 64, 4, unlocated=False)
    assert target.shape == (4, 4) and target.sum() == 1 and target[0, 2] == 1  # small circle: its own cell
    big = tdata.heatmap_target((Circle(31.5, 31.5, 20.0),), 64, 4, unlocated=False)
    assert big[1:3, 1:3].all() and big[0, 0] == 0
    assert (tdata.heatmap_target((), 64, 4, unlocated=False) == 0).all()  # normal scan
    assert (tdata.heatmap_target((), 64, 4, unlocated=True) == tdata.IGNORE).all()


@pytest.fixture(scope="module")
def small(records, tmp_path_factory):
    """24 real scans (12 women) prepared at 64 px, trunk features at two scales, 3 patient folds."""
    from train import reader, trunk
    from train.data import load_dataset
    from train.splits import patient_folds

    chosen = records[:24]
    dataset = load_dataset(chosen, 64)
    cache = tmp_path_factory.mktemp("trunk_cache")
    scales = [trunk.features(reader.scale_images(dataset.images, f), cache) for f in (1, 2)]
    return dataset, scales, patient_folds(chosen, k=3, seed=0), cache


def test_trunk_features_are_cached_by_content(small):
    from train import reader, trunk

    dataset, scales, _, cache = small
    assert scales[0].shape == (24, 4, 4, trunk.CHANNELS) and scales[1].shape == (24, 2, 2, trunk.CHANNELS)
    assert len(list(cache.glob("trunk-*.npy"))) == 2
    again = trunk.features(reader.scale_images(dataset.images, 1), cache)
    assert np.array_equal(again, scales[0])
    changed = dataset.images.copy()
    changed[0, 0, 0] ^= 1  # one pixel of one prepared scan: new features
    trunk.features(reader.scale_images(changed, 1), cache)
    assert len(list(cache.glob("trunk-*.npy"))) == 3


def test_neighbourhood_is_keras_average_pooling_same():
    """The numpy neighbourhood mean is AveragePooling2D(k, 1, "same"): padding left out of the mean, border cells included."""
    import keras

    from train import reader

    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 6, 5, 4)).astype(np.float32)
    for k in (3, 5, 7):  # 7: a window wider than the grid
        pooled = keras.layers.AveragePooling2D(k, strides=1, padding="same")(features)
        expected = np.asarray(keras.layers.Concatenate()([features, pooled]))
        assert np.allclose(reader.neighbourhood(features, k), expected, atol=1e-6), k
    around = reader.neighbourhood(features, 3)[..., 4:]
    assert np.allclose(around[:, 0, 0], features[:, :2, :2].mean((1, 2)), atol=1e-6)  # a corner: its 4 in-grid cells
    assert np.allclose(around[:, 2, 4], features[:, 1:4, 3:].mean((1, 2)), atol=1e-6)  # an edge: its 6
    assert reader.neighbourhood(features, 0) is features
    with pytest.raises(ValueError, match="odd"):
        reader.Options(context=4)


def test_the_kind_head_is_chosen_inside_the_training_scans(small):
    """Pooling and strength of the kind head come from an inner patient-grouped CV of the abnormal
    training scans; weights land on the chosen pooled columns only; too few women: the plain head."""
    from train import reader, trunk

    dataset, scales, _, _ = small
    pool = reader.pooled(scales)
    abnormal = np.array([i for i in range(24) if dataset.records[i].abnormal])
    kinds, patients = dataset.class_index[abnormal], [dataset.records[i].patient for i in abnormal]
    assert len(set(patients)) >= 2 and len(np.unique(kinds)) >= 2
    columns, c = reader._kind_choice(pool[abnormal], kinds, patients, trunk.CHANNELS, reader.Options())
    average = (np.arange(pool.shape[1]) // trunk.CHANNELS) % 2 == 0
    assert c in reader.KIND_C and (columns.all() or np.array_equal(columns, average))
    heads = reader.fit_heads(scales, dataset, np.arange(24), reader.Options())
    assert (heads.classes_w[~columns] == 0).all() and (heads.classes_w[columns] != 0).any()
    plain = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(kind_search=False))
    assert not np.array_equal(plain.classes_w, heads.classes_w) or (columns.all() and c == reader.Options().image_c)
    alone, c_alone = reader._kind_choice(pool[abnormal], kinds, [patients[0]] * len(patients), trunk.CHANNELS, reader.Options())
    assert alone.all() and c_alone == reader.Options().image_c  # one woman cannot be split: the plain head
    normal = np.array([i for i in range(24) if not dataset.records[i].abnormal])
    w, b = reader.kind_head(pool, trunk.CHANNELS, dataset, normal, reader.Options())  # no finding of a known kind
    assert (w == 0).all() and b[reader.NORM] == reader.NORM_BIAS and (b[reader.ABNORMAL_KINDS] == 0).all()


def test_the_malignancy_head_is_fitted_only_where_it_beats_the_training_rate(small):
    """Inside the training scans: a head at one of KIND_C's strengths where malignancy can be read from
    the pooled features, none (P(malignant | abnormal) the training rate) where it cannot."""
    from train import reader

    rng = np.random.default_rng(0)
    women = [w // 2 for w in range(48)]  # 24 women, two scans each
    x = rng.normal(size=(48, 20))
    readable = (x[:, 0] > 0.5).astype(float)  # a quarter malignant, written in one feature
    assert reader._malignancy_choice(x, readable, women, reader.Options()) in reader.KIND_C
    unreadable = np.ones((48, 20))  # every scan looks the same: nothing to read, the rate is the best guess
    assert reader._malignancy_choice(unreadable, readable, women, reader.Options()) is None
    assert reader._malignancy_choice(x, readable, [0] * 48, reader.Options()) == reader.Options().image_c  # one woman

    dataset, scales, _, _ = small
    always = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(malignancy_search=False))
    assert (always.malignant_w != 0).any()
    abnormal = [i for i in range(24) if dataset.records[i].abnormal]
    rate = dataset.malignant[abnormal].mean()
    flat = dataset.images.copy()
    flat[:] = flat[0]  # every scan the same picture: the search must drop the head and give the training rate
    same = [np.repeat(f[:1], 24, axis=0) for f in scales]
    heads = reader.fit_heads(same, dataclasses.replace(dataset, images=flat), np.arange(24), reader.Options(cell_hidden=0))
    assert (heads.malignant_w == 0).all() and heads.malignant_b == pytest.approx(np.log(rate / (1 - rate)))


@pytest.mark.parametrize("context, focus", [(0, 2.0), (3, 0.0), (3, 2.0)])
def test_the_network_computes_what_was_cross_validated(small, context, focus):
    """The Keras network with the heads inside (what edge-train --strategy trains) gives the numpy heads' outputs."""
    from train import reader, trunk

    dataset, scales, _, _ = small
    heads = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(context=context, focus=focus, cell_hidden=0))
    assert heads.context == context and heads.cell_w[0].shape == ((2 if context else 1) * trunk.CHANNELS,)
    blocks = 3 if focus else 2  # average, max (, focused: the cells' own features, not the neighbourhood's)
    assert heads.malignant_w.shape == (blocks * 2 * trunk.CHANNELS,)
    model = reader.build_model(64, heads, (1, 2))
    assert ("around1" in {layer.name for layer in model.layers}) == bool(context)
    assert tuple(model.inputs[0].shape) == (1, 64, 64, 1)
    assert [tuple(o.shape) for o in model.outputs] == [(1, 7), (1, 1), (1, 1), (1, 4, 4)]
    kinds = {type(layer).__name__ for layer in model.layers}
    kinds |= {type(inner).__name__ for layer in model.layers for inner in getattr(layer, "layers", [])}
    assert kinds <= ALLOWED_LAYERS, kinds - ALLOWED_LAYERS  # int8 builtins the Edge TPU maps
    expected = reader.outputs([f[:3] for f in scales], heads)
    got = model.predict(dataset.images[:3, :, :, None].astype(np.float32), batch_size=1, verbose=0)
    wanted = (expected.classes, expected.abnormal[:, None], expected.malignant[:, None], expected.heatmap)
    assert max(np.abs(np.asarray(g) - e).max() for g, e in zip(got, wanted)) < 1e-4
    out = reader.outputs(scales, heads)
    assert np.allclose(out.classes.sum(1), 1) and (out.classes[:, LABELS.index("NORM")] < 1e-9).all()


def test_the_cell_head_has_a_hidden_layer_that_runs_in_numpy(small):
    """The shipped cell head is a one-hidden-layer network (standardisation folded in): its heat-map is
    the sklearn fit's own probabilities, the focused pooling reads its logits, and the graph path
    (linear heads only) refuses it with a clear error."""
    from sklearn.neural_network import MLPClassifier

    from train import reader

    dataset, scales, _, _ = small
    options = reader.Options(focus=2.0, cell_seeds=1)  # one network, to compare with one sklearn fit
    heads = reader.fit_heads(scales, dataset, np.arange(24), options)
    assert len(heads.cell_hidden) == 2 and heads.cell_hidden[0][0].shape == (2 * heads.channels, reader.CELL_HIDDEN)
    assert heads.malignant_w.shape == (3 * 2 * heads.channels,)  # average, max, focused: the channel count survives
    x, y, w = reader._cell_table(reader.neighbourhood(scales[0], 3), dataset, np.arange(24),
                                 reader.breast_cells(dataset.images, 4), options, np.random.default_rng(0))
    mean, scale = x.mean(0), x.std(0) + 1e-3
    fit = MLPClassifier((options.cell_hidden,), alpha=options.cell_alpha, max_iter=60,
                        early_stopping=bool(np.bincount(y.astype(int)).min() >= 20), n_iter_no_change=5, random_state=0)
    fit.fit((x - mean) / scale, y, sample_weight=np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())) * w)
    wanted = fit.predict_proba((reader.neighbourhood(scales[0], 3).reshape(-1, x.shape[1]) - mean) / scale)[:, 1]
    got = 1 / (1 + np.exp(-heads.cell_logits(scales[0], 0)))
    assert np.allclose(got.reshape(-1), wanted, atol=1e-6)
    linear = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(cell_hidden=0))
    assert linear.cell_hidden == () and not np.allclose(linear.cell_logits(scales[0], 0), heads.cell_logits(scales[0], 0))
    hard = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(hard_negatives=2, cell_seeds=1))  # refit on its own hottest cells
    assert hard.cell_hidden and not np.allclose(hard.cell_logits(scales[0], 0), reader.fit_heads(scales, dataset, np.arange(24), reader.Options(cell_seeds=1)).cell_logits(scales[0], 0))
    with pytest.raises(ValueError, match="cell_hidden=0"):
        reader.build_model(64, heads, (1, 2))


def test_cell_heads_from_several_random_starts_are_one_wider_network(small):
    """`cell_seeds` networks fitted from different starts on the same cells give the mean of their
    logits, written as one network with their hidden layers side by side (what the board runs)."""
    from train import reader
    from edge.inference.heads import cell_head

    dataset, scales, _, _ = small
    x, y, w = reader._cell_table(reader.neighbourhood(scales[0], 3), dataset, np.arange(24),
                                 reader.breast_cells(dataset.images, 4), reader.Options(), np.random.default_rng(0))
    both = reader._cell_fit(x, y, w, reader.Options(cell_seeds=2))
    first, second = (reader._cell_fit(x, y, w, reader.Options(seed=k, cell_seeds=1)) for k in (0, 1))
    assert both[0][0].shape == (x.shape[1], 2 * reader.CELL_HIDDEN)
    assert not np.allclose(cell_head(x, *first), cell_head(x, *second))
    assert np.allclose(cell_head(x, *both), (cell_head(x, *first) + cell_head(x, *second)) / 2, atol=1e-9)


def test_the_kind_head_learns_from_the_float_twins_too(small):
    """With the float network's features as a second view, only the kind head changes (the cell and
    malignancy heads read the board's features alone); without the option, or without twins, nothing does."""
    from train import reader
    from train.cv import Features

    dataset, scales, _, _ = small
    twins = [f + np.random.default_rng(k).normal(0, f.std() / 4, f.shape).astype(f.dtype) for k, f in enumerate(scales)]
    options = reader.Options(cell_hidden=0, kind_search=False, kind_twins=True)
    alone = reader.fit_heads(scales, dataset, np.arange(24), options)
    both = reader.fit_heads(scales, dataset, np.arange(24), options, twins)
    assert not np.allclose(both.classes_w, alone.classes_w)
    assert all(np.array_equal(a, b) for a, b in zip(both.cell_w, alone.cell_w))
    assert np.array_equal(both.malignant_w, alone.malignant_w)
    off = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(cell_hidden=0, kind_search=False), twins)  # off as shipped
    assert np.array_equal(off.classes_w, alone.classes_w)
    assert Features(None, scales, scales).twins is None and Features(None, twins, scales).twins is twins


def test_the_network_with_a_context_converts_for_the_edge_tpu_and_classifies(small, records, tmp_path):
    """int8 conversion of the network whose cell head reads the 3x3 neighbourhood: every op an Edge TPU
    builtin, and edge-classify answers a real scan with it."""
    from classify_support import KEYS, json_lines, run_classify
    from convert import quantize, rewrite
    from convert.edgetpu import check_readiness
    from train import quantizer, reader

    dataset, scales, _, _ = small
    heads = reader.fit_heads(scales, dataset, np.arange(24), reader.Options(context=3, cell_hidden=0))
    model, _ = rewrite.split_concatenated_heads(reader.build_model(64, heads, (1, 2)))
    content = quantizer.quantize(model, dataset.images[:8])
    readiness = check_readiness(content)
    assert readiness.ready and readiness.cpu_ops == [], readiness.summary()
    assert [op.name for op in readiness.ops].count("AVERAGE_POOL_2D") == 1 + 2  # the scale-2 input, each scale's neighbourhood

    ev = reader.evidence(reader.outputs(scales, heads))
    reading = reader.fit_reading(ev, reader.partners(dataset), dataset.abnormal.astype(int), np.arange(24))
    manifest = quantize.build_manifest(content, outputs=quantize.output_positions(model, content, dataset.images[:4]),
                                       triage_threshold=0.5, target_sensitivity=0.9, reading=reading.to_json(),
                                       info={"note": "heads fitted on 24 scans at 64 px: a test model"})
    quantize.write_model_folder(tmp_path, content, manifest)
    result = run_classify(records[30].path, "--model", tmp_path / "model.tflite", "--json")
    assert result.returncode == 0, result.stderr
    (answer,) = json_lines(result.stdout)
    assert KEYS <= set(answer) and sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_nested_cross_validation_keeps_women_and_folds_apart(small):
    """Every answer is coherent, the threshold of a fold comes from its training folds only, and
    changing a test fold's labels changes nothing of what that fold was read with."""
    from dataclasses import replace

    from train import reader

    dataset, scales, folds, _ = small
    result = reader.cross_validate(scales, dataset, folds, reader.Options())
    assert np.allclose(result.probs.sum(1), 1)
    assert np.allclose(result.probs[:, LABELS.index("NORM")], 1 - result.abnormal)
    assert (result.malignant <= result.abnormal + 1e-12).all()
    partner = reader.partners(dataset)
    assert all(folds[i] == folds[p] for i, p in enumerate(partner) if p >= 0)

    flipped = list(dataset.records)
    for i in np.flatnonzero(folds == 0):  # the test fold 0 relabelled: fold 0's reading must not move
        flipped[i] = replace(flipped[i], label="NORM" if flipped[i].abnormal else "CALC", severity=None, lesions=())
    again = reader.cross_validate(scales, replace(dataset, records=flipped), folds, reader.Options())
    test = folds == 0
    assert np.allclose(again.abnormal[test], result.abnormal[test]) and np.allclose(again.threshold[test], result.threshold[test])


def test_handoff_is_written_and_read_by_one_owner(tmp_path):
    from train import handoff

    record = handoff.Handoff(input_size=64, triage=handoff.Triage(0.4, 0.9, "folds"),
                             reading={"single": {"weights": [1, 0], "bias": 0}, "paired": {"weights": [1, 0, -1, 0], "bias": 0}})

    class Model:
        def save(self, path):
            path.write_bytes(b"keras")

    handoff.write(tmp_path, Model(), record)
    assert handoff.read(tmp_path / "training.json") == record
    broken = json.loads((tmp_path / "training.json").read_text())
    del broken["triage"]["threshold"], broken["input_size"]
    (tmp_path / "training.json").write_text(json.dumps(broken))
    with pytest.raises(EdgeError, match="lacks input_size, triage.threshold"):
        handoff.read(tmp_path / "training.json")
    broken = json.loads(record.to_json())
    broken["reading"]["paired"]["weights"] = [1, 2]
    (tmp_path / "training.json").write_text(json.dumps(broken))
    with pytest.raises(EdgeError, match="invalid reading stage"):
        handoff.read(tmp_path / "training.json")


def test_edge_train_end_to_end(mias_dir, records, tmp_path):
    """The command on the first 30 real scans, 3 folds, a tiny input: every promised file."""
    from commands import run

    out, reports = tmp_path / "run", tmp_path / "reports" / "cv"
    result = run("edge-train", "--data", str(mias_dir), "--out", str(out), "--folds", "3", "--size", "64",
                 "--limit", "30", "--reports", str(reports), "--cache", str(tmp_path / "cache"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    from train import handoff

    training = handoff.read(out / "final" / "training.json")
    assert training.input_size == 64 and training.triage.target_sensitivity == 0.9
    assert 0 <= training.triage.threshold <= 1 and training.reading is not None
    assert "auc_abnormal" in training.metrics and training.record["config"]["factors"] == [1, 2]
    # the heads were fitted on the 16x8 trunk's features, cached as such, and edge-convert will convert so
    assert training.record["config"]["features"] == "int16" and len(list((tmp_path / "cache").glob("int16-*.npy"))) == 2
    from convert.pipeline import ConvertOptions, chosen_activations

    assert chosen_activations(ConvertOptions(out / "final" / "model.keras", [mias_dir], tmp_path)) == "int16"

    import keras

    model = keras.models.load_model(out / "final" / "model.keras", compile=False)
    assert tuple(model.inputs[0].shape) == (1, 64, 64, 1)

    with open(reports / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ("id", "patient", "fold", "true_class", "severity", *LABELS, "abnormal", "malignant",
                              "woman", "contralateral", "threshold")
    assert sorted(r["id"] for r in rows) == [r.id for r in records[:30]]  # one row per image
    fold_of = {}
    for row in rows:
        assert fold_of.setdefault(row["patient"], row["fold"]) == row["fold"]  # no woman in two folds
        assert int(row["patient"]) == (int(row["id"][3:]) + 1) // 2 and row["woman"] == f"mias-{row['patient']}"
        number = int(row["id"][3:])
        assert row["contralateral"] == f"mdb{number + 1 if number % 2 else number - 1:03d}"
        assert sum(float(row[c]) for c in LABELS) == pytest.approx(1.0, abs=1e-3)
    document = json.loads((reports / "metrics.json").read_text())
    assert {"headline", "per_fold", "confusion_matrix", "by_tissue", "pointing_game"} <= set(document)
    for name in ("summary.md", "confusion.png", "roc.png", "images.csv"):
        assert (reports / name).is_file(), name

    from train import report

    (reports / "metrics.json").unlink()
    again = report.build(reports / "predictions.csv")
    assert report.finite(again)["headline"] == document["headline"]  # the figures from the CSV alone


@pytest.mark.parametrize("args, words", [
    (["--folds", "2"], "--folds must be at least 3"),
    (["--scales", "2,1"], "--scales must be increasing"),
    (["--size", "80"], "must be a multiple of 32"),
    (["--context", "4"], "--context must be 0 or an odd neighbourhood side of at least 3, got 4"),
    (["--cell-hidden", "-1"], "--cell-hidden must be 0 or more, got -1"),
    (["--cell-seeds", "0"], "--cell-seeds must be 1 or more, got 0"),
    (["--activations", "float16"], "--activations must be int16 or int8, got float16"),
    (["--trunk", "fine-tuned", "--context", "5"], "--context: not for the fine-tuned trunk (add --trunk distilled)"),
    (["--trunk", "fine-tuned", "--epochs", "0"], "--epochs must be 1 or more, got 0"),
])
def test_edge_train_refuses_bad_options(mias_dir, tmp_path, args, words):
    from commands import run

    result = run("edge-train", "--data", str(mias_dir), "--out", str(tmp_path), *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
