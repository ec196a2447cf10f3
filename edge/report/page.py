"""The report page: one self-contained HTML file (styles inline, pictures embedded, nothing
fetched), readable on a phone and printable on A4, written piece by piece by `edge.report.day`.

Every text comes from the log or from `edge.words` (the same words as the terminal and the
overlay), escaped, with control characters shown as escapes (a file name can hold anything).
Each scan is one element with `data-row` (its row in the results log) and `data-status`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.report.day import refused, woman_status
from edge.results.log import LoggedRow
from edge.words import DISCLAIMER, FINDINGS, HEAT_LEGEND, TRIAGE, counted, handling, local_time, printable, triage_rule, verdict

TITLES = {
    "refer": f"Women to {TRIAGE['refer']}",
    "routine": f"Routine: {FINDINGS['NORM']}",
    "failed": "Scans that failed or were refused",
}
CSS = """
:root { --ink: #1a1a1a; --muted: #555; --line: #c8c8c8; --refer: #a8001c; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 62rem; padding: 1rem; color: var(--ink); background: #fff;
  font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; margin: 1.4rem 0 .5rem; padding-bottom: .2rem; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1rem; margin: 0 0 .4rem; overflow-wrap: anywhere; }
p { margin: .2rem 0; }
.meta, .model { color: var(--muted); font-size: .9rem; }
.model ul { margin: .2rem 0; padding-left: 1.2rem; }
.counts { font-size: 1.1rem; margin: .5rem 0; }
.disclaimer { border: 2px solid var(--ink); padding: .4rem .6rem; font-weight: 600; margin: .6rem 0; }
.ramp { display: inline-block; width: 7rem; height: .8rem; vertical-align: middle; border: 1px solid var(--line); }
.women { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 28rem), 1fr)); gap: .7rem; }
article.woman { border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 4px;
  padding: .6rem; break-inside: avoid; }
