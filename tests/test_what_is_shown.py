"""What a health worker sees must never mislead (issue 11): overlay names and contents, the
results log on a re-run (pictures redrawn, --force superseding, renamed copies, old logs), the
same file named twice, plain words, --id, --version, the DICOM hint, and overlay permissions."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from coherence import coherence_problems
from commands import command
from edge.results import overlay
from edge import words
from edge.inference.classifier import Classifier
from edge.scan.decode import read_scan
from edge.fileio import sha256_file
from edge.inference.manifest import load_manifest, manifest_path_for
from edge.results.log import ResultsLog

OLD_SCHEMA = """
CREATE TABLE results (id INTEGER PRIMARY KEY, time TEXT NOT NULL, file TEXT NOT NULL, file_sha256 TEXT,
    model_sha256 TEXT NOT NULL, outputs TEXT, error TEXT, patient TEXT);
CREATE INDEX results_done ON results (file_sha256, model_sha256) WHERE error IS NULL;
"""


def rows(db: Path) -> list[dict]:
    with ResultsLog(db) as log:
        return log.rows()


@pytest.fixture(scope="module")
def threshold(model_file) -> float:
    return load_manifest(manifest_path_for(model_file)).triage_threshold


def test_an_overlay_name_depends_on_the_scan_alone(model_file, pgm_dir, tmp_path):
    """Issue 11, defect 1, as reported: a later run must never give woman 2's picture the name
    an earlier run gave woman 1's."""
    n = tmp_path / "n"
    for woman, scan in (("woman1", "mdb005.pgm"), ("woman2", "mdb028.pgm")):
        (n / woman).mkdir(parents=True)
        shutil.copy(pgm_dir / scan, n / woman / "left.pgm")
    heat = tmp_path / "h"
    first = run_classify(n, "--overlay", heat, "--model", model_file, "--json")
    assert first.returncode == 0, first.stderr
    pictures = {p.name: p.read_bytes() for p in heat.iterdir()}
    second = run_classify(n / "woman2", "--overlay", heat, "--model", model_file, "--json")
    assert second.returncode == 0, second.stderr
    expected = {f"left-{sha256_file(n / w / 'left.pgm')[:12]}.overlay.png" for w in ("woman1", "woman2")}
    assert set(pictures) == expected and {p.name for p in heat.iterdir()} == expected
    woman1 = f"left-{sha256_file(n / 'woman1' / 'left.pgm')[:12]}.overlay.png"
    assert (heat / woman1).read_bytes() == pictures[woman1]  # woman 1's picture untouched
    (record,) = json_lines(second.stdout)
    assert Path(record["overlay"]).name == f"left-{sha256_file(n / 'woman2' / 'left.pgm')[:12]}.overlay.png"


def drawn(monkeypatch, scan, record, result, when=None) -> tuple[list[str], int]:
    """(every text drawn on the picture, number of circles drawn)."""
    texts, circles = [], []
    real_text, real_ellipse = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.ellipse
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *a, **k: (texts.append(text), real_text(self, xy, text, *a, **k)))
    monkeypatch.setattr(ImageDraw.ImageDraw, "ellipse", lambda self, *a, **k: (circles.append(1), real_ellipse(self, *a, **k)))
    overlay.render(scan, record, result.heatmap, result.geometry, when)
    monkeypatch.undo()
    return texts, len(circles)


