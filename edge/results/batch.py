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

from edge.errors import EdgeError, NotAMammogram
from edge.scan.inputs import Item
from edge.words import DISCLAIMER, handling, local_time, printable, triage_rule, verdict


@dataclass
class Options:
    """What to do with each scan besides classifying it."""

    as_json: bool = False
    overlay_dir: Path | None = None
    log: Any = None  # an open edge.results.log.ResultsLog, or None
    force: bool = False  # classify again scans the log already holds
    read_anyway: bool = False  # read what the gate (edge.plausibility) says is not a mammogram, and say so
    log_patient_id: bool = False  # DICOM PatientID into the log (never anywhere else)
    visit_id: str | None = None  # --id: a visit or patient identifier on every result (JSON, log, overlay)
    exams: list = field(default_factory=list)  # explicit pairs (edge.results.exams.Exam): --exam, --exams
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass
class Tally:
    classified: int = 0
    from_log: int = 0
    failed: int = 0
    not_mammograms: int = 0  # of the failed: refused by edge.scan.plausibility
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

    Scans of one woman (`edge.results.exams`) are read together, each beside the other breast, and
    printed together, in input order within the woman; every other scan is read alone. Two
    stages overlap: while the model runs on one scan (main thread), the next is decoded and
    prepared in a worker thread (Pillow, numpy and the interpreter release the GIL), so a batch
    costs per scan about the slower of the two stages, not their sum; where the model's kernels use
    one thread, two scans run at once (`_loaded_units`). Everything that touches the output, the
    overlay folder or the results log stays in the main thread.
    """
    from edge.results.exams import pair

    sources = _once(sources)
    pairings = pair([s.path for s in sources], options.exams)
    tally = Tally()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # decoder warnings (a colour scan) from either thread land in `caught`
        for unit, early, loaded in _loaded_units(classifier, sources, pairings, options):
            for i in unit:
                record = _answer(classifier, sources, pairings, i, early[i], loaded, options)
                _emit(record, options, tally, caught)
    return tally


def _once(sources: Iterable[Source]) -> list[Source]:
    """Each file once, however often it was named (directly and through its folder, or by two
    spellings of its path): the first mention keeps its place. Listing errors are all kept."""
    from edge.results.exams import file_key

    kept, seen = [], set()
    for source in sources:
        key = file_key(source.path) if source.path is not None and source.error is None else None
        if key is not None and key in seen:
            continue
        seen.add(key)
        kept.append(source)
    return kept


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
    the log before the first is loaded (a hash per file, about 1 ms per scan here).

    With a second interpreter (`Classifier.twin`: kernels that use one thread, a core to spare),
    each worker also runs the model, two workers at a time on alternate interpreters, so a
    woman's two scans are read at once; an interpreter is never in two threads at once, because
    scan k + 2 starts on scan k's interpreter only after scan k is done."""
    plan = []
    for unit in _units(pairings):
        early = {i: _precheck(classifier, sources[i], pairings[i], sources, options) for i in unit}
        fresh = [i for i in unit if early[i].record is None]
        needed = set(fresh)
        needed |= {pairings[i].partner for i in fresh if pairings[i].partner is not None}
        plan.append((unit, early, [i for i in unit if i in needed and "error" not in (early[i].record or {})]))
    order = [i for _, _, load in plan for i in load]
    twin = classifier.twin() if len(order) > 1 else None
    runners = [classifier, twin] if twin is not None else [classifier]

    def start(k: int) -> _Job | None:
        if k >= len(order):
            return None
        return _Job(_load, runners[k % len(runners)], sources[order[k]], twin is not None, options.read_anyway)

    in_flight = [start(k) for k in range(len(runners))]  # the next scan decodes (and runs) while this one runs
    k = 0
    for unit, early, load in plan:
        loaded = {}
        for index in load:
            loaded[index] = in_flight.pop(0).result()
            in_flight.append(start(k + len(runners)))
            k += 1
            if loaded[index].error is None and loaded[index].evidence is None:
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
    """A scan decoded and prepared in a worker thread (or why it could not be), then its evidence."""

    scan: np.ndarray | None = None
    prepared: Any = None
    error: str | None = None
    forced: str | None = None  # why it did not look like a mammogram, read all the same (--read-anyway)
    evidence: Any = None  # edge.inference.classifier.Evidence, once the model has run

    def run(self, classifier) -> None:
        """The model on the prepared scan; a failure becomes the scan's error."""
        try:
            self.evidence = classifier.evidence(classifier.run(self.prepared.image), self.prepared)
        except EdgeError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
            self.error = f"unexpected {exc.__class__.__name__} ({exc}); please report it"


