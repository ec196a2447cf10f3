"""Trust: a damaged or tampered model is refused, classification never needs the network, and
the results log keeps hashes and outputs, never pixels or (unless asked) patient identity.

Everything runs the real `edge-classify` in a subprocess, on real scans, with the tiny int8
model of the `tiny_model_dir` fixture (real manifest, real interpreter, answers meaningless).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from commands import command
from test_bad_input import record_figures, write_dicom

SCANS = ("mdb005.png", "mdb006.png")


def classify(*args: str | Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command("edge-classify", *args), capture_output=True, text=True, timeout=timeout, env=env)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny model folder, free to be damaged; returns the .tflite path."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder / "model.tflite"


@pytest.fixture(scope="module")
def scans(mias_dir) -> list[Path]:
    return [mias_dir / name for name in SCANS]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_manifest(change):
    def edit(model: Path) -> None:
        manifest = model.with_suffix(".json")
        raw = json.loads(manifest.read_text())
        change(raw)
        manifest.write_text(json.dumps(raw))

    return edit


def _truncate_and_rehash(model: Path) -> None:
    """Half a model with a manifest updated to its hash: the checksum passes, the runtime must refuse."""
    import hashlib

    _truncate(model)
    _edit_manifest(lambda raw: raw.update(sha256=hashlib.sha256(model.read_bytes()).hexdigest()))(model)


TAMPER_CASES = {
    "model with one byte flipped": (_flip_byte, "does not match"),
    "truncated model": (_truncate, "does not match"),
    "truncated model, manifest re-hashed to match": (_truncate_and_rehash, "cannot load the model"),
    "manifest that does not parse": (lambda m: m.with_suffix(".json").write_text('{"labels": ["CALC",'), "cannot be read"),
    "manifest that is not a JSON object": (lambda m: m.with_suffix(".json").write_text("[1, 2]"), "not a JSON object"),
    "manifest missing fields": (_edit_manifest(lambda raw: [raw.pop("sha256"), raw.pop("labels")]), "lacks"),
    "manifest field of the wrong type": (_edit_manifest(lambda raw: raw.update(input_size="big")), "wrong type"),
    "manifest missing": (lambda m: m.with_suffix(".json").unlink(), "manifest not found"),
    "model missing": (lambda m: m.unlink(), "not found"),
}


@pytest.mark.parametrize("case", list(TAMPER_CASES))
def test_a_damaged_model_or_manifest_is_refused_with_status_2(case, model_copy, scans):
    damage, words = TAMPER_CASES[case]
    damage(model_copy)
    result = classify(*scans, "--model", model_copy, "--json")
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), (case, result.stderr)
    assert "Traceback" not in result.stderr and words in lines[0], (case, lines[0])
    assert str(model_copy.parent) in lines[0], (case, lines[0])  # it names the file
    assert result.stdout.strip() == "", (case, result.stdout)  # no scan classified by a refused model


def test_zz_record_tamper_count():
    record_figures("tamper_cases", {"cases": list(TAMPER_CASES), "refused_with_status_2": len(TAMPER_CASES)})


NO_NETWORK = textwrap.dedent(
    """
    # Loaded at start-up through PYTHONPATH: no socket can be created in this process.
    import os, socket, sys

    MARK = os.environ["NETWORK_ATTEMPTS"]
    with open(MARK + ".loaded", "a") as out:  # proof that this very process ran with the block
        out.write(" ".join(sys.argv[:1]) + "\\n")

    def _refuse(what):
        with open(MARK, "a") as out:
            out.write(what + "\\n")
        raise OSError("network access blocked by the test")

    class _NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            _refuse("socket.socket")

    socket.socket = _NoSocket
    socket.create_connection = lambda *a, **k: _refuse("create_connection")
    socket.getaddrinfo = lambda *a, **k: _refuse("getaddrinfo")

    def _audit(event, args):  # also catches sockets made below the socket module (_socket)
        if event.startswith("socket."):
            _refuse(event)

    sys.addaudithook(_audit)
    """
)


def _no_network_env(tmp_path: Path) -> tuple[dict, Path]:
    import os

    folder = tmp_path / "no_network"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(NO_NETWORK)
    marks = tmp_path / "network_attempts.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    env["NETWORK_ATTEMPTS"] = str(marks)
    return env, marks


def test_the_socket_block_itself_works(tmp_path):
    env, marks = _no_network_env(tmp_path)
    code = "import socket\ntry:\n    socket.socket()\nexcept OSError as e:\n    print('blocked', e)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.startswith("blocked"), result.stderr
    assert marks.read_text().strip()


def test_classification_works_with_sockets_blocked(tiny_model_dir, scans, tmp_path):
    env, marks = _no_network_env(tmp_path)
    log, overlays = tmp_path / "log.db", tmp_path / "overlays"
    result = classify(*scans, "--model", tiny_model_dir / "model.tflite", "--json", "--log", log, "--overlay", overlays, env=env)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [Path(r["file"]).name for r in records] == list(SCANS) and all("label" in r for r in records)
    assert not marks.exists(), marks.read_text()  # not one socket was even attempted
    loaded = Path(str(marks) + ".loaded").read_text().split()
    assert any(Path(arg).name == "edge-classify" for arg in loaded), loaded  # the block was active in it


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_classification_works_in_a_namespace_without_network(tiny_model_dir, scans, tmp_path):
    """The kernel-level version: a fresh network namespace has no interface but a downed loopback,
    so native code (the TFLite runtime) cannot reach the network either."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    result = subprocess.run(
        ["unshare", "-n", *command("edge-classify", *scans, "--model", tiny_model_dir / "model.tflite", "--json")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == len(SCANS)


def test_the_log_holds_hashes_and_outputs_not_pixels(tiny_model_dir, scans, tmp_path):
    log = tmp_path / "log.db"
    result = classify(*scans, "--model", tiny_model_dir / "model.tflite", "--log", log)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(f"file:{log}?mode=ro", uri=True) as db:
        columns = {row[1]: row[2].upper() for row in db.execute("PRAGMA table_info(results)")}
        rows = db.execute("SELECT * FROM results").fetchall()
        largest = db.execute(
            "SELECT MAX(" + " + ".join(f"IFNULL(LENGTH(CAST({name} AS BLOB)), 0)" for name in columns) + ") FROM results"
        ).fetchone()[0]
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "BLOB" not in columns.values(), columns
    assert len(rows) == len(SCANS)
    # A 64x64 model input alone is 4096 bytes, a scan a million: a row under 2 KB holds neither.
    assert largest < 2048, largest
    assert tables == ["results"]
    for row in rows:
        values = dict(zip(columns, row))
        assert len(values["file_sha256"]) == 64 and len(values["model_sha256"]) == 64
        assert "label" in json.loads(values["outputs"])


def _all_bytes(*places: Path) -> bytes:
    data = b""
    for place in places:
        files = [place] if place.is_file() else sorted(p for p in place.rglob("*") if p.is_file()) if place.exists() else []
        data += b"".join(p.read_bytes() for p in files)
    return data


def test_dicom_patient_fields_are_written_only_when_asked(tiny_model_dir, mias_dir, tmp_path):
    scan = np.asarray(Image.open(mias_dir / SCANS[0])).astype(np.uint16) * 16  # a 12-bit DICOM of a real scan
    name, patient_id, birth = "Testperson^Zelda", "PID-7Q3Z9X", "19510417"
    dicom = write_dicom(tmp_path / "scan.dcm", scan, PatientName=name, PatientID=patient_id, PatientBirthDate=birth)
    model = tiny_model_dir / "model.tflite"
    secrets = [s.encode() for s in (name, "Testperson", "Zelda", patient_id, birth)]

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    result = classify(dicom, "--model", model, "--json", "--log", quiet / "log.db", "--overlay", quiet / "overlays")
    assert result.returncode == 0, result.stderr
    written = _all_bytes(quiet) + result.stdout.encode() + result.stderr.encode()
    assert len(_all_bytes(quiet / "overlays")) > 0 and (quiet / "log.db").is_file()
    assert not [s for s in secrets if s in written]  # database, its WAL, overlays, stdout, stderr

    asked = tmp_path / "asked"
    asked.mkdir()
    result = classify(dicom, "--model", model, "--json", "--log", asked / "log.db", "--log-patient-id")
    assert result.returncode == 0, result.stderr
    log_bytes = _all_bytes(asked)
    assert patient_id.encode() in log_bytes  # asked for: the ID is in the log...
    assert not [s for s in secrets if s != patient_id.encode() and s in log_bytes]  # ...and nothing else
    assert patient_id not in result.stdout + result.stderr
