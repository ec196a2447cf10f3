"""A centre's labels.csv folder: the same records, Dataset and training as the MIAS layout of the same scans."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.errors import EdgeError
from train import labels_csv, records as training_records

CHOSEN = ("mdb003", "mdb004", "mdb005", "mdb006", "mdb009", "mdb010", "mdb011", "mdb012", "mdb023", "mdb024",
          "mdb059", "mdb060", "mdb069", "mdb070")
"""7 women: normal breasts, CIRC with two circles (mdb005), a malignant CIRC (mdb023), one without coordinates (mdb059)."""


def write_labels(folder: Path, rows: list[dict]) -> Path:
    """labels.csv with the documented columns, one row per dict."""
    columns = ("file", "woman", "side", "class", "severity", "circles", "tissue")
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in columns} for row in rows)
    return folder / "labels.csv"


def rows_from_info(info: Path, ids, file_of) -> list[dict]:
    """The labels.csv rows of MIAS scans, read from Info.txt itself: MIAS's y counts from the BOTTOM
    of the 1024-pixel scan, labels.csv's row from the top, so row = 1024 - y."""
    table: dict[str, dict] = {}
    for line in info.read_text(errors="replace").splitlines():
        fields = line.split()
        if not fields or fields[0] not in ids:
            continue
        number = int(fields[0][3:])
        row = table.setdefault(fields[0], {"file": file_of(fields[0]), "woman": f"mias-{(number + 1) // 2}",
                                           "side": "R" if number % 2 else "L", "class": fields[2], "severity": "",
                                           "circles": [], "tissue": fields[1]})
        if len(fields) > 3:
            row["severity"] = "M" if "M" in (row["severity"], fields[3]) else fields[3]
        if len(fields) >= 7 and all(f.isdigit() for f in fields[4:7]):
            x, y, radius = map(int, fields[4:7])
            row["circles"].append(f"{1024 - y},{x},{radius}")
    return [{**row, "circles": ";".join(row["circles"])} for _, row in sorted(table.items())]


@pytest.fixture(scope="module")
def two_layouts(records, mias_dir, tmp_path_factory):
    """The same 14 development scans as a MIAS folder (8-bit PNG, Info.txt) and as a labels.csv folder
    (odd numbers 16-bit PNG, even numbers 16-bit DICOM made with pydicom).

    One film-background pixel of each scan is set to 255 in both: an 8-bit scan passes to `prepare`
    as it is while a 16-bit or DICOM one is scaled by its own range (edge.preprocess), and with the
    full 8-bit range the two scalings agree to the grey level, so the prepared inputs must be identical."""
    from test_bad_input import write_dicom

    mias_layout, csv_layout = tmp_path_factory.mktemp("mias_layout"), tmp_path_factory.mktemp("labels_layout")
    lines = [line for line in (mias_dir / "Info.txt").read_text(errors="replace").splitlines()
             if line[:6] in CHOSEN or not line.startswith("mdb")]
    (mias_layout / "Info.txt").write_text("\n".join(lines) + "\n")
    for record in records:
        if record.id not in CHOSEN:
            continue
        pixels = record.pixels().copy()
        pixels[0, 0] = 255
        Image.fromarray(pixels).save(mias_layout / f"{record.id}.png")
        wide = pixels.astype(np.uint16) * 257
        if int(record.id[3:]) % 2:
            Image.fromarray(wide).save(csv_layout / f"{record.id}.png")
        else:
            write_dicom(csv_layout / f"{record.id}.dcm", wide, bits=16)
    file_of = lambda i: f"{i}.png" if int(i[3:]) % 2 else f"{i}.dcm"  # noqa: E731
    write_labels(csv_layout, rows_from_info(mias_layout / "Info.txt", CHOSEN, file_of))
    return mias_layout, csv_layout


