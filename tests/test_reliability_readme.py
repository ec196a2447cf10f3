"""docs/reliability.md's table quotes reports/reliability/summary.json, and that file agrees
with the test code that produced it (regenerate: see docs/reliability.md, `RELIABILITY_REPORT=1`)."""

from __future__ import annotations

import json
import re

from test_bad_input import REPO, SUMMARY
from test_plausibility import VARIANTS
from test_properties import DICOM_CASES, MUTATIONS, ODD_IMAGES, RANDOM_BYTES
from test_reliability import KILL_AFTER_ROWS, N_SCANS, WRITER_KILLS
from test_trust import TAMPER_CASES


def _table() -> dict[str, tuple[str, str]]:
    """The reliability table of docs/reliability.md: first three words of the row -> (cases, outcome)."""
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = text.split("## Reliability and security", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("tried", "---"):
            rows[" ".join(cells[0].split()[:3])] = (cells[1], cells[2])
    return rows


def test_summary_matches_the_test_code():
    summary = json.loads(SUMMARY.read_text())
    kill9, writes = summary["kill9"], summary["atomic_writes"]
    assert summary["property_cases"] == {
        "random bytes": RANDOM_BYTES, "odd images": ODD_IMAGES, "mutated real files": MUTATIONS,
        "odd DICOM files": DICOM_CASES, "total": RANDOM_BYTES + ODD_IMAGES + MUTATIONS + DICOM_CASES,
    }
    assert kill9["trials"] == len(KILL_AFTER_ROWS) and kill9["sigkills"] == sum(map(len, KILL_AFTER_ROWS))
    assert kill9["scans_per_trial"] == N_SCANS and kill9["rows_lost"] == 0 and kill9["scans_logged_twice"] == 0
    assert kill9["integrity_check"] == "ok"
    assert writes["sigkills"] == WRITER_KILLS and writes["half_written_files"] == 0
    assert summary["tamper_cases"]["refused_with_status_2"] == len(TAMPER_CASES)
    assert summary["tamper_cases"]["cases"] == list(TAMPER_CASES)
    assert summary["bad_input_cli"]["count"] == len(summary["bad_input_cli"]["kinds"])
    refused, accepted = summary["not_a_mammogram"], summary["real_scans_accepted"]
    assert refused["refused"] == len(refused["cases"]) and refused["refused"] + len(refused["read"]) == refused["tried"]
    assert refused["refused"] >= 0.9 * refused["tried"]
    assert accepted["checked"] == accepted["scans"] * len(VARIANTS) and accepted["false_refusal_rate"] == 0


def test_readme_table_quotes_the_summary():
    summary = json.loads(SUMMARY.read_text())
    rows = _table()
    kill9 = summary["kill9"]
    assert rows["bad-input kinds, in"][0] == str(summary["bad_input_cli"]["count"])
    assert rows["property-based cases through"][0] == str(summary["property_cases"]["total"])
    assert rows["`kill -9` mid-batch"][0] == (
        f"{kill9['trials']} trials x {kill9['sigkills'] // kill9['trials']} kills, {kill9['scans_per_trial']} scans"
    )
    assert rows["`kill -9` mid-batch"][1].startswith(
        f"{kill9['rows_lost']} rows lost, {kill9['scans_logged_twice']} scans logged twice, `integrity_check` {kill9['integrity_check']}"
    )
    assert rows["`kill -9` while"] == (f"{summary['atomic_writes']['sigkills']} kills",
                                       f"{summary['atomic_writes']['half_written_files']} half-written files")
    assert rows["damaged or tampered"][0] == str(summary["tamper_cases"]["refused_with_status_2"])
    refused, accepted = summary["not_a_mammogram"], summary["real_scans_accepted"]
    assert rows["not-a-mammogram images: photos,"] == (str(refused["tried"]), rows["not-a-mammogram images: photos,"][1])
    assert rows["not-a-mammogram images: photos,"][1].startswith(f"{refused['refused']} refused")
    assert rows["development scans as"] == (str(accepted["checked"]),
                                            f"{accepted['accepted']} read: false-refusal rate {accepted['false_refusal_rate']:g}")
    counts = summary["property_cases"]
    prose = re.sub(r"\s+", " ", (REPO / "docs" / "reliability.md").read_text(encoding="utf-8"))
    assert (f"{counts['random bytes']} random byte strings" in prose and f"{counts['odd images']} odd but valid images" in prose
            and f"{counts['mutated real files']} real scans with flipped bytes" in prose
            and f"{counts['odd DICOM files']} DICOM files" in prose and f"The {counts['total']} property cases" in prose)
