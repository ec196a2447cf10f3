"""`edge-convert` end to end on a small MIAS folder and a tiny contract-shaped "trained" model."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from commands import command
from edge.inference.manifest import load_manifest, read_verified_model

@pytest.fixture(scope="module")
def small_mias(mias_dir, records, tmp_path_factory):
    """A MIAS folder with 12 scans (8 normal, 4 abnormal) and the matching rows of Info.txt."""
    folder = tmp_path_factory.mktemp("mias_small")
    subset = [r for r in records if not r.abnormal][:8] + [r for r in records if r.abnormal][:4]
    SUBSET = {r.id for r in subset}
    rows = [line for line in (mias_dir / "Info.txt").read_text(errors="replace").splitlines()
            if line[:6] in SUBSET or not line.startswith("mdb")]
    (folder / "Info.txt").write_text("\n".join(rows) + "\n")
    for record in subset:
        shutil.copy(record.path, folder)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model saved as final.keras with a training.json beside it, as edge-train leaves them."""
    from tiny_support import tiny_model

    folder = tmp_path_factory.mktemp("trained")
    tiny_model(size=64, seed=3).save(folder / "final.keras")
    (folder / "training.json").write_text(json.dumps({
        "input_size": 64, "labels": ["CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"],
        "outputs": ["classes", "abnormal", "malignant", "heatmap"],
        "triage": {"threshold": 0.42, "target_sensitivity": 0.9, "chosen_on": "training folds"},
        "metrics": {"auc_abnormal": 0.5}, "data": {"split": "test subset"}, "config": {},
    }))
    return folder


