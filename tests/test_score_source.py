"""A source the model never learnt from, scored: real digital images read by edge-classify, then
scripts/score_source.py; and the model card, whose line on that source is copied from the committed record."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from commands import run

REPO = Path(__file__).resolve().parents[1]
RSNA = REPO.parent / "shared" / "rsna"
BLANK = "images/822_1942326353.jpg"  # holds no breast: refused as blank


def test_answers_of_real_images_are_scored_with_cis_and_the_refused_counted(tmp_path):
    if not (RSNA / "labels.csv").is_file():
        pytest.skip(f"{RSNA} is not here")
    with open(RSNA / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cancer = [r for r in rows if r["cancer"] == "1"][:5]
    chosen = cancer + [r for r in rows if r["cancer"] == "0" and r["woman"] not in {c["woman"] for c in cancer}][:5]
    chosen.append(next(r for r in rows if r["file"] == BLANK))
    folder = tmp_path / "source"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    answers = tmp_path / "answers.jsonl"
    result = run("edge-classify", "--json", *[RSNA / r["file"] for r in chosen], timeout=300)
    answers.write_text(result.stdout)

    out = tmp_path / "record.json"
    scored = subprocess.run([sys.executable, str(REPO / "scripts" / "score_source.py"), folder, answers, "--json", out],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert scored.returncode == 0, scored.stderr
    record = json.loads(out.read_text())
    assert record["images"] == 10 and record["cancer_images"] == 5 and record["refused"] == [Path(BLANK).name]
    assert record["missing"] == 0 and record["women"] == len({r["woman"] for r in chosen[:10]})
    assert set(record["figures"]) == {"auc_malignant", "auc_abnormal", "sensitivity", "specificity"}
    for figure in record["figures"].values():
        low, high = figure["ci95"]
        assert 0 <= low <= figure["value"] <= high <= 1
    assert record["figures"]["sensitivity"]["baseline"] == 1.0 and record["figures"]["auc_malignant"]["baseline"] == 0.5
    assert f"| auc_malignant | {record['figures']['auc_malignant']['value']:.3f} |" in scored.stdout
    assert "1 refused: 822_1942326353.jpg" in scored.stdout


def test_the_committed_model_card_is_what_its_command_writes(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    made = subprocess.run([sys.executable, "-m", "train.report", "reports/cv", "--card", card], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert made.returncode == 0, made.stderr
    assert card.read_text() == (REPO / "MODEL_CARD.md").read_text(), "run: python -m train.report reports/cv --card MODEL_CARD.md"
    record = json.loads((REPO / "reports" / "digital" / "rsna.json").read_text())
    auc = record["figures"]["auc_malignant"]
    assert f"{auc['value']:.3f}" in card.read_text()
    # docs/model.md quotes the same record
    page = (REPO / "docs" / "model.md").read_text()
    assert f"P(malignant) **{auc['value']:.3f}** (95% CI {auc['ci95'][0]:.3f}-{auc['ci95'][1]:.3f}" in page
    assert f"{record['images']:,} of {record['images'] + len(record['refused']):,} images read" in page
    for name in ("sensitivity", "specificity"):
        figure = record["figures"][name]
        assert f"{figure['value']:.3f} ({figure['ci95'][0]:.3f}-{figure['ci95'][1]:.3f})" in page, name
