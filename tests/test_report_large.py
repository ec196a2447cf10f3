"""A year of a busy centre: a 50 000-row results log reports in seconds and in bounded memory.

The log is written by `edge.results.log.ResultsLog.add`, the code edge-classify logs with, from
a seed of real readings (scripts/report_timing.py: `build_log`); each report runs in its own
process, timed with its peak resident memory. Memory must not grow with the log: the whole
50 000-row log needs no more than a 5 000-row one, give or take a few MB.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from classify_support import model_file  # noqa: F401 (fixture): the seed readings need the shipped model
from report_support import csv_rows

REPO = Path(__file__).resolve().parents[1]
ROWS = 50_000
SECONDS = 90  # this shared 2-core machine under other jobs' load; an idle run takes a few seconds (README)


@pytest.fixture(scope="module")
def timing():
    spec = importlib.util.spec_from_file_location("report_timing", REPO / "scripts" / "report_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edge_report() -> str:
    return str(Path(sys.executable).with_name("edge-report"))


def test_a_year_of_rows_reports_in_seconds_in_bounded_memory(timing, mias_dir, model_file, tmp_path):  # noqa: F811
    year = timing.build_log(mias_dir, tmp_path / "year", ROWS, model=model_file)
    small = timing.build_log(mias_dir, tmp_path / "small", ROWS // 10, model=model_file)
    day = timing.last_day(year)
    one_day = timing.timed([edge_report(), year, "--out", tmp_path / "day", "--since", day, "--until", day])
    whole = timing.timed([edge_report(), year, "--out", tmp_path / "all"])
    tenth = timing.timed([edge_report(), small, "--out", tmp_path / "tenth"])
    assert len(csv_rows(tmp_path / "all")) == ROWS
    assert 0 < len(csv_rows(tmp_path / "day")) < ROWS // 300 and "pictures" in one_day["output"]
    assert whole["seconds"] < SECONDS and one_day["seconds"] < SECONDS, (whole, one_day)
    assert whole["peak_rss_mb"] < tenth["peak_rss_mb"] + 10, (whole, tenth)  # ten times the rows, not more memory
    assert whole["peak_rss_mb"] < 150, whole
