"""Generated blocks of the README, the model card and the documentation pages: the one writer for
every script and report that copies committed figures into prose, so those figures are never typed.

A block is either marked, between `<!-- NAME:begin -->` and `<!-- NAME:end -->` (the bench, board
and edge-classify timing figures of docs/benchmarks.md and docs/classify.md), or a whole
`## Heading` section up to the next `## ` (the model's evaluation in docs/model.md, written by
`train.report`). It lives on the desktop side: no device code writes Markdown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from edge.fileio import atomic_write_text


def markers(name: str) -> tuple[str, str]:
    """The begin and end comments of block `name`."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_marked(text: str, name: str, block: str) -> str:
    """`text` with its block `name` (markers included) replaced by `block`, which carries its own markers."""
    begin, end = markers(name)
    if begin not in text or end not in text:
        raise ValueError(f"no {begin} ... {end} block to replace")
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + block + text[stop:]


def replace_section(text: str, heading: str, section: str, after: str | None = None) -> str:
    """`text` with its `heading` section replaced by `section` (which starts with that heading);
    without one, `section` goes in after the section headed `after` (or at the end)."""
    lines = text.splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    else:
        anchor = lines.index(after) if after in lines else len(lines) - 1
        start = end = next((i for i in range(anchor + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:]) + "\n"


def rewrite(path: str | Path, change: Callable[[str], str]) -> None:
    """Apply `change` to the file's text and write it back atomically (a killed run leaves the old
    file), keeping its permissions (an atomic write's temporary file is private, 0600)."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777
    atomic_write_text(path, change(path.read_text(encoding="utf-8")))
    os.chmod(path, mode)
