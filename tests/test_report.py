"""edge-report: the day's results for the referral hospital, from a real results log (issue 14).

The log is written by the real edge-classify on real scans (tests/report_support.py: pairs, lone
scans, failures, refusals, non-UTF-8 names, a reading replaced with --force, two visits); each
test runs the installed edge-report and checks what it wrote against the log read with plain
sqlite3. The browser's view is in test_report_browser.py, a year's log in test_report_large.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

from PIL import Image

from classify_support import model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from commands import command, run
from edge.fileio import sha256_file
from edge.report.day import CSV_COLUMNS, PICTURE_SIDE, women
from edge.results.log import LoggedRow
from report_support import (LEFT_ODD, RIGHT_ODD, csv_rows, day_log, json_report, page, report,  # noqa: F401 (fixture)
                            standing_rows)

REPO = Path(__file__).resolve().parents[1]
RELEASE_LOG = REPO / "tests" / "data" / "results_log_0.1.0.sql"


def spelt(value):
    """A logged record with names that are not UTF-8 spelt as the log's file column spells them (\\udcXX)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {key: spelt(item) for key, item in value.items()}
    return value


def by_file(rows: list[dict]) -> dict[str, dict]:
    return {row["file"]: row for row in rows}


def test_the_report_matches_the_log_and_leaves_it_untouched(day_log, tmp_path):
    before = sha256_file(day_log.log)
    out = tmp_path / "out"
    result = report(day_log.log, out, "--scans", day_log.scans, "--centre", "Centre <Kisumu>", "--model", day_log.model,
                    cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert sha256_file(day_log.log) == before

    standing = standing_rows(day_log.log)
    outputs = {row["id"]: spelt(json.loads(row["outputs"])) if row["outputs"] else {} for row in standing}
    table = csv_rows(out)
    assert [int(row["row"]) for row in table] == [row["id"] for row in standing]  # every standing row, in log order
    for line, row in zip(table, standing):
        record = outputs[row["id"]]
        assert line["file"] == row["file"] and line["time"] == row["time"] and line["model_sha256"] == row["model_sha256"]
        assert line["status"] == ("failed" if row["error"] else record["triage"])
        assert line["id"] == record.get("id", "") and line["error"] == (row["error"] or "")
        if not row["error"]:
            assert float(line["abnormal"]) == record["abnormal"] and float(line["malignant"]) == record["malignant"]
            assert line["label"] == record["label"] and line["side"] == (record["side"] or "")
    failed = {line["file"]: line for line in table if line["status"] == "failed"}
    assert set(failed) == {"notes.png", "photo.png", "missing.png"}
    assert {line["id"] for line in failed.values()} == {"VISIT-1"}  # a failure keeps the visit's id

    data = json_report(out)
    assert [scan["row"] for scan in data["scans"]] == [row["id"] for row in standing]
    for scan, row in zip(data["scans"], standing):
        assert {k: v for k, v in scan.items() if k not in ("row", "time", "file", "file_sha256", "model_sha256", "status", "error")} \
            == outputs[row["id"]]
        assert scan.get("error") == row["error"]
    assert data["report"]["centre"] == "Centre <Kisumu>"
    assert data["counts"]["scans"] == len(standing) and data["counts"]["failed"] == 3
    assert data["counts"]["refused_not_a_mammogram"] == 1 and data["counts"]["replaced_by_a_later_reading"] == 1

    html = (out / "report.html").read_text(encoding="utf-8")
    shown = page(html)
    assert sorted(row for row, _, _ in shown.scans) == [row["id"] for row in standing]  # every scan once
    sections = [section for _, _, section in shown.scans]
    assert sections == sorted(sections, key=["refer", "routine", "failed"].index)  # refer, then routine, then failures
    assert "routine" in sections and "refer" in sections
    assert all(link.startswith("data:image/jpeg;base64,") for link in shown.links) and shown.scripts == 0  # offline
    assert "Centre &lt;Kisumu&gt;" in html and "1 earlier reading replaced" in html

    rows = by_file(table)
    right, left = rows["mdb011.png"]["row"], rows["mdb012.png"]["row"]  # logged left first: hung right first
    order = [row for row, _, _ in shown.scans]
    assert int(right) > int(left) and order.index(int(right)) == order.index(int(left)) - 1
    assert "Woman mias-6" in shown.women and "Scan s053.png, no woman named" in shown.women
    odd = rows[spelt(LEFT_ODD)]
    assert odd["side"] == "left" and odd["woman"] == "exam-1"
    assert int(odd["row"]) in shown.pictures  # found on disk by its logged (escaped) name
    for src in shown.pictures.values():
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert picture.format == "JPEG" and max(picture.size) == PICTURE_SIDE
    assert len(shown.pictures) == len([line for line in table if line["status"] != "failed"])
    assert "refer to a radiologist" in result.stdout and "report.html" in result.stdout


def test_a_picture_is_only_of_the_scan_that_was_read(day_log, tmp_path):
    scans = tmp_path / "scans"
    shutil.copytree(day_log.scans, scans)
    shutil.copy(scans / "mdb005.png", scans / "mdb006.png")  # another scan now lies at mdb006.png's path
    out = tmp_path / "out"
    assert report(day_log.log, out, "--scans", scans, "--model", day_log.model).returncode == 0
    rows = by_file(csv_rows(out))
    shown = page((out / "report.html").read_text(encoding="utf-8"))
    assert int(rows["mdb006.png"]["row"]) not in shown.pictures and int(rows["mdb005.png"]["row"]) in shown.pictures
    assert "not the scan that was read" in (out / "report.html").read_text(encoding="utf-8")

    elsewhere = report(day_log.log, tmp_path / "elsewhere", "--model", day_log.model, cwd=tmp_path)  # relative paths, wrong folder
    assert elsewhere.returncode == 0 and "--scans DIR" in elsewhere.stdout
    assert not page((tmp_path / "elsewhere" / "report.html").read_text(encoding="utf-8")).pictures

    one = report(day_log.log, tmp_path / "one", "--scans", day_log.scans, "--max-pictures", "1", "--model", day_log.model)
    shown = page((tmp_path / "one" / "report.html").read_text(encoding="utf-8"))
    (row,) = shown.pictures
    assert [section for r, _, section in shown.scans if r == row] == ["refer"]  # the women to refer get pictures first
    assert "--max-pictures 1" in one.stdout


def test_a_range_or_a_visit_selects_its_rows_and_an_empty_range_says_so(day_log, tmp_path):
    visit = report(day_log.log, tmp_path / "visit", "--id", "VISIT-2", "--model", day_log.model)
    assert visit.returncode == 0, visit.stderr
    assert [row["file"] for row in csv_rows(tmp_path / "visit")] == ["mdb012.png", "mdb011.png"]

    today = date.today()
    day = report(day_log.log, tmp_path / "day", "--since", today.isoformat(), "--until", today.isoformat())
    assert len(csv_rows(tmp_path / "day")) == len(standing_rows(day_log.log))

    tomorrow = (today + timedelta(days=1)).isoformat()
    empty = report(day_log.log, tmp_path / "empty", "--since", tomorrow)
    no_traceback(empty)
    assert empty.returncode == 0 and day.returncode == 0
    assert csv_rows(tmp_path / "empty") == [] and json_report(tmp_path / "empty")["scans"] == []
    html = (tmp_path / "empty" / "report.html").read_text(encoding="utf-8")
    assert not page(html).scans and html.count("None.") == 3 and f"from {tomorrow}" in html
    yesterday = (today - timedelta(days=1)).isoformat()
    assert csv_rows(tmp_path / "day") and not csv_rows(report_out(day_log, tmp_path / "before", "--until", yesterday))


def report_out(day_log, out: Path, *args) -> Path:
    result = report(day_log.log, out, *args)
    assert result.returncode == 0, result.stderr
    return out


def test_a_log_of_todays_release_and_one_of_the_first_schema_are_read_as_they_are(day_log, mias_dir, tmp_path):
    release = tmp_path / "release.sqlite"
    with sqlite3.connect(release) as db:
        db.executescript(RELEASE_LOG.read_text())
    before = sha256_file(release)
    out = tmp_path / "release"
    assert report(release, out, "--scans", mias_dir, "--model", day_log.model).returncode == 0
    assert sha256_file(release) == before
    table = csv_rows(out)
    assert [row["file"] for row in table] == ["mdb005.png", "mdb006.png", "mdb010.png", "notes.png"]
    assert [row["status"] for row in table][3] == "failed" and table[0]["id"] == "CLINIC-1"
    shown = page((out / "report.html").read_text(encoding="utf-8"))
    assert "Woman mias-3" in shown.women and len(shown.pictures) == 3  # paired by contralateral; heat-maps from the log
    assert sqlite3.connect(release).execute("PRAGMA user_version").fetchone()[0] == 2

    first = tmp_path / "first.sqlite"  # schema 1: no drawing, no superseded_by, user_version 0
    with sqlite3.connect(first) as db:
        db.executescript("CREATE TABLE results (id INTEGER PRIMARY KEY, time TEXT NOT NULL, file TEXT NOT NULL, "
                         "file_sha256 TEXT, model_sha256 TEXT NOT NULL, outputs TEXT, error TEXT, patient TEXT);")
        for row in sqlite3.connect(release).execute("SELECT time, file, file_sha256, model_sha256, outputs, error FROM results"):
            db.execute("INSERT INTO results (time, file, file_sha256, model_sha256, outputs, error) VALUES (?, ?, ?, ?, ?, ?)", row)
    old = tmp_path / "old"
    result = report(first, old, "--scans", mias_dir, "--model", day_log.model)
    assert result.returncode == 0, result.stderr
    html = (old / "report.html").read_text(encoding="utf-8")
    assert len(page(html).pictures) == 3 and html.count("no heat-map: the log kept none") == 3
    assert sqlite3.connect(first).execute("PRAGMA user_version").fetchone()[0] == 0  # not migrated: read only


def test_a_report_while_a_batch_appends_sees_one_consistent_snapshot(mias_dir, model_file, tmp_path):  # noqa: F811
    log = tmp_path / "busy.sqlite"
    scans = sorted(mias_dir.glob("mdb*.png"))[:60]
    writer = subprocess.Popen(command("edge-classify", *scans, "--model", model_file, "--log", log, "--json"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    during = []
    try:
        while writer.poll() is None:
            if not log.exists():
                time.sleep(0.05)
                continue
            out = tmp_path / f"r{len(during)}"
            result = report(log, out, "--max-pictures", "0")
            no_traceback(result)
            assert result.returncode == 0, result.stderr
            rows = [int(row["row"]) for row in csv_rows(out)]
            assert rows == list(range(1, len(rows) + 1))  # a snapshot: the first N rows, no gap
            shown = page((out / "report.html").read_text(encoding="utf-8"))
            assert sorted(row for row, _, _ in shown.scans) == rows  # the page and the table of the same snapshot
            during.append((len(rows), writer.poll() is None))
    finally:
        _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert any(still and n < len(scans) for n, still in during), f"no report finished during the batch: {during}"
    with sqlite3.connect(log) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM results").fetchone()[0] == len(scans)


def test_clear_errors_and_help(day_log, tmp_path):
    helped = report(day_log.log, tmp_path / "x", "--help")
    assert helped.returncode == 0 and "report.html" in helped.stdout and "--since" in helped.stdout
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n")
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY)")
        db.execute("PRAGMA user_version = 9")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        ((tmp_path / "gone.sqlite", tmp_path / "o"), "no such results log"),
        ((text, tmp_path / "o"), "cannot read this file as a results log"),
        ((newer, tmp_path / "o"), "written by a newer mias-edge"),
        ((day_log.log, blocker), "cannot create the report folder"),
        ((day_log.log, tmp_path / "o", "--since", "2026-12-02", "--until", "2026-12-01"), "is not before --until"),
        ((day_log.log, tmp_path / "o", "--since", "yesterday"), "is not a date"),
        ((day_log.log, tmp_path / "o", "--max-pictures", "-1"), "less than 0"),
    ]
    for args, words in cases:
        result = report(*args)
        no_traceback(result)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1, result.stderr  # one error line


def test_the_centre_comes_from_the_option_or_the_config(day_log, tmp_path):
    config = tmp_path / "config" / "mias-edge"
    config.mkdir(parents=True)
    (config / "report.toml").write_text('centre = "Kisumu, Nyanza"\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    run("edge-report", day_log.log, "--out", tmp_path / "a", "--max-pictures", "0", env=env)
    assert "Kisumu, Nyanza" in (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    run("edge-report", day_log.log, "--out", tmp_path / "b", "--centre", "Homa Bay", "--max-pictures", "0", env=env)
    assert json_report(tmp_path / "b")["report"]["centre"] == "Homa Bay"
    (tmp_path / "bad.toml").write_text('centre = "X"\nbogus = 1\n')
    bad = run("edge-report", day_log.log, "--out", tmp_path / "c", "--config", tmp_path / "bad.toml")
    assert bad.returncode == 2 and "unknown keys bogus" in bad.stderr


def scan(row: int, file: str, partner: str | None, side: str | None = None) -> LoggedRow:
    return LoggedRow(row, "2026-12-01T10:00:00.000+00:00", file, "0" * 64, "1" * 64,
                     {"triage": "routine", "contralateral": partner, "side": side}, None, None)


def test_women_are_each_pair_once_in_log_order_with_a_bounded_wait():
    rows = [scan(1, "a", "b", "left"), scan(2, "x", None), scan(3, "b", "a", "right"),  # a pair around a lone scan
            scan(4, "c", "d"), scan(5, "c", "d"), scan(6, "d", "c"),  # c again before its partner: the first c alone
            scan(7, "e", "f")]  # a partner never logged
    assert [[row.id for row in woman] for woman in women(rows)] == [[3, 1], [2], [4], [5, 6], [7]]
    assert [[row.id for row in woman] for woman in women(rows, window=1)] == [[1], [2], [3], [4], [5, 6], [7]]
    many = [scan(i, f"f{i}", f"g{i}") for i in range(5000)]  # 5000 scans waiting: never more than the window held
    assert sum(1 for _ in women(many, window=10)) == 5000


def test_the_report_page_lists_the_csv_columns_in_order():
    readme = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    bullet = readme.split("- **`results.csv`**", 1)[1].split("\n- **", 1)[0]
    named = [name for name in re.findall(r"`([a-z_0-9]+)`", bullet) if name in CSV_COLUMNS]
    assert named == list(CSV_COLUMNS)


def test_the_report_page_quotes_the_committed_timing_record():
    record = json.loads((REPO / "reports" / "report" / "timing.json").read_text())
    readme = " ".join((REPO / "docs" / "report.md").read_text(encoding="utf-8").split())
    assert record["rows"] == 50_000 and record["machine"].startswith("AMD EPYC, 2 cores")
    for part in ("one_day", "whole_log"):
        assert f"{record[part]['seconds']:.2f} s" in readme and f"{record[part]['peak_rss_mb']:.1f} MB" in readme
    assert f"load average {record['load_average_before'][0]}" in readme and record["command"] in readme


def test_a_log_in_a_folder_the_reader_cannot_write_is_read(day_log, tmp_path):
    """A log on a read-only USB stick: SQLite cannot make the -shm file beside a WAL log, so the
    reader opens it as immutable (run without root's file capabilities, as test_bad_input does)."""
    from test_bad_input import _without_file_capabilities

    stick = tmp_path / "stick"
    stick.mkdir()
    with sqlite3.connect(stick / "results.sqlite") as db:
        db.executescript(RELEASE_LOG.read_text())
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"  # as edge-classify leaves its log
    stick.chmod(0o555)
    try:
        result = subprocess.run(_without_file_capabilities(command("edge-report", stick / "results.sqlite", "--out",
                                                                   tmp_path / "out", "--max-pictures", "0")),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert sorted(path.name for path in stick.iterdir()) == ["results.sqlite"]
    finally:
        stick.chmod(0o755)
    assert [row["file"] for row in csv_rows(tmp_path / "out")] == ["mdb005.png", "mdb006.png", "mdb010.png", "notes.png"]
