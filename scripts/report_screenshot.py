"""The README's picture of edge-report: a report made from development scans, as Chromium shows it.

    python scripts/report_screenshot.py ../shared/mias [--out reports/report/screenshot.png]

In a temporary folder: copies of mdb003..mdb006 (two women, paired by their MIAS names), of
mdb053 under another name (a scan of no named woman, which the model reads as routine alone) and
a text file named .png; `edge-classify --id VISIT-0042 --log`, `edge-report --centre`, then
headless Chromium's screenshot of the page, 1000 pixels wide, saved as a 256-colour PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCANS = {"mdb003.png": "mdb003", "mdb004.png": "mdb004", "mdb005.png": "mdb005", "mdb006.png": "mdb006",
         "clinic-7.png": "mdb053"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mias", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports/report/screenshot.png"))
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, source in SCANS.items():
            shutil.copy(args.mias / f"{source}.png", folder / name)
        (folder / "notes.png").write_text("not an image\n")
        subprocess.run([bin_dir / "edge-classify", *SCANS, "notes.png", "--id", "VISIT-0042", "--log", "results.sqlite"],
                       cwd=folder, capture_output=True, check=False)
        subprocess.run([bin_dir / "edge-report", "results.sqlite", "--out", "report", "--centre", "Example health centre"],
                       cwd=folder, check=True)
        shot = folder / "shot.png"
        subprocess.run([shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--user-data-dir={folder / 'profile'}", "--window-size=1000,1250",
                        f"--screenshot={shot}", folder / "report" / "report.html"], capture_output=True, check=True)
        from PIL import Image

        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