def test_the_same_scans_give_the_same_records_and_dataset(two_layouts):
    from train.data import load_dataset
    from train.splits import patient_folds

    mias_layout, csv_layout = two_layouts
    a, b = training_records.load(mias_layout), training_records.load(csv_layout)
    assert [r.path.suffix for r in b] == [".png", ".dcm"] * 7 and np.asarray(Image.open(b[0].path)).dtype == np.uint16
    same = lambda r: (r.id, r.woman, r.side, r.tissue, r.label, r.severity, r.lesions, r.lesions_without_location)  # noqa: E731
    assert [same(r) for r in b] == [same(r) for r in a]
    by_id = {r.id: r for r in b}
    first = by_id["mdb005"].lesions[0]
    assert (first.row, first.col, first.radius) == (1024 - 133, 477, 30)  # Info.txt: x 477, y 133 from the bottom
    assert by_id["mdb059"].lesions == () and by_id["mdb059"].lesions_without_location == 1
    assert by_id["mdb023"].malignant and by_id["mdb069"].tissue == "F"
    assert len({(x.patient, y.patient) for x, y in zip(a, b)}) == len({r.patient for r in a}) == 7  # the same women
    assert np.array_equal(patient_folds(a, k=3), patient_folds(b, k=3))
    da, db = load_dataset(a, 64), load_dataset(b, 64)
    assert np.array_equal(da.images, db.images)
    assert da.geometries == db.geometries and da.circles == db.circles
    assert training_records.summary(a) == training_records.summary(b)


def test_training_on_it_equals_training_on_the_mias_layout(two_layouts, tmp_path):
    """edge-train's whole run on each folder: the same folds, figures, threshold, reading stage and answers.
    One feature cache serves both: it is keyed by the prepared pixels, which the test above shows equal."""
    from train import handoff
    from train.cv import Config, run

    results = {}
    for name, folder in zip(("mias", "csv"), two_layouts):
        run(folder, tmp_path / name, Config(size=64, folds=3, distil_epochs=0, features="float"), cache=tmp_path / "cache", log=lambda *_: None)
        training = handoff.read(tmp_path / name / "final" / "training.json")
        with open(tmp_path / name / "cv" / "predictions.csv", newline="") as handle:
            predictions = [{k: v for k, v in row.items() if k != "patient"} for row in csv.DictReader(handle)]
        results[name] = (training, predictions)
    (mias, mias_rows), (own, own_rows) = results["mias"], results["csv"]
    assert own_rows == mias_rows and len(own_rows) == len(CHOSEN)
    assert own.triage.threshold == mias.triage.threshold and own.reading == mias.reading
    assert json.dumps(own.metrics, sort_keys=True) == json.dumps(mias.metrics, sort_keys=True)
    assert own.data["source"].startswith("labels.csv") and mias.data["source"] == "mini-MIAS development split"


