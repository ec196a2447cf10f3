"""The not-a-mammogram gate on its corpora (train.gate_corpus), and its override.

A sample of both corpora: every non-mammogram, and every SAMPLE_MIAS-th MIAS scan and every
SAMPLE_DIGITAL-th digital image in all 8 variants (the gate was fitted on all of them, so this is
the in-sample figure of docs/reliability.md on a sample; the held-out figures come from
scripts/gate_corpus.py). Through the command: refused images get one line each and exit 1, the
real scan beside them is read; `--read-anyway` reads them all, and the JSON, the stderr, the log
and the report say it was forced.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from commands import run
from edge.scan import plausibility
from train.gate_corpus import REAL_VARIANTS, iter_real, not_mammograms, refusal

SAMPLE_MIAS, SAMPLE_DIGITAL = 16, 80


@pytest.fixture(scope="module")
def corpus():
    return [(item, item.make()) for item in not_mammograms()]


def test_refused_in_one_line_or_read_anyway_and_said_so(corpus, model_file, mias_dir, tmp_path):
    """Over a folder, with two files of the same content among the refused (a grey sample picture
    and its "in grey" copy are the same bytes): every file has its line, its log row and its
    results.csv row, read anyway or not."""
    refused = [(item, image) for item, image in corpus if image.ndim == 2 and refusal(image)][:6]
    colour = next(image for item, image in corpus if image.ndim == 3 and refusal(image))
    folder = tmp_path / "scans"
    folder.mkdir()
    paths = []
    for k, (_, image) in enumerate(refused):
        Image.fromarray(image).save(folder / f"not_{k}.png")
        paths.append(folder / f"not_{k}.png")
    shutil.copy(paths[0], folder / "not_0_copy.png")
    paths.append(folder / "not_0_copy.png")
    Image.fromarray(colour).save(folder / "colour.jpg", quality=90)
    paths.append(folder / "colour.jpg")
    real = folder / "mdb005.png"
    shutil.copy(mias_dir / "mdb005.png", real)

    plain = run_classify(folder, "--model", model_file)
    no_traceback(plain)
    assert plain.returncode == 1
    errors = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(paths) and all("does not look like a mammogram: " in line for line in errors)
    assert f"{len(paths)} failed ({len(paths)} of them not a mammogram)" in plain.stdout
    assert sum(line.startswith(str(real)) for line in plain.stdout.splitlines()) == 1

    log = tmp_path / "log.sqlite"
    forced = run_classify(folder, "--model", model_file, "--json", "--read-anyway", "--log", log)
    no_traceback(forced)
    assert forced.returncode == 0, forced.stderr
    records = {r["file"]: r for r in json_lines(forced.stdout)}
    assert len(records) == len(paths) + 1
    for path in paths:
        assert records[str(path)]["forced"].startswith("does not look like a mammogram: "), records[str(path)]
    assert "forced" not in records[str(real)]
    warned = [line for line in forced.stderr.splitlines() if "--read-anyway" in line]
    assert len(warned) == len(paths)
    rows = dict(sqlite3.connect(log).execute("SELECT file, outputs FROM results WHERE superseded_by IS NULL"))
    assert sorted(rows) == sorted(map(str, [*paths, real]))
    assert all(json.loads(rows[str(path)])["forced"] == records[str(path)]["forced"] for path in paths)
    made = run("edge-report", log, "--out", tmp_path / "report")
    assert made.returncode == 0, made.stderr
    assert "read on request (--read-anyway)" in (tmp_path / "report" / "report.html").read_text()
    with open(tmp_path / "report" / "results.csv", newline="", encoding="utf-8") as table:
        csv_rows = {row["file"]: row for row in csv.DictReader(table)}
    assert sorted(csv_rows) == sorted(map(str, [*paths, real]))  # none lost, the copy included
    assert all(csv_rows[str(path)]["forced"] == records[str(path)]["forced"] for path in paths)
    assert csv_rows[str(real)]["forced"] == ""


def test_a_sample_of_both_corpora_is_judged_as_the_figures_say(corpus, mias_dir, rsna_dir):
    """No real scan of the sample refused in any variant; at least 95% of the non-mammograms refused."""
    refused = [item.kind for item, image in corpus if refusal(image)]
    assert len(refused) >= 0.95 * len(corpus), sorted({item.kind for item, _ in corpus} - set(refused))
    wrongly, judged = [], 0
    for source in (iter_real(mias_dir, None, SAMPLE_MIAS), iter_real(None, rsna_dir, SAMPLE_DIGITAL)):
        for _, _, name, variant, image in source:
            judged += 1
            why = refusal(image)
            empty = int(image.max()) - int(image.min()) < plausibility.MIN_CONTRAST  # a file without a breast
            if why and not (empty and why.endswith("blank or nearly uniform image")):
                wrongly.append((name, variant, why))
    assert judged >= (258 // SAMPLE_MIAS + 2222 // SAMPLE_DIGITAL) * len(REAL_VARIANTS)
    assert wrongly == []


def test_every_refusal_is_one_line_that_says_why(corpus):
    for item, image in corpus:
        why = refusal(image)
        if why:
            assert "\n" not in why and why.startswith("does not look like a mammogram: "), (item.kind, why)


def test_the_gate_costs_little_of_a_cold_start(mias_dir):
    """The gate reads a coarse copy: on a full MIAS scan it takes a few ms, far inside the 0.3 s budget."""
    import time

    scan = np.asarray(Image.open(mias_dir / "mdb005.png"))
    plausibility.problem(scan)
    start = time.perf_counter()
    for _ in range(5):
        plausibility.problem(scan)
    assert (time.perf_counter() - start) / 5 < 0.05


def test_the_docs_quote_the_committed_figures():
    """docs/reliability.md copies research/gate/gate.json (written by scripts/gate_corpus.py)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    report = json.loads((repo / "research" / "gate" / "gate.json").read_text())
    docs = (repo / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = docs.split("## Not a mammogram: the gate on its corpora", 1)[1]
    table = (repo / "research" / "gate" / "gate.md").read_text()
    for key in ("held_out", "in_sample"):
        fake, real = report["figures"][key]["not_mammograms"], report["figures"][key]["real"]
        assert f"{fake['refused']} of {fake['tried']}" in section and f"{real['refused']} of {real['tried']}" in section
    rows = [line for line in table.splitlines() if line.startswith(("| MIAS", "| digital"))]
    assert len(rows) == 4 and all(row in section for row in rows)
    assert "python scripts/gate_corpus.py --mias ../shared/mias --rsna ../shared/rsna" in section


def test_the_image_network_refuses_pictures_the_trees_would_read(corpus):
    """The two scores see different things: some non-mammograms pass the trees and are refused by
    the network's regression alone, in its own words."""
    gate = plausibility._gate()
    past_the_trees = []
    for item, image in corpus:
        if image.ndim == 3 or max(image.shape) < plausibility.MIN_LONG_SIDE:
            continue
        coarse = plausibility.coarse_copy(image)
        if int(coarse.max()) - int(coarse.min()) < plausibility.MIN_CONTRAST:
            continue
        if plausibility.score(plausibility.features(plausibility.turned(coarse)), gate) >= gate["limit"]:
            past_the_trees.append((item.kind, refusal(image)))
    by_network = [why for _, why in past_the_trees if why]
    assert by_network, "no grey non-mammogram passes the trees: the network is never the one that refuses"
    assert all(plausibility.NETWORK_REASON in why for why in by_network), by_network

