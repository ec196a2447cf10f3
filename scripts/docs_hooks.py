"""mkdocs hooks: the site shows the committed evidence where it lives, never a copy of it.

- The pictures of `reports/` (ROC, confusion matrix, overlays, the report's screenshot) are served
  at `reports/...`, so a page links them as `reports/cv/roc.png`.
- The changelog page is `CHANGELOG.md` at the root of the repository, where users look for it.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for path in sorted((REPO / "reports").rglob("*.png")):
        files.append(File(str(path.relative_to(REPO)), str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_read_source(page, config):
    if page.file.src_uri == "changelog.md":
        return (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    return None
