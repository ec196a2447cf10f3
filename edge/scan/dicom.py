"""DICOM scans (`.dcm`), through pydicom, an optional extra: `pip install mias-edge[dicom]`.

A DICOM file carries the patient's identity next to the pixels. This module returns pixels
only; `patient_id` is the one way to get the PatientID out, and the runner calls it only when
the user asks (`edge-classify --log-patient-id`). No other patient field (name, birth date,
accession number...) is read out, logged, or put in an error message: pydicom's own warnings
are silenced while a file is read, because some of them quote element values.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from edge.scan.file import check_scan_file, check_size
from edge.errors import EdgeError

INSTALL_HINT = (
    "DICOM support needs pydicom, which is not installed here. A board without internet gets it as one wheel: "
    "on a computer with internet run `pip download \"pydicom>=3,<4\" --no-deps -d wheels` (one pure-Python file, "
    "pydicom-3.*-py3-none-any.whl, the same for every board), copy the wheels folder to the board, then run "
    "`pip install --no-index --find-links wheels pydicom` there (with internet: pip install mias-edge[dicom])"
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dicom(path: str | Path) -> np.ndarray:
    """The scan in a DICOM file as a 2-D float32 array, in display grey levels (bright = dense).

    Applies the modality LUT (or Rescale Slope/Intercept), then the VOI LUT or window the file
    recommends, then inverts MONOCHROME1 images, whose bright pixels are the empty film.
    """
    path = Path(path)
    pydicom = _import_pydicom(path)
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = _read(path, pydicom)
        if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
            raise EdgeError(f"{path}: DICOM file has no pixel data (a report or structured document, not an image)")
        rows, columns = _whole(path, dataset, "Rows", None), _whole(path, dataset, "Columns", None)
        check_size(path, (columns, rows))  # before the pixel data is decoded and allocated
        frames = _whole(path, dataset, "NumberOfFrames", 1)
        if frames > 1:
            raise EdgeError(f"{path}: DICOM image has {frames} frames (tomosynthesis?); only single images are read")
        if _whole(path, dataset, "SamplesPerPixel", 1) != 1:
            raise EdgeError(f"{path}: colour DICOM image ({dataset.get('PhotometricInterpretation', '?')}); scans are greyscale")
        try:
            pixels = dataset.pixel_array
            pixels = apply_modality_lut(pixels, dataset)
        except MemoryError:
            raise EdgeError(f"{path}: not enough memory to decode this DICOM image") from None
        except Exception as exc:  # noqa: BLE001 - pixel handlers raise many types; messages name syntaxes, not people
            short = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", str(exc))
            if short:
                raise EdgeError(f"{path}: DICOM pixel data is truncated ({short[1]} of {short[2]} bytes)") from None
            raise EdgeError(f"{path}: DICOM pixel data cannot be decoded ({_first_line(exc)})") from None
        window_problem = None
        try:
            pixels = apply_voi_lut(pixels, dataset)
        except Exception as exc:  # noqa: BLE001 - e.g. a zero window width, an unknown VOI LUT function
            window_problem = _first_line(exc)
        photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if window_problem:
        # The window is a display suggestion; the pixels are intact and prepare() sets the contrast.
        warnings.warn(f"{path}: DICOM display window ignored ({window_problem})", DicomWindowWarning, stacklevel=2)
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.shape != (rows, columns):
        raise EdgeError(f"{path}: DICOM pixel data has shape {pixels.shape}, expected {rows}x{columns}")
    if photometric == "MONOCHROME1":
        finite = pixels[np.isfinite(pixels)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        pixels = (high + low) - pixels
    return pixels


def _whole(path: Path, dataset, keyword: str, default: int | None) -> int:
    """An integer header field; a missing one takes `default` (None: required)."""
    try:
        value = dataset.get(keyword)
        if value is None or value == "":
            if default is None:
                raise ValueError
            return default
        return int(value)
    except Exception:  # noqa: BLE001 - a malformed value (text, a list...) of any kind
        raise EdgeError(f"{path}: DICOM image has no valid {keyword}") from None


class DicomWindowWarning(UserWarning):
    """The file's VOI LUT or window could not be applied; the scan was read without it."""


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
    return "".join(char if char.isprintable() else "?" for char in text)


def patient_id(path: str | Path) -> str | None:
    """The file's PatientID, or None (not DICOM, none recorded, or unreadable).

    Only for `--log-patient-id`: nothing else in the project reads patient fields.
    """
    path = Path(path)
    try:
        check_scan_file(path)  # never open a FIFO or a device
        pydicom = _import_pydicom(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
            value = dataset.get("PatientID")
    except Exception:  # noqa: BLE001 - a missing ID is not an error worth stopping a batch for
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def _import_pydicom(path: Path):
    try:
        import pydicom
    except ImportError:
        raise EdgeError(f"{path}: {INSTALL_HINT}") from None
    return pydicom


def _read(path: Path, pydicom):
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such file") from None
    except PermissionError:
        raise EdgeError(f"{path}: permission denied") from None
    except InvalidDicomError:
        raise EdgeError(f"{path}: not a DICOM file (no DICM preamble)") from None
    except Exception as exc:  # noqa: BLE001 - the text may quote element values: name the type only
        raise EdgeError(f"{path}: damaged DICOM file ({exc.__class__.__name__})") from None
