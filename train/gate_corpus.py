"""The two corpora the not-a-mammogram gate (edge.scan.plausibility) is fitted and checked on.

- Not mammograms, built at run time from what this machine has (nothing is stored): the sample
  images that scikit-image, matplotlib and pydicom ship, and drawn ones (text pages, terminals,
  forms, charts, drawings, screens, noise, gradients, photos of paper, CT / MR / chest / limb
  X-ray / ultrasound-like pictures), colour pictures and the same in grey. Each item belongs to
  a `family` (one source picture and everything made from it), so held-out folds never split one.
- Real mammograms: every MIAS film scan and every digital screening image, as they are and in
  the forms a centre may hand over: 16-bit, JPEG, inverted, cropped close, padded, rotated by
  90 degrees, small (600 pixels on the longer side); and with a spot-compression paddle drawn
  over it, as is and in one of those forms (a spot or magnification view shows the paddle's
  bright frame over the breast: without such views, the gate refused the corpus's one real spot
  view when its woman was held out).

Images are numpy arrays: (h, w) greyscale (uint8 or uint16) or (h, w, 3) uint8 colour.
`refusal` runs an image through what the command runs: the decoder's colour check, then the gate.
scripts/gate_corpus.py fits the gate (edge/scan/gate.json) on these corpora and measures it.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def coarse_upright(scan: np.ndarray) -> np.ndarray:
    """The 8-bit coarse copy the checks read, as prepare() will read it (a negative turned back)."""
    from edge.preprocess import inverted_polarity
    from edge.scan.plausibility import coarse_copy

    coarse = coarse_copy(scan)
    return 255 - coarse if inverted_polarity(coarse) else coarse


REAL_VARIANTS = ("as is", "16-bit", "JPEG", "inverted", "cropped close", "padded", "rotated 90", "small",
                 "paddle", "paddle, reframed")
PADDLE_FORMS = ("cropped close", "padded", "small", "rotated 90", "inverted")
"""The form "paddle, reframed" gives a scan with a paddle: one of these, chosen by the scan."""


@dataclass(frozen=True)
class Item:
    """One image of a corpus: `family` groups everything made from one source picture (or one woman)."""

    kind: str
    family: str
    make: Callable[[], np.ndarray]
    form: str = "as made"


def refusal(image: np.ndarray) -> str | None:
    """What edge-classify says of this image: a colour picture is refused by the decoder, the
    rest by the gate; None when it is read."""
    from edge.scan.plausibility import colour_problem, problem

    if image.ndim == 3:
        picture = Image.fromarray(image)
        refused = colour_problem(picture)
        if refused:
            return refused
        image = np.asarray(picture.convert("L"))
    return problem(image)


# --- real mammograms -------------------------------------------------------------------------


def real_scans(mias_dir: Path | None, rsna_dir: Path | None) -> list[tuple[str, str, Path]]:
    """(source, woman, path) of every MIAS scan and every digital screening image."""
    scans = []
    if mias_dir is not None:
        for path in sorted(Path(mias_dir).glob("mdb*.png")):
            scans.append(("MIAS", f"mias-{(int(path.stem[3:]) + 1) // 2}", path))
    if rsna_dir is not None:
        for path in sorted((Path(rsna_dir) / "images").glob("*.jpg")):
            scans.append(("digital", f"rsna-{path.stem.split('_')[0]}", path))
    return scans


def real_variant(scan: np.ndarray, variant: str) -> np.ndarray:
    """`scan` (8-bit grey) as a centre might hand it over."""
    if variant == "as is":
        return scan
    if variant == "16-bit":
        return scan.astype(np.uint16) * 16 + 7  # 12 bits stored in 16, an offset: rescaled by its own range
    if variant == "JPEG":
        buffer = io.BytesIO()
        Image.fromarray(scan).save(buffer, format="JPEG", quality=75)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    if variant == "inverted":
        return 255 - scan
    if variant == "cropped close":
        top, bottom, left, right = _breast_box(scan)
        return scan[top:bottom, left:right]
    if variant == "padded":
        pad = scan.shape[1] // 5
        return np.pad(scan, ((pad // 2, pad // 2), (pad, pad)), constant_values=int(np.median(_frame(scan))))
    if variant == "rotated 90":
        return np.ascontiguousarray(np.rot90(scan))
    if variant == "paddle":
        return _with_paddle(scan)
    if variant == "paddle, reframed":
        return real_variant(_with_paddle(scan), PADDLE_FORMS[_seed(scan) % len(PADDLE_FORMS)])
    if variant == "small":
        image = Image.fromarray(scan)
        factor = 600 / max(scan.shape)
        return np.asarray(image.resize((round(scan.shape[1] * factor), round(scan.shape[0] * factor)), Image.Resampling.BOX))
    raise ValueError(variant)


def _seed(scan: np.ndarray) -> int:
    return zlib.crc32(scan.tobytes())


def _with_paddle(scan: np.ndarray) -> np.ndarray:
    """`scan` with a spot-compression paddle drawn over its breast: a bright ring (an ellipse or a
    rounded rectangle) and a few bars from it to the side away from the chest wall; dark where
    the scan is a negative. Its size and place are drawn from a seed taken from the scan."""
    from edge.preprocess import _breast_mask, inverted_polarity
    from edge.scan.plausibility import blank, coarse_copy

    rng = np.random.default_rng(_seed(scan))
    coarse = coarse_copy(scan)
    if blank(coarse):  # a file without a breast: nothing to press
        return scan
    negative = inverted_polarity(coarse)
    if negative:
        scan, coarse = 255 - scan, 255 - coarse
    rows, cols = np.nonzero(_breast_mask(coarse)[0])
    wall_left = cols.mean() < coarse.shape[1] / 2
    across = (1 - cols.mean() / coarse.shape[1]) if wall_left else cols.mean() / coarse.shape[1]
    h, w = scan.shape
    image = Image.fromarray(np.ascontiguousarray(scan[:, ::-1]) if wall_left else scan)  # drawn with the wall on the right
    draw = ImageDraw.Draw(image)
    level = int(max(np.percentile(scan, 99.5), 200))
    cx, cy = w * (across + rng.uniform(-0.08, 0.08)), h * (rows.mean() / coarse.shape[0] + rng.uniform(-0.1, 0.1))
    rx, ry = w * rng.uniform(0.15, 0.3), h * rng.uniform(0.12, 0.25)
    width = max(2, round(w * rng.uniform(0.015, 0.04)))
    box = [cx - rx, cy - ry, cx + rx, cy + ry]
    if rng.random() < 0.7:
        draw.ellipse(box, outline=level, width=width)
    else:
        draw.rounded_rectangle(box, radius=min(rx, ry) / 2, outline=level, width=width)
    for _ in range(int(rng.integers(2, 6))):
        y0 = cy + ry * rng.uniform(-0.9, 0.9)
        draw.line([(0, y0 + h * rng.uniform(-0.08, 0.08)), (cx - rx * 0.8, y0)], fill=level, width=max(1, width // 2))
    out = np.asarray(image)
    out = np.ascontiguousarray(out[:, ::-1]) if wall_left else out
    return 255 - out if negative else out


def _frame(scan: np.ndarray) -> np.ndarray:
    return np.concatenate([scan[:4].ravel(), scan[-4:].ravel(), scan[:, :4].ravel(), scan[:, -4:].ravel()])


def _breast_box(scan: np.ndarray) -> tuple[int, int, int, int]:
    """The breast's bounding box on the scan, 2% of a side around it (MIAS films: labels cut away)."""
    from edge.preprocess import _breast_mask

    coarse = coarse_upright(scan)
    region = _breast_mask(coarse)[0]
    rows, cols = np.nonzero(region)
    fr, fc = scan.shape[0] / coarse.shape[0], scan.shape[1] / coarse.shape[1]
    margin = round(0.02 * max(scan.shape))
    return (max(0, int(rows.min() * fr) - margin), min(scan.shape[0], int((rows.max() + 1) * fr) + margin),
            max(0, int(cols.min() * fc) - margin), min(scan.shape[1], int((cols.max() + 1) * fc) + margin))


