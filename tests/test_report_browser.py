"""The report in a real browser: headless Chromium (Debian's `chromium`, which .ci/run installs)
loads report.html from a real day's log, and prints it to PDF.

- the DOM after loading holds every scan of the log once, the women to refer before the routine ones;
- in a 360-pixel-wide frame (a phone) every picture is decoded and nothing is wider than the screen;
- the PDF is A4 and its text (poppler's pdftotext) names every woman and every failed scan.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from classify_support import model_file  # noqa: F401 (fixture)
from report_support import csv_rows, day_log, page, report, standing_rows  # noqa: F401 (fixture)

PHONE = 360
HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="{page}" style="width:{width}px;height:800px;border:0"></iframe>
<script>document.getElementById("f").addEventListener("load", () => {{
  const d = document.getElementById("f").contentDocument;
  document.body.dataset.scroll = d.documentElement.scrollWidth;
  document.body.dataset.view = d.documentElement.clientWidth;
  document.body.dataset.images = d.images.length;
  document.body.dataset.decoded = [...d.images].filter(i => i.complete && i.naturalWidth > 0).length;
}});</script></body></html>"""
"""A test page (not the report, which has no script) that frames the report at phone width."""


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on this machine: .ci/run installs Debian's chromium package with apt-get when it runs "
                "as root (apt-get install chromium poppler-utils fonts-dejavu-core)")


def chromium(*args, folder: Path) -> subprocess.CompletedProcess:
    argv = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={folder / 'profile'}", *map(str, args)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def made(day_log, tmp_path_factory) -> Path:  # noqa: F811 (fixture)
    out = tmp_path_factory.mktemp("report")
    result = report(day_log.log, out, "--scans", day_log.scans, "--centre", "Kisumu", "--model", day_log.model)
    assert result.returncode == 0, result.stderr
    return out


def test_the_loaded_page_holds_every_scan_once_refer_first(made, day_log, tmp_path):
    dom = chromium("--dump-dom", made / "report.html", folder=tmp_path).stdout
    shown = page(dom)
    assert sorted(row for row, _, _ in shown.scans) == [row["id"] for row in standing_rows(day_log.log)]
    sections = [section for _, _, section in shown.scans]
    assert sections == sorted(sections, key=["refer", "routine", "failed"].index) and {"refer", "routine"} <= set(sections)
    woman_status = re.findall(r'<article class="woman (refer|routine)"', dom)
    assert woman_status == sorted(woman_status) and woman_status  # every referred woman before any routine one


@pytest.mark.parametrize("width", [PHONE, 1200])
def test_it_renders_on_a_phone_and_a_desktop(made, tmp_path, width):
    harness = made / f"harness-{width}.html"
    harness.write_text(HARNESS.format(page="report.html", width=width))
    dom = chromium("--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom", harness,
                   folder=tmp_path).stdout
    measured = dict(re.findall(r'data-(\w+)="(\d+)"', re.search(r"<body[^>]*>", dom).group(0)))
    assert int(measured["images"]) == len(page((made / "report.html").read_text(encoding="utf-8")).pictures) > 0
    assert measured["decoded"] == measured["images"]  # every embedded picture decoded
    assert int(measured["scroll"]) <= int(measured["view"]) <= width  # nothing wider than the screen


def test_the_printed_pdf_is_a4_and_names_every_woman_and_failure(made, day_log, tmp_path):
    pdf = tmp_path / "report.pdf"
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", made / "report.html", folder=tmp_path)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    sizes = {tuple(round(float(v)) for v in box) for box in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)}
    assert sizes == {(595, 842)}, sizes  # A4 in points
    if not shutil.which("pdftotext"):
        pytest.skip("no pdftotext to read the PDF's text: .ci/run installs Debian's poppler-utils with apt-get as root")
    text = " ".join(subprocess.run(["pdftotext", pdf, "-"], capture_output=True, text=True, check=True).stdout.split())
    shown = page((made / "report.html").read_text(encoding="utf-8"))
    for woman in shown.women:
        assert " ".join(woman.split()) in text, woman
    for row in csv_rows(made):
        if row["status"] == "failed":
            assert row["file"] in text
    assert "not a medical device" in text