article.woman.refer { border-left-color: var(--refer); }
.scans { display: flex; flex-wrap: wrap; gap: .7rem; }
figure.scan { margin: 0; flex: 1 1 11rem; max-width: 14rem; }
figure.scan img, .nopicture { display: block; width: 100%; aspect-ratio: 1; border-radius: 2px; }
figure.scan img { height: auto; object-fit: contain; background: #000; }
.nopicture { display: flex; align-items: center; justify-content: center; padding: .6rem; text-align: center;
  background: #eee; color: var(--muted); font-size: .85rem; }
figcaption { margin-top: .3rem; overflow-wrap: anywhere; }
.side { font-weight: 600; }
.verdict { font-weight: 700; }
.refer > .verdict, figure.refer .verdict { color: var(--refer); }
.file { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; }
.note { font-size: .9rem; font-style: italic; }
ul.failures { list-style: none; padding: 0; }
ul.failures li { border-top: 1px solid var(--line); padding: .4rem 0; break-inside: avoid; overflow-wrap: anywhere; }
.none { color: var(--muted); }
footer { margin-top: 1.5rem; border-top: 1px solid var(--line); padding-top: .4rem; color: var(--muted); font-size: .85rem; }
@media (max-width: 32rem) {
  body { padding: .5rem; }
  h1 { font-size: 1.25rem; }
  figure.scan { flex-basis: 9rem; }
  figcaption { font-size: .9rem; }
  .file { font-size: .75rem; }
}
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  .women { grid-template-columns: 1fr 1fr; gap: 3mm; }
  article.woman { padding: 2mm; }
  figure.scan { flex: 0 1 40mm; max-width: 40mm; }
  .file { font-size: 8pt; }
}
"""


def text(value: Any) -> str:
    """Any value as safe HTML text: control characters shown as escapes, markup escaped."""
    return html.escape(printable(str(value)), quote=True)


@dataclass
class Page:
    """The parts of the page, in the order edge.report.day writes them."""

    centre: str | None
    selection: Any  # edge.report.day.Selection
    log: Path
    made: str  # UTC ISO
    counts: Any  # edge.report.day.Counts
    manifest: Any  # edge.inference.manifest.Manifest of the installed model, or None
    pictures: Any  # edge.report.day.Pictures

    def head(self) -> str:
        counts = self.counts
        centre = text(self.centre) if self.centre else "not named (edge-report --centre NAME)"
        title = f"Mammogram triage results, {self.centre + ', ' if self.centre else ''}{self.selection.name}"
        span = ""
        if counts.first:
            span = f" (first scan {text(local_time(counts.first))}, last {text(local_time(counts.last))})"
        visit = f", id {text(self.selection.visit_id)}" if self.selection.visit_id else ""
        refused = f" ({counts.refused} of them not a mammogram)" if counts.refused else ""
        replaced = (f" {counted(counts.replaced, 'earlier reading')} replaced by a later one (edge-classify --force) "
                    "left out." if counts.replaced else "")
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{text(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n"
            f"<h1>Mammogram triage results</h1>\n"
            f'<p class="centre">Centre: <strong>{centre}</strong></p>\n'
            f'<p class="range">Scans logged: <strong>{text(self.selection.name)}</strong>{visit}{span}.</p>\n'
            f'<p class="counts"><strong>{counted(counts.women["refer"], "woman", "women")} to {TRIAGE["refer"]}</strong>, '
            f'{counts.women["routine"]} routine, {counted(counts.failed, "scan")} failed or '
            f"refused{refused}; {counted(counts.scans, 'scan')} in all.{replaced}</p>\n"
            f'<p class="disclaimer">{text(_sentence(DISCLAIMER))}</p>\n'
            f"{self._models()}"
            f'<p class="meta">Pictures: the scan as read, with the heat-map: <span class="ramp" style="{_ramp()}"></span> '
            f"blue to red, {HEAT_LEGEND}. Times are local time. Made {text(local_time(self.made))} "
            f'from <span class="file">{text(self.log)}</span> by edge-report.</p>\n</header>\n'
        )

    def _models(self) -> str:
        """The model of each scan: the installed one with its id and headline figures, any other by its id."""
        from edge.inference.manifest import headline_figures

        models = dict(self.counts.models) or ({self.manifest.sha256: 0} if self.manifest else {})
        items = []
        for sha, scans in models.items():
            read = f" ({counted(scans, 'scan')})" if scans else ""
            if self.manifest is not None and sha == self.manifest.sha256:
                figures = "".join(f"<li>{text(figure)}</li>" for figure in headline_figures(self.manifest))
                rule = triage_rule(self.manifest.triage_threshold, self.manifest.target_sensitivity)
                items.append(f"<p>Model <strong>{text(sha[:12])}</strong>{read}: {text(rule)}. "
                             f"Its figures, out of fold in patient-grouped cross-validation:</p><ul>{figures}</ul>")
            else:
                items.append(f"<p>Model <strong>{text(sha[:12])}</strong>{read}: its manifest is not the one at hand, "
                             "so its figures are not shown (edge-report --model FILE gives it).</p>")
        return f'<div class="model">{"".join(items)}</div>\n'

    def section_start(self, kind: str) -> str:
        number = self.counts.failed if kind == "failed" else self.counts.women[kind]
        start = f'<section id="{kind}" class="{kind}">\n<h2>{text(TITLES[kind])} ({number})</h2>\n'
        if not number:
            return start + '<p class="none">None.</p>\n'
        return start + ('<ul class="failures">\n' if kind == "failed" else '<div class="women">\n')

    def section_end(self, kind: str) -> str:
        number = self.counts.failed if kind == "failed" else self.counts.women[kind]
        return ("" if not number else "</ul>\n" if kind == "failed" else "</div>\n") + "</section>\n"

    def woman(self, scans: tuple[LoggedRow, ...]) -> str:
        """One woman: her scans side by side (right breast first), each with its picture and answer."""
        first = scans[0].outputs
        kind = woman_status(scans)
        name = f"Woman {first['woman']}" if first.get("woman") else f"Scan {Path(scans[0].file).name}, no woman named"
        ids = sorted({row.outputs["id"] for row in scans if row.outputs.get("id")})
        about = [f"id {', '.join(ids)}"] if ids else []
        about.append(local_time(scans[0].time))
        figures = "".join(self._scan(row, alone=len(scans) == 1) for row in scans)
        return (f'<article class="woman {kind}">\n<h3>{text(name)}</h3>\n<p class="meta">{text(" · ".join(about))}</p>\n'
                f'<div class="scans">\n{figures}</div>\n</article>\n')

    def _scan(self, row: LoggedRow, alone: bool) -> str:
        record = row.outputs
        uri, picture_note = self.pictures.of(row)
        alt = text(f"{Path(row.file).name} with the heat-map")
        picture = (f'<img src="{uri}" alt="{alt}">' if uri else f'<div class="nopicture">{text(picture_note)}</div>')
        lines = [f'<p class="side">{text(record["side"].capitalize())} breast</p>'] if record.get("side") else []
        lines += [
            f'<p class="verdict">{text(verdict(record))}</p>',
            f"<p>P(abnormal) {record['abnormal']:.2f} · P(malignant) {record['malignant']:.2f}</p>",
            f'<p class="file">{text(row.file)}</p>',
        ]
        if alone and record.get("contralateral"):
            lines.append(f'<p class="note">read beside {text(record["contralateral"])}</p>')
        notes = [record.get("note"), record.get("quality") and f"check the scan: {record['quality']}",
                 *handling(record), uri and picture_note]
        lines += [f'<p class="note">{text(note)}</p>' for note in notes if note]
        return (f'<figure class="scan {text(record["triage"])}" data-row="{row.id}" data-status="{text(record["triage"])}">'
                f'{picture}<figcaption>{"".join(lines)}</figcaption></figure>\n')

    def failure(self, row: LoggedRow) -> str:
        what = "refused, not a mammogram" if refused(row) else "failed"
        visit = (row.outputs or {}).get("id")
        about = " · ".join([*([f"id {visit}"] if visit else []), local_time(row.time)])
        return (f'<li class="scan failed" data-row="{row.id}" data-status="failed"><p class="file">{text(row.file)}</p>'
                f"<p><strong>{what}</strong>: {text(row.error or 'no answer logged')}</p>"
                f'<p class="meta">{text(about)}</p></li>\n')

    def tail(self) -> str:
        return (
            f"<footer><p>{text(_sentence(DISCLAIMER))}</p>"
            f"<p>Written {text(local_time(self.made))}; {counted(self.pictures.made, 'picture')}.</p></footer>\n</body>\n</html>\n")


def _sentence(words: str) -> str:
    return words[0].upper() + words[1:] + "."


def _ramp() -> str:
    """The heat-map's colour scale (edge.results.overlay.RAMP) as a CSS gradient."""
    from edge.results.overlay import RAMP

    stops = ", ".join(f"rgb({int(r)},{int(g)},{int(b)})" for r, g, b in RAMP)
    return f"background: linear-gradient(to right, {stops})"