def read_grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


# --- not mammograms ----------------------------------------------------------------------------


FORMS = ("inverted", "rotated 90", "padded", "small")
"""The real variants a non-mammogram is also given when fitting the gate: so that the form a
picture comes in (turned, framed, shrunk) cannot tell a mammogram from the rest."""


def not_mammograms(seed: int = 0, forms: bool = False) -> list[Item]:
    """At least 200 pictures a health worker might hand the runner by mistake, in families; with
    `forms`, each also in grey in each of FORMS (same family)."""
    items = [*_package_samples(), *_dicom_samples()]
    rng = np.random.default_rng(seed)
    for maker, count in _DRAWN:
        for k in range(count):
            state = int(rng.integers(1 << 31))
            items.append(Item(maker.__name__[5:].replace("_", " "), f"{maker.__name__}-{k}",
                              lambda maker=maker, state=state: maker(np.random.default_rng(state))))
    if forms:
        items += [Item(item.kind, item.family, lambda item=item, form=form: _in_form(item.make(), form), form)
                  for item in items for form in FORMS]
    return items


def _in_form(image: np.ndarray, form: str) -> np.ndarray:
    grey = _grey(image)
    return real_variant(grey if grey.dtype == np.uint8 else _to8(grey), form)


def _variants_of(kind: str, family: str, load: Callable[[], np.ndarray]) -> list[Item]:
    """A sample picture as it is, in grey (when colour), and a grey crop at scan size."""
    items = [Item(kind, family, load)]
    items.append(Item(f"{kind}, in grey", family, lambda: _grey(load())))
    items.append(Item(f"{kind}, grey crop enlarged", family, lambda: _crop_enlarged(_grey(load()))))
    return items


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(image[..., :3].astype(np.uint8)).convert("L"))


