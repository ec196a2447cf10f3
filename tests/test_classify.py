"""edge-classify on real MIAS scans through the real interpreter: output contract, exit codes,
formats, overlays, folders, no network. Model: see classify_support.model_file."""

from __future__ import annotations

import io
import json
import os
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coherence import coherence_problems
from classify_support import KEYS, json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from edge import LABELS
from edge.inference.classifier import Classifier, Quantization, _input_table
from edge.scan.decode import read_scan
from edge.errors import EdgeError
from edge.fileio import sha256_file
from edge.inference.manifest import load_manifest, manifest_path_for
from edge.preprocess import Geometry

SCANS = ("mdb005", "mdb028", "mdb010")  # CIRC masses; mdb028 (malignant) at row 1024-314, col 338


@pytest.fixture(scope="module")
def classifier(model_file) -> Classifier:
    return Classifier(model_file, threads=2)


@pytest.fixture(scope="module")
def scans(pgm_dir) -> list[Path]:
    return [pgm_dir / f"{name}.pgm" for name in SCANS]


def test_json_lines_follow_the_contract(model_file, scans):
    result = run_classify(*scans, "--model", model_file, "--json")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    records = json_lines(result.stdout)
    manifest = load_manifest(manifest_path_for(model_file))
    assert [r["file"] for r in records] == [str(p) for p in scans]
    for record in records:
        assert KEYS <= set(record), record
        assert record["label"] in LABELS
        assert coherence_problems(record, manifest.triage_threshold) == []
        assert record["model"] == manifest.sha256
        peak = record["heatmap_peak"]
        assert 0 <= peak["row"] < 1024 and 0 <= peak["col"] < 1024


def test_cli_answer_equals_the_library_answer(model_file, classifier, scans):
    result = run_classify(scans[1], "--model", model_file, "--json")
    (record,) = json_lines(result.stdout)
    direct = classifier.classify(read_scan(scans[1])).to_record()
    assert {k: record[k] for k in direct} == direct


def test_the_steps_one_by_one_give_the_same_result(classifier, scans):
    scan = read_scan(scans[0])
    prepared = classifier.prepare(scan)
    classifier.set_input(prepared.image)
    classifier.invoke()
    stepwise = classifier.postprocess(classifier.read_outputs(), prepared)
    assert stepwise.to_record() == classifier.classify(scan).to_record()
    assert stepwise.heatmap.shape == classifier.heatmap_shape
    assert stepwise.heatmap.min() >= 0.0 and stepwise.heatmap.max() <= 1.0


def test_readable_output_one_line_per_scan_and_a_summary(model_file, scans):
    result = run_classify(*scans, "--model", model_file)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for path, line in zip(scans, lines):
        assert line.startswith(str(path)) and "P(abnormal)" in line and ("REFER" in line or "ROUTINE" in line)
    assert lines[len(scans)].startswith("3 scans:")
    assert "not a medical device" in result.stdout
    assert result.stderr == ""  # not even the runtime's INFO chatter


