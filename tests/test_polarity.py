"""Inverted polarity (white background, dark breast) is read as its negative by `prepare`, the one
preparation that training and the board share, and every answer says so (JSON, stderr, log, report).

The film scans never trigger it, so their model inputs are exactly what they were; a negative of
any scan gives the model the very same input as the scan itself.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
from PIL import Image

from commands import run
from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from edge.preprocess import prepare
from edge.words import INVERTED


def _grey(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def test_no_film_scan_is_inverted_and_each_negative_gives_the_same_input(mias_dir):
    scans = sorted(mias_dir.glob("mdb*.png"))
    assert len(scans) == 258
    for path in scans:
        scan = _grey(path)
        plain, negative = prepare(scan, 224), prepare(255 - scan, 224)
        assert not plain.inverted and negative.inverted, path.name
        assert np.array_equal(plain.image, negative.image) and plain.geometry == negative.geometry, path.name


def test_digital_images_of_either_polarity_come_out_the_same(rsna_dir):
    """Every 10th digital image (about 1 in 7 of them stored inverted): the image and its negative
    are read the same, one of them as a negative; 16-bit negatives are read as negatives too."""
    paths = sorted((rsna_dir / "images").glob("*.jpg"))[::10]
    inverted = 0
    for path in paths:
        scan = _grey(path)
        plain, negative = prepare(scan, 224), prepare(255 - scan, 224)
        assert plain.inverted != negative.inverted, path.name
        assert np.array_equal(plain.image, negative.image), path.name
        deep = prepare((255 - scan).astype(np.uint16) * 256 + 7, 224)  # rescaled by its own range: nearly the same levels
        assert deep.inverted == negative.inverted, path.name
        assert np.abs(deep.image.astype(int) - plain.image).mean() < 2, path.name
        inverted += plain.inverted
    assert 0.08 < inverted / len(paths) < 0.25  # the data's README: 338 of 2,222


def test_the_answer_says_it_was_read_as_a_negative(model_file, rsna_dir, tmp_path):
    paths = sorted((rsna_dir / "images").glob("*.jpg"))
    stored_inverted = next(p for p in paths if prepare(_grey(p), 64).inverted)
    upright = next(p for p in paths if not prepare(_grey(p), 64).inverted)
    log = tmp_path / "log.sqlite"
    result = run_classify(stored_inverted, upright, "--model", model_file, "--json", "--log", log)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    records = {r["file"]: r for r in json_lines(result.stdout)}
    assert records[str(stored_inverted)]["inverted"] is True and "inverted" not in records[str(upright)]
    warnings = [line for line in result.stderr.splitlines() if "polarity" in line]
    assert warnings == [f"warning: {stored_inverted}: {INVERTED}"]
    rows = dict(sqlite3.connect(log).execute("SELECT file, outputs FROM results"))
    assert json.loads(rows[str(stored_inverted)])["inverted"] is True and "inverted" not in json.loads(rows[str(upright)])

    made = run("edge-report", log, "--out", tmp_path / "report")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "report" / "report.html").read_text().count("white background, dark breast") == 1