def test_every_bad_row_is_named_at_once(mias_dir, tmp_path):
    from commands import run

    (tmp_path / "a.png").write_bytes((mias_dir / "mdb003.png").read_bytes())
    (tmp_path / "c.png").write_bytes((mias_dir / "mdb005.png").read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes((mias_dir / "mdb004.png").read_bytes())
    write_labels(tmp_path, [
        {"file": "a.png", "woman": "w1", "side": "R", "class": "NORM"},
        {"file": "sub/b.png", "woman": "w1", "side": "l", "class": "circ", "severity": "b", "circles": "10,20,5; 30.5,40,6"},
        {"file": "missing.dcm", "woman": "", "side": "X", "class": "LUMP", "tissue": "Q"},
        {"file": "a.png", "woman": "w2", "side": "L", "class": "NORM"},
        {"file": "sub/b.png", "woman": "w1", "side": "L", "class": "NORM", "severity": "M", "circles": "1,2,3"},
        {"file": "c.png", "woman": "w3", "side": "L", "class": "SPIC", "circles": "1,2;-1,5,5;4,4,0"},
    ])
    with open(tmp_path / "labels.csv", "a") as handle:
        handle.write("sub/b.png,w4,R,CALC,M,1,2,3,F\n")  # circles not quoted: too many fields
    with pytest.raises(EdgeError) as caught:
        labels_csv.load(tmp_path)
    message = str(caught.value)
    for words in ("line 4: file missing.dcm not found; no woman; side 'X' is not L, R or empty; class 'LUMP' is not a MIAS code",
                  "tissue 'Q' is not F, G or D", "line 5: same file as line 2", "line 6: same file as line 3",
                  "line 7: severity '' is not B or M (needed for SPIC); circle '1,2' is not row,col,radius; circle '-1,5,5'",
                  "circle '4,4,0' needs", "line 8: 9 fields, the header has 7 (quote a circles field"):
        assert words in message, (words, message)
    assert "line 2" not in message.replace("as line 2", "") and "line 3:" not in message  # the good rows
    result = run("edge-train", "--data", tmp_path, "--summary")
    assert result.returncode == 2 and "line 8: 9 fields" in result.stderr and "Traceback" not in result.stderr

    write_labels(tmp_path, [{"file": "a.png", "woman": "w1", "side": "R", "class": "NORM"},
                            {"file": "sub/b.png", "woman": "w1", "side": "l", "class": "circ", "severity": "b",
                             "circles": "10,20,5; 30.5,40,6"}])
    a, b = labels_csv.load(tmp_path)
    assert (a.id, a.side, a.patient, a.severity, a.tissue) == ("a", "right", 1, None, "")
    assert (b.id, b.side, b.label, b.severity, b.patient) == ("sub/b", "left", "CIRC", "B", 1)
    assert [(lesion.row, lesion.col, lesion.radius) for lesion in b.lesions] == [(10, 20, 5), (30.5, 40, 6)]
    result = run("edge-train", "--data", tmp_path, "--summary")
    assert result.returncode == 0 and "images    2" in result.stdout and "not given 2" in result.stdout


def test_a_misspelt_or_missing_column_is_refused(tmp_path):
    (tmp_path / "labels.csv").write_text("file,woman,side,class,severity,circle\n")
    with pytest.raises(EdgeError, match="unknown: circle"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("\ufefffile,side,class,severity\n")  # a spreadsheet's byte-order mark
    with pytest.raises(EdgeError, match="missing: woman"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("file,woman,class,severity,cancer\n")
    with pytest.raises(EdgeError, match="class,severity or cancer"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("file,woman,class\n")
    with pytest.raises(EdgeError, match="missing: severity"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("FILE,Woman,side,class,severity\n")
    with pytest.raises(EdgeError, match="no scans listed"):
        labels_csv.load(tmp_path)


def test_a_folder_that_says_only_cancer_or_not_is_read_as_it_is():
    """The RSNA screening subset's own labels.csv (file,woman,image,cancer): no kind, side or circle."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "rsna"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"{folder} is not here")
    loaded = training_records.load(folder)
    assert len(loaded) == 2222 and len({r.patient for r in loaded}) == 627
    cancers = [r for r in loaded if r.abnormal]
    assert len(cancers) == 739 and {(r.label, r.severity, r.side) for r in cancers} == {(training_records.UNKNOWN_KIND, "M", "")}
    assert all(r.lesions_without_location == 1 and not r.kind_known for r in cancers)
    assert {(r.label, r.severity) for r in loaded if not r.abnormal} == {("NORM", None)}
    assert "of unknown kind (ABN) 739" in training_records.summary(loaded)


def test_unknown_kind_and_side(mias_dir, tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes((mias_dir / "mdb003.png").read_bytes())
    write_labels(tmp_path, [
        {"file": "a.png", "woman": "w1", "class": "ABN", "severity": "B"},
        {"file": "b.png", "woman": "w1", "class": "NORM"},  # a second scan of unknown side: allowed
        {"file": "c.png", "woman": "w2", "side": "L", "class": "ABN", "severity": ""},
    ])
    with pytest.raises(EdgeError, match="line 4: severity '' is not B or M"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("file,woman,cancer\na.png,w1,1\nb.png,w1,0\nc.png,w2,yes\n")
    with pytest.raises(EdgeError, match="line 4: cancer 'yes' is not 0 or 1"):
        labels_csv.load(tmp_path)
    (tmp_path / "labels.csv").write_text("file,woman,cancer\na.png,w1,1\nb.png,w1,0\n")
    a, b = labels_csv.load(tmp_path)
    assert (a.label, a.severity, a.side, a.abnormal, a.malignant, a.kind_known) == ("ABN", "M", "", True, True, False)
    assert (b.label, b.abnormal) == ("NORM", False)