def test_the_picture_says_file_id_local_time_and_plain_words(monkeypatch, model_file, pgm_dir):
    classifier = Classifier(model_file)
    scan = read_scan(pgm_dir / "mdb028.pgm")
    result = classifier.classify(scan)
    record = {"file": str(pgm_dir / "mdb028.pgm"), "id": "VISIT-0042", **result.to_record()}
    logged = "2026-03-04T05:06:07.000+00:00"
    texts, _ = drawn(monkeypatch, scan, record, result, logged)
    shown = "\n".join(texts)
    assert (str(pgm_dir / "mdb028.pgm") if len(str(pgm_dir / "mdb028.pgm")) <= overlay.MAX_NAME else "/mdb028.pgm") in shown
    assert "VISIT-0042" in shown and words.local_time(logged) in shown
    assert words.HEAT_LEGEND in shown and "not a medical device" in shown
    assert words.verdict(record) in shown

    for triage, label in (("refer", "SPIC"), ("routine", "NORM")):
        shown_record = {**record, "triage": triage, "label": label}
        texts, circles = drawn(monkeypatch, scan, shown_record, result)
        first = texts[0]
        if triage == "refer":
            assert first.startswith("REFER TO A RADIOLOGIST") and "possible mass, spiculated" in first and circles == 1
        else:
            assert first.startswith("ROUTINE") and "possible" not in first and circles == 0  # nothing drawn as a finding


def test_what_is_printed_drawn_and_logged_agrees(monkeypatch, model_file, pgm_dir, tmp_path, threshold):
    scans = [pgm_dir / f"{name}.pgm" for name in ("mdb005", "mdb028", "mdb010", "mdb003", "mdb004")]
    db = tmp_path / "log.db"
    readable = run_classify(*scans, "--model", model_file, "--log", db)
    assert readable.returncode == 0, readable.stderr
    logged = [json.loads(row["outputs"]) for row in rows(db)]
    for record, line in zip(logged, readable.stdout.splitlines()):
        assert coherence_problems(record, threshold) == []
        assert words.verdict(record) in line
        if record["triage"] == "routine":
            assert "ROUTINE" in line and "REFER" not in line and "possible" not in line
        else:
            assert "REFER TO A RADIOLOGIST" in line and words.FINDINGS[record["label"]] in line


def test_a_rerun_redraws_the_pictures_of_scans_answered_from_the_log(model_file, pgm_dir, tmp_path):
    scans = [pgm_dir / "mdb005.pgm", pgm_dir / "mdb028.pgm"]
    db, heat = tmp_path / "log.db", tmp_path / "heat"
    first = run_classify(*scans, "--model", model_file, "--log", db, "--overlay", heat, "--json")
    assert first.returncode == 0, first.stderr
    originals = {r["file"]: np.asarray(Image.open(r["overlay"])).astype(int) for r in json_lines(first.stdout)}
    shutil.rmtree(heat)
    again = run_classify(*scans, "--model", model_file, "--log", db, "--overlay", heat, "--json")
    assert again.returncode == 0, again.stderr
    records = json_lines(again.stdout)
    assert all("logged" in r for r in records)
    for record in records:
        redrawn = np.asarray(Image.open(record["overlay"])).astype(int)
        assert redrawn.shape == originals[record["file"]].shape
        assert np.abs(redrawn - originals[record["file"]]).mean() < 0.5  # the same picture, from the logged heat-map
    assert len(rows(db)) == 2  # nothing logged twice


def test_an_old_log_is_migrated_kept_readable_and_says_why_no_picture(model_file, pgm_dir, tmp_path):
    scan = pgm_dir / "mdb005.pgm"
    fresh = run_classify(scan, "--model", model_file, "--json")
    (record,) = json_lines(fresh.stdout)
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(OLD_SCHEMA)
    outputs = {k: v for k, v in record.items() if k != "file"}
    old.execute("INSERT INTO results (time, file, file_sha256, model_sha256, outputs) VALUES (?, ?, ?, ?, ?)",
                ("2025-01-02T03:04:05.000+00:00", str(scan), sha256_file(scan), record["model"], json.dumps(outputs)))
    old.commit()
    old.close()

    heat = tmp_path / "heat"
    result = run_classify(scan, "--model", model_file, "--log", db, "--overlay", heat, "--json")
    assert result.returncode == 0, result.stderr
    (again,) = json_lines(result.stdout)
    assert again["logged"] == "2025-01-02T03:04:05.000+00:00" and again["label"] == record["label"]
    assert "overlay" not in again and "no overlay drawn" in again["note"] and "--force" in again["note"]
    readable = run_classify(scan, "--model", model_file, "--log", db, "--overlay", heat)
    assert "no overlay drawn" in readable.stdout
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    assert rows(db)[0]["drawing"] is None and rows(db)[0]["superseded_by"] is None

    copy = tmp_path / "copy.pgm"  # a renamed copy of a scan with an old row: logged under its path, without this run's note
    shutil.copy(scan, copy)
    (answer,) = json_lines(run_classify(copy, "--model", model_file, "--log", db, "--overlay", heat, "--json").stdout)
    assert answer["note"].count("no overlay drawn") == 1
    assert "note" not in json.loads(rows(db)[-1]["outputs"]) and rows(db)[-1]["file"] == str(copy)
    (answer,) = json_lines(run_classify(copy, "--model", model_file, "--log", db, "--overlay", heat, "--json").stdout)
    assert answer["note"].count("no overlay drawn") == 1

    forced = run_classify(scan, "--model", model_file, "--log", db, "--overlay", heat, "--force", "--json")
    (record,) = json_lines(forced.stdout)
    assert Path(record["overlay"]).is_file()