def _crop_enlarged(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    part = grey[h // 8: h - h // 8, w // 8: w - w // 8]
    image = Image.fromarray(part)
    factor = 900 / max(part.shape)
    return np.asarray(image.resize((round(part.shape[1] * factor), round(part.shape[0] * factor)), Image.Resampling.BILINEAR))


def _package_samples() -> list[Item]:
    items = []
    try:
        import skimage.data as data
    except ImportError:  # scikit-image is in the dev extra
        data = None
    if data is not None:
        folder = Path(data.__file__).parent
        for name in sorted(p.name for p in folder.iterdir() if p.suffix in (".png", ".jpg")):
            items += _variants_of(f"scikit-image sample {name}", f"skimage-{name}",
                                  lambda name=name: _as_array(Image.open(folder / name)))
        faces = np.load(folder / "lfw_subset.npy")
        for k in range(0, len(faces), 20):
            items.append(Item("face photo (grey, enlarged)", f"lfw-{k}",
                              lambda k=k: np.asarray(Image.fromarray((faces[k] * 255).astype(np.uint8)).resize((640, 640)))))
    import matplotlib

    samples = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        items += _variants_of(f"matplotlib sample {name}", f"mpl-{name}", lambda name=name: _as_array(Image.open(samples / name)))

    def mr_head() -> np.ndarray:
        raw = gzip.open(samples / "s1045.ima.gz").read()
        return np.frombuffer(raw, "<u2")[-256 * 256:].reshape(256, 256).copy()

    items.append(Item("MR head slice (matplotlib sample)", "mpl-s1045", mr_head))
    items.append(Item("MR head slice enlarged", "mpl-s1045", lambda: _enlarge16(mr_head(), 768)))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        items.append(Item(f"elevation map {name}", f"mpl-{name}", lambda name=name, key=key: _to8(np.load(samples / name)[key])))
        items.append(Item(f"elevation map {name} enlarged", f"mpl-{name}",
                          lambda name=name, key=key: _crop_enlarged(_to8(np.load(samples / name)[key]))))
    return items


def _dicom_samples() -> list[Item]:
    """The 2-D images among pydicom's test files (CT, MR, NM, ultrasound, secondary captures)."""
    try:
        import pydicom
    except ImportError:
        return []
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    items = []
    for path in sorted(folder.glob("*.dcm")):
        try:
            pixels = pydicom.dcmread(path).pixel_array
        except Exception:  # noqa: BLE001 - compressed files this install cannot decode, files without pixels
            continue
        if pixels.ndim == 3 and pixels.shape[-1] != 3:
            pixels = pixels[0]
        if pixels.ndim != 2 or min(pixels.shape) < 32:
            continue
        grey = _to8(pixels)
        items.append(Item(f"DICOM test file {path.name}", f"dicom-{path.name}", lambda grey=grey: grey))
        shown = _as_decoded(path)
        if shown is not None and shown.shape == pixels.shape:
            items.append(Item(f"DICOM test file {path.name}, as edge-classify decodes it", f"dicom-{path.name}",
                              lambda shown=shown: shown))
        if max(grey.shape) < 700:
            items.append(Item(f"DICOM test file {path.name} enlarged", f"dicom-{path.name}",
                              lambda grey=grey: _enlarge(grey, 900)))
    return items


def _as_decoded(path: Path) -> np.ndarray | None:
    """The DICOM file as the device decoder reads it (modality LUT, window, MONOCHROME1 turned),
    in 8 bits; None when that decoder refuses it."""
    try:
        from edge.scan.dicom import read_dicom

        return _to8(read_dicom(path))
    except Exception:  # noqa: BLE001 - a file the device refuses is not a picture it would judge
        return None


def _as_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "I;16", "I"):
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))


