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

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from edge.errors import EdgeError, NotAMammogram
from edge.scan.file import MAX_PIXELS, check_scan_file, check_size, looks_like_dicom  # noqa: F401 (part of this API)

SCAN_SUFFIXES = (".pgm", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm")


class ColourScanWarning(UserWarning):
    """A colour image was converted to greyscale: scans are greyscale, so the file may be a photo."""


def read_scan(path: str | Path, colour_ok: bool = False) -> np.ndarray:
    """Return the scan at `path` as a 2-D array (uint8, uint16 or float32), pixels untouched.
    A colour picture is refused (`NotAMammogram`) unless `colour_ok` (--read-anyway): then grey."""
    path = Path(path)
    head = check_scan_file(path)
    if looks_like_dicom(path, head):
        from edge.scan.dicom import read_dicom  # optional extra; imported only for DICOM files

        return read_dicom(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped Pillow's global switch: do not trust it
        raise EdgeError(f"{path}: refused: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, truncated scans would pass")
    try:
        with warnings.catch_warnings():
            # Pillow warns about big headers; check_size refuses them with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            check_size(path, image.size)  # the header only: no pixel is read or allocated yet
            image.load()  # truncated or corrupt pixel data raises here, inside the handlers below
            return _to_grey_array(path, image, colour_ok)
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


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's text, without control characters: decoder messages
    can quote bytes from the file, and a hostile file must not write escape codes to a terminal."""
    text = str(exc).strip()
    line = text.splitlines()[0][:200] if text else exc.__class__.__name__
    return "".join(char if char.isprintable() else "?" for char in line)


def _to_grey_array(path: Path, image: Image.Image, colour_ok: bool = False) -> np.ndarray:
    mode = image.mode
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa", "RGBX"):
        if mode not in ("L", "1", "LA", "La") and not (mode in ("P", "PA") and _palette_is_grey(image)):
            from edge.scan.plausibility import colour_problem

            refused = colour_problem(image)
            if refused and not colour_ok:
                raise NotAMammogram(f"{path}: {refused}", refused)
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
