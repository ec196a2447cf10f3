"""The edge-classify figures of docs/classify.md are the committed timing record's, written by the script."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_figures_come_from_the_committed_record():
    spec = importlib.util.spec_from_file_location("classify_timing", REPO / "scripts" / "classify_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = json.loads((REPO / "reports" / "classify" / "x86.json").read_text())
    readme = (REPO / "docs" / "classify.md").read_text()
    assert module.readme_block(record) in readme, "run: python scripts/classify_timing.py --readme reports/classify/x86.json"