def _to8(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    low, high = values.min(), values.max()
    return np.rint((values - low) * (255 / max(high - low, 1e-9))).astype(np.uint8)


def _enlarge(grey: np.ndarray, side: int) -> np.ndarray:
    factor = side / max(grey.shape)
    return np.asarray(Image.fromarray(grey).resize((round(grey.shape[1] * factor), round(grey.shape[0] * factor)), Image.Resampling.BILINEAR))


def _enlarge16(values: np.ndarray, side: int) -> np.ndarray:
    return (_enlarge(_to8(values), side).astype(np.uint16) * 16)


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        try:
            return ImageFont.load_default(size=size)
        except TypeError:
            return ImageFont.load_default()


def _smooth_noise(rng, shape, scale: int) -> np.ndarray:
    small = rng.random((max(2, shape[0] // scale), max(2, shape[1] // scale)))
    return np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize(shape[::-1], Image.Resampling.BICUBIC), dtype=np.float32) / 255


def _grid(shape) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return rows / shape[0], cols / shape[1]


def _ellipse(rows, cols, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    y, x = rows - cy, cols - cx
    c, s = np.cos(angle), np.sin(angle)
    return ((x * c + y * s) / rx) ** 2 + ((-x * s + y * c) / ry) ** 2 <= 1


def _finish(rng, values: np.ndarray, noise: float = 0.03) -> np.ndarray:
    values = values + rng.normal(0, noise, values.shape)
    return np.clip(values * 255, 0, 255).astype(np.uint8)


def make_text_page(rng) -> np.ndarray:
    dark_on_light = rng.random() < 0.75
    page = Image.new("L", (int(rng.integers(800, 1400)), int(rng.integers(900, 1800))), int(rng.integers(200, 256)) if dark_on_light else int(rng.integers(0, 50)))
    draw, size = ImageDraw.Draw(page), int(rng.integers(12, 36))
    ink = int(rng.integers(0, 60)) if dark_on_light else int(rng.integers(180, 256))
    for i in range(int(page.height / (size * 1.4)) - 2):
        words = " ".join("".join(chr(97 + int(c)) for c in rng.integers(0, 26, int(rng.integers(2, 9)))) for _ in range(int(rng.integers(3, 12))))
        draw.text((int(rng.integers(20, 120)), 20 + int(i * size * 1.4)), words, fill=ink, font=_font(size))
    return np.asarray(page)


def make_form(rng) -> np.ndarray:
    page = Image.new("L", (1240, 1754), 250)
    draw = ImageDraw.Draw(page)
    for i in range(int(rng.integers(8, 30))):
        y = 60 + i * 55
        draw.rectangle((60, y, 1180, y + 45), outline=0, width=2)
        draw.text((70, y + 10), f"Field {i}: ____________", fill=0, font=_font(20))
    draw.rectangle((60, 20, 600, 50), fill=int(rng.integers(0, 120)))
    return np.asarray(page)


def make_chart(rng) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = "dark_background" if rng.random() < 0.4 else "default"
    with plt.style.context(style):
        figure, axes = plt.subplots(figsize=(8, 6), dpi=100)
        kind = int(rng.integers(4))
        x = np.linspace(0, 10, 200)
        if kind == 0:
            for _ in range(3):
                axes.plot(x, np.sin(x * rng.random() * 3) + rng.random())
        elif kind == 1:
            axes.bar(range(12), rng.random(12))
        elif kind == 2:
            axes.scatter(rng.random(300), rng.random(300), s=8)
        else:
            axes.imshow(rng.random((20, 20)), cmap="gray")
        axes.set_title("clinic figures")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
    return _grey(np.asarray(Image.open(buffer).convert("RGB")))


def make_drawing(rng) -> np.ndarray:
    image = Image.new("L", (1000, 800), int(rng.choice([0, 255, int(rng.integers(256))])))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 40))):
        box = sorted(rng.integers(0, 1000, 2).tolist()), sorted(rng.integers(0, 800, 2).tolist())
        xy = (box[0][0], box[1][0], box[0][1], box[1][1])
        shade = int(rng.integers(256))
        [draw.rectangle, draw.ellipse, draw.line][int(rng.integers(3))](xy, fill=shade, **({"width": 6} if False else {}))
    return np.asarray(image)


def make_screen(rng) -> np.ndarray:
    screen = Image.new("L", (1366, 768), int(rng.integers(200, 245)))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, 1366, 30), fill=40)
    for _ in range(int(rng.integers(2, 6))):
        x, y = int(rng.integers(0, 900)), int(rng.integers(40, 500))
        draw.rectangle((x, y, x + int(rng.integers(200, 500)), y + int(rng.integers(100, 260))), fill=int(rng.integers(256)), outline=100)
        for i in range(6):
            draw.text((x + 10, y + 10 + 20 * i), "edge-classify scans/ --json", fill=0, font=_font(14))
    return np.asarray(screen)