def invoke(*args) -> subprocess.CompletedProcess:
    """edge-convert in a subprocess, as tests/commands.py launches every command; stdout and stderr together."""
    return subprocess.run(command("edge-convert", *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


def test_converts_writes_model_manifest_and_report(trained, small_mias, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report"
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--report", report,
                    "--min-agreement", "0", "--max-auc-drop", "1", "--calibration", "20")
    assert result.returncode == 0, result.stdout
    manifest = load_manifest(out / "model.json")
    assert read_verified_model(manifest, out / "model.tflite")
    assert manifest.triage_threshold == 0.42 and manifest.target_sensitivity == 0.9
    assert manifest.info["metrics"] == {"auc_abnormal": 0.5} and manifest.info["data"] == {"split": "test subset"}
    assert manifest.info["calibration"]["images"] == 20 and manifest.info["calibration"]["real_scans"] == 12
    assert manifest.info["versions"]["converter"].startswith("tensorflow")
    assert manifest.input_dtype == "int16"  # training.json names no activations: the CPU default, 16x8
    document = json.loads((report / "fidelity.json").read_text())
    figures = document["fidelity"]
    assert figures["scans"] == 12 and document["fidelity"]["passed"]
    assert 0 <= figures["top1_agreement"] <= 1 and figures["abnormal_abs_diff_max"] < 0.05
    assert sum(map(sum, figures["confusion_float_rows_int8_columns"]["matrix"])) == 12
    assert "Verdict: PASSED" in (report / "fidelity.md").read_text()
    assert len((report / "fidelity_scans.csv").read_text().splitlines()) == 13
    assert not (out / "fidelity.json").exists()  # the report stays out of the package folder


def test_fidelity_failure_exits_1_and_leaves_the_old_model(trained, small_mias, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"the good old model")
    # No int8 model can drift by less than nothing: force the failure with an impossible bound.
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--max-auc-drop", "0",
                    "--min-agreement", "1", "--calibration", "12", "--activations", "int8")
    figures = json.loads((out / "fidelity.json").read_text())["fidelity"]
    if figures["top1_agreement"] == 1 and (figures["auc_drop"] or 0) <= 0:
        pytest.skip("this tiny model happens to survive int8 exactly")
    assert result.returncode == 1, result.stdout
    assert "not faithful enough" in result.stdout
    assert (out / "model.tflite").read_bytes() == b"the good old model"
    assert not (out / "model.json").exists()


def test_setup_errors_exit_2(trained, small_mias, tmp_path):
    result = invoke(tmp_path / "missing.keras", "--data", small_mias, "--out", tmp_path / "o")
    assert result.returncode == 2 and "model file not found" in result.stdout
    shutil.copy(trained / "final.keras", tmp_path / "final.keras")  # no training.json beside it
    result = invoke(tmp_path / "final.keras", "--data", small_mias, "--out", tmp_path / "o")
    assert result.returncode == 2 and "training.json not found" in result.stdout
    result = invoke(trained / "final.keras", "--data", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert result.returncode == 2 and "no such data directory" in result.stdout
    assert "Traceback" not in result.stdout


def test_edgetpu_needs_int8_activations(trained, small_mias, tmp_path):
    """The Edge TPU has no int16 activations: --edgetpu without --activations int8 (training.json says int16 here)
    stops before converting, with the fix named."""
    out = tmp_path / "out"
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--edgetpu")
    assert result.returncode == 2, result.stdout
    assert "--edgetpu needs an int8 model" in result.stdout and "--activations int8" in result.stdout
    assert "Traceback" not in result.stdout and not out.exists()
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--activations", "int4")
    assert result.returncode == 2 and "--activations must be int16 or int8" in result.stdout


def test_edgetpu_without_compiler_says_how_and_pretends_nothing(trained, small_mias, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "out"
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--edgetpu", "--activations", "int8",
                    "--min-agreement", "0", "--max-auc-drop", "1", "--calibration", "12")
    assert result.returncode == 2, result.stdout
    assert "apt-get install edgetpu-compiler" in result.stdout and "coral-edgetpu-stable" in result.stdout
    assert "Nothing was compiled here" in result.stdout
    assert (out / "model.tflite").is_file()  # the CPU model is there
    assert not list(out.glob("*edgetpu*"))


def test_edgetpu_with_a_compiler_on_path(trained, small_mias, tmp_path, monkeypatch):
    """A stand-in compiler (it copies the model) shows the flow; the real one is not installable here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "edgetpu_compiler"
    fake.write_text(
        "#!/bin/sh\n# args: --show_operations --out_dir DIR MODEL\n"
        'echo "Edge TPU Compiler version 0.0.0-fake"\n'
        'stem=$(basename "$4" .tflite); cp "$4" "$3/${stem}_edgetpu.tflite"; echo log > "$3/${stem}_edgetpu.log"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    out = tmp_path / "out"
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out, "--edgetpu", "--activations", "int8",
                    "--min-agreement", "0", "--max-auc-drop", "1", "--calibration", "12")
    assert result.returncode == 0, result.stdout
    manifest = load_manifest(out / "model_edgetpu.json")
    assert manifest.model_file == "model_edgetpu.tflite"
    assert read_verified_model(manifest, out / "model_edgetpu.tflite")
    assert manifest.info["edgetpu"]["compiler"] == "Edge TPU Compiler version 0.0.0-fake"
    assert manifest.outputs == load_manifest(out / "model.json").outputs


def test_a_new_model_removes_an_edgetpu_model_compiled_from_the_old_one(trained, small_mias, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_edgetpu.tflite").write_bytes(b"compiled from an older model")
    (out / "model_edgetpu.json").write_text(json.dumps({"info": {"edgetpu": {"compiled_from": "0" * 64}}}))
    result = invoke(trained / "final.keras", "--data", small_mias, "--out", out,
                    "--min-agreement", "0", "--max-auc-drop", "1", "--calibration", "12")
    assert result.returncode == 0, result.stdout
    assert "compiled from an earlier model" in result.stdout
    assert not (out / "model_edgetpu.tflite").exists() and not (out / "model_edgetpu.json").exists()


def test_named_outputs_in_another_order_are_put_in_contract_order(trained, tmp_path):
    import keras

    from convert.pipeline import check_contract, load_keras_model

    model = keras.models.load_model(trained / "final.keras", compile=False)
    shuffled = keras.Model(model.inputs, [model.outputs[3], model.outputs[2], model.outputs[0], model.outputs[1]])
    shuffled.save(tmp_path / "shuffled.keras")
    loaded = load_keras_model(tmp_path / "shuffled.keras")
    check_contract(loaded, 64)  # (1,7), (1,1), (1,1), (1,h,w) again
    image = np.full((1, 64, 64, 1), 100, np.float32)
    for a, b in zip(loaded(image), model(image)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_a_model_with_a_dynamic_batch_is_refused_with_a_hint(tmp_path):
    from convert.pipeline import check_contract
    from tiny_support import tiny_model
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match="batch_size=1"):
        check_contract(tiny_model(batch_size=None), 64)
