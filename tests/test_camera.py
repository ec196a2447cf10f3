"""edge-classify --camera with a fake picamera2 camera, and the message when there is none."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from classify_support import json_lines, model_file, no_traceback, run_classify  # noqa: F401 (fixture)
from edge.scan import camera
from edge.inference.classifier import Classifier
from edge.cli.classify import run
from edge.scan.decode import read_scan
from edge.errors import EdgeError


class FakeCamera:
    """What picamera2.Picamera2 offers after configure/start: capture_array, stop, close."""

    def __init__(self, grey: np.ndarray):
        # RGB888 is B, G, R in memory; make the channels differ so a swap would show
        self.frame = np.stack([grey // 2, grey, np.clip(grey.astype(int) * 2, 0, 255).astype(np.uint8)], axis=-1)
        self.calls = []

    def capture_array(self, name="main"):
        self.calls.append(("capture_array", name))
        return self.frame

    def stop(self):
        self.calls.append(("stop",))

    def close(self):
        self.calls.append(("close",))


def test_bgr_order_is_respected():
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 0] = 255
    assert camera.bgr_to_grey(blue)[0, 0] == 29  # 0.114 * 255; read as RGB it would be 76
    xbgr = np.zeros((4, 4, 4), np.uint8)
    xbgr[..., 2] = 255
    assert camera.bgr_to_grey(xbgr)[0, 0] == 76  # red
    with pytest.raises(EdgeError):
        camera.bgr_to_grey(np.zeros((4, 4, 2), np.uint8))


def test_camera_frame_is_classified(model_file, mias_dir, monkeypatch):
    grey = read_scan(mias_dir / "mdb028.png")
    fake = FakeCamera(grey)
    monkeypatch.setattr(camera, "open_camera", lambda: fake)
    out, err = io.StringIO(), io.StringIO()
    status = run([], model=model_file, camera=True, as_json=True, out=out, err=err)
    assert status == 0, err.getvalue()
    (record,) = json_lines(out.getvalue())
    assert record["file"].startswith("camera-")
    frame_grey = camera.bgr_to_grey(fake.frame)
    expected = Classifier(model_file).classify(frame_grey).to_record()
    assert {k: record[k] for k in expected} == expected
    assert fake.calls == [("capture_array", "main"), ("stop",), ("close",)]


def test_camera_frame_goes_to_the_overlay_and_log(model_file, mias_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(camera, "open_camera", lambda: FakeCamera(read_scan(mias_dir / "mdb005.png")))
    out = io.StringIO()
    status = run([], model=model_file, camera=True, as_json=True, overlay=tmp_path / "o", log=tmp_path / "l.db", out=out)
    assert status == 0
    (record,) = json_lines(out.getvalue())
    assert Path(record["overlay"]).parent == tmp_path / "o" and Path(record["overlay"]).name.startswith(f"{record['file']}-")
    assert Path(record["overlay"]).is_file()


def test_a_camera_that_fails_is_a_clear_error(model_file, monkeypatch):
    class Broken(FakeCamera):
        def capture_array(self, name="main"):
            raise RuntimeError("timeout")

    monkeypatch.setattr(camera, "open_camera", lambda: Broken(np.zeros((8, 8), np.uint8)))
    with pytest.raises(EdgeError, match="did not deliver a frame"):
        camera.capture_grey()


def test_without_picamera2_the_message_says_how_to_get_it(model_file):
    result = run_classify("--camera", "--model", model_file)
    assert result.returncode == 2
    assert "picamera2" in result.stderr and "apt install python3-picamera2" in result.stderr
    no_traceback(result)


def test_picamera2_without_a_camera_is_a_clear_error(monkeypatch):
    import sys
    import types

    class NoCamera:
        def __init__(self):
            raise IndexError("list index out of range")  # what picamera2 raises with no camera attached

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=NoCamera))
    with pytest.raises(EdgeError, match="no camera found"):
        camera.capture_grey()


def test_the_real_opener_configures_rgb888_and_starts(monkeypatch, mias_dir):
    import sys
    import types

    grey = read_scan(mias_dir / "mdb005.png")
    made = []

    class Picamera2(FakeCamera):
        def __init__(self):
            super().__init__(grey)
            made.append(self)

        def create_still_configuration(self, main):
            return {"main": main}

        def configure(self, config):
            self.calls.append(("configure", config["main"]["format"]))

        def start(self):
            self.calls.append(("start",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    frame = camera.capture_grey()
    assert frame.shape == grey.shape and frame.dtype == np.uint8
    assert made[0].calls == [("configure", "RGB888"), ("start",), ("capture_array", "main"), ("stop",), ("close",)]
