"""Every development scan through the installed edge-classify: one coherent answer each, read beside its partner."""

from __future__ import annotations

from pathlib import Path

from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from coherence import coherence_problems
from edge.inference.manifest import load_manifest, manifest_path_for


def test_every_development_scan_is_answered_coherently_beside_the_other_breast(mias_dir, model_file):
    manifest = load_manifest(manifest_path_for(model_file))
    result = run_classify(str(mias_dir), "--model", model_file, "--json", timeout=600)
    no_traceback(result)
    assert result.returncode == 0, result.stderr[-2000:]
    records = json_lines(result.stdout)
    scans = sorted(mias_dir.glob("mdb*.png"))
    assert sorted(r["file"] for r in records) == sorted(str(p) for p in scans)  # each scan once
    problems = {r["file"]: coherence_problems(r, manifest.triage_threshold) for r in records}
    assert {f: p for f, p in problems.items() if p} == {}
    for record in records:
        number = int(Path(record["file"]).stem[3:])
        assert record["woman"] == f"mias-{(number + 1) // 2}"
        partner = mias_dir / f"mdb{number + 1 if number % 2 else number - 1:03d}.png"
        assert record["contralateral"] == (str(partner) if manifest.reading is not None else None)
