"""Writing the day's report: report.html, results.csv and results.json from one read-only snapshot
of the results log, read twice so that rows are streamed, never held (`edge.report.day`)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from edge.errors import EdgeError
from edge.fileio import atomic_writer, new_file_mode
from edge.report.day import CSV_COLUMNS, Counts, Pictures, Selection, csv_row, json_row, status, woman_status, women
from edge.report.page import Page
from edge.results.log import LoggedRow, LogReader


@dataclass
class Written:
    """What a report run found, for the command's summary."""

    counts: Counts
    pictures: Pictures


def write_report(log: Path, out: Path, selection: Selection, centre: str | None = None,
                 scans_dir: Path = Path("."), max_pictures: int = 300, manifest=None) -> Written:
    """Write report.html, results.csv and results.json for `selection` of the log into `out`.

    `manifest` is the installed model's (`edge.inference.manifest.Manifest`), whose id and headline figures
    the page shows beside the scans it read; scans read by another model are said to be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"{out}: cannot create the report folder ({exc.strerror or exc})") from None
    pictures = Pictures(scans_dir, max_pictures)
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with LogReader(log) as reader, _spool(out) as referred, _spool(out) as failed:
        counts = Counts(replaced=reader.replaced(selection.since, selection.until))
        page = Page(centre=centre, selection=selection, log=log, made=made, counts=counts,
                         manifest=manifest, pictures=pictures)
        about = {"centre": centre, "range": selection.name, "since": selection.since, "until": selection.until,
                 "id": selection.visit_id, "log": str(log), "made": made}
        # First pass: the tables, the counts the page opens with, and its women to refer (so their
        # pictures come first) and failures, spooled; second pass: the routine women.
        with atomic_writer(out / "results.csv", text=True) as table, atomic_writer(out / "results.json", text=True) as data:
            writer = csv.writer(table)
            writer.writerow(CSV_COLUMNS)
            data.write('{"report": ' + json.dumps(about) + ',\n "scans": [')
            for woman in women(_tabulated(selection.rows(reader), counts, writer, data, lambda row: failed.write(page.failure(row)))):
                kind = woman_status(woman)
                counts.women[kind] += 1
                if kind == "refer":
                    referred.write(page.woman(woman))
            data.write('\n ],\n "counts": ' + json.dumps(_counted(counts)) + "}\n")
        with atomic_writer(out / "report.html", text=True) as html:
            html.write(page.head())
            _copied(referred, html, page, "refer")
            html.write(page.section_start("routine"))
            for woman in women(row for row in selection.rows(reader) if status(row) != "failed"):
                if woman_status(woman) == "routine":
                    html.write(page.woman(woman))
            html.write(page.section_end("routine"))
            _copied(failed, html, page, "failed")
            html.write(page.tail())
    for name in ("report.html", "results.csv", "results.json"):
        os.chmod(out / name, new_file_mode())
    return Written(counts, pictures)


def _spool(folder: Path):
    """A nameless temporary file beside the report (file names and ids stay where the report goes)."""
    return tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder)


def _copied(spool, html, page, kind: str) -> None:
    html.write(page.section_start(kind))
    spool.seek(0)
    shutil.copyfileobj(spool, html)
    html.write(page.section_end(kind))


def _tabulated(rows: Iterable[LoggedRow], counts: Counts, writer, data, on_failure) -> Iterator[LoggedRow]:
    """Every row into the counts, the CSV and the JSON; the failures to `on_failure`, the answered ones passed on."""
    separator = "\n  "
    for row in rows:
        counts.add(row)
        writer.writerow(csv_row(row))
        data.write(separator + json.dumps(json_row(row)))
        separator = ",\n  "
        if status(row) == "failed":
            on_failure(row)
        else:
            yield row


def _counted(counts: Counts) -> dict[str, Any]:
    return {"scans": counts.scans, "women_to_refer": counts.women["refer"], "women_routine": counts.women["routine"],
            "failed": counts.failed, "refused_not_a_mammogram": counts.refused,
            "replaced_by_a_later_reading": counts.replaced, "models": counts.models}
