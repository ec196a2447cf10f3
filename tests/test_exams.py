"""Reading a woman's scans together (edge.results.exams, edge.results.batch) through the real `edge-classify`.

The model is the shipped one with a `reading` section added to a copy of its manifest (the
model bytes, hence the sha256, are unchanged), so the answer beside the other breast differs
from the lone answer and pairing shows in every output: JSON, readable lines, log, overlays.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from classify_support import SHIPPED, json_lines, no_traceback, run_classify
from coherence import coherence_problems
from edge.inference.classifier import Classifier
from edge.scan.decode import read_scan
from edge.results.log import ResultsLog

READING = {"single": {"weights": [1.0, 0.5], "bias": 0.0},
           "paired": {"weights": [1.0, 0.5, -0.8, -0.4], "bias": 0.3}}


def _shipped_model_with(folder: Path, reading: dict | None) -> Path:
    """The shipped model.tflite in `folder`, its manifest with `reading` as the reading stage (None: none)."""
    if not SHIPPED.is_file():
        pytest.skip("no shipped model")
    shutil.copy(SHIPPED, folder / "model.tflite")
    manifest = json.loads(SHIPPED.with_suffix(".json").read_text())
    manifest["reading"] = reading
    (folder / "model.json").write_text(json.dumps(manifest, indent=2))  # same bytes: the sha256 still holds
    return folder / "model.tflite"


@pytest.fixture(scope="module")
def paired_model(tmp_path_factory) -> Path:
    return _shipped_model_with(tmp_path_factory.mktemp("paired_model"), READING)


@pytest.fixture(scope="module")
def lone_model(tmp_path_factory) -> Path:
    return _shipped_model_with(tmp_path_factory.mktemp("lone_model"), None)


@pytest.fixture(scope="module")
def classifier(paired_model) -> Classifier:
    return Classifier(paired_model, threads=2)


def evidence(classifier: Classifier, path: Path):
    prepared = classifier.prepare(read_scan(path))
    return classifier.evidence(classifier.run(prepared.image), prepared)


def answer_part(record: dict) -> dict:
    return {k: record[k] for k in ("label", "probabilities", "abnormal", "malignant", "triage", "heatmap_peak")}


def library(classifier, own: Path, other: Path | None = None) -> dict:
    return answer_part(classifier.answer(evidence(classifier, own), None if other is None else evidence(classifier, other)).to_record())


def classify(model: Path, *args) -> tuple[list[dict], object]:
    result = run_classify(*args, "--model", model, "--json")
    no_traceback(result)
    return json_lines(result.stdout), result


def test_mias_names_pair_and_the_paired_answer_differs_from_the_lone_one(paired_model, classifier, mias_dir):
    right, left = mias_dir / "mdb005.png", mias_dir / "mdb006.png"
    records, result = classify(paired_model, right, left)
    assert result.returncode == 0, result.stderr
    assert [r["file"] for r in records] == [str(right), str(left)]
    assert [r["woman"] for r in records] == ["mias-3", "mias-3"]
    assert [r["contralateral"] for r in records] == [str(left), str(right)]
    assert not any("note" in r for r in records)
    assert answer_part(records[0]) == library(classifier, right, left)
    assert answer_part(records[1]) == library(classifier, left, right)
    threshold = classifier.manifest.triage_threshold
    assert all(coherence_problems(r, threshold) == [] for r in records)

    (alone,), result = classify(paired_model, right)
    assert result.returncode == 0
    assert alone["contralateral"] is None and alone["woman"] == "mias-3"
    assert alone["abnormal"] != records[0]["abnormal"]  # the other breast changes the answer
    assert answer_part(alone) == library(classifier, right)


def test_a_lone_scan_gets_the_library_lone_answer(paired_model, classifier, mias_dir, tmp_path):
    plain = tmp_path / "visit.png"  # not a MIAS name: no woman known
    shutil.copy(mias_dir / "mdb007.png", plain)
    records, result = classify(paired_model, plain, mias_dir / "mdb009.png")
    assert result.returncode == 0, result.stderr
    assert records[0]["contralateral"] is None and records[0]["woman"] is None and "note" not in records[0]
    assert records[1]["contralateral"] is None and records[1]["woman"] == "mias-5"  # its partner mdb010 not given
    assert answer_part(records[0]) == library(classifier, plain)
    assert answer_part(records[1]) == library(classifier, mias_dir / "mdb009.png")


def test_exam_pairs_two_scans_whatever_their_names(paired_model, classifier, mias_dir, tmp_path):
    left, right = tmp_path / "left.png", tmp_path / "right.png"
    shutil.copy(mias_dir / "mdb006.png", left)
    shutil.copy(mias_dir / "mdb005.png", right)
    records, result = classify(paired_model, "--exam", left, right)
    assert result.returncode == 0, result.stderr
    assert {r["file"]: r["contralateral"] for r in records} == {str(left): str(right), str(right): str(left)}
    assert {r["woman"] for r in records} == {"exam-1"}
    by_file = {r["file"]: r for r in records}
    assert answer_part(by_file[str(right)]) == library(classifier, right, left)

    # given as PATHs too: still paired, each scan once
    records, result = classify(paired_model, tmp_path, "--exam", left, right)
    assert result.returncode == 0
    assert sorted(r["file"] for r in records) == [str(left), str(right)]
    assert all(r["contralateral"] for r in records)


def test_exams_csv_paths_are_relative_to_the_csv(paired_model, mias_dir, tmp_path):
    scans = tmp_path / "visit" / "scans"
    scans.mkdir(parents=True)
    for name, source in (("a_left.png", "mdb006.png"), ("a_right.png", "mdb005.png"), ("b_right.png", "mdb007.png")):
        shutil.copy(mias_dir / source, scans / name)
    sheet = tmp_path / "visit" / "exams.csv"
    sheet.write_text("woman,left,right\nA,scans/a_left.png,scans/a_right.png\nB,,scans/b_right.png\n")
    records, result = classify(paired_model, "--exams", sheet)
    assert result.returncode == 0, result.stderr
    by_file = {Path(r["file"]).name: r for r in records}
    assert set(by_file) == {"a_left.png", "a_right.png", "b_right.png"}
    assert Path(by_file["a_left.png"]["contralateral"]).name == "a_right.png"
    assert Path(by_file["a_right.png"]["contralateral"]).name == "a_left.png"
    assert by_file["a_left.png"]["woman"] == "A"
    assert by_file["b_right.png"]["woman"] == "B" and by_file["b_right.png"]["contralateral"] is None


def test_bad_exams_csv_rows_are_named_in_one_error(paired_model, tmp_path):
    sheet = tmp_path / "exams.csv"
    sheet.write_text("woman,left,right\nA,l.png,r.png\nB,,\nC,x.png\n,y.png,z.png\n")
    result = run_classify("--exams", sheet, "--model", paired_model)
    no_traceback(result)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {sheet}:")
    assert "line 3" in lines[0] and "line 4" in lines[0] and "line 5" in lines[0] and "line 2" not in lines[0]

    sheet.write_text("patient,l,r\nA,l.png,r.png\n")
    result = run_classify("--exams", sheet, "--model", paired_model)
    assert result.returncode == 2 and "header woman,left,right" in result.stderr

    result = run_classify("--exams", tmp_path / "missing.csv", "--model", paired_model)
    assert result.returncode == 2 and "exams file not found" in result.stderr


def test_two_scans_of_one_side_are_not_guessed_between(paired_model, classifier, mias_dir, tmp_path):
    """Two left scans and one right: the right is read alone with a note (which left would be a guess)."""
    for name, source in (("l1.png", "mdb006.png"), ("l2.png", "mdb008.png"), ("r.png", "mdb005.png")):
        shutil.copy(mias_dir / source, tmp_path / name)
    sheet = tmp_path / "exams.csv"
    sheet.write_text("woman,left,right\nW,l1.png,r.png\nW,l2.png,\n")
    records, result = classify(paired_model, "--exams", sheet)
    assert result.returncode == 0, result.stderr
    by_file = {Path(r["file"]).name: r for r in records}
    right = by_file["r.png"]
    assert right["contralateral"] is None and "2 scans of the other breast" in right["note"]
    assert answer_part(right) == library(classifier, tmp_path / "r.png")
    assert Path(by_file["l1.png"]["contralateral"]).name == "r.png"


def test_a_partner_that_fails_leaves_the_other_read_alone_with_a_note(paired_model, classifier, mias_dir, tmp_path):
    right, left = tmp_path / "mdb005.png", tmp_path / "mdb006.png"
    shutil.copy(mias_dir / "mdb005.png", right)
    left.write_bytes(b"not an image")
    records, result = classify(paired_model, right, left)
    assert result.returncode == 1
    assert [r["file"] for r in records] == [str(right), str(left)]
    assert records[0]["contralateral"] is None and "mdb006.png" in records[0]["note"] and "read alone" in records[0]["note"]
    assert answer_part(records[0]) == library(classifier, right)
    assert set(records[1]) == {"file", "error"} and str(left) in records[1]["error"]

    readable = run_classify(right, left, "--model", paired_model)
    assert readable.returncode == 1
    out = readable.stdout.splitlines()
    assert out[0].startswith(f"{right}  ") and "read alone" in out[0]
    assert [line for line in readable.stderr.splitlines() if line.startswith("error:")] == [f"error: {records[1]['error']}"]


def test_pairing_keeps_one_line_per_scan_the_log_and_the_overlays(paired_model, mias_dir, tmp_path):
    scans = [mias_dir / f"mdb{n:03d}.png" for n in (5, 6, 7, 9, 10)]  # women 3 (both), 4 (right only), 5 (both)
    db, heat = tmp_path / "log.db", tmp_path / "heat"
    readable = run_classify(*scans, "--model", paired_model, "--log", db, "--overlay", heat)
    no_traceback(readable)
    assert readable.returncode == 0, readable.stderr
    lines = readable.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:5]] == [str(p) for p in scans]  # input order, one line each
    assert lines[5].startswith("5 scans:")
    assert sum("read beside" in line for line in lines[:5]) == 4
    with ResultsLog(db) as log:
        rows = log.rows()
    assert [row["file"] for row in rows] == [str(p) for p in scans]
    contralateral = [json.loads(row["outputs"])["contralateral"] for row in rows]
    assert contralateral == [str(scans[1]), str(scans[0]), None, str(scans[4]), str(scans[3])]
    assert len(list(heat.glob("*.png"))) == 5

    again, result = classify(paired_model, *scans, "--log", db)
    assert result.returncode == 0
    assert all("logged" in r for r in again)  # same partners: answered from the log
    alone, result = classify(paired_model, scans[0], "--log", db)
    assert "logged" not in alone[0] and alone[0]["contralateral"] is None  # read alone now: not the paired answer
    with ResultsLog(db) as log:
        assert len(log.rows()) == 6


def test_a_model_without_a_reading_stage_reads_every_scan_alone(lone_model, mias_dir, tmp_path):
    for name, source in (("l1.png", "mdb006.png"), ("l2.png", "mdb008.png"), ("r.png", "mdb005.png")):
        shutil.copy(mias_dir / source, tmp_path / name)
    sheet = tmp_path / "exams.csv"
    sheet.write_text("woman,left,right\nW,l1.png,r.png\nW,l2.png,\n")
    records, result = classify(lone_model, "--exams", sheet)
    assert result.returncode == 0, result.stderr
    assert all(r["contralateral"] is None and "note" not in r for r in records)  # no pairing note: nothing was paired



def test_a_scan_named_twice_does_not_become_two_scans_of_one_side(paired_model, mias_dir):
    right, left = mias_dir / "mdb005.png", mias_dir / "mdb006.png"
    records, result = classify(paired_model, right, left, mias_dir / "." / "mdb005.png")
    assert result.returncode == 0, result.stderr
    assert [r["file"] for r in records] == [str(right), str(left)]
    assert [r["contralateral"] for r in records] == [str(left), str(right)] and not any("note" in r for r in records)