def make_noise(rng) -> np.ndarray:
    shape = (int(rng.integers(600, 1200)), int(rng.integers(600, 1200)))
    kind = int(rng.integers(4))
    if kind == 0:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == 1:
        return _finish(rng, 0.5 + rng.normal(0, 0.15, shape), 0)
    if kind == 2:
        return _finish(rng, _smooth_noise(rng, shape, int(rng.integers(8, 120))))
    return _finish(rng, (rng.random(shape) < 0.05).astype(np.float32) * 0.9, 0)


def make_gradient(rng) -> np.ndarray:
    rows, cols = _grid((800, 1000))
    kind = int(rng.integers(3))
    if kind == 0:
        values = cols if rng.random() < 0.5 else rows
    elif kind == 1:
        values = 1 - np.hypot(rows - rng.random(), cols - rng.random())
    else:
        values = np.clip(np.sin(cols * rng.integers(2, 20)) * 0.5 + 0.5, 0, 1)
    return _finish(rng, values, 0.01)


def make_ct_slice(rng) -> np.ndarray:
    """A body or head CT slice: a bright outline in the middle of a black field, organs, bone."""
    shape = (512, 512)
    rows, cols = _grid(shape)
    cy, cx = 0.5 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
    values = np.zeros(shape, np.float32)
    head = rng.random() < 0.4
    ry, rx = (0.38, 0.32) if head else (0.3, 0.42)
    body = _ellipse(rows, cols, cy, cx, ry * rng.uniform(0.8, 1.1), rx * rng.uniform(0.8, 1.1))
    values[body] = 0.45
    if head:
        values[body & ~_ellipse(rows, cols, cy, cx, ry * 0.9, rx * 0.9)] = 0.95
    else:
        for _ in range(int(rng.integers(3, 7))):
            organ = _ellipse(rows, cols, cy + rng.normal(0, 0.08), cx + rng.normal(0, 0.15), rng.uniform(0.03, 0.1), rng.uniform(0.03, 0.12))
            values[organ & body] = rng.uniform(0.3, 0.7)
        values[_ellipse(rows, cols, cy + 0.2, cx, 0.04, 0.04)] = 0.95
        values[_ellipse(rows, cols, cy - 0.05, cx - 0.2, 0.12, 0.08) & body] = 0.08  # lungs
        values[_ellipse(rows, cols, cy - 0.05, cx + 0.2, 0.12, 0.08) & body] = 0.08
    values[_ellipse(rows, cols, 0.93, 0.5, 0.04, 0.45)] = 0.35 * (rng.random() < 0.5)  # the table
    return _finish(rng, values * _smooth_noise(rng, shape, 32).clip(0.85, 1.0), 0.02)


def make_mr_slice(rng) -> np.ndarray:
    shape = (int(rng.choice([256, 384, 512])),) * 2
    rows, cols = _grid(shape)
    cy, cx = 0.5 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
    brain = _ellipse(rows, cols, cy, cx, 0.4, 0.33)
    texture = 0.35 + 0.4 * _smooth_noise(rng, shape, 10)
    values = np.where(brain, texture, 0.0)
    values[brain & ~_ellipse(rows, cols, cy, cx, 0.37, 0.3)] = 0.85
    image = _finish(rng, values, 0.03)
    return _enlarge(image, 768) if rng.random() < 0.5 else image


