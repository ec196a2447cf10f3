"""`edge-report`: the day's results for the referral hospital, from edge-classify's results log.

A thin layer over `edge.report.day`, parsed with argparse like the other device commands (it runs on
the board, beside the log). It never writes the log: it opens it read-only, and a batch may go on
appending to it meanwhile. Exit status: 0 the report was written, 2 usage or set-up error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.cli.common import EXIT_OK, at_least, finish
from edge.errors import EdgeError

DESCRIPTION = (
    "Write the results of a results log (edge-classify --log) for the referral hospital: report.html "
    "(women to refer first, then routine ones, then scans that failed; readable on a phone, printable on A4), "
    "results.csv and results.json. Research software, not a medical device."
)
EPILOG = (
    "DATE is a local date (2026-12-01) or date and time (2026-12-01T14:30); --until DATE reaches the end of that "
    "day. The centre's name comes from --centre, else from `centre = \"...\"` in the --config file (default "
    "$XDG_CONFIG_HOME/mias-edge/report.toml, i.e. ~/.config/mias-edge/report.toml, when it exists). "
    "Exit status: 0 report written, 2 usage or set-up error."
)
CONFIG_KEYS = ("centre",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-report", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("log", type=Path, metavar="LOG", help="the results log (SQLite) edge-classify --log wrote")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True, help="folder for report.html, results.csv, results.json")
    parser.add_argument("--since", type=_moment, metavar="DATE", help="scans logged from this day (or moment) on")
    parser.add_argument("--until", type=_moment, metavar="DATE", help="scans logged up to the end of this day (or before this moment)")
    parser.add_argument("--id", dest="visit_id", metavar="TEXT", help="only scans read with edge-classify --id TEXT")
    parser.add_argument("--centre", metavar="NAME", help="the centre's name on the page")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file with the centre's name (centre = \"...\")")
    parser.add_argument("--scans", type=Path, metavar="DIR", default=Path("."),
                        help="where the scans' relative paths in the log start (default: this folder); for the pictures")
    parser.add_argument("--max-pictures", type=at_least(0), metavar="N", default=300,
                        help="pictures for at most N scans, refer first (default 300; 0: none)")
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help="the model .tflite whose manifest gives the id and figures (default: the packaged model)")
    return parser


def _moment(value: str) -> str:
    from edge.report.day import bound

    try:
        bound(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    finish(lambda: run(**vars(args)))


def run(log: Path, out: Path, since: str | None = None, until: str | None = None, visit_id: str | None = None,
        centre: str | None = None, config: Path | None = None, scans: Path = Path("."), max_pictures: int = 300,
        model: Path | None = None) -> int:
    """The whole command as a function; returns the exit status (errors raise EdgeError)."""
    import time

    from edge.report.day import Selection, bound
    from edge.report.write import write_report
    from edge.words import counted

    started = time.perf_counter()
    selection = Selection(bound(since) if since else None, bound(until, end=True) if until else None, visit_id,
                          range_name(since, until))
    if selection.since and selection.until and selection.since >= selection.until:
        raise EdgeError(f"--since {since} is not before --until {until}: the range is empty")
    written = write_report(log, out, selection, centre or centre_from_config(config), scans, max_pictures,
                           installed_manifest(model))
    counts, pictures = written.counts, written.pictures
    print(f"{selection.name}: {counted(counts.scans, 'scan')}; {counted(counts.women['refer'], 'woman', 'women')} to refer "
          f"to a radiologist, {counts.women['routine']} routine, {counted(counts.failed, 'scan')} failed or refused")
    print(f"wrote {out / 'report.html'} ({counted(pictures.made, 'picture')}), {out / 'results.csv'}, {out / 'results.json'} "
          f"in {time.perf_counter() - started:.1f} s")
    if pictures.missing:
        print(f"note: {counted(pictures.missing, 'scan')} without a picture (the page says why for each; --scans DIR says where "
              "relative paths start)")
    if pictures.over_limit:
        print(f"note: {counted(pictures.over_limit, 'scan')} without a picture beyond --max-pictures {max_pictures}")
    return EXIT_OK


def range_name(since: str | None, until: str | None) -> str:
    """How the page names the range: `2026-12-01`, `2026-12-01 to 2026-12-03`, `from ...`, `the whole log`."""
    if since and until:
        return since if since == until else f"{since} to {until}"
    if since:
        return f"from {since}"
    return f"until {until}" if until else "the whole log"


def centre_from_config(config: Path | None) -> str | None:
    """`centre` from the --config TOML file, else from the default one when it exists, else None."""
    import tomllib

    from edge.fileio import read_text

    if config is None:
        home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        config = home / "mias-edge" / "report.toml"
        if not config.is_file():
            return None
    try:
        values = tomllib.loads(read_text(config, "report config"))
    except tomllib.TOMLDecodeError as exc:
        raise EdgeError(f"{config}: not valid TOML ({exc})") from None
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise EdgeError(f"{config}: unknown keys {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
    centre = values.get("centre")
    if centre is not None and (not isinstance(centre, str) or not centre.strip()):
        raise EdgeError(f"{config}: centre must be a non-empty string")
    return centre


def installed_manifest(model: Path | None):
    """The manifest of --model FILE or of the packaged model; None when the packaged one has none."""
    from edge.inference.classifier import default_model_path
    from edge.inference.manifest import load_manifest, manifest_path_for

    if model is not None:
        return load_manifest(manifest_path_for(model))
    path = manifest_path_for(default_model_path())
    return load_manifest(path) if path.is_file() else None


if __name__ == "__main__":
    main()
