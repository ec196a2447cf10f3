"""The shared preprocessing on real scans: deterministic, format-blind, orientation-normalising."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from edge.scan.decode import read_scan
from edge.preprocess import DEFAULT_SIZE, prepare


def test_shape_dtype_and_determinism(mias_dir):
    scan = read_scan(mias_dir / "mdb005.png")
    first, second = prepare(scan), prepare(scan.copy())
    assert first.image.shape == (DEFAULT_SIZE, DEFAULT_SIZE) and first.image.dtype == np.uint8
    assert np.array_equal(first.image, second.image) and first.geometry == second.geometry
    assert first.image.min() == 0 and first.image.max() > 200  # background black, contrast stretched
    assert prepare(scan, size=128).image.shape == (128, 128)


def test_pgm_and_png_of_the_same_pixels_prepare_identically(mias_dir, pgm_dir):
    for name in ("mdb005", "mdb216"):
        from_png = prepare(read_scan(mias_dir / f"{name}.png"))
        from_pgm = prepare(read_scan(pgm_dir / f"{name}.pgm"))
        assert np.array_equal(from_png.image, from_pgm.image)


def test_16_bit_scan_prepares_like_its_8_bit_original(mias_dir, tmp_path):
    scan = read_scan(mias_dir / "mdb005.png")
    path = tmp_path / "deep.png"
    Image.fromarray(scan.astype(np.uint16) * 257).save(path)  # full 16-bit range
    deep = read_scan(path)
    assert deep.dtype == np.uint16
    # the 16-bit scan is rescaled to 8 bits by its own range first: two roundings, two grey levels
    assert np.abs(prepare(deep).image.astype(int) - prepare(scan).image.astype(int)).max() <= 2


def _chest_wall_side(image: np.ndarray) -> str:
    half = image.shape[1] // 2
    return "left" if image[:, :half].mean() > image[:, half:].mean() else "right"


def test_left_and_right_breasts_end_up_facing_the_same_way(records):
    """Odd (right) breasts have the chest wall on the right of the film, even ones on the left."""
    sample = [r for r in records if r.patient % 8 == 0]
    flipped = {r.id: prepare(r.pixels()).geometry.flipped for r in sample}
    assert {flipped[r.id] for r in sample if r.side == "right"} == {True}
    assert {flipped[r.id] for r in sample if r.side == "left"} == {False}
    for record in sample:
        assert _chest_wall_side(prepare(record.pixels(), size=128).image) == "left", record.id


def test_geometry_maps_a_lesion_into_the_input_and_back(records):
    mdb028 = next(r for r in records if r.id == "mdb028")
    prepared = prepare(mdb028.pixels())
    lesion = mdb028.lesions[0]
    row, col = prepared.geometry.to_input(lesion.row, lesion.col)
    radius = prepared.geometry.length_to_input(lesion.radius)
    assert 0 <= row < DEFAULT_SIZE and 0 <= col < DEFAULT_SIZE
    back = prepared.geometry.to_scan(row, col)
    assert back == pytest.approx((lesion.row, lesion.col), abs=1e-6)
    r = int(radius / 2)
    inside = prepared.image[int(row) - r : int(row) + r, int(col) - r : int(col) + r].mean()
    assert inside > prepared.image[prepared.image > 0].mean()  # the mass is brighter than the breast


def test_film_labels_are_removed(mias_dir):
    """mdb003's film label (a bright island far from the breast) is black after preparation."""
    scan = read_scan(mias_dir / "mdb003.png")
    assert scan[20:120, 200:280].max() > 200  # the "ML" label, top left of the film
    prepared = prepare(scan)
    row, col = prepared.geometry.to_input(70, 240)
    assert prepared.image[int(row) - 5 : int(row) + 5, int(col) - 5 : int(col) + 5].max() == 0


@pytest.mark.parametrize("value", [0, 255])
def test_uniform_images_are_prepared_and_flagged(value):
    prepared = prepare(np.full((300, 200), value, np.uint8))
    assert prepared.image.shape == (DEFAULT_SIZE, DEFAULT_SIZE)
    assert prepared.quality is not None


def test_rejects_non_2d_input():
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10, 3), np.uint8))


def test_a_mirrored_scan_prepares_to_the_same_input(records):
    """Orientation is normalised, so mirroring the film changes nothing (contrast included)."""
    for record in records[:40:7]:
        scan = record.pixels()
        straight, mirrored = prepare(scan, size=256), prepare(np.ascontiguousarray(scan[:, ::-1]), size=256)
        assert straight.geometry.flipped != mirrored.geometry.flipped, record.id
        difference = np.abs(straight.image.astype(int) - mirrored.image.astype(int))
        # resampling is not exactly mirror-symmetric: a grey level or two here and there
        assert difference.mean() < 0.5 and (difference > 4).mean() < 0.02, (record.id, difference.mean())


def test_a_heat_map_cell_centre_lands_on_the_scan_under_that_cell():
    from edge.preprocess import Geometry

    for flipped in (False, True):
        geometry = Geometry(scan_shape=(1000, 800), flipped=flipped, top=100, left=50, side=700, size=64)
        row, col = geometry.cell_centre_to_scan(2, 5, (8, 8))  # cell (2, 5) of 8x8 covers input rows 16..23, cols 40..47
        assert geometry.to_input(row, col) == pytest.approx((19.5, 43.5))
        assert geometry.cell_centre_to_scan(2, 5, (64, 64)) == pytest.approx(geometry.to_scan(2, 5))