def test_a_failed_scan_is_one_error_and_the_batch_goes_on(model_file, scans, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    missing = tmp_path / "missing.pgm"
    args = [scans[0], text, missing, scans[1]]
    result = run_classify(*args, "--model", model_file, "--json")
    assert result.returncode == 1
    no_traceback(result)
    records = json_lines(result.stdout)
    assert [r["file"] for r in records] == [str(p) for p in args]
    assert "error" not in records[0] and "error" not in records[3]
    assert set(records[1]) == {"file", "error"} and str(text) in records[1]["error"]
    assert set(records[2]) == {"file", "error"} and str(missing) in records[2]["error"]

    readable = run_classify(*args, "--model", model_file)
    assert readable.returncode == 1
    errors = [line for line in readable.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and str(text) in errors[0] and str(missing) in errors[1]
    assert "2 failed" in readable.stdout


def test_an_unexpected_exception_in_one_scan_does_not_end_the_batch(classifier, scans, monkeypatch):
    from edge.results import batch
    real = classifier.answer
    calls = []

    def flaky(own, other=None):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a bug")
        return real(own, other)

    monkeypatch.setattr(classifier, "answer", flaky)
    out, err = io.StringIO(), io.StringIO()
    sources = [batch.Source(str(p), p) for p in scans[:2]]
    tally = batch.run_batch(classifier, sources, batch.Options(as_json=True, out=out, err=err))
    records = json_lines(out.getvalue())
    assert tally.failed == 1 and tally.classified == 1
    assert "ZeroDivisionError" in records[0]["error"] and "label" in records[1]


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "give at least one scan"),
        (["{scan}", "--device", "pdp11"], "known devices: coral-devboard, coral-usb, rpi4, rpi5, x86"),
        (["{scan}", "--model", "{tmp}/nothing.tflite"], "model file not found"),
        (["{scan}", "--device", "x86", "--config", "{tmp}/b.toml"], "not allowed with argument"),
        (["{scan}", "--frobnicate"], "unrecognized arguments"),
        (["{scan}", "--force"], "only makes sense with --log"),
        (["{scan}", "--threads", "0"], "--threads"),
    ],
)
def test_usage_and_setup_errors_exit_2(args, words, scans, tmp_path):
    args = [a.format(scan=scans[0], tmp=tmp_path) for a in args]
    result = run_classify(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr
    no_traceback(result)
    assert result.stdout == ""


def test_a_mismatched_or_missing_manifest_is_refused(model_file, scans, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(model_file, folder / "model.tflite")
    raw = json.loads(manifest_path_for(model_file).read_text())
    raw["sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(raw))
    result = run_classify(scans[0], "--model", folder / "model.tflite", "--json")
    assert result.returncode == 2 and "does not match its manifest" in result.stderr
    assert result.stdout == ""
    (folder / "model.json").unlink()
    result = run_classify(scans[0], "--model", folder / "model.tflite")
    assert result.returncode == 2 and "manifest not found" in result.stderr
    no_traceback(result)


def test_a_manifest_that_disagrees_with_the_model_shape_is_refused(model_file, tmp_path):
    from edge.fileio import sha256_file

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(model_file, folder / "model.tflite")
    raw = json.loads(manifest_path_for(model_file).read_text())
    raw["input_size"] = raw["input_size"] * 2
    raw["sha256"] = sha256_file(model_file)
    (folder / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match="input shape"):
        Classifier(folder / "model.tflite")
    raw["input_size"] //= 2
    raw["outputs"] = {"classes": 0, "abnormal": 0, "malignant": 1, "heatmap": 2}
    (folder / "model.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeError, match="output"):
        Classifier(folder / "model.tflite")


def test_16_bit_png_and_rgb_jpeg_give_the_class_of_the_pgm(classifier, scans, tmp_path):
    for pgm in scans:
        scan = read_scan(pgm)
        assert scan.dtype == np.uint8
        Image.fromarray(scan.astype(np.uint16) * 257).save(tmp_path / "s16.png")
        Image.fromarray(np.stack([scan] * 3, axis=-1)).save(tmp_path / "rgb.jpg", quality=95)
        as_16 = read_scan(tmp_path / "s16.png")
        assert as_16.dtype == np.uint16
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            as_jpeg = read_scan(tmp_path / "rgb.jpg")
        assert any("converted to greyscale" in str(w.message) for w in caught)
        base = classifier.classify(scan)
        top, second = sorted(base.probabilities.values())[-1:-3:-1]
        for other in (classifier.classify(as_16), classifier.classify(as_jpeg)):
            # a 16-bit or JPEG copy differs by a grey level or two after preparation: the class
            # may only change where the PGM's top two classes are a near tie
            assert other.label == base.label or top - second < 0.05, (pgm, base.probabilities, other.probabilities)
            assert max(abs(other.probabilities[k] - base.probabilities[k]) for k in LABELS) < 0.06, pgm
            assert abs(other.abnormal - base.abnormal) < 0.05
            assert other.triage == base.triage or abs(base.abnormal - classifier.manifest.triage_threshold) < 0.05


def test_a_colour_scan_is_classified_with_a_warning_line(model_file, scans, tmp_path):
    scan = read_scan(scans[0])
    Image.fromarray(np.stack([scan] * 3, axis=-1)).save(tmp_path / "colour.png")
    result = run_classify(tmp_path / "colour.png", "--model", model_file, "--json")
    assert result.returncode == 0
    assert "warning:" in result.stderr and "converted to greyscale" in result.stderr
    assert json_lines(result.stdout)[0]["label"] in LABELS


def test_folders_expand_sorted_recursively_skipping_hidden_files_and_loops(model_file, pgm_dir, tmp_path):
    folder = tmp_path / "usb"
    (folder / "b_sub").mkdir(parents=True)
    shutil.copy(pgm_dir / "mdb010.pgm", folder / "c.pgm")
    shutil.copy(pgm_dir / "mdb005.pgm", folder / "a.pgm")
    shutil.copy(pgm_dir / "mdb028.pgm", folder / "b_sub" / "x.pgm")
    (folder / "._a.pgm").write_bytes(b"\0" * 4096)  # a Mac's AppleDouble file: not a scan
    (folder / "readme.txt").write_text("not a scan")
    os.symlink(folder, folder / "b_sub" / "loop")  # back to a parent: must not recurse forever
    result = run_classify(folder, "--model", model_file, "--json")
    records = json_lines(result.stdout)
    classified = [r["file"] for r in records if "error" not in r]
    assert classified == [str(folder / "a.pgm"), str(folder / "b_sub" / "x.pgm"), str(folder / "c.pgm")]
    errors = [r for r in records if "error" in r]
    assert len(errors) == 1 and "loop" in errors[0]["error"] and errors[0]["file"] == str(folder / "b_sub" / "loop")
    assert result.returncode == 1
    no_traceback(result)


def test_a_folder_without_scans_is_an_error(model_file, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_classify(tmp_path / "empty", "--model", model_file, "--json")
    assert result.returncode == 1
    assert "no scans in this folder" in json_lines(result.stdout)[0]["error"]


def test_overlay_png_size_and_atomic_write(model_file, scans, tmp_path):
    out = tmp_path / "overlays"
    small = tmp_path / "small.png"
    Image.fromarray(read_scan(scans[0])[:, ::2]).save(small)  # 1024 x 512, a non-square scan
    result = run_classify(scans[1], small, "--model", model_file, "--overlay", out, "--json")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    named = {Path(r["file"]).stem: Path(r["overlay"]).name for r in records}
    assert named == {"mdb028": f"mdb028-{sha256_file(scans[1])[:12]}.overlay.png", "small": f"small-{sha256_file(small)[:12]}.overlay.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(named.values())  # no temp files left
    with Image.open(out / named["mdb028"]) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.width == 1024 and 1024 < picture.height < 1024 + 200  # the scan plus a text band
        band = picture.height - 1024
        body = np.asarray(picture)[band:].astype(int)
    grey = read_scan(scans[1]).astype(int)
    assert np.abs(body.mean(axis=2) - grey).mean() < 60  # it is this scan, tinted, not something else
    with Image.open(out / named["small"]) as picture:
        assert picture.width == 512 and picture.height > 1024
    assert records[0]["overlay"] == str(out / named["mdb028"])


def test_heat_map_lands_where_the_geometry_says_also_when_mirrored():
    from edge.results.overlay import heat_on_scan

    for flipped in (False, True):
        geometry = Geometry(scan_shape=(1000, 800), flipped=flipped, top=100, left=50, side=700, size=64)
        heat = np.zeros((8, 8), np.float32)
        heat[2, 5] = 1.0
        on_scan = heat_on_scan(heat, geometry, (500, 400))  # a half-size picture
        row, col = np.unravel_index(np.argmax(on_scan), on_scan.shape)
        want_row, want_col = geometry.to_scan((2 + 0.5) * 8 - 0.5, (5 + 0.5) * 8 - 0.5)
        assert abs(row * 2 - want_row) <= 45 and abs(col * 2 - want_col) <= 45, (flipped, row, col)
        assert on_scan[: 100 // 2 - 2].max() == 0.0  # nothing above the crop box


def test_heat_map_peak_is_reported_in_scan_coordinates(classifier, scans):
    result = classifier.classify(read_scan(scans[1]))
    row, col, value = result.heatmap_peak()
    i, j = np.unravel_index(np.argmax(result.heatmap), result.heatmap.shape)
    h, w = result.heatmap.shape
    back = result.geometry.to_input(row, col)
    assert abs(back[0] - (i + 0.5) * result.geometry.size / h) <= 1.5
    assert abs(back[1] - (j + 0.5) * result.geometry.size / w) <= 1.5
    assert value == pytest.approx(float(result.heatmap.max()))


def test_input_quantization_table():
    assert _input_table(Quantization(1.0, 0), np.dtype(np.uint8), Path("m")) is None
    table = _input_table(Quantization(1.0, -128), np.dtype(np.int8), Path("m"))
    assert table.dtype == np.int8 and table[0] == -128 and table[255] == 127
    table = _input_table(Quantization(2.0, -128), np.dtype(np.int8), Path("m"))
    assert table[200] == -28
    table = _input_table(Quantization(255 / 32767, 0), np.dtype(np.int16), Path("m"))  # a 16x8 model's input
    assert table.dtype == np.int16 and table[0] == 0 and table[255] == 32767 and len(set(table.tolist())) == 256
    with pytest.raises(EdgeError, match="float32 is not uint8, int8 or int16"):
        _input_table(Quantization(1.0, 0), np.dtype(np.float32), Path("m"))
    with pytest.raises(EdgeError, match="0..255"):
        _input_table(Quantization(1 / 255, 0), np.dtype(np.uint8), Path("m"))


def test_no_network_during_a_run(model_file, scans, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys
            def no_network(event, args):  # every socket made or used by Python code, C extensions included
                if event.startswith("socket."):
                    raise OSError(f"network access attempted ({event})")
            sys.addaudithook(no_network)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    probe = run_classify("--help", env=env)  # the blocker is active in the child: prove it can fail
    import subprocess
    import sys

    blocked = subprocess.run([sys.executable, "-c", "import socket; socket.socket()"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "network access attempted" in blocked.stderr
    assert probe.returncode == 0
    result = run_classify(*scans, "--model", model_file, "--json", "--overlay", tmp_path / "o", "--log", tmp_path / "l.db", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == len(scans)


def test_only_what_the_options_need_is_imported(model_file, scans):
    """Cold start: one scan with --json loads no camera, DICOM, SQLite, drawing or TensorFlow code, and
    numpy gets one BLAS thread (`edge.cli.common.one_blas_thread`: a second one took the cores from the invoke)."""
    import os
    import subprocess
    import sys

    code = textwrap.dedent(
        f"""
        import sys
        sys.argv = ["edge-classify", {str(scans[0])!r}, "--model", {str(model_file)!r}, "--json"]
        from edge.cli.classify import main
        try:
            main()
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        heavy = {{"picamera2", "pydicom", "sqlite3", "tensorflow", "keras", "matplotlib", "PIL.ImageDraw", "edge.results.overlay"}}
        print("loaded:", sorted(heavy & set(sys.modules)), file=sys.stderr)
        from threadpoolctl import threadpool_info
        print("blas threads:", [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"], file=sys.stderr)
        """
    )
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stderr and "blas threads: [1]" in result.stderr, result.stderr


def test_help_lists_every_option():
    result = run_classify("--help")
    assert result.returncode == 0
    for option in ("--model", "--device", "--config", "--json", "--overlay", "--log", "--threads", "--camera", "--force", "--log-patient-id",
                   "--exam", "--exams", "--id", "--version"):
        assert option in result.stdout


def test_a_blank_scan_gets_a_quality_note_from_the_library_and_is_refused_by_the_command(classifier, model_file, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((600, 500), np.uint8)).save(blank)
    record = classifier.classify(read_scan(blank)).to_record()
    assert record["quality"] and record["label"] in LABELS
    result = run_classify(blank, "--model", model_file)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {blank}: does not look like a mammogram: blank or nearly uniform image"]


def test_without_a_packaged_model_the_error_says_what_to_do(monkeypatch, tmp_path):
    from edge.inference import classifier as classifier_module
    from edge.cli.classify import _classifier
    from edge.inference.device import default_config

    monkeypatch.setattr(classifier_module, "default_model_path", lambda variant="model.tflite": tmp_path / variant)
    with pytest.raises(EdgeError, match="no packaged model model.tflite.*--model FILE"):
        _classifier(default_config(), None, None)


def test_the_tiny_contract_model_runs_too(tiny_model_dir, scans):
    """Whatever model ships, the runner keeps working with any model that obeys the contract."""
    result = run_classify(*scans[:2], "--model", tiny_model_dir / "model.tflite", "--json")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == 2 and all(KEYS <= set(r) for r in records)


def test_overlays_written_into_the_scan_folder_are_not_taken_for_scans(model_file, pgm_dir, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(pgm_dir / "mdb005.pgm", folder / "a.pgm")
    first = run_classify(folder, "--model", model_file, "--overlay", folder, "--json")
    assert Path(json_lines(first.stdout)[0]["overlay"]).is_file()
    again = run_classify(folder, "--model", model_file, "--overlay", folder, "--json")
    assert [r["file"] for r in json_lines(again.stdout)] == [str(folder / "a.pgm")] == [r["file"] for r in json_lines(first.stdout)]


def test_scans_and_options_in_any_order(model_file, scans):
    result = run_classify(scans[0], "--json", scans[1], "--model", model_file, scans[2])
    assert result.returncode == 0, result.stderr
    assert [r["file"] for r in json_lines(result.stdout)] == [str(p) for p in scans]


def test_a_batch_runs_two_scans_at_once_where_the_kernels_use_one_thread(model_file, tiny_model_dir, scans, monkeypatch):
    """A 16x8 model (one-thread int16 kernels) gets a second interpreter and a batch reads two scans at
    once on the two, with the same answers, in the same order, as with one; a model on multi-threaded
    int8 kernels gets none, and neither does one on a one-core machine."""
    from edge.results import batch
    if Classifier(model_file).input_dtype != np.int16:
        pytest.skip("the model under test is not 16x8")

    def answers(classifier) -> list[dict]:
        out = io.StringIO()
        batch.run_batch(classifier, [batch.Source(str(p), p) for p in scans], batch.Options(as_json=True, out=out, err=io.StringIO()))
        return json_lines(out.getvalue())

    classifier = Classifier(model_file, threads=2)
    assert classifier.two_at_once
    twins = []
    real_twin = classifier.twin

    def counted():
        twins.append(real_twin())
        return twins[-1]

    monkeypatch.setattr(classifier, "twin", counted)
    both = answers(classifier)
    assert len(twins) == 1 and twins[0] is not None and twins[0].interpreter is not classifier.interpreter
    alone = Classifier(model_file, threads=2)
    monkeypatch.setattr(alone, "twin", lambda: None)
    assert answers(alone) == both and len(both) == len(scans)
    assert Classifier(tiny_model_dir / "model.tflite", kernels="builtin").twin() is None  # int8, two-thread kernels
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert not classifier.two_at_once and classifier.twin() is None
