"""Read a scan file into a 2-D greyscale numpy array, whatever format the centre's scanner wrote.

Every decoder problem becomes an `EdgeError` naming the file, so a batch can report it and go on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from edge.errors import EdgeError

MAX_PIXELS = 64_000_000
"""Larger images are refused before their pixels are allocated (decompression bombs).
A 50 µm full-field mammogram is about 5000 x 6000 = 30 M pixels."""

SCAN_SUFFIXES = (".pgm", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm")


class ColourScanWarning(UserWarning):
    """A colour image was converted to greyscale: scans are greyscale, so the file may be a photo."""


def read_scan(path: str | Path) -> np.ndarray:
    """Return the scan at `path` as a 2-D array (uint8, uint16 or float32), pixels untouched."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        from edge.dicom import read_dicom  # optional extra; imported only for DICOM files

        return read_dicom(path)
    try:
        with Image.open(path) as image:
            _check_size(path, image.size)
            return _to_grey_array(path, image)
    except EdgeError:
        raise
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EdgeError(f"{path}: is a directory, not a scan") from None
    except PermissionError:
        raise EdgeError(f"{path}: permission denied") from None
    except (Image.UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise EdgeError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's truncated/corrupt-file errors
        raise EdgeError(f"{path}: damaged or truncated image ({exc})") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise EdgeError(f"{path}: image is {width}x{height} pixels, larger than any mammogram; refused")
    if width < 2 or height < 2:
        raise EdgeError(f"{path}: image is only {width}x{height} pixels; not a scan")


def _to_grey_array(path: Path, image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode not in ("L", "1") and not (mode == "P" and _palette_is_grey(image)):
            warnings.warn(f"{path}: {mode} image converted to greyscale", ColourScanWarning, stacklevel=3)
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        array = np.asarray(image)
        if array.dtype != np.uint16:
            array = np.clip(array, 0, 65535).astype(np.uint16)
        return array
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    raise EdgeError(f"{path}: unsupported image mode {mode}")


def _palette_is_grey(image: Image.Image) -> bool:
    palette = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return bool(len(palette)) and bool((palette == palette[:, :1]).all())