def _partner_name(sources, pairing) -> str | None:
    return None if pairing.partner is None else sources[pairing.partner].name


@dataclass
class _Early:
    """What the main thread knows of a scan before it is loaded: its hash (with --log or
    --overlay), and a final record when it ends here (a listing error, or an answer from the log,
    whose `entry` says where it was logged and what its overlay is drawn from)."""

    file_hash: str | None = None
    record: dict[str, Any] | None = None
    entry: Any = None  # edge.results.log.Entry


def _precheck(classifier, source: Source, pairing, sources, options: Options) -> _Early:
    """A listing error, or an answer already in the results log (for the same partner), ends the
    scan here; otherwise it goes on to be loaded. Nothing is logged here: errors are logged when
    their turn comes."""
    early = _Early()
    try:
        if source.error:
            raise EdgeError(source.error)
        if options.log is None and options.overlay_dir is None:
            return early
        early.file_hash = _file_hash(source)
        if options.log is not None and not options.force:
            entry = options.log.find_entry(early.file_hash, classifier.sha256)
            if entry is not None and entry.record.get("contralateral") == _contralateral(classifier, sources, pairing):
                early.entry = entry
                early.record = _identified({"file": source.name, **entry.record}, options)
        return early
    except EdgeError as exc:
        early.record = _failed(source, _named(str(exc), source.name), options)
    except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
        early.record = _failed(source, _unexpected(source, exc), options)
    return early


def _identified(record: dict[str, Any], options: Options) -> dict[str, Any]:
    """The record with this run's --id right after `file` (an answer from the log gets this visit's id)."""
    record.pop("id", None)
    if options.visit_id is None:
        return record
    return {"file": record["file"], "id": options.visit_id, **{k: v for k, v in record.items() if k != "file"}}


def _failed(source: Source, message: str, options: Options) -> dict[str, Any]:
    """A scan's error record, with this run's --id (so a report of the visit lists its failures too)."""
    return _identified({"file": source.name, "error": message}, options)


def _contralateral(classifier, sources, pairing) -> str | None:
    """The partner's name where the model reads it (a model without a reading stage reads scans alone)."""
    return _partner_name(sources, pairing) if classifier.reading is not None else None


def _load(classifier, source: Source, run: bool = False, read_anyway: bool = False) -> _Loaded:
    """Decode, check it is a mammogram (edge.plausibility) and prepare, and with `run` the model
    too (worker thread); never raises. With `read_anyway` a refusal is only noted (`forced`)."""
    try:
        try:
            scan = _read(source)
        except NotAMammogram as exc:  # a colour picture
            if not read_anyway:
                raise
            scan, forced = _read(source, colour_ok=True), exc.reason
        else:
            from edge.scan.plausibility import problem

            forced = problem(scan)
            if forced and not read_anyway:
                raise NotAMammogram(forced, forced)
        loaded = _Loaded(scan, classifier.prepare(scan), forced=forced)
    except EdgeError as exc:
        return _Loaded(error=_named(str(exc), source.name))
    except Exception as exc:  # noqa: BLE001 - MemoryError on a huge scan, a decoder bug...
        return _Loaded(error=_unexpected(source, exc))
    if run:
        loaded.run(classifier)  # never raises either: a failure becomes the scan's error
    return loaded


