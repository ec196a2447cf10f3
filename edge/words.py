"""The answer in plain words, for the person who reads it: the readable line and the overlay.

One place for the wording, so the terminal and the picture never say different things. The
JSON record and the results log keep the codes ("refer", "SPIC"); these words are for people.
"""

from __future__ import annotations

from datetime import datetime, timezone

TRIAGE = {"refer": "refer to a radiologist", "routine": "routine"}
FINDINGS = {
    "CALC": "possible calcifications",
    "CIRC": "possible mass, well-defined",
    "SPIC": "possible mass, spiculated",
    "MISC": "possible mass, ill-defined",
    "ARCH": "possible architectural distortion",
    "ASYM": "possible asymmetry",
    "NORM": "nothing the model would refer",
}
HEAT_LEGEND = "where the model looked most"
DISCLAIMER = "research software, not a medical device: these answers must not decide anyone's care"


INVERTED = "inverted polarity (white background, dark breast): read as its negative"


def handling(record: dict) -> list[str]:
    """What was done to the scan that whoever reads the answer must know: read as its negative
    (`inverted`), read on request although the check said it is not a mammogram (`forced`)."""
    notes = [INVERTED] if record.get("inverted") else []
    if record.get("forced"):
        notes.append(f"read on request (--read-anyway) although it {record['forced']}")
    return notes


def triage_rule(threshold: float, sensitivity: float) -> str:
    """`refer to a radiologist when P(abnormal) >= 0.351 (chosen to refer 90% of the women with a finding)`: the
    manifest's rule; a woman is referred when any of her scans is."""
    return f"{TRIAGE['refer']} when P(abnormal) >= {threshold:.3f} (chosen to refer {sensitivity:.0%} of the women with a finding)"


def counted(number: int, one: str, many: str | None = None) -> str:
    """`1 scan`, `2 scans`, `3 women` (`many`: an irregular plural)."""
    return f"{number} {one if number == 1 else many or one + 's'}"


def verdict(record: dict) -> str:
    """`REFER TO A RADIOLOGIST - possible mass, spiculated (SPIC)` or `ROUTINE - nothing the model would refer`."""
    label = record["label"]
    words = f"{TRIAGE.get(record['triage'], record['triage']).upper()} - {FINDINGS.get(label, label)}"
    return words if label == "NORM" else f"{words} ({label})"


def local_time(when: str | datetime | None = None) -> str:
    """A moment (UTC ISO text as the log keeps it, a datetime, or None for now) in local time."""
    if when is None:
        moment = datetime.now(timezone.utc)
    elif isinstance(when, str):
        moment = datetime.fromisoformat(when)
    else:
        moment = when
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def printable(line: str) -> str:
    """One line whatever a file is called: a newline or an escape sequence in a file name (a USB
    stick can hold anything) is shown escaped, never acted on (a terminal, a report)."""
    if line.isprintable():
        return line
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in line)
