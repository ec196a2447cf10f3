"""edge-classify --log: one SQLite row per scan, WAL, skip on re-run, --force, no pixels."""

from __future__ import annotations

import json
import sqlite3

import pytest

from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from edge.errors import EdgeError
from edge.fileio import sha256_file
from edge.inference.manifest import load_manifest, manifest_path_for
from edge.results.log import ResultsLog

SCANS = ("mdb005", "mdb028", "mdb010")


@pytest.fixture()
def scans(pgm_dir):
    return [pgm_dir / f"{name}.pgm" for name in SCANS]


def rows(db) -> list[dict]:
    with ResultsLog(db) as log:
        return log.rows()


def test_rows_skip_on_rerun_and_force(model_file, scans, tmp_path):
    db = tmp_path / "results.db"
    missing = tmp_path / "gone.pgm"
    first = run_classify(*scans, missing, "--model", model_file, "--log", db, "--json")
    assert first.returncode == 1
    no_traceback(first)
    model_sha = load_manifest(manifest_path_for(model_file)).sha256
    logged = rows(db)
    assert [r["file"] for r in logged] == [str(p) for p in [*scans, missing]]
    for row, path, record in zip(logged, scans, json_lines(first.stdout)):
        assert row["file_sha256"] == sha256_file(path)
        assert row["model_sha256"] == model_sha
        assert row["error"] is None and row["patient"] is None
        outputs = json.loads(row["outputs"])
        assert outputs == {k: v for k, v in record.items() if k != "file"}
        assert len(row["outputs"]) < 2000  # outputs, never pixels
        assert row["time"].endswith("+00:00")
    assert logged[3]["error"] and str(missing) in logged[3]["error"] and logged[3]["outputs"] is None

    again = run_classify(*scans, "--model", model_file, "--log", db, "--json")
    assert again.returncode == 0
    records = json_lines(again.stdout)
    assert all("logged" in r for r in records)  # answered from the log, not run again
    assert [r["label"] for r in records] == [json.loads(r["outputs"])["label"] for r in logged[:3]]
    assert len(rows(db)) == 4

    readable = run_classify(scans[0], "--model", model_file, "--log", db)
    assert "from the log" in readable.stdout and "1 from the results log" in readable.stdout

    forced = run_classify(*scans, "--model", model_file, "--log", db, "--json", "--force")
    assert forced.returncode == 0
    assert not any("logged" in r for r in json_lines(forced.stdout))
    assert len(rows(db)) == 7


def test_a_changed_file_or_another_model_is_run_again(model_file, scans, tmp_path):
    db = tmp_path / "results.db"
    with ResultsLog(db) as log:
        log.add(str(scans[0]), sha256_file(scans[0]), "f" * 64, {"label": "NORM"})  # another model
    result = run_classify(scans[0], "--model", model_file, "--log", db, "--json")
    assert "logged" not in json_lines(result.stdout)[0]
    assert len(rows(db)) == 2


def test_the_database_is_wal_and_sound(model_file, scans, tmp_path):
    db = tmp_path / "results.db"
    run_classify(scans[0], "--model", model_file, "--log", db)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_that_is_not_a_database_is_a_setup_error(model_file, scans, tmp_path):
    bad = tmp_path / "results.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    result = run_classify(scans[0], "--model", model_file, "--log", bad)
    assert result.returncode == 2 and "results log" in result.stderr
    no_traceback(result)
    with pytest.raises(EdgeError, match="does not exist"):
        ResultsLog(tmp_path / "no" / "such" / "folder.db")


def test_every_row_is_committed_before_the_next_scan(tmp_path):
    db = tmp_path / "results.db"
    log = ResultsLog(db)
    log.add("a.pgm", "1" * 64, "m" * 64, {"label": "NORM"})
    # another connection (another process after a kill -9) sees the row while this one is still open
    with sqlite3.connect(db) as other:
        assert other.execute("SELECT count(*) FROM results").fetchone()[0] == 1
    assert log.find("1" * 64, "m" * 64)["label"] == "NORM"
    assert log.find("1" * 64, "x" * 64) is None
    log.close()


def test_patient_id_is_logged_only_when_asked(model_file, tmp_path, mias_dir):
    pytest.importorskip("pydicom")
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = "PID-4711", "Doe^Jane"
    ds.Modality = "MG"
    from PIL import Image

    pixels = np.asarray(Image.open(mias_dir / "mdb005.png")).astype(np.uint16) * 16  # a real scan, 12 bits stored
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    scan = tmp_path / "scan.dcm"
    ds.save_as(scan, enforce_file_format=True)

    plain, asked = tmp_path / "plain.db", tmp_path / "asked.db"
    result = run_classify(scan, "--model", model_file, "--log", plain, "--json")
    assert result.returncode == 0, result.stderr
    assert "PID-4711" not in result.stdout + result.stderr and "Doe" not in result.stdout
    assert b"PID-4711" not in plain.read_bytes() and rows(plain)[0]["patient"] is None
    result = run_classify(scan, "--model", model_file, "--log", asked, "--log-patient-id", "--json")
    assert result.returncode == 0, result.stderr
    assert "PID-4711" not in result.stdout  # the log only, not the output
    assert json.loads(rows(asked)[0]["patient"]) == {"PatientID": "PID-4711"}
    assert "Doe" not in json.dumps(rows(asked))


def test_a_file_name_that_is_not_utf8_is_logged_not_fatal(model_file, scans, tmp_path):
    import os
    import shutil

    folder = tmp_path / "usb"
    folder.mkdir()
    shutil.copy(scans[0], os.fsencode(folder) + b"/scan\xff.pgm")  # Latin-1 bytes from an old stick
    shutil.copy(scans[1], folder / "z.pgm")
    db = tmp_path / "results.db"
    result = run_classify(folder, "--model", model_file, "--log", db, "--overlay", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    logged = rows(db)
    assert [r["file"] for r in logged] == [f"{folder}/scan\\udcff.pgm", str(folder / "z.pgm")]
    again = run_classify(folder, "--model", model_file, "--log", db, "--json")
    assert all("logged" in r for r in json_lines(again.stdout))