def _answer(classifier, sources, pairings, i: int, early: _Early, loaded: dict, options: Options) -> dict[str, Any]:
    """Scan i's record: from the log, an error, or its answer beside its partner (overlay and log
    row written); never raises except KeyboardInterrupt / SystemExit (and a results log that can
    no longer be written)."""
    source, pairing = sources[i], pairings[i]
    if early.record is not None and "error" in early.record:  # a listing error
        _log(classifier, source, early.file_hash, early.record, options)
        return early.record
    if early.record is not None:
        return _from_log(classifier, source, early, options)
    state = loaded[i]
    drawing = None
    try:
        if state.error:
            raise EdgeError(state.error)
        partner = _readable_partner(classifier, sources, pairing, loaded)
        result = classifier.answer(state.evidence, partner[0])
        record = _identified({"file": source.name, **result.to_record(), "woman": pairing.woman, "side": pairing.side,
                                "contralateral": partner[1]}, options)
        if state.forced:
            record["forced"] = state.forced
        note = partner[2] or (pairing.note if classifier.reading is not None else None)  # a scan-by-scan model pairs nothing
        if note:
            record["note"] = note
        if options.log is not None:
            from edge.results.log import drawing_of

            drawing = drawing_of(result.heatmap, result.geometry)
        if options.overlay_dir is not None:
            record["overlay"] = _draw(source, early.file_hash, state.scan, record, result.heatmap, result.geometry, None, options)
    except EdgeError as exc:
        record = _failed(source, _named(str(exc), source.name), options)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: one scan must never end the batch
        record = _failed(source, _unexpected(source, exc), options)
    _log(classifier, source, early.file_hash, record, options, drawing, supersede=True)
    return record


def _from_log(classifier, source: Source, early: _Early, options: Options) -> dict[str, Any]:
    """An answer from the results log: its overlay drawn again from the logged heat-map (or a note
    saying why not), and a row under this path when the log had it under another (a renamed or
    copied file) or for another --id, so the log names every file it answered."""
    record, entry = early.record, early.entry
    if entry.file != source.name or entry.record.get("id") != options.visit_id:
        _log(classifier, source, early.file_hash, record, options, entry.drawing)  # before this run's notes
    try:
        if options.overlay_dir is not None:
            if entry.drawing is None:
                record["note"] = _joined(record.get("note"), "no overlay drawn: its log row was written before the log "
                                         "kept heat-maps (--force reads the scan again)")
            else:
                from edge.results.log import heatmap_and_geometry

                heatmap, geometry = heatmap_and_geometry(entry.drawing)
                record["overlay"] = _draw(source, early.file_hash, _read(source), record, heatmap, geometry, record["logged"], options)
    except EdgeError as exc:
        record["note"] = _joined(record.get("note"), f"no overlay drawn ({_named(str(exc), source.name)})")
    except Exception as exc:  # noqa: BLE001 - last resort: a picture must never end the batch
        record["note"] = _joined(record.get("note"), f"no overlay drawn ({_unexpected(source, exc)})")
    return record


def _joined(first: str | None, second: str) -> str:
    return second if not first else f"{first}; {second}"


def _draw(source: Source, file_hash: str, scan, record, heatmap, geometry, when, options: Options) -> str:
    """Write the scan's overlay, named by the scan alone (`edge.results.overlay.overlay_name`); its path."""
    from edge.results import overlay
    path = options.overlay_dir / overlay.overlay_name(source.path or source.name, file_hash)
    try:
        overlay.write(path, scan, record, heatmap, geometry, when)
    except OSError as exc:
        raise EdgeError(f"{source.name}: classified, but its overlay could not be written ({exc.strerror or exc})") from None
    return str(path)


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


