"""Same decision on every runtime and kernel set, on the whole development data of every source.

    python scripts/kernel_agreement.py ../shared/mias ../shared/rsna --out reports/boards/agreement.json \
        [--old-pi ~/.cache/mias-edge/venv-tflite-2.14-board/bin/edge-classify]

Runs `edge-classify --json` (the installed one, ai-edge-litert) over every scan of the folders with
LiteRT's default kernels (XNNPACK, what the Pis and the desktop run), its builtin and its reference
kernels, and, with --old-pi, tflite-runtime 2.14's default and builtin kernels (the environment
tests/test_runtime_identity.py builds), and compares each with the first (`convert.agreement`).
2 threads each. Writes the figures and whether each is within the bounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from convert.agreement import BOUNDS, agreement, within_bounds

SCANS = (".png", ".pgm", ".jpg", ".jpeg")


def classify(script: str, kernels: str, scans: list[Path], folder: Path) -> list[dict]:
    config = folder / f"{kernels}.toml"
    config.write_text(f'description = "{kernels} kernels"\nthreads = 2\nkernels = "{kernels}"\n')
    done = subprocess.run([script, "--json", "--config", str(config), *map(str, scans)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{script} --config {config} failed:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--old-pi", help="edge-classify of a tflite-runtime 2.14 environment")
    args = parser.parse_args()
    scans = sorted(p for folder in args.folders for p in folder.rglob("*") if p.suffix.lower() in SCANS)
    runs = [("ai-edge-litert", shutil.which("edge-classify"), k) for k in ("default", "builtin", "reference")]
    if args.old_pi:
        runs += [("tflite-runtime 2.14", args.old_pi, k) for k in ("default", "builtin")]
    with tempfile.TemporaryDirectory() as tmp:
        reference = classify(runs[0][1], runs[0][2], scans, Path(tmp))
        figures = {}
        for runtime, script, kernels in runs[1:]:
            got = agreement(reference, classify(script, kernels, scans, Path(tmp)))
            figures[f"{runtime} {kernels}"] = {**got, "within_bounds": within_bounds(got)}
            print(f"{runtime} {kernels}: {got}", flush=True)
    document = {"scans": len(scans), "folders": [f.name for f in args.folders], "reference": "ai-edge-litert default kernels, 2 threads",
                "bounds": BOUNDS, "against_reference": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
