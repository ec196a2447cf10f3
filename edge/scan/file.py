"""What every scan file passes before a decoder touches it, for the image decoder and DICOM alike.

Kept apart from `edge.scan.decode` and `edge.scan.dicom` so that both can use it without importing each
other (the DICOM reader is an optional extra, loaded only for DICOM files).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import EdgeError

MAX_PIXELS = 64_000_000
"""Larger images are refused before their pixels are allocated (decompression bombs).
A 50 µm full-field mammogram is about 5000 x 6000 = 30 M pixels."""

DICOM_MAGIC_OFFSET, DICOM_MAGIC = 128, b"DICM"


def check_size(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image by its header's size: a bomb, or too small to hold a scan."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise EdgeError(f"{path}: image is {width}x{height} pixels, larger than any mammogram; refused")
    if width < 2 or height < 2:
        raise EdgeError(f"{path}: image is only {width}x{height} pixels; not a scan")


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
        return os.read(fd, DICOM_MAGIC_OFFSET + len(DICOM_MAGIC))
    except OSError as exc:
        raise EdgeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def looks_like_dicom(path: str | Path, head: bytes | None = None) -> bool:
    """A `.dcm` name, or the DICM magic at byte 128 of `head` (read safely when not given).

    A file that cannot be read is not DICOM here; reading it for real reports why."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    if head is None:
        try:
            head = check_scan_file(path)
        except EdgeError:
            return False
    return head[DICOM_MAGIC_OFFSET:DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC
