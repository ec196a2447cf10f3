"""Bad scans a remote centre really meets, built by the tests themselves (no committed blobs).

`build_corpus` writes one file (or folder) per kind of bad input, next to what the runner must
do with it: refuse it with one line naming the file and the problem, or classify it and flag
its quality. These tests check the decoder and the preparation directly; the CLI tests
(`test_bad_input_cli.py`) run the same corpus through `edge-classify` in a batch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from edge.scan.decode import MAX_PIXELS, read_scan
from edge.errors import EdgeError
from edge.preprocess import prepare

SCAN = "mdb005.png"  # a real development-split scan
REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "reports" / "reliability" / "summary.json"
"""Written only when RELIABILITY_REPORT=1: the figures the table of docs/reliability.md quotes."""


def record_figures(section: str, figures: dict) -> None:
    """Merge `figures` under `section` into reports/reliability/summary.json (if asked to)."""
    if os.environ.get("RELIABILITY_REPORT") != "1":
        return
    from edge.fileio import atomic_write_text

    summary = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    summary[section] = figures
    atomic_write_text(SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Case:
    """One bad input: where it is, and either the words its error must contain or 'classified'."""

    kind: str
    path: Path
    error: str | None  # a fragment of the one-line error, or None: it must be classified
    flagged: bool = False  # classified, but its quality note must be set


def write_dicom(path: Path, pixels: np.ndarray | None, photometric: str = "MONOCHROME2", bits: int = 12, **fields) -> Path:
    """A small DICOM file made with pydicom, with patient fields that must never leak."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "MG"
    dataset.PatientName = fields.pop("PatientName", "Testperson^Zelda")
    dataset.PatientID = fields.pop("PatientID", "PID-7Q3Z9X")
    dataset.PatientBirthDate = fields.pop("PatientBirthDate", "19510417")
    if pixels is not None:
        dataset.set_pixel_data(pixels, photometric, bits)
    else:  # the image attributes without the image: what a DICOM report or a broken export looks like
        dataset.Rows, dataset.Columns = 64, 64
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, photometric
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, bits, bits - 1, 0
    for keyword, value in fields.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path, enforce_file_format=True)
    return path


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def build_corpus(dest: Path, scan: np.ndarray) -> list[Case]:
    """Every kind of bad input the issue lists, made from a real 8-bit scan."""
    dest.mkdir(parents=True, exist_ok=True)
    grey = Image.fromarray(scan, mode="L")
    cases: list[Case] = []

    def put(kind: str, name: str, data: bytes, error: str | None, flagged: bool = False) -> None:
        path = dest / name
        path.write_bytes(data)
        cases.append(Case(kind, path, error, flagged))

    put("empty file", "empty.png", b"", "empty file")
    put("text file named .png", "notes.png", b"patient list, do not lose\nline 2\n", "not an image")
    for fmt, suffix, options in (("PPM", "pgm", {}), ("PNG", "png", {}), ("JPEG", "jpg", {"quality": 90})):
        data = _encoded(grey, fmt, **options)
        put(f"truncated {fmt if fmt != 'PPM' else 'PGM'}", f"truncated.{suffix}", data[: len(data) * 2 // 3], "truncated")
    dicom = write_dicom(dest / "truncated.dcm", scan.astype(np.uint16) * 16).read_bytes()
    put("truncated DICOM", "truncated.dcm", dicom[: len(dicom) * 2 // 3], "truncated")
    put("PGM header claiming 60000x60000", "bomb.pgm", b"P5\n60000 60000\n255\n" + bytes(4096), "refused")
    put("PGM header claiming 9000x9000 (under Pillow's own limit)", "bomb9000.pgm", b"P5\n9000 9000\n255\n" + bytes(4096), "refused")
    put("1x1 image", "one_pixel.png", _encoded(Image.new("L", (1, 1), 200), "PNG"), "1x1")
    put("all-black scan", "all_black.png", _encoded(Image.new("L", grey.size, 0), "PNG"), None, flagged=True)
    put("all-white scan", "all_white.png", _encoded(Image.new("L", grey.size, 255), "PNG"), None, flagged=True)
    put("palette PNG", "palette.png", _encoded(grey.convert("P"), "PNG"), None)
    put("16-bit, values only in the low bits", "low_bits16.png", _encoded(Image.fromarray(scan.astype(np.uint16)), "PNG"), None)
    put("DICOM without pixel data", "no_pixels.dcm", b"", "no pixel data")
    write_dicom(dest / "no_pixels.dcm", None)
    cases.append(Case("path that does not exist", dest / "not_there.png", "no such file"))
    loop = dest / "loop.png"
    loop.symlink_to(loop.name)  # a symlink to itself: stat() fails with ELOOP
    cases.append(Case("symlink loop", loop, "symbolic links"))
    fifo = dest / "stuck.png"
    os.mkfifo(fifo)  # opening a FIFO for reading blocks until a writer comes: it must be refused unopened
    cases.append(Case("FIFO named .png", fifo, "not a regular file"))
    return cases


@pytest.fixture(scope="module")
def scan(mias_dir) -> np.ndarray:
    return np.asarray(Image.open(mias_dir / SCAN))


@pytest.fixture(scope="module")
def corpus(scan, tmp_path_factory) -> list[Case]:
    return build_corpus(tmp_path_factory.mktemp("bad_inputs"), scan)


def test_pillow_never_loads_truncated_images():
    """No device module may turn on Pillow's global switch that zero-fills truncated files."""
    import importlib
    import pkgutil

    import edge

    for module in pkgutil.walk_packages(edge.__path__, "edge."):
        importlib.import_module(module.name)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_every_bad_input_is_refused_naming_the_file_or_classified(corpus):
    for case in corpus:
        if case.error is None:
            prepared = prepare(read_scan(case.path))
            assert bool(prepared.quality) == case.flagged, (case.kind, prepared.quality)
            continue
        with pytest.raises(EdgeError) as caught:
            read_scan(case.path)
        message = str(caught.value)
        assert message.startswith(str(case.path) + ":"), (case.kind, message)
        assert case.error in message, (case.kind, message)
        assert "\n" not in message, (case.kind, message)
    record_figures("bad_input_decode", {"kinds": [case.kind for case in corpus], "count": len(corpus)})


def test_truncated_files_raise_instead_of_zero_filling(scan, tmp_path):
    """Cut each format at several points: never a result (a zero-filled tail would be a wrong scan)."""
    grey = Image.fromarray(scan, mode="L")
    for fmt, options in (("PPM", {}), ("PNG", {}), ("JPEG", {"quality": 90}), ("TIFF", {})):
        data = _encoded(grey, fmt, **options)
        for cut in (0.02, 0.3, 0.9, 0.999):
            path = tmp_path / f"cut.{fmt.lower()}"
            path.write_bytes(data[: int(len(data) * cut)])
            with pytest.raises(EdgeError, match="truncated|damaged|not an image"):
                read_scan(path)


def test_odd_but_valid_inputs_decode_to_the_same_scan(scan, corpus):
    by_kind = {case.kind: case.path for case in corpus}
    assert np.array_equal(read_scan(by_kind["palette PNG"]), scan)
    low = read_scan(by_kind["16-bit, values only in the low bits"])
    assert low.dtype == np.uint16 and int(low.max()) == int(scan.max())  # not divided by 65535 into black
    reference = prepare(scan).image
    # a 16-bit scan is first rescaled to 8 bits by its own range: two roundings, two grey levels
    assert np.abs(prepare(low).image.astype(int) - reference).max() <= 2


def test_a_fifo_is_refused_without_blocking(corpus):
    """read_scan must return at once; a blocking open would hang this test (and a whole batch)."""
    fifo = next(case.path for case in corpus if case.kind == "FIFO named .png")
    code = f"from edge.scan.decode import read_scan\ntry:\n    read_scan({str(fifo)!r})\nexcept Exception as exc:\n    print(exc)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "not a regular file" in result.stdout


def test_a_file_the_process_may_not_read(scan, tmp_path):
    """Permission denied, for real. Tests run as root, who reads any file through the
    CAP_DAC_OVERRIDE capability, so the reader runs under `setpriv` with that capability (and
    CAP_DAC_READ_SEARCH) dropped: the kernel then applies the 000 mode to root as to anyone."""
    path = tmp_path / "locked.png"
    path.write_bytes(_encoded(Image.fromarray(scan), "PNG"))
    path.chmod(0)
    code = f"from edge.scan.decode import read_scan\ntry:\n    read_scan({str(path)!r})\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
    result = subprocess.run(_without_file_capabilities([sys.executable, "-c", code]), capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"EdgeError {path}: permission denied", result.stderr


def _without_file_capabilities(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *command]


BOMB_READER = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from edge.scan.decode import read_scan
    from edge.errors import EdgeError
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    headroom = 48 << 20  # a 9000x9000 8-bit image needs 81 MB, 60000x60000 needs 3.6 GB
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
    for path in sys.argv[1:]:
        try:
            read_scan(path)
            print("DECODED", path)
        except EdgeError as exc:
            print("REFUSED", exc)
    try:
        np.ones(200 << 20, np.uint8)
        print("LIMIT NOT ENFORCED")
    except MemoryError:
        print("LIMIT ENFORCED")
    """
)


def test_bomb_headers_are_refused_before_any_pixel_is_allocated(corpus):
    """Under an address-space limit of 48 MB above what the process already holds, the bombs
    are refused (not a MemoryError): their pixels were never allocated. The last line proves
    the limit bites."""
    bombs = [str(case.path) for case in corpus if case.kind.startswith("PGM header claiming")]
    result = subprocess.run([sys.executable, "-c", BOMB_READER, *bombs], capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in lines] == ["REFUSED"] * len(bombs) + ["LIMIT"], lines
    assert lines[-1] == "LIMIT ENFORCED"
    assert all("refused" in line for line in lines[:-1])
    assert 9000 * 9000 > 0.8 * Image.MAX_IMAGE_PIXELS and 9000 * 9000 > MAX_PIXELS  # only our own check stops it


def test_a_dicom_file_without_dcm_suffix_is_recognised(tmp_path):
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    path = write_dicom(tmp_path / "IM000001", pixels)
    assert np.array_equal(read_scan(path), pixels.astype(np.float32))


def test_dicom_transforms_rescale_window_and_monochrome1(tmp_path):
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 4096, (64, 80), dtype=np.uint16)
    plain = read_scan(write_dicom(tmp_path / "plain.dcm", pixels))
    assert plain.shape == (64, 80) and np.array_equal(plain, pixels)
    rescaled = read_scan(write_dicom(tmp_path / "rescaled.dcm", pixels, RescaleSlope=2, RescaleIntercept=-100))
    assert np.array_equal(rescaled, pixels * 2.0 - 100)
    windowed = read_scan(write_dicom(tmp_path / "windowed.dcm", pixels, WindowCenter=2048, WindowWidth=1024))
    inside = (pixels > 1600) & (pixels < 2500)
    assert windowed[pixels < 1500].min() == windowed.min() and windowed[pixels > 2600].max() == windowed.max()
    assert np.corrcoef(windowed[inside], pixels[inside])[0, 1] > 0.999  # linear inside the window
    inverted = read_scan(write_dicom(tmp_path / "mono1.dcm", (4095 - pixels).astype(np.uint16), "MONOCHROME1"))
    assert np.allclose(inverted - inverted.min(), plain - plain.min())  # bright = dense again


def test_dicom_without_pydicom_is_one_clear_line(tmp_path):
    path = write_dicom(tmp_path / "scan.dcm", np.zeros((8, 8), np.uint16))
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "pydicom":
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        from edge.scan.decode import read_scan
        try:
            read_scan({str(path)!r})
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    from edge.scan.dicom import INSTALL_HINT

    assert result.stdout.strip() == f"EdgeError {path}: {INSTALL_HINT}"


def test_dicom_errors_and_pixels_never_carry_patient_fields(tmp_path):
    from edge.scan.dicom import patient_id

    good = write_dicom(tmp_path / "good.dcm", np.full((64, 64), 7, np.uint16), PatientName="Leak^Never", PatientID="PID-LEAK-1")
    bad = write_dicom(tmp_path / "bad.dcm", None, PatientName="Leak^Never", PatientID="PID-LEAK-1")
    pixels = read_scan(good)
    assert isinstance(pixels, np.ndarray) and pixels.ndim == 2
    with pytest.raises(EdgeError) as caught:
        read_scan(bad)
    assert "Leak" not in str(caught.value) and "PID-LEAK" not in str(caught.value)
    assert patient_id(good) == "PID-LEAK-1"  # only when asked
    assert patient_id(tmp_path / "missing.dcm") is None


def test_a_dicom_with_a_broken_display_window_is_read_without_it(tmp_path):
    from edge.scan.dicom import DicomWindowWarning

    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    path = write_dicom(tmp_path / "zero_width.dcm", pixels, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=40, WindowWidth=0)
    with pytest.warns(DicomWindowWarning, match="zero_width.dcm: DICOM display window ignored"):
        decoded = read_scan(path)
    assert np.array_equal(decoded, pixels * 2.0 - 100)


def test_a_dicom_without_its_size_fields_is_one_clear_error(tmp_path):
    import pydicom

    path = write_dicom(tmp_path / "no_rows.dcm", np.zeros((8, 8), np.uint16))
    dataset = pydicom.dcmread(path)
    del dataset.Rows
    dataset.save_as(path)
    with pytest.raises(EdgeError, match=r"no_rows.dcm: DICOM image has no valid Rows"):
        read_scan(path)