def _log(classifier, source: Source, file_hash: str | None, record: dict[str, Any], options: Options,
         drawing: dict[str, Any] | None = None, supersede: bool = False) -> None:
    if options.log is None:
        return
    error = record.get("error")
    outputs = {k: v for k, v in record.items() if k not in ("file", "overlay", "error")} or None  # a failure: its id, if any
    options.log.add(source.name, file_hash, classifier.sha256, outputs, error, _patient(source, options),
                    drawing=drawing, supersede=supersede and not error)


def _unexpected(source: Source, exc: BaseException) -> str:
    return f"{source.name}: unexpected {exc.__class__.__name__} ({exc}); please report it"


def _read(source: Source, colour_ok: bool = False) -> np.ndarray:
    if source.pixels is not None:
        return source.pixels
    from edge.scan.decode import read_scan

    return read_scan(source.path, colour_ok)


def _file_hash(source: Source) -> str:
    from edge.scan.decode import check_scan_file
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
    from edge.scan.file import looks_like_dicom

    if not looks_like_dicom(source.path):
        return None
    from edge.scan.dicom import patient_id

    value = patient_id(source.path)
    return {"PatientID": value} if value else None


def _named(message: str, name: str) -> str:
    return message if name in message else f"{name}: {message}"


def _emit(record: dict[str, Any], options: Options, tally: Tally, caught: list | None = None) -> None:
    for warning in caught or ():
        print(printable(f"warning: {warning.message}"), file=options.err, flush=True)
    if caught:
        caught.clear()
    if "error" not in record:
        for note in handling(record):
            print(printable(f"warning: {record['file']}: {note}"), file=options.err, flush=True)
    if "error" in record:
        from edge.scan.plausibility import PREFIX

        tally.failed += 1
        tally.not_mammograms += PREFIX in record["error"]
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
        print(printable(f"error: {record['error']}"), file=options.err, flush=True)
    else:
        print(printable(readable_line(record)), file=options.out, flush=True)


def readable_line(record: dict[str, Any]) -> str:
    """`mdb028.pgm  REFER TO A RADIOLOGIST - possible mass, well-defined (CIRC)  P(abnormal) 0.91  P(malignant) 0.77`,
    in the words of `edge.words`; times in local time."""
    line = f"{record['file']}  "
    if record.get("id"):
        line += f"[id {record['id']}]  "
    line += f"{verdict(record)}  P(abnormal) {record['abnormal']:.2f}  P(malignant) {record['malignant']:.2f}"
    if record.get("contralateral"):
        line += f"  (read beside {Path(record['contralateral']).name})"
    if record.get("note"):
        line += f"  [{record['note']}]"
    if record.get("quality"):
        line += f"  [check the scan: {record['quality']}]"
    if record.get("logged"):
        line += f"  (from the log, read {local_time(record['logged'])})"
    return line


def summary(tally: Tally, classifier) -> str:
    manifest = classifier.manifest
    parts = [f"{tally.total} scan{'s' * (tally.total != 1)}: {tally.refer} to refer to a radiologist, {tally.routine} routine"]
    if tally.failed:
        refused = f" ({tally.not_mammograms} of them not a mammogram)" if tally.not_mammograms else ""
        parts.append(f"{tally.failed} failed{refused}")
    if tally.from_log:
        parts.append(f"{tally.from_log} from the results log (--force to run again)")
    if tally.quality_notes:
        parts.append(f"{tally.quality_notes} with a scan-quality note")
    rule = triage_rule(manifest.triage_threshold, manifest.target_sensitivity)
    return ", ".join(parts) + f"\nmodel {classifier.sha256[:12]}; {rule}\n{DISCLAIMER}"


def camera_source(capture: Callable[[], np.ndarray]) -> Source:
    """A frame from the camera as a source named `camera-<UTC time>`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Source(name=f"camera-{stamp}", pixels=capture())
