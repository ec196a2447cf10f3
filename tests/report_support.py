"""Shared by the edge-report tests: a real day's results log, and readers of what the report wrote.

`day_log` is written by the installed `edge-classify`, run in the scans' folder with relative
paths, on real development scans: a MIAS pair, a MIAS scan without its partner, two scans of no
named woman that the shipped model reads as routine alone (mdb053 and mdb303, P(abnormal) about
0.18 against its threshold 0.237; read as pairs, every development woman has a breast referred),
a pair given with --exam under file names that are not UTF-8, a text file named .png, a colour
picture, a missing file; then one scan read again with --force (its first row is replaced), and a
second visit (another --id) whose pair is given left first.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classify_support import model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from commands import run

LEFT_ODD, RIGHT_ODD = os.fsdecode(b"gauche-\xe9.png"), os.fsdecode(b"droite-\xe9.png")  # not UTF-8 on disk
VISIT_1 = ["mdb005.png", "mdb006.png", "mdb010.png", "s053.png", "s303.png", LEFT_ODD, RIGHT_ODD,
           "notes.png", "photo.png", "missing.png"]
COPIES = {"mdb005.png": "mdb005", "mdb006.png": "mdb006", "mdb010.png": "mdb010", "s053.png": "mdb053",
          "s303.png": "mdb303", LEFT_ODD: "mdb136", RIGHT_ODD: "mdb135", "mdb012.png": "mdb012", "mdb011.png": "mdb011"}


@dataclass(frozen=True)
class DayLog:
    log: Path
    scans: Path  # the folder edge-classify ran in: the logged paths are relative to it
    model: Path


@pytest.fixture(scope="session")
def day_log(model_file, mias_dir, tmp_path_factory) -> DayLog:  # noqa: F811 (fixture)
    folder = tmp_path_factory.mktemp("day")
    scans = folder / "scans"
    scans.mkdir()
    for name, source in COPIES.items():
        shutil.copy(mias_dir / f"{source}.png", scans / name)
    (scans / "notes.png").write_text("not an image\n")
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(scans / "photo.png")
    log = folder / "results.sqlite"
    runs = [
        [*VISIT_1, "--exam", LEFT_ODD, RIGHT_ODD, "--id", "VISIT-1"],
        ["mdb010.png", "--force", "--id", "VISIT-1"],
        ["mdb012.png", "mdb011.png", "--id", "VISIT-2"],
    ]
    for args in runs:
        result = run_classify(*args, "--model", model_file, "--log", log, "--json", cwd=scans)
        no_traceback(result)
        assert result.returncode in (0, 1), result.stderr
    return DayLog(log, scans, model_file)


def standing_rows(log: Path) -> list[dict]:
    """The log's rows not replaced by a later reading, read with plain sqlite3 (not edge's reader)."""
    with sqlite3.connect(f"{log.resolve().as_uri()}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM results WHERE superseded_by IS NULL ORDER BY id")]


def report(log: Path, out: Path, *args, cwd: Path | None = None):
    """The installed edge-report, as a person runs it."""
    return run("edge-report", log, "--out", out, *args, cwd=cwd, timeout=300)


def csv_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


def json_report(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


class Scans(HTMLParser):
    """Every element of a page with data-row, in document order: (row, status, section id), the
    women's headings, each picture's src, and every src / href / script seen."""

    def __init__(self) -> None:
        super().__init__()
        self.scans: list[tuple[int, str, str]] = []
        self.women: list[str] = []
        self.pictures: dict[int, str] = {}
        self.links: list[str] = []
        self.scripts = 0
        self._section = ""
        self._row: int | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs.get("id", "")
        if "data-row" in attrs:
            self._row = int(attrs["data-row"])
            self.scans.append((self._row, attrs["data-status"], self._section))
        if tag == "img" and self._row is not None:
            self.pictures[self._row] = attrs["src"]
        self.links += [attrs[name] for name in ("src", "href") if name in attrs]
        self.scripts += tag in ("script", "link", "iframe", "object", "embed")
        if tag == "h3":
            self._heading = []

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag):
        if tag == "h3" and self._heading is not None:
            self.women.append("".join(self._heading))
            self._heading = None


def page(text: str) -> Scans:
    parser = Scans()
    parser.feed(text)
    return parser
