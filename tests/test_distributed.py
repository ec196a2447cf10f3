"""edge-train --strategy: the network trained on tf.distribute, two workers on localhost, the result converted."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

import numpy as np
import pytest
from commands import command, run
from test_labels_csv import write_labels

from edge import LABELS
@pytest.fixture(scope="module")
def small_folder(records, tmp_path_factory):
    """The first 24 development scans (12 women) as a labels.csv folder."""
    folder = tmp_path_factory.mktemp("labelled")
    rows = []
    for record in records[:24]:
        shutil.copy(record.path, folder)
        rows.append({"file": record.path.name, "woman": record.woman, "side": record.side[0].upper(),
                     "class": record.label, "severity": record.severity or "", "tissue": record.tissue,
                     "circles": ";".join(f"{c.row},{c.col},{c.radius}" for c in record.lesions)})
    write_labels(folder, rows)
    return folder


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_the_same_weights_and_the_result_converts(small_folder, tmp_path):
    import keras

    from train import handoff
    from train.distributed import weights_digest

    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        argv = command("edge-train", "--data", small_folder, "--out", tmp_path / f"worker{index}", "--strategy",
                       "multiworker", "--size", "64", "--steps", "3", "--batch-size", "4", "--folds", "3")
        workers.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert "2 replicas in sync" in out and "step 3/3" in out and "Traceback" not in err
    digests = [re.search(r"weights sha256 ([0-9a-f]{64})", out).group(1) for out, _ in outputs]
    assert digests[0] == digests[1]  # synchronous data parallelism: one set of weights

    final = tmp_path / "worker0" / "final"
    assert not (tmp_path / "worker1").exists()  # only the chief writes
    model = keras.models.load_model(final / "model.keras", compile=False)
    training = handoff.read(final / "training.json")
    assert weights_digest(model, training.heads) == digests[0]  # the network and heads written are those both trained
    assert tuple(model.inputs[0].shape) == (1, 64, 64, 1)
    assert model.output_names == ["cells0", "cells1"] and training.outputs == ("cells0", "cells1")
    assert np.abs(training.heads["cell"][0]["weights"]).max() > 0  # the heads moved from zero, and ship beside the trunk
    assert training.record["workers"] == 2 and training.record["replicas"] == 2 and training.reading is not None
    assert 0 <= training.triage.threshold <= 1 and "held-out" in training.metrics["what"]

    converted = tmp_path / "converted"
    result = run("edge-convert", final / "model.keras", "--data", small_folder, "--out", converted, "--calibration", "8",
                 "--min-agreement", "0", "--max-auc-drop", "1", timeout=600)  # a 3-step model: the gate's bounds mean nothing
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (converted / "model.tflite").is_file() and "ready" in result.stdout
    result = run("edge-classify", "--model", converted / "model.tflite", "--json", small_folder / "mdb005.png")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["label"] in LABELS


def test_each_worker_reads_its_own_shard_prepared_as_the_device_prepares_it(records):
    import tensorflow as tf

    from train.data import load_dataset
    from train.distributed import Settings, input_pipeline

    chosen = records[:10]
    expected = load_dataset(chosen, 64)
    owner = {expected.images[i].tobytes(): i for i in range(len(chosen))}
    make = input_pipeline(chosen, np.arange(len(chosen)), Settings(size=64, batch_size=4))
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
        batches = iter(make(context))
        epoch = [tuple(np.asarray(part)[k] for part in batch) for batch in (next(batches) for _ in range(3)) for k in range(2)][:5]
        rows = [owner[image.tobytes()] for image, *_ in epoch]  # every image is a prepared development scan...
        assert sorted(rows) == list(range(worker, 10, 2))  # ... of this worker's shard, each once an epoch
        for (_image, heat, kind, abnormal, malignant), i in zip(epoch, rows):
            record = chosen[i]
            assert (kind, abnormal, malignant) == (LABELS.index(record.label), record.abnormal, record.malignant)
            assert heat.shape == (4, 4) and (heat.max() == 1) == bool(record.lesions)
        seen += rows
    assert sorted(seen) == list(range(10))


def test_the_loss_counts_what_it_should():
    import tensorflow as tf

    from train.data import IGNORE
    from train.distributed import scan_losses

    target = np.zeros((3, 2, 2), np.float32)
    target[0, 0, 0] = 1.0  # a located finding
    target[1] = IGNORE  # a finding without a location
    kind = np.array([LABELS.index("CIRC"), LABELS.index("CALC"), LABELS.index("NORM")])
    abnormal, malignant = np.array([1.0, 1.0, 0.0], np.float32), np.array([1.0, 0.0, 0.0], np.float32)
    classes = np.eye(len(LABELS), dtype=np.float32)[kind]

    def losses(heat):
        hottest = heat.reshape(3, -1).max(1, keepdims=True)
        out = scan_losses([tf.constant(classes), tf.constant(hottest), tf.constant(malignant[:, None]), tf.constant(heat)],
                          tf.constant(target), tf.constant(kind), tf.constant(abnormal), tf.constant(malignant))
        return np.asarray(out)

    perfect = np.where(target == IGNORE, 0.0, target).astype(np.float32)
    perfect[1, 1, 1] = 1.0  # the unlocated finding's hottest cell says abnormal
    assert losses(perfect).max() < 1e-4
    moved = perfect.copy()
    moved[1, 0, 0] = 0.5  # a cell of the unlocated finding: not a cell target
    assert losses(moved)[1] < 1e-4
    wrong = perfect.copy()
    wrong[0, 1, 1] = 0.9  # a normal cell of the located finding called a lesion
    assert losses(wrong)[0] > 0.5 and losses(wrong)[2] < 1e-4


@pytest.mark.parametrize("args, env, words", [
    (["--strategy", "multiworker"], {}, "--strategy multiworker needs TF_CONFIG"),
    (["--strategy", "multiworker"], {"TF_CONFIG": "{not json"}, "TF_CONFIG cannot be used"),
    (["--strategy", "multiworker"], {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
     "task worker 3 is not in the cluster"),
    (["--steps", "5"], {}, "--steps: only for gradient training (add --strategy)"),
    (["--strategy", "default", "--reports", "r", "--hard-negatives", "2"], {},
     "--hard-negatives, --reports: only for the cross-validated logistic fit"),
    (["--strategy", "default", "--fine-tune", "12"], {}, "--fine-tune must be 0 to 11"),
])
def test_bad_strategy_options_are_one_clear_error(small_folder, tmp_path, args, env, words):
    result = run("edge-train", "--data", small_folder, "--out", tmp_path, *args,
                 env={k: v for k, v in {**os.environ, **env}.items() if k != "TF_CONFIG" or "TF_CONFIG" in env})
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
