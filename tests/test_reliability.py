"""Nothing lost: `kill -9` in the middle of a batch, then a rerun, leaves every scan in the
results log exactly once, a database that passes `PRAGMA integrity_check`, and no half-written
overlay PNG.

`edge-classify DIR --log FILE --overlay DIR` runs on 20 real scans as a subprocess; the test
watches the log read-only and sends SIGKILL once it holds some rows, twice per trial at
different points, then lets a last run finish. Three trials.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from commands import command
from test_bad_input import record_figures

N_SCANS = 20
KILL_AFTER_ROWS = ((2, 7), (5, 11), (9, 15))  # per trial: kill when the log holds this many rows
KILL_DELAYS = (0.0, 0.013, 0.029)  # ...plus this long, so kills land at different steps of a scan
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def scan_dir(mias_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill9_scans")
    for path in sorted(mias_dir.glob("mdb*.png"))[:N_SCANS]:
        shutil.copy(path, folder / path.name)
    assert len(list(folder.iterdir())) == N_SCANS
    return folder


def _command(scan_dir: Path, model: Path, log: Path, overlays: Path) -> list[str]:
    return command("edge-classify", scan_dir, "--model", model, "--log", log, "--overlay", overlays, "--json")


def _logged_rows(log: Path) -> int | None:
    """Rows in the log, read through a read-only connection; None while it cannot be read."""
    if not log.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{log}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


def _committed(log: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(log)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT file, file_sha256 FROM results WHERE error IS NULL ORDER BY id").fetchall()
    finally:
        db.close()


def _run_and_kill(command: list[str], log: Path, rows: int, out: Path, delay: float = 0.0) -> bool:
    """Start the batch, SIGKILL it `delay` s after the log holds `rows` rows; False if it finished first."""
    with open(out, "wb") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            count = _logged_rows(log)
            if count is not None and count >= rows:
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return process.returncode == -signal.SIGKILL
            time.sleep(0.005)
        pytest.fail(f"the batch did not reach {rows} rows in {RUN_TIMEOUT} s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _check_overlays(overlays: Path) -> tuple[int, int]:
    """(visible PNGs, hidden leftovers). Every visible file must be a whole PNG; anything else
    may only be a hidden `.*.tmp` file of an interrupted atomic write (skipped by every reader)."""
    visible = hidden = 0
    for path in overlays.iterdir():
        if path.name.startswith("."):
            assert path.name.endswith(".tmp"), path
            hidden += 1
            continue
        assert path.suffix == ".png", path
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
        visible += 1
    return visible, hidden


def test_kill_9_mid_batch_loses_nothing_and_duplicates_nothing(scan_dir, tiny_model_dir, tmp_path):
    model = tiny_model_dir / "model.tflite"
    scans = sorted(str(path) for path in scan_dir.iterdir())
    kills = rows_lost = duplicates = leftovers = 0
    rows_at_kills = []
    for trial, thresholds in enumerate(KILL_AFTER_ROWS):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        log, overlays = folder / "log.db", folder / "overlays"
        command = _command(scan_dir, model, log, overlays)
        before: list[tuple[str, str]] = []
        for rows in thresholds:
            delay = KILL_DELAYS[(trial + kills) % len(KILL_DELAYS)]
            assert _run_and_kill(command, log, rows, folder / "stdout.jsonl", delay), f"trial {trial}: finished before {rows} rows"
            kills += 1
            committed = _committed(log)  # integrity_check == ok right after the kill
            rows_at_kills.append(len(committed))
            assert len(committed) >= rows
            rows_lost += len(set(before) - set(committed))
            before = committed
            _check_overlays(overlays)  # a killed run leaves whole PNGs only

        result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert sorted(r["file"] for r in records) == scans and not any("error" in r for r in records)
        assert sum("logged" in r for r in records) == len(set(before))  # the rerun skipped what was logged

        final = _committed(log)
        rows_lost += len(set(before) - set(final))
        files = [file for file, _ in final]
        duplicates += len(files) - len(set(files))
        assert sorted(set(files)) == scans  # every scan is in the log...
        assert len(files) == len(set(files)), "a scan was logged twice"  # ...exactly once
        visible, hidden = _check_overlays(overlays)
        assert visible == N_SCANS
        leftovers += hidden

    assert rows_lost == 0 and duplicates == 0
    record_figures("kill9", {
        "trials": len(KILL_AFTER_ROWS), "sigkills": kills, "scans_per_trial": N_SCANS,
        "rows_committed_at_each_kill": rows_at_kills, "rows_lost": rows_lost, "scans_logged_twice": duplicates,
        "integrity_check": "ok", "half_written_overlays": 0, "hidden_tmp_leftovers": leftovers,
    })


WRITER = """
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from edge.inference.classifier import Classifier
from edge.fileio import atomic_write_text
from edge.results import overlay
model, scan_path, out = sys.argv[1:]
scan = np.asarray(Image.open(scan_path))
result = Classifier(model).classify(scan)
record = {"file": scan_path, **result.to_record()}
report = {"rows": [{"i": i, "values": list(range(50))} for i in range(2000)]}  # about 300 KB of JSON
for i in range(10**6):
    overlay.write(Path(out) / f"overlay{i % 7}.png", scan, record, result.heatmap, result.geometry)
    atomic_write_text(Path(out) / f"report{i % 5}.json", json.dumps(report))
    print(i, flush=True)