def test_force_supersedes_rows_and_keeps_the_history(model_file, pgm_dir, tmp_path):
    scans = [pgm_dir / "mdb005.pgm", pgm_dir / "mdb028.pgm"]
    db = tmp_path / "log.db"
    for _ in range(3):
        assert run_classify(*scans, "--model", model_file, "--log", db, "--force").returncode == 0
    logged = rows(db)
    assert len(logged) == 6  # the history is kept...
    standing = [row for row in logged if row["superseded_by"] is None]
    assert sorted(row["file"] for row in standing) == sorted(map(str, scans))  # ...one standing row per scan
    by_id = {row["id"]: row for row in logged}
    for row in logged:
        if row["superseded_by"] is not None:
            newer = by_id[row["superseded_by"]]
            assert newer["file_sha256"] == row["file_sha256"] and newer["id"] > row["id"]
    result = run_classify(scans[0], "--model", model_file, "--log", db, "--json")
    (record,) = json_lines(result.stdout)
    newest = max((row for row in standing if row["file"] == str(scans[0])), key=lambda row: row["id"])
    assert record["logged"] == newest["time"]


def test_the_same_file_named_twice_is_read_once(model_file, pgm_dir, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(pgm_dir / "mdb005.pgm", folder / "a.pgm")
    shutil.copy(pgm_dir / "mdb028.pgm", folder / "b.pgm")
    db = tmp_path / "log.db"
    result = run_classify(folder / "a.pgm", folder, tmp_path / "scans" / ".." / "scans" / "a.pgm", "--model", model_file, "--log", db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:2]] == [str(folder / "a.pgm"), str(folder / "b.pgm")]
    assert lines[2].startswith("2 scans:")
    assert [row["file"] for row in rows(db)] == [str(folder / "a.pgm"), str(folder / "b.pgm")]


def test_a_renamed_copy_is_answered_and_logged_under_its_new_path(model_file, pgm_dir, tmp_path):
    original, renamed = tmp_path / "visit1.pgm", tmp_path / "visit1_copy.pgm"
    shutil.copy(pgm_dir / "mdb028.pgm", original)
    db = tmp_path / "log.db"
    first = run_classify(original, "--model", model_file, "--log", db, "--json")
    shutil.copy(original, renamed)
    again = run_classify(renamed, "--model", model_file, "--log", db, "--json")
    (record,) = json_lines(again.stdout)
    assert record["file"] == str(renamed) and "logged" in record
    assert record["label"] == json_lines(first.stdout)[0]["label"]
    logged = rows(db)
    assert [row["file"] for row in logged] == [str(original), str(renamed)]
    assert logged[1]["file_sha256"] == logged[0]["file_sha256"] and logged[1]["superseded_by"] is None
    third = run_classify(renamed, "--model", model_file, "--log", db, "--json")
    assert "logged" in json_lines(third.stdout)[0] and len(rows(db)) == 2  # logged under the new path once


