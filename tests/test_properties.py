"""Property-based tests: whatever bytes or odd-but-valid image arrives, decode + prepare either
return a result or raise the project's own `EdgeError`. Nothing else: no other exception, no
hang, no silently wrong shape.

Derandomized with a bounded number of examples, so CI is stable and fast on a shared 2-core box.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge.scan.decode import SCAN_SUFFIXES, read_scan
from edge.errors import EdgeError
from edge.preprocess import prepare

from test_bad_input import record_figures

pytestmark = [
    pytest.mark.filterwarnings("ignore::edge.scan.decode.ColourScanWarning"),  # expected: colour modes on purpose
    pytest.mark.filterwarnings("ignore::edge.scan.dicom.DicomWindowWarning"),  # expected: broken windows on purpose
    # Known: a float image spanning about +-3e38 overflows float32 in preprocess._to_uint8 (a
    # result with wrong pixels, not a crash); no scanner writes such a file.
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning"),  # Pillow, on damaged TIFF tags
]
SIZE = 64  # model-input side used here: the property is the same at 512, the test is faster
RANDOM_BYTES, ODD_IMAGES, MUTATIONS = 500, 300, 500
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

HEADERS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"P5\n",
    b"P5\n64 64\n255\n",
    b"P5\n64 64\n65535\n",
    b"P2\n3 3\n",
    b"\xff\xd8\xff\xe0",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"GIF89a",
    bytes(128) + b"DICM",
]
counts: dict[str, int] = {"random bytes": 0, "odd images": 0, "mutated real files": 0, "odd DICOM files": 0}


def _check(path: Path) -> None:
    """The property: a 2-D array then a prepared uint8 square, or EdgeError naming the file."""
    try:
        scan = read_scan(path)
    except EdgeError as exc:
        assert str(exc).startswith(f"{path}:") and "\n" not in str(exc)
        return
    assert isinstance(scan, np.ndarray) and scan.ndim == 2 and min(scan.shape) >= 2
    assert scan.dtype in (np.uint8, np.uint16, np.float32)
    prepared = prepare(scan, SIZE)
    assert prepared.image.shape == (SIZE, SIZE) and prepared.image.dtype == np.uint8


_SCRATCH = tempfile.TemporaryDirectory(prefix="edge_properties_")  # removed at interpreter exit


def _write(data: bytes, suffix: str) -> Path:
    path = Path(_SCRATCH.name) / f"case{suffix}"
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


@settings(max_examples=RANDOM_BYTES, **SETTINGS)
@given(header=st.sampled_from(HEADERS), body=st.binary(min_size=0, max_size=4096), suffix=st.sampled_from(SCAN_SUFFIXES))
def test_random_bytes_give_a_result_or_edge_error(header, body, suffix):
    counts["random bytes"] += 1
    _check(_write(header + body, suffix))


MODES = ["L", "1", "P", "LA", "RGB", "RGBA", "I;16", "I", "F"]
FORMATS = {  # what each format can hold among MODES
    "PNG": {"L", "1", "P", "LA", "RGB", "RGBA", "I;16"},
    "PPM": {"L", "1", "RGB", "I;16", "I"},
    "TIFF": {"L", "1", "P", "LA", "RGB", "RGBA", "I;16", "I", "F"},
    "JPEG": {"L", "RGB"},
    "BMP": {"L", "1", "P", "RGB"},
}
SUFFIX = {"PNG": ".png", "PPM": ".pgm", "TIFF": ".tif", "JPEG": ".jpg", "BMP": ".png"}  # BMP misnamed on purpose


@st.composite
def odd_images(draw):
    """Sizes from 1x1 to thin strips, every mode, constant / noise / low-bit / extreme content."""
    width = draw(st.one_of(st.integers(1, 8), st.integers(9, 400), st.sampled_from([2, 3, 1500])))
    height = draw(st.one_of(st.integers(1, 8), st.integers(9, 400), st.sampled_from([2, 3, 1500])))
    if width * height > 200_000:
        height = max(1, 200_000 // width)
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from(sorted(f for f, modes in FORMATS.items() if mode in modes)))
    content = draw(st.sampled_from(["constant", "noise", "low bits", "two levels", "gradient"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    top = {"I;16": 65535, "I": 2**31 - 1, "F": 3e38}.get(mode, 255)
    if content == "constant":
        values = np.full((height, width), draw(st.sampled_from([0, 1, top])), np.float64)
    elif content == "noise":
        values = rng.uniform(0, top, (height, width))
    elif content == "low bits":
        values = rng.integers(0, 4, (height, width)).astype(np.float64)
    elif content == "two levels":
        values = np.where(rng.random((height, width)) < 0.3, top, 0).astype(np.float64)
    else:
        values = np.linspace(0, top, width)[None, :].repeat(height, 0)
    if mode == "F":
        array = values.astype(np.float32)
        if draw(st.booleans()):
            array.flat[rng.integers(0, array.size, 3)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -3e38]))
        image = Image.fromarray(array, mode="F")
    elif mode == "I":
        image = Image.fromarray(values.astype(np.int32), mode="I")
    elif mode == "I;16":
        image = Image.fromarray(values.astype(np.uint16))
    else:
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue(), SUFFIX[fmt], (width, height), content


@settings(max_examples=ODD_IMAGES, **SETTINGS)
@given(case=odd_images())
def test_odd_valid_images_give_a_result_or_edge_error(case):
    data, suffix, (width, height), content = case
    counts["odd images"] += 1
    path = _write(data, suffix)
    _check(path)
    if width >= 2 and height >= 2:  # a valid image of a refusable size is refused, of any other size read
        scan = read_scan(path)
        assert scan.shape == (height, width)
        if content == "constant":
            assert prepare(scan, SIZE).quality  # a blank image is flagged, never passed as a scan


@pytest.fixture(scope="module")
def small_files(mias_dir) -> list[tuple[bytes, str]]:
    """One real scan, reduced to 128x128, in every format the runner reads."""
    grey = Image.open(mias_dir / "mdb005.png").reduce(8)
    files = []
    for fmt, suffix, image in (
        ("PPM", ".pgm", grey),
        ("PNG", ".png", grey),
        ("PNG", ".png", Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)),
        ("JPEG", ".jpg", grey),
        ("TIFF", ".tif", grey),
    ):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        files.append((buffer.getvalue(), suffix))
    return files


@settings(max_examples=MUTATIONS, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], **{k: v for k, v in SETTINGS.items() if k != "suppress_health_check"})
@given(data=st.data())
def test_damaged_real_files_give_a_result_or_edge_error(small_files, data):
    """Real files with flipped bytes, cut short or with spliced garbage: deep inside each decoder."""
    content, suffix = data.draw(st.sampled_from(small_files))
    damaged = bytearray(content)
    for _ in range(data.draw(st.integers(1, 8))):
        action = data.draw(st.sampled_from(["flip", "cut", "splice"]))
        position = data.draw(st.integers(0, max(len(damaged) - 1, 0)))
        if action == "flip" and damaged:
            damaged[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del damaged[position:]
        else:
            damaged[position:position] = data.draw(st.binary(min_size=1, max_size=64))
    counts["mutated real files"] += 1
    _check(_write(bytes(damaged), suffix))


DICOM_CASES = 150


@st.composite
def odd_dicoms(draw):
    """Greyscale DICOMs with every bit depth, sign, photometric, rescale and window a scanner might write."""
    rows, columns = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    allocated = draw(st.sampled_from([8, 16]))
    stored = draw(st.integers(1, allocated))
    signed = draw(st.booleans())
    low, high = (-(2 ** (stored - 1)), 2 ** (stored - 1) - 1) if signed else (0, 2**stored - 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    content = draw(st.sampled_from(["noise", "constant", "extremes"]))
    if content == "noise":
        pixels = rng.integers(low, high + 1, (rows, columns))
    elif content == "constant":
        pixels = np.full((rows, columns), draw(st.sampled_from([low, 0, high])))
    else:
        pixels = np.where(rng.random((rows, columns)) < 0.5, low, high)
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[(allocated, signed)]
    fields = {}
    if draw(st.booleans()):
        fields["RescaleSlope"] = draw(st.sampled_from([1, 0.5, 2, -1, 0, 1e-6, 1e6]))
        fields["RescaleIntercept"] = draw(st.sampled_from([0, -1024, 32768, -1e9]))
    if draw(st.booleans()):
        fields["WindowCenter"] = draw(st.sampled_from([0, 40, 2048, -500, 1e9]))
        fields["WindowWidth"] = draw(st.sampled_from([1, 2, 400, 4096, 0, -10]))
        if draw(st.booleans()):
            fields["VOILUTFunction"] = draw(st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID", "BOGUS"]))
    photometric = draw(st.sampled_from(["MONOCHROME1", "MONOCHROME2"]))
    return pixels.astype(dtype), photometric, stored, fields


@settings(max_examples=DICOM_CASES, **SETTINGS)
@given(case=odd_dicoms())
def test_odd_dicom_files_give_a_result_or_edge_error(case):
    from test_bad_input import write_dicom

    pixels, photometric, stored, fields = case
    counts["odd DICOM files"] += 1
    path = Path(_SCRATCH.name) / "case.dcm"
    path.unlink(missing_ok=True)
    write_dicom(path, pixels, photometric, stored, **fields)
    _check(path)


def test_zz_record_property_counts():
    """Runs after the properties above (file order): the counts the table of docs/reliability.md quotes."""
    if not all(counts.values()):
        pytest.skip("run with the property tests to record their counts")
    assert counts == {"random bytes": RANDOM_BYTES, "odd images": ODD_IMAGES, "mutated real files": MUTATIONS,
                      "odd DICOM files": DICOM_CASES}
    record_figures("property_cases", {**counts, "total": sum(counts.values())})
