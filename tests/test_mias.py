"""The MIAS loader on the real development split, as PNG and as the original PGM files."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from edge.errors import EdgeError
from train import mias

DEV_COUNTS = {"CALC": 20, "CIRC": 18, "SPIC": 15, "MISC": 11, "ARCH": 15, "ASYM": 12, "NORM": 167}


def by_id(records):
    return {r.id: r for r in records}


def test_counts_of_the_development_split(records, mias_dir):
    assert len(records) == 258
    assert len({r.patient for r in records}) == 129
    assert Counter(r.label for r in records) == DEV_COUNTS
    table_rows = [line for line in (mias_dir / "Info.txt").read_text().splitlines() if line.startswith("mdb")]
    assert len(table_rows) == 266  # several images have more than one lesion row
    assert sum(len(r.lesions) + r.lesions_without_location for r in records) == 266 - 167


def test_pgm_and_png_give_identical_records_and_pixels(records, pgm_dir):
    from_pgm = mias.load(pgm_dir)
    assert [r.path.suffix for r in from_pgm] == [".pgm"] * len(records)
    strip = lambda r: (r.id, r.tissue, r.label, r.severity, r.lesions, r.lesions_without_location)  # noqa: E731
    assert [strip(r) for r in from_pgm] == [strip(r) for r in records]
    for png, pgm in list(zip(records, from_pgm))[::16]:
        a, b = png.pixels(), pgm.pixels()
        assert a.shape == (1024, 1024) and a.dtype == np.uint8
        assert np.array_equal(a, b)


def test_mixed_severity_counts_as_malignant(records):
    mdb144 = by_id(records)["mdb144"]
    assert [lesion.severity for lesion in mdb144.lesions] == ["B", "M"]
    assert mdb144.severity == "M" and mdb144.malignant


def test_two_circles_in_bottom_left_origin_converted_to_rows(records):
    mdb005 = by_id(records)["mdb005"]
    assert mdb005.label == "CIRC" and mdb005.severity == "B"
    assert [(lesion.row, lesion.col, lesion.radius) for lesion in mdb005.lesions] == [(1024 - 133, 477, 30), (1024 - 168, 500, 26)]


def test_rows_without_coordinates(records):
    table = by_id(records)
    note3 = table["mdb216"]  # "mdb216 D CALC M *NOTE 3*": calcifications all over the breast
    assert note3.label == "CALC" and note3.malignant and note3.lesions == () and note3.lesions_without_location == 1
    assert table["mdb059"].lesions == () and table["mdb059"].label == "CIRC"
    assert table["mdb003"].label == "NORM" and table["mdb003"].severity is None


def test_converted_centre_lands_on_the_lesion(records):
    """mdb028's malignant mass is brighter at the converted centre than the mirrored background."""
    mdb028 = by_id(records)["mdb028"]
    lesion = mdb028.lesions[0]
    pixels = mdb028.pixels().astype(float)
    r = lesion.radius // 2
    at_lesion = pixels[lesion.row - r : lesion.row + r, lesion.col - r : lesion.col + r].mean()
    unflipped_y = pixels[1024 - lesion.row - r : 1024 - lesion.row + r, lesion.col - r : lesion.col + r].mean()
    assert at_lesion > unflipped_y + 20, (at_lesion, unflipped_y)


def test_patient_and_side_of_odd_and_even_numbers(records):
    table = by_id(records)
    assert (table["mdb003"].patient, table["mdb003"].side) == (2, "right")
    assert (table["mdb004"].patient, table["mdb004"].side) == (2, "left")
    assert all(sum(r.patient == p for r in records) == 2 for p in {r.patient for r in records})


def test_crlf_and_trailing_spaces_parse_the_same(mias_dir):
    text = (mias_dir / "Info.txt").read_text()
    crlf = text.replace("\n", "\r\n")
    assert {k: vars(v) for k, v in mias.parse_info(crlf).items()} == {k: vars(v) for k, v in mias.parse_info(text).items()}


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeError, match="no such data directory"):
        mias.load(tmp_path / "nowhere")
    with pytest.raises(EdgeError, match="Info.txt"):
        mias.load(tmp_path)


def test_every_mismatch_between_table_and_images_is_named(mias_dir, tmp_path):
    for name in ("Info.txt", "mdb003.png", "mdb005.png", "mdb006.png"):
        shutil.copy(mias_dir / name, tmp_path / name)
    shutil.copy(mias_dir / "mdb003.png", tmp_path / "mdb999.png")
    with pytest.raises(EdgeError) as caught:
        mias.load(tmp_path)
    message = str(caught.value)
    assert "mdb999: image without a row" in message
    assert "mdb004: row in Info.txt without an image" in message and "mdb322: row in Info.txt without an image" in message


def test_summary_reports_the_counts(records):
    from train.records import summary

    text = summary(records)
    assert "images    258" in text and "patients  129" in text and "NORM 167" in text
    assert "96 with coordinates, 3 without" in text