def test_id_goes_on_every_result(model_file, pgm_dir, tmp_path):
    scan = pgm_dir / "mdb005.pgm"
    db, heat = tmp_path / "log.db", tmp_path / "heat"
    result = run_classify(scan, "--id", "CLINIC-7/2026-12-01", "--model", model_file, "--log", db, "--overlay", heat, "--json")
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["id"] == "CLINIC-7/2026-12-01"
    assert json.loads(rows(db)[0]["outputs"])["id"] == "CLINIC-7/2026-12-01"
    readable = run_classify(scan, "--id", "CLINIC-7/2026-12-02", "--model", model_file, "--log", db)
    assert "[id CLINIC-7/2026-12-02]" in readable.stdout and "from the log" in readable.stdout
    assert json.loads(rows(db)[1]["outputs"])["id"] == "CLINIC-7/2026-12-02"  # this visit is in the log too
    bad = run_classify(scan, "--id", "", "--model", model_file)
    assert bad.returncode == 2 and "--id" in bad.stderr


def test_version_names_the_package_and_the_installed_model(model_file):
    result = run_classify("--version")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(manifest_path_for(model_file))
    text = result.stdout
    assert f"mias-edge {version('mias-edge')}" in text
    assert manifest.sha256[:12] in text
    data = manifest.info["data"]
    assert f"{data['images']} scans of {data['patients']} women" in text and data["source"] in text
    auc = manifest.info["metrics"]["auc_abnormal"]
    assert f"normal-vs-abnormal ROC AUC {auc['value']:.3f}" in text and f"{auc['ci95'][0]:.3f}" in text
    assert f"{manifest.triage_threshold:.3f}" in text
    shown = "this model does not tell malignant findings from benign ones" in text
    assert shown == (not any(manifest.heads["malignant"]["weights"]))  # the shipped model has no malignancy head


def test_a_model_without_a_malignancy_head_says_what_its_p_malignant_is(model_file):
    """Its P(malignant) is P(abnormal) times the training rate: --version and the report's figures say so; a model with a head does not."""
    import dataclasses

    from edge.inference.manifest import headline_figures

    manifest = load_manifest(manifest_path_for(model_file))
    malignant = manifest.heads["malignant"]
    without = dataclasses.replace(manifest, heads={**manifest.heads, "malignant": {"weights": [0.0] * len(malignant["weights"]), "bias": -0.5}})
    with_head = dataclasses.replace(manifest, heads={**manifest.heads, "malignant": {**malignant, "weights": [0.0, 0.3] + [0.0] * (len(malignant["weights"]) - 2)}})
    (note,) = [f for f in headline_figures(without) if "P(malignant)" in f]
    assert note == "P(malignant) is P(abnormal) x 0.38: this model does not tell malignant findings from benign ones"
    assert headline_figures(with_head) == headline_figures(without)[:-1]  # the same figures, without the note


def test_the_dicom_hint_names_the_offline_step(mias_dir, tmp_path):
    from test_bad_input import write_dicom

    scan = write_dicom(tmp_path / "scan.dcm", np.asarray(Image.open(mias_dir / "mdb005.png")).astype(np.uint16) * 16)
    code = "import sys; sys.modules['pydicom'] = None; from edge.cli.classify import main; main()"
    result = subprocess.run([sys.executable, "-c", code, str(scan)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "pip download" in line and "--no-index --find-links" in line and ".whl" in line


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_overlays_follow_the_umask(model_file, pgm_dir, tmp_path, umask):
    heat, db = tmp_path / "heat", tmp_path / "log.db"
    argv = command("edge-classify", pgm_dir / "mdb005.pgm", "--model", model_file, "--overlay", heat, "--log", db)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr
    (picture,) = heat.iterdir()
    assert picture.stat().st_mode & 0o777 == 0o666 & ~umask
    assert db.stat().st_mode & 0o777 == 0o644 & ~umask  # SQLite's own default, 0644, less the umask
