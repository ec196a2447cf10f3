"""The PATH arguments of `edge-classify`, expanded into the scans to classify, in order.

A file is taken as given (the user named it). A directory contributes every scan inside it,
its sub-folders included, sorted by path; hidden files (`._mdb001.png` from a Mac, half-written
`.tmp` files) and our own `NAME.overlay.png` pictures are skipped. A directory reached twice
through symbolic links is read once; a link back to one of its own parents (a loop) is
reported, not followed. A path that does not exist, or a folder with no scans, is one failed
item: the batch goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from edge.scan.decode import SCAN_SUFFIXES

OVERLAY_SUFFIX = ".overlay.png"
"""edge-classify's own heat-map pictures (--overlay): never taken for scans in a folder walk."""


@dataclass(frozen=True)
class Item:
    """One thing to classify: a scan file, or a problem found while listing (`error` set)."""

    path: Path
    error: str | None = None


def expand(paths: Iterable[str | Path], suffixes: tuple[str, ...] = SCAN_SUFFIXES) -> Iterator[Item]:
    """Files as given, directories as their sorted scans; problems as items with an error."""
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = False
            for item in _walk(path, suffixes, seen_dirs, ancestors=()):
                found = found or item.error is None
                yield item
            if not found:
                yield Item(path, f"{path}: no scans in this folder (looked for {', '.join(suffixes)})")
        elif path.exists() or path.is_symlink():
            yield Item(path)  # a broken link or an unreadable file fails when it is read
        else:
            yield Item(path, f"{path}: no such file or folder")


def _walk(folder: Path, suffixes, seen: set, ancestors: tuple) -> Iterator[Item]:
    try:
        stat = folder.stat()
    except OSError as exc:
        yield Item(folder, f"{folder}: cannot open folder ({exc.strerror})")
        return
    key = (stat.st_dev, stat.st_ino)
    if key in ancestors:
        yield Item(folder, f"{folder}: symbolic link loop (leads back to a parent folder); skipped")
        return
    if key in seen:
        return  # the same folder through another link: its scans are already listed
    seen.add(key)
    try:
        with os.scandir(folder) as entries:
            names = sorted((entry.name, _is_dir(entry)) for entry in entries if not entry.name.startswith("."))
    except OSError as exc:
        yield Item(folder, f"{folder}: cannot list folder ({exc.strerror})")
        return
    for name, is_dir in names:
        child = folder / name
        if is_dir:
            yield from _walk(child, suffixes, seen, ancestors + (key,))
        elif child.suffix.lower() in suffixes and not name.endswith(OVERLAY_SUFFIX):
            yield Item(child)


def _is_dir(entry: os.DirEntry) -> bool:
    """A looping or unreadable link must not lose the whole folder: it is listed as a file and
    fails on its own when read (is_dir() raises OSError for a link that loops, ELOOP)."""
    try:
        return entry.is_dir()
    except OSError:
        return False
