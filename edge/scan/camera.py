"""One frame from the Raspberry Pi camera (picamera2), as a greyscale scan.

For a film on a light box: the camera photographs it and the frame goes through the same
preparation as a scanned file. picamera2 comes from apt on a Pi (`python3-picamera2`, a venv
made with `--system-site-packages`) and cannot be installed elsewhere, so it is imported only
when `--camera` is used. Tests replace `open_camera` with a fake.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import EdgeError

INSTALL_HINT = (
    "picamera2 is not available: on a Raspberry Pi run `sudo apt install python3-picamera2` and use a "
    "virtual environment created with --system-site-packages"
)


def open_camera() -> Any:
    """A started Picamera2 set up for one full-resolution still in RGB888 (BGR byte order)."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise EdgeError(INSTALL_HINT) from None
    try:
        camera = Picamera2()
        camera.configure(camera.create_still_configuration(main={"format": "RGB888"}))
        camera.start()
    except Exception as exc:  # picamera2 raises IndexError / RuntimeError when no camera is attached
        raise EdgeError(f"no camera found or the camera is busy ({exc.__class__.__name__}: {exc}); check the ribbon cable and `rpicam-hello --list-cameras`") from None
    return camera


def capture_grey(opener=None) -> np.ndarray:
    """Capture one frame and return it as a 2-D uint8 greyscale array."""
    camera = (opener or open_camera)()
    try:
        frame = camera.capture_array("main")
    except Exception as exc:
        raise EdgeError(f"the camera did not deliver a frame ({exc.__class__.__name__}: {exc})") from None
    finally:
        for method in ("stop", "close"):
            try:
                getattr(camera, method, lambda: None)()
            except Exception:
                pass
    return bgr_to_grey(np.asarray(frame))


def bgr_to_grey(frame: np.ndarray) -> np.ndarray:
    """picamera2's "RGB888" is B, G, R in memory (and XBGR8888 is B, G, R, X): ITU-R 601 luma."""
    if frame.ndim == 2:
        return frame.astype(np.uint8, copy=False)
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise EdgeError(f"the camera delivered a frame of shape {frame.shape}, not an image")
    blue, green, red = (frame[..., i].astype(np.float32) for i in range(3))
    return np.clip(np.rint(0.114 * blue + 0.587 * green + 0.299 * red), 0, 255).astype(np.uint8)
