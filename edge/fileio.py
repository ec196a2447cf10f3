"""Writing files so that a power cut never leaves half of one: temp file, fsync, rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import EdgeError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