"""
WRITER_KILLS = 8


def test_overlay_and_report_writes_survive_kill_9(scan_dir, tiny_model_dir, tmp_path):
    """A process rewriting overlay PNGs and JSON reports (edge.results.overlay.write,
    edge.fileio.atomic_write_text) in a loop, killed at six different moments: every file a
    reader can see is whole; an interrupted write leaves at most a hidden .tmp file, which the
    scan walker skips."""
    import sys

    from edge.scan.inputs import expand

    out = tmp_path / "written"
    out.mkdir()
    scan = sorted(scan_dir.iterdir())[0]
    leftovers = 0
    for kill in range(WRITER_KILLS):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(tiny_model_dir / "model.tflite"), str(scan), str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            stamps = []
            for _ in range(3):  # let a few files be written, and time one loop
                assert process.stdout.readline(), "the writer stopped by itself"
                stamps.append(time.monotonic())
            period = (stamps[-1] - stamps[0]) / 2
            time.sleep(period * (kill + 0.5) / WRITER_KILLS)  # kills spread over one loop: render, encode, write
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        for path in out.iterdir():
            if path.name.startswith("."):
                assert path.name.endswith(".tmp"), path
            elif path.suffix == ".png":
                with Image.open(path) as image:
                    image.load()
            else:
                json.loads(path.read_text())
    leftovers = sum(path.name.startswith(".") for path in out.iterdir())
    assert [item.path.name for item in expand([out])] == sorted(p.name for p in out.glob("overlay*.png"))
    record_figures("atomic_writes", {"sigkills": WRITER_KILLS, "half_written_files": 0,
                                     "hidden_tmp_leftovers": leftovers})


def test_a_closed_output_pipe_stops_the_batch_without_a_traceback(scan_dir, tiny_model_dir):
    """`edge-classify DIR --json | head -1`: the reader goes away after one line."""
    argv = command("edge-classify", scan_dir, "--model", tiny_model_dir / "model.tflite", "--json")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(process.stdout.readline())["file"]
        process.stdout.close()  # the next write gets EPIPE
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"Traceback" not in stderr, stderr.decode()
    assert stderr.decode().strip().splitlines() == ["error: output closed (broken pipe); stopped before the end of the batch"]
    assert process.returncode == 141


def test_a_results_log_that_is_not_a_database_is_refused(scan_dir, tiny_model_dir, tmp_path):
    log = tmp_path / "log.db"
    log.write_text("scan results, typed by hand\n")
    argv = command("edge-classify", scan_dir, "--model", tiny_model_dir / "model.tflite", "--log", log)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {log}: cannot use this file as a results log (file is not a database)"]
    assert log.read_text() == "scan results, typed by hand\n"  # left as it was
