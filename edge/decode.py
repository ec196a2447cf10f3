"""Read a scan file into a 2-D greyscale numpy array, whatever format the centre's scanner wrote.

Every problem with a file becomes an `EdgeError` naming the file, so a batch can report it and
go on. The file is untrusted input (a USB stick, an old scanner, a half-copied transfer), so:
- only regular files are opened (a FIFO named `.png` would block a batch forever);
- the header's size is checked before any pixel is allocated (decompression bombs);
- a truncated file is an error, never zero-filled pixels: Pillow's `LOAD_TRUNCATED_IMAGES`
  must stay False, and the pixels are loaded inside the error handling;
- whatever else Pillow's plugins raise on hostile bytes (struct.error, IndexError, EOFError...)
  means "this file cannot be decoded", not a crash of the whole batch.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from edge.errors import EdgeError

MAX_PIXELS = 64_000_000
"""Larger images are refused before their pixels are allocated (decompression bombs).
A 50 µm full-field mammogram is about 5000 x 6000 = 30 M pixels."""

SCAN_SUFFIXES = (".pgm", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm")

_DICOM_MAGIC_OFFSET, _DICOM_MAGIC = 128, b"DICM"


class ColourScanWarning(UserWarning):
    """A colour image was converted to greyscale: scans are greyscale, so the file may be a photo."""


def read_scan(path: str | Path) -> np.ndarray:
    """Return the scan at `path` as a 2-D array (uint8, uint16 or float32), pixels untouched."""
    path = Path(path)
    head = check_scan_file(path)
    if path.suffix.lower() == ".dcm" or head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC:
        from edge.dicom import read_dicom  # optional extra; imported only for DICOM files

        return read_dicom(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped Pillow's global switch: do not trust it
        raise EdgeError(f"{path}: refused: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, truncated scans would pass")
    try:
        with warnings.catch_warnings():
            # Pillow warns about big headers; check_size below refuses them with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            check_size(path, image.size)  # the header only: no pixel is read or allocated yet
            image.load()  # truncated or corrupt pixel data raises here, inside the handlers below
            return _to_grey_array(path, image)
    except EdgeError:
        raise
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EdgeError(f"{path}: is a directory, not a scan") from None
    except PermissionError:
        raise EdgeError(f"{path}: permission denied") from None
    except Image.DecompressionBombError as exc:
        raise EdgeError(f"{path}: image header claims too many pixels, refused before reading them ({exc})") from None
    except Image.UnidentifiedImageError:
        raise EdgeError(f"{path}: not an image file (or a format this build cannot read)") from None
    except MemoryError:
        raise EdgeError(f"{path}: not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's truncated/corrupt-file errors
        raise EdgeError(f"{path}: damaged or truncated image ({_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - hostile bytes reach plugin code paths that raise anything
        raise EdgeError(f"{path}: damaged image, cannot be decoded ({exc.__class__.__name__}: {_one_line(exc)})") from None


def check_size(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image by its header's size: a bomb, or too small to hold a scan."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise EdgeError(f"{path}: image is {width}x{height} pixels, larger than any mammogram; refused")
    if width < 2 or height < 2:
        raise EdgeError(f"{path}: image is only {width}x{height} pixels; not a scan")


_check_size = check_size  # the earlier private name


def check_scan_file(path: str | Path) -> bytes:
    """The first 132 bytes of `path` after checking it is a non-empty regular file we may read.

    Call it before anything else opens a scan (hashing it, sniffing it): a plain open() of a
    FIFO blocks until some writer comes, which on a board means forever."""
    path = Path(path)
    try:
        info = path.stat()  # follows symlinks: a dangling one is "no such file", a loop is ELOOP
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such file") from None
    except PermissionError:
        raise EdgeError(f"{path}: permission denied") from None
    except OSError as exc:
        raise EdgeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise EdgeError(f"{path}: is a directory, not a scan")
    if not stat.S_ISREG(info.st_mode):
        raise EdgeError(f"{path}: not a regular file (a pipe, socket or device); refused")
    if info.st_size == 0:
        raise EdgeError(f"{path}: empty file (0 bytes)")
    try:
        # O_NONBLOCK: should the file be swapped for a FIFO after the stat, open still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise EdgeError(f"{path}: permission denied") from None
    except OSError as exc:
        raise EdgeError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    try:
        return os.read(fd, _DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
    except OSError as exc:
        raise EdgeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's text, without control characters: decoder messages
    can quote bytes from the file, and a hostile file must not write escape codes to a terminal."""
    text = str(exc).strip()
    line = text.splitlines()[0][:200] if text else exc.__class__.__name__
    return "".join(char if char.isprintable() else "?" for char in line)


def _to_grey_array(path: Path, image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa", "RGBX"):
        if mode not in ("L", "1", "LA", "La") and not (mode in ("P", "PA") and _palette_is_grey(image)):
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