def make_chest_xray(rng) -> np.ndarray:
    """A frontal chest film: a bright torso filling the frame, two dark lungs, spine, ribs."""
    shape = (int(rng.integers(900, 1400)), int(rng.integers(900, 1400)))
    rows, cols = _grid(shape)
    values = 0.15 + 0.6 * _ellipse(rows, cols, 0.6, 0.5, 0.6, 0.48)
    for side in (0.3, 0.7):
        values[_ellipse(rows, cols, 0.45, side, 0.3, 0.15)] = 0.2
    values[(np.abs(cols - 0.5) < 0.04)] = 0.9
    for k in range(8):
        values[(np.abs(rows - 0.25 - 0.06 * k - 0.1 * (cols - 0.5) ** 2) < 0.008) & (np.abs(cols - 0.5) < 0.35)] = 0.7
    values = values * (0.9 + 0.1 * _smooth_noise(rng, shape, 40))
    image = _finish(rng, values, 0.02)
    return 255 - image if rng.random() < 0.3 else image


def make_limb_xray(rng) -> np.ndarray:
    """A hand, knee or long bone on a dark field: bright shapes against black, the hardest kind."""
    shape = (int(rng.integers(800, 1300)), int(rng.integers(700, 1100)))
    rows, cols = _grid(shape)
    values = np.zeros(shape, np.float32) + 0.05
    soft = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 6))):
        cx, angle = rng.uniform(0.25, 0.75), rng.normal(0, 0.3)
        soft |= _ellipse(rows, cols, rng.uniform(0.3, 0.7), cx, rng.uniform(0.2, 0.45), rng.uniform(0.04, 0.12), angle)
    values[soft] = 0.4
    bones = soft & _smooth_noise(rng, shape, 60).__gt__(0.5)
    values[bones] = 0.8
    return _finish(rng, values * (0.9 + 0.1 * _smooth_noise(rng, shape, 20)), 0.02)


def make_ultrasound(rng) -> np.ndarray:
    shape = (600, 800)
    rows, cols = _grid(shape)
    angle = np.arctan2(cols - 0.5, rows + 0.05)
    radius = np.hypot(rows + 0.05, (cols - 0.5) * 800 / 600)
    fan = (np.abs(angle) < 0.6) & (radius > 0.1) & (radius < 0.95)
    speckle = rng.gamma(1.5, 0.25, shape) * (0.5 + 0.5 * _smooth_noise(rng, shape, 30))
    return _finish(rng, np.where(fan, np.clip(speckle, 0, 1), 0.0), 0)


def make_paper_photo(rng) -> np.ndarray:
    """A photo of a printed page on a darker table, a little skewed."""
    table = 0.25 + 0.2 * _smooth_noise(rng, (900, 1200), 50)
    page = Image.fromarray(make_text_page(rng)).resize((600, 800)).rotate(float(rng.normal(0, 8)), expand=True, fillcolor=0)
    image = Image.fromarray(_finish(rng, table, 0.02))
    mask = Image.fromarray((np.asarray(page) > 0).astype(np.uint8) * 255)
    image.paste(page, (int(rng.integers(0, 300)), int(rng.integers(0, 80))), mask)
    return np.asarray(image)


def make_object_photo(rng) -> np.ndarray:
    """A grey photo of an object against a dark backdrop: blotchy shapes, shading, a floor."""
    shape = (int(rng.integers(700, 1100)), int(rng.integers(800, 1300)))
    rows, cols = _grid(shape)
    values = 0.1 + 0.15 * _smooth_noise(rng, shape, 80)
    blob = _smooth_noise(rng, shape, int(rng.integers(60, 200))) * (1 - np.hypot(rows - 0.5, cols - 0.5) * 1.4)
    values = np.where(blob > 0.3, 0.4 + 0.5 * _smooth_noise(rng, shape, 15), values)
    values[rows > rng.uniform(0.75, 0.95)] = 0.5
    return _finish(rng, values, 0.03)


_DRAWN = (
    (make_text_page, 14), (make_form, 5), (make_chart, 12), (make_drawing, 10), (make_screen, 6),
    (make_noise, 10), (make_gradient, 6), (make_ct_slice, 16), (make_mr_slice, 10), (make_chest_xray, 12),
    (make_limb_xray, 12), (make_ultrasound, 6), (make_paper_photo, 6), (make_object_photo, 10),
)


def iter_real(mias_dir: Path | None, rsna_dir: Path | None, every: int = 1) -> Iterator[tuple[str, str, str, str, np.ndarray]]:
    """(source, woman, file name, variant, image) for every `every`-th real scan and each variant."""
    for source, woman, path in real_scans(mias_dir, rsna_dir)[::every]:
        scan = read_grey(path)
        for variant in REAL_VARIANTS:
            yield source, woman, path.name, variant, real_variant(scan, variant)
