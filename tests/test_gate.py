"""The not-a-mammogram gate on its corpora (train.gate_corpus), and its override.

A sample of both corpora: every non-mammogram, and every SAMPLE_MIAS-th MIAS scan and every
SAMPLE_DIGITAL-th digital image in all its variants (the gate was fitted on all of them, so this is
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
from train.gate_corpus import REAL_VARIANTS, iter_real, not_mammograms, read_grey, real_variant, refusal

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
            empty = plausibility.blank(image)  # a file without a breast
            if why and not (empty and why.endswith("blank or nearly uniform image")):
                wrongly.append((name, variant, why))
    assert judged >= (258 // SAMPLE_MIAS + 2222 // SAMPLE_DIGITAL) * len(REAL_VARIANTS)
    assert wrongly == []


def test_the_paddle_is_drawn_over_the_breast_toward_the_air(mias_dir, rsna_dir):
    """The spot-view variant: a bright frame on a positive, a dark one on a negative, its bars
    reaching the side away from the chest wall; a file without a breast is left as it is."""
    for scan in (read_grey(mias_dir / "mdb005.png"), read_grey(mias_dir / "mdb006.png")):
        for image, bright in ((scan, True), (255 - scan, False)):
            drawn = real_variant(image, "paddle")
            changed = drawn != image
            assert drawn.shape == image.shape and 0.005 < changed.mean() < 0.2
            assert (drawn[changed] >= 200).all() if bright else (drawn[changed] <= 55).all()
            air = 0 if scan[:, :50].mean() < scan[:, -50:].mean() else -1  # the darker side of the positive
            assert changed[:, air].sum() > changed[:, -1 - air].sum()
    empty = read_grey(rsna_dir / "images" / "822_1942326353.jpg")
    assert (real_variant(empty, "paddle") == empty).all()


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


def test_the_image_network_refuses_on_its_own_and_says_so(corpus, mias_dir, monkeypatch):
    """The network is a gate of its own, not a copy of the trees: with the trees' limit taken away,
    it still refuses at least 90% of the grey non-mammograms the rules let through, each in its own
    words, and still reads real scans."""
    gate = dict(plausibility._gate(), limit=-np.inf)
    monkeypatch.setattr(plausibility, "_gate", lambda: gate)
    judged = []
    for item, image in corpus:
        if image.ndim == 3 or max(image.shape) < plausibility.MIN_LONG_SIDE:
            continue
        coarse = plausibility.coarse_copy(image)
        if not plausibility.blank(coarse):
            judged.append((item.kind, plausibility.problem(image)))
    refused = [why for _, why in judged if why]
    assert len(judged) >= 200 and len(refused) >= 0.9 * len(judged), [kind for kind, why in judged if not why]
    assert all(plausibility.NETWORK_REASON in why for why in refused), refused[:3]
    for name in ("mdb005.png", "mdb006.png"):
        assert plausibility.problem(np.asarray(Image.open(mias_dir / name).convert("L"))) is None
