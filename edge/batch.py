"""A batch of scans through one `Classifier`: decode, classify, overlay, log, report, scan by scan.

Every scan is independent: whatever goes wrong with one (a damaged file, a full disk for its
overlay, even a bug) becomes one error record naming the file, and the batch goes on. The
results log, when there is one, gets each scan's row committed before the next scan starts,
so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import numpy as np

from edge import CLASS_NAMES
from edge.errors import EdgeError
from edge.inputs import Item


@dataclass
class Options:
    """What to do with each scan besides classifying it."""

    as_json: bool = False
    overlay_dir: Path | None = None
    log: Any = None  # an open edge.results_log.ResultsLog, or None
    force: bool = False  # classify again scans the log already holds
    log_patient_id: bool = False  # DICOM PatientID into the log (never anywhere else)
    exams: list = field(default_factory=list)  # explicit pairs (edge.exams.Exam): --exam, --exams
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass
class Tally:
    classified: int = 0
    from_log: int = 0
    failed: int = 0
    refer: int = 0
    routine: int = 0
    quality_notes: int = 0

    @property
    def total(self) -> int:
        return self.classified + self.from_log + self.failed


@dataclass(frozen=True)
class Source:
    """A scan to classify: a file (read when its turn comes) or pixels already in hand (a camera frame)."""

    name: str
    path: Path | None = None
    pixels: np.ndarray | None = None
    error: str | None = None

    @classmethod
    def from_item(cls, item: Item) -> "Source":
        return cls(name=str(item.path), path=item.path, error=item.error)


def run_batch(classifier, sources: Iterable[Source], options: Options) -> Tally:
    """Classify every source, print one line (or JSON object) each, return the counts.

    Scans of one woman (`edge.exams`) are read together, each beside the other breast, and
    printed together, in input order within the woman; every other scan is read alone. Two
    stages overlap: while the model runs on one scan (main thread), the next is decoded and
    prepared in a worker thread (Pillow, numpy and the interpreter release the GIL), so a batch
    costs per scan about the slower of the two stages, not their sum. Everything that touches
    the output, the overlay folder or the results log stays in the main thread.
    """
    from edge.exams import pair

    sources = list(sources)
    pairings = pair([s.path for s in sources], options.exams)
    tally = Tally()
    used_names: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # decoder warnings (a colour scan) from either thread land in `caught`
        for unit, early, loaded in _loaded_units(classifier, sources, pairings, options):
            for i in unit:
                record = _answer(classifier, sources, pairings, i, early[i], loaded, options, used_names)
                _emit(record, options, tally, caught)
    return tally


def _units(pairings) -> list[list[int]]:
    """Batch indices grouped by woman, in order of first appearance; a scan of no known woman alone."""
    units, by_woman = [], {}
    for i, pairing in enumerate(pairings):
        if pairing.woman is None:
            units.append([i])
        elif pairing.woman in by_woman:
            by_woman[pairing.woman].append(i)
        else:
            by_woman[pairing.woman] = [i]
            units.append(by_woman[pairing.woman])
    return units


def _loaded_units(classifier, sources, pairings, options):
    """(unit, {index: _precheck's answer}, {index: _Loaded}) per woman; the next scan is always
    loading while one is run.

    A scan already answered (its results-log row) is loaded all the same when a partner of it
    still has to be read, because the partner is read beside it. Every scan is checked against
    the log before the first is loaded (a hash per file, about 1 ms per scan here)."""
    plan = []
    for unit in _units(pairings):
        early = {i: _precheck(classifier, sources[i], pairings[i], sources, options) for i in unit}
        fresh = [i for i in unit if early[i][1] is None]
        needed = set(fresh)
        needed |= {pairings[i].partner for i in fresh if pairings[i].partner is not None}
        plan.append((unit, early, [i for i in unit if i in needed and "error" not in (early[i][1] or {})]))
    jobs = iter([i for _, _, load in plan for i in load])

    def start():
        i = next(jobs, None)
        return None if i is None else (i, _Job(_load, classifier, sources[i]))

    pending = start()
    for unit, early, load in plan:
        loaded = {}
        for _ in load:
            index, job = pending
            pending = start()  # the next scan decodes while this one runs
            loaded[index] = job.result()
            if loaded[index].error is None:
                loaded[index].run(classifier)
        yield unit, early, loaded


class _Job:
    """One call of `function` in its own thread; `result()` waits for it. (A thread per scan
    costs about 0.1 ms; concurrent.futures would cost 8 ms of imports on every cold start.)"""

    def __init__(self, function: Callable, *args: Any) -> None:
        self._value: Any = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), name="edge-prepare", daemon=True)
        self._thread.start()

    def _run(self, function: Callable, *args: Any) -> None:
        self._value = function(*args)  # `function` never raises (see _load)

    def result(self) -> Any:
        self._thread.join()
        return self._value


@dataclass
class _Loaded:
    """A scan decoded and prepared in the worker thread (or why it could not be), then its evidence."""

    scan: np.ndarray | None = None
    prepared: Any = None
    error: str | None = None
    evidence: Any = None  # edge.classifier.Evidence, once the model has run

    def run(self, classifier) -> None:
        """The model on the prepared scan (main thread); a failure becomes the scan's error."""
        try:
            self.evidence = classifier.evidence(classifier.run(self.prepared.image), self.prepared)
        except EdgeError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
            self.error = f"unexpected {exc.__class__.__name__} ({exc}); please report it"


def _partner_name(sources, pairing) -> str | None:
    return None if pairing.partner is None else sources[pairing.partner].name


def _precheck(classifier, source: Source, pairing, sources, options: Options) -> tuple[str | None, dict[str, Any] | None]:
    """(file hash, final record or None), in the main thread: a listing error, or an answer
    already in the results log (for the same partner), ends the scan here; otherwise it goes
    on to be loaded. Nothing is logged here: errors are logged when their turn comes."""
    file_hash = None
    try:
        if source.error:
            raise EdgeError(source.error)
        if options.log is None:
            return None, None
        file_hash = _file_hash(source)
        if not options.force:
            earlier = options.log.find(file_hash, classifier.sha256)
            if earlier is not None and earlier.get("contralateral") == _contralateral(classifier, sources, pairing):
                return file_hash, {"file": source.name, **earlier}
        return file_hash, None
    except EdgeError as exc:
        record = {"file": source.name, "error": _named(str(exc), source.name)}
    except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
        record = {"file": source.name, "error": _unexpected(source, exc)}
    return file_hash, record


def _contralateral(classifier, sources, pairing) -> str | None:
    """The partner's name where the model reads it (a model without a reading stage reads scans alone)."""
    return _partner_name(sources, pairing) if classifier.reading is not None else None


def _load(classifier, source: Source) -> _Loaded:
    """Decode and prepare (worker thread); never raises."""
    try:
        scan = _read(source)
        from edge.plausibility import problem

        refused = problem(scan)
        if refused:
            raise EdgeError(refused)
        return _Loaded(scan, classifier.prepare(scan))
    except EdgeError as exc:
        return _Loaded(error=_named(str(exc), source.name))
    except Exception as exc:  # noqa: BLE001 - MemoryError on a huge scan, a decoder bug...
        return _Loaded(error=_unexpected(source, exc))


def _answer(classifier, sources, pairings, i: int, early, loaded: dict, options: Options, used_names: set[str]) -> dict[str, Any]:
    """Scan i's record: from the log, an error, or its answer beside its partner (overlay and log
    row written); never raises except KeyboardInterrupt / SystemExit (and a results log that can
    no longer be written)."""
    source, pairing = sources[i], pairings[i]
    file_hash, record = early
    if record is not None:  # from the log, or a listing error
        if "error" in record:
            _log(classifier, source, file_hash, record, options)
        return record
    state = loaded[i]
    try:
        if state.error:
            raise EdgeError(state.error)
        partner = _readable_partner(classifier, sources, pairing, loaded)
        result = classifier.answer(state.evidence, partner[0])
        record = {"file": source.name, **result.to_record(), "woman": pairing.woman, "contralateral": partner[1]}
        note = partner[2] or (pairing.note if classifier.reading is not None else None)  # a scan-by-scan model pairs nothing
        if note:
            record["note"] = note
        if options.overlay_dir is not None:
            from edge import overlay

            name = overlay.overlay_name(source.path or source.name, used_names)
            try:
                overlay.write(options.overlay_dir / name, state.scan, result)
            except OSError as exc:
                raise EdgeError(f"{source.name}: classified, but its overlay could not be written ({exc.strerror or exc})") from None
            record["overlay"] = str(options.overlay_dir / name)
    except EdgeError as exc:
        record = {"file": source.name, "error": _named(str(exc), source.name)}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
        record = {"file": source.name, "error": _unexpected(source, exc)}
    _log(classifier, source, file_hash, record, options)
    return record


def _readable_partner(classifier, sources, pairing, loaded) -> tuple[Any, str | None, str | None]:
    """(partner's evidence or None, its name as `contralateral`, a note when it could not be used)."""
    name = _contralateral(classifier, sources, pairing)
    if name is None:
        return None, None, None
    other = loaded.get(pairing.partner)
    evidence = getattr(other, "evidence", None)
    if evidence is None:
        return None, None, f"the other breast ({name}) could not be read: read alone"
    return evidence, name, None


def _log(classifier, source: Source, file_hash: str | None, record: dict[str, Any], options: Options) -> None:
    if options.log is None:
        return
    error = record.get("error")
    outputs = None if error else {k: v for k, v in record.items() if k not in ("file", "overlay")}
    options.log.add(source.name, file_hash, classifier.sha256, outputs, error, _patient(source, options))


def _unexpected(source: Source, exc: BaseException) -> str:
    return f"{source.name}: unexpected {exc.__class__.__name__} ({exc}); please report it"


def _read(source: Source) -> np.ndarray:
    if source.pixels is not None:
        return source.pixels
    from edge.decode import read_scan

    return read_scan(source.path)


def _file_hash(source: Source) -> str:
    from edge.decode import check_scan_file
    from edge.fileio import sha256_bytes, sha256_file

    if source.pixels is not None:
        return sha256_bytes(np.ascontiguousarray(source.pixels).tobytes())
    check_scan_file(source.path)  # a FIFO named .png must fail here, not block open() forever
    try:
        return sha256_file(source.path)
    except FileNotFoundError:
        raise EdgeError(f"{source.path}: no such file") from None
    except IsADirectoryError:
        raise EdgeError(f"{source.path}: is a directory, not a scan") from None
    except OSError as exc:
        raise EdgeError(f"{source.path}: cannot be read ({exc.strerror or exc})") from None


def _patient(source: Source, options: Options) -> dict[str, str] | None:
    """PatientID of a DICOM file, only when --log-patient-id asked for it."""
    if not options.log_patient_id or source.path is None:
        return None
    from edge.scanfile import looks_like_dicom

    if not looks_like_dicom(source.path):
        return None
    from edge.dicom import patient_id

    value = patient_id(source.path)
    return {"PatientID": value} if value else None


def _named(message: str, name: str) -> str:
    return message if name in message else f"{name}: {message}"


def _emit(record: dict[str, Any], options: Options, tally: Tally, caught: list | None = None) -> None:
    for warning in caught or ():
        print(_printable(f"warning: {warning.message}"), file=options.err, flush=True)
    if caught:
        caught.clear()
    if "error" in record:
        tally.failed += 1
    elif "logged" in record:
        tally.from_log += 1
    else:
        tally.classified += 1
    if "error" not in record:
        tally.refer += record.get("triage") == "refer"
        tally.routine += record.get("triage") == "routine"
        tally.quality_notes += bool(record.get("quality"))
    if options.as_json:
        print(json.dumps(record), file=options.out, flush=True)
    elif "error" in record:
        print(_printable(f"error: {record['error']}"), file=options.err, flush=True)
    else:
        print(_printable(readable_line(record)), file=options.out, flush=True)


def _printable(line: str) -> str:
    """One terminal line whatever the file is called: a newline or an escape sequence in a
    file name (a USB stick can hold anything) is shown escaped, never acted on."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in line)


def readable_line(record: dict[str, Any]) -> str:
    """`mdb028.pgm  CIRC (well-defined/circumscribed mass)  P(abnormal) 0.91  P(malignant) 0.77  REFER`"""
    label = record["label"]
    line = (
        f"{record['file']}  {label} ({CLASS_NAMES.get(label, label)})  "
        f"P(abnormal) {record['abnormal']:.2f}  P(malignant) {record['malignant']:.2f}  {record['triage'].upper()}"
    )
    if record.get("contralateral"):
        line += f"  (read beside {Path(record['contralateral']).name})"
    if record.get("note"):
        line += f"  [{record['note']}]"
    if record.get("quality"):
        line += f"  [check the scan: {record['quality']}]"
    if record.get("logged"):
        line += f"  (from the log, {record['logged']})"
    return line


def summary(tally: Tally, classifier) -> str:
    manifest = classifier.manifest
    parts = [f"{tally.total} scan{'s' * (tally.total != 1)}: {tally.refer} refer, {tally.routine} routine"]
    if tally.failed:
        parts.append(f"{tally.failed} failed")
    if tally.from_log:
        parts.append(f"{tally.from_log} from the results log (--force to run again)")
    if tally.quality_notes:
        parts.append(f"{tally.quality_notes} with a scan-quality note")
    return (
        ", ".join(parts)
        + f"\nmodel {classifier.sha256[:12]}; refer when P(abnormal) >= {manifest.triage_threshold:.3f}"
        f" (chosen for sensitivity {manifest.target_sensitivity:.0%})"
        + "\nresearch software, not a medical device: these answers must not decide anyone's care"
    )


def camera_source(capture: Callable[[], np.ndarray]) -> Source:
    """A frame from the camera as a source named `camera-<UTC time>`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Source(name=f"camera-{stamp}", pixels=capture())
