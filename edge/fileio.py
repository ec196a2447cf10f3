"""Writing files so that a power cut never leaves half of one: temp file, fsync, rename."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from edge.errors import EdgeError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one, never a part."""
    with atomic_writer(path) as out:
        out.write(data)


@contextmanager
def atomic_writer(path: str | Path, text: bool = False) -> Iterator[IO]:
    """A file to write `path` through, piece by piece (a report too large to hold in memory):
    it replaces `path` in one step when the block ends, and nothing does if the block fails.
    `text`: UTF-8 text with the newlines as written (what the csv module wants)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """0666 less the umask, read once per run (reading it means setting it, so not per file): the
    mode a picture or a report gets, as any new file would, where mkstemp would give 0600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str | Path, what: str, where_hint: str = "", encoding: str = "utf-8") -> str:
    """The text of `path`, or an `EdgeError` saying which file (`what`) and why."""
    path = Path(path)
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise EdgeError(f"{path}: {what} not found" + (f" ({where_hint})" if where_hint else "")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeError(f"{path}: {what} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def read_json_object(path: str | Path, what: str, where_hint: str) -> dict[str, Any]:
    """A JSON object from `path`, or an `EdgeError` saying which file (`what`) and why."""
    text = read_text(path, what, where_hint)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeError(f"{path}: {what} cannot be read ({exc})") from None
    if not isinstance(raw, dict):
        raise EdgeError(f"{path}: {what} is not a JSON object")
    return raw
