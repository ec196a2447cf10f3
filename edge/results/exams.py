"""Which scans belong to one woman: the pairing of left and right breasts before classification.

A scan is read beside the other breast of the same woman when the pairing is certain:
- an explicit pair (`--exam LEFT RIGHT`, or a row `woman,left,right` of an `--exams` CSV);
- otherwise MIAS naming: mdbN with N odd is a right breast, N + 1 the left of the same woman.
A scan is read alone (its partner `None`) when no partner is known, or when the woman has more
than one scan of the other side (which one to compare with would be a guess), with a note.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError

MIAS_NAME = re.compile(r"^mdb(\d{3})$", re.IGNORECASE)
CSV_COLUMNS = ("woman", "left", "right")
SIDES = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class Exam:
    """One woman's scans as the user named them."""

    woman: str
    left: Path | None
    right: Path | None


@dataclass(frozen=True)
class Pairing:
    """Where scan i of the batch stands: its woman, the index of its partner, why it has none,
    and which breast it is ("left" / "right"; None when no woman is known)."""

    woman: str | None
    partner: int | None
    note: str | None = None
    side: str | None = None


def read_exams_csv(path: Path) -> list[Exam]:
    """Rows `woman,left,right` (a header line with these names); paths relative to the CSV's folder.

    Either side may be empty (a woman with one breast scanned). Every bad row is named at once.
    """
    from edge.fileio import read_text

    text = read_text(path, "exams file", encoding="utf-8-sig")
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip().lower() for c in rows[0]] != list(CSV_COLUMNS):
        raise EdgeError(f"{path}: the first line must be the header {','.join(CSV_COLUMNS)}")
    exams, problems = [], []
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            problems.append(f"line {number}: {len(row)} columns, expected 3")
            continue
        woman, left, right = (cell.strip() for cell in row)
        if not woman or not (left or right):
            problems.append(f"line {number}: needs a woman and at least one scan")
            continue
        exams.append(Exam(woman, path.parent / left if left else None, path.parent / right if right else None))
    if problems:
        raise EdgeError(f"{path}: " + "; ".join(problems))
    return exams


def mias_number(path: Path | str) -> int | None:
    """N of a file named mdbN.<anything>, else None."""
    match = MIAS_NAME.match(Path(path).stem)
    return int(match.group(1)) if match else None


def mias_woman(number: int) -> str:
    """The woman of MIAS scan mdbN: N odd is her right breast, N + 1 her left."""
    return f"mias-{(number + 1) // 2}"


def pair(paths: list[Path | None], exams: list[Exam] = ()) -> list[Pairing]:
    """The pairing of every scan of a batch (a None path, such as a camera frame, is read alone)."""
    keys = [file_key(p) for p in paths]
    sides: dict[str, dict[str, list[int]]] = {}  # woman -> side -> batch indices
    woman_of: dict[int, str] = {}
    explicit = {}
    for exam in exams:
        for side, path in (("L", exam.left), ("R", exam.right)):
            if path is not None:
                explicit[file_key(path)] = (exam.woman, side)
    for i, key in enumerate(keys):
        if key is None:
            continue
        if key in explicit:
            woman, side = explicit[key]
        else:
            number = mias_number(key)
            if number is None or number == 0:
                continue
            woman, side = mias_woman(number), "R" if number % 2 else "L"
        woman_of[i] = woman
        sides.setdefault(woman, {"L": [], "R": []})[side].append(i)
    result = []
    for i in range(len(paths)):
        woman = woman_of.get(i)
        if woman is None:
            result.append(Pairing(None, None))
            continue
        scans = sides[woman]
        own = "L" if i in scans["L"] else "R"
        side = SIDES[own]
        others = scans["R" if own == "L" else "L"]
        if len(others) == 1:
            result.append(Pairing(woman, others[0], side=side))
        elif not others:
            result.append(Pairing(woman, None, side=side))
        else:
            result.append(Pairing(woman, None, f"{len(others)} scans of the other breast of woman {woman}: read alone", side))
    return result


def file_key(path: Path | str | None) -> str | None:
    """One spelling per file: the absolute path (symbolic links resolved where they exist)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symbolic-link loop (the batch reports it)
        return str(Path(path).absolute())
