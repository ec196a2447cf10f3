"""Training pipeline on a handful of real scans: model contract, targets, augmentation, end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edge import LABELS
from train import data as tdata
from train.data import Circle

ALLOWED_LAYERS = {
    "InputLayer", "Rescaling", "Activation", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
    "Concatenate", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPooling2D", "AveragePooling2D",
    "Dense", "Dropout", "Reshape",
}


def test_model_contract():
    from train.model import build

    model = build(64, batch_size=1)
    assert tuple(model.inputs[0].shape) == (1, 64, 64, 1)
    assert model.output_names == ["classes", "abnormal", "malignant", "heatmap"]
    shapes = [tuple(o.shape) for o in model.outputs]
    assert shapes == [(1, 7), (1, 1), (1, 1), (1, 4, 4)]
    assert {type(layer).__name__ for layer in model.layers} <= ALLOWED_LAYERS
    out = model.predict(np.full((1, 64, 64, 1), 255.0, np.float32), verbose=0)
    assert out[0].sum() == pytest.approx(1.0, abs=1e-5)
    assert all(((o >= 0) & (o <= 1)).all() for o in out)


def test_heatmap_target():
    target = tdata.heatmap_target((Circle(8.0, 40.0, 3.0),), 64, 4, unlocated=False)
    assert target.shape == (4, 4) and target.sum() == 1 and target[0, 2] == 1  # small circle: its own cell
    big = tdata.heatmap_target((Circle(31.5, 31.5, 20.0),), 64, 4, unlocated=False)
    assert big[1:3, 1:3].all() and big[0, 0] == 0
    assert (tdata.heatmap_target((), 64, 4, unlocated=False) == 0).all()  # normal scan
    assert (tdata.heatmap_target((), 64, 4, unlocated=True) == tdata.IGNORE).all()


def test_augmentation_moves_the_circle_with_the_lesion():
    image = np.zeros((128, 128), np.uint8)
    rows, cols = np.mgrid[:128, :128]
    circle = Circle(40.0, 80.0, 6.0)
    image[(rows - circle.row) ** 2 + (cols - circle.col) ** 2 <= circle.radius**2] = 255
    rng = np.random.default_rng(0)
    spec = tdata.Augment(rotate_degrees=25, scale=0.2, shift=0.1, brightness=0, contrast=0, gamma=0)
    for _ in range(10):
        moved, (new,) = tdata.augment(image, (circle,), rng, spec)
        bright = np.argwhere(moved > 128)
        assert np.hypot(*(bright.mean(0) - (new.row, new.col))) < 1.0
        assert abs(np.sqrt(len(bright) / np.pi) - new.radius) < 1.0


def test_sampling_and_loss_weights_balance_the_classes():
    class_index = np.array([6] * 90 + [0] * 9 + [1] * 1)
    draw = tdata.sampling_weights(class_index)
    weights = tdata.class_loss_weights(class_index)
    per_class = [draw[class_index == c].sum() * weights[c] for c in (0, 1, 6)]
    assert np.allclose(per_class, per_class[0])  # every class weighs the same in expectation
    assert draw[class_index == 1].sum() > 1 / 100  # rare classes drawn more than their share


def test_patches_come_from_the_given_images(records):
    from train.data import load_dataset

    chosen = [r for r in records if r.lesions][:2] + [r for r in records if not r.abnormal][:2]
    dataset = load_dataset(chosen, 128)
    batch = tdata.patches(dataset, np.random.default_rng(0), 8, 32, tdata.Augment())
    assert batch.images.shape == (8, 32, 32) and batch.images.dtype == np.uint8
    assert {r.id for r in batch.records[::2]} <= {r.id for r in chosen[:2]}  # lesion patches
    assert {r.label for r in batch.records[1::2]} == {"NORM"}  # background patches
    for circles in batch.circles[::2]:  # the patch is centred near one of its circles
        assert any(np.hypot(c.row - 15.5, c.col - 15.5) <= max(c.radius, 16) * 1.5 for c in circles)


def test_edge_train_end_to_end(mias_dir, records, tmp_path):
    """The CLI on the first 12 real scans, 2 folds, 1 epoch, a tiny input: every promised file."""
    from typer.testing import CliRunner

    from train.cli import app

    out, reports, experiments = tmp_path / "run", tmp_path / "reports" / "cv", tmp_path / "reports" / "experiments"
    result = CliRunner().invoke(
        app,
        ["--data", str(mias_dir), "--out", str(out), "--folds", "2", "--epochs", "1", "--size", "64",
         "--compare", "scratch,patch", "--patch-epochs", "1", "--finetune-epochs", "1", "--limit", "12",
         "--reports", str(reports), "--experiments", str(experiments)],
    )
    assert result.exit_code == 0, result.output
    comparison = json.loads((experiments / "comparison.json").read_text())
    assert set(comparison["runs"]) == {"scratch", "patch"} and comparison["shipped"] in comparison["runs"]
    assert (experiments / "comparison.md").is_file() and (experiments / "comparison.png").is_file()

    training = json.loads((out / "final" / "training.json").read_text())
    assert training["input_size"] == 64 and training["labels"] == list(LABELS)
    assert training["outputs"] == ["classes", "abnormal", "malignant", "heatmap"]
    assert training["triage"]["target_sensitivity"] == 0.9 and 0 <= training["triage"]["threshold"] <= 1
    assert "auc_abnormal" in training["metrics"] and training["seed"] == 0
    assert training["init"] == comparison["shipped"]

    import keras

    model = keras.models.load_model(out / "final" / "model.keras", compile=False)
    assert tuple(model.inputs[0].shape) == (1, 64, 64, 1)
    assert model.output_names == ["classes", "abnormal", "malignant", "heatmap"]

    with open(reports / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ("id", "patient", "fold", "true_class", "severity", *LABELS, "abnormal", "malignant")
    assert sorted(r["id"] for r in rows) == [r.id for r in records[:12]]  # one row per image
    fold_of = {}
    for row in rows:
        assert fold_of.setdefault(row["patient"], row["fold"]) == row["fold"]  # no woman in two folds
        assert int(row["patient"]) == (int(row["id"][3:]) + 1) // 2
        assert sum(float(row[c]) for c in LABELS) == pytest.approx(1.0, abs=1e-3)
    assert {r["fold"] for r in rows} == {"0", "1"}

    document = json.loads((reports / "metrics.json").read_text())
    assert {"headline", "per_fold", "confusion_matrix", "by_tissue", "pointing_game"} <= set(document)
    for name in ("summary.md", "confusion.png", "roc.png", "training_curves.png", "images.csv"):
        assert (reports / name).is_file(), name

    # the report step recomputes the same figures from the CSV alone
    from train import report

    (reports / "metrics.json").unlink()
    again = report.build(reports / "predictions.csv")
    assert report.finite(again)["headline"] == document["headline"]
