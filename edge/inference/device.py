"""Board settings: one TOML file per board in `device_configs/`, installed as `edge.device_configs`.

The code has no per-board branches; a board differs only by these values. `--device NAME`
reads the packaged `NAME.toml` (so it works after a plain, non-editable install), `--config
FILE` reads any TOML file with the same keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from edge.errors import EdgeError
from edge.inference.manifest import INPUT_DTYPES as MODEL_INPUT_DTYPES
from edge.runtime import KERNELS

PACKAGE = "edge.device_configs"
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime")
INPUT_DTYPES = (*MODEL_INPUT_DTYPES, "any")


@dataclass(frozen=True)
class DeviceConfig:
    """How to run the model on one kind of board."""

    name: str
    description: str = ""
    runtime: str = "auto"  # auto: ai_edge_litert, else tflite_runtime
    threads: int = 2  # interpreter CPU threads
    delegate: str = ""  # delegate library to load ('libedgetpu.so.1' for a Coral Edge TPU), '' for none
    model: str = "model.tflite"  # the model variant in the model folder (model_edgetpu.tflite for Coral)
    input_dtype: str = "any"  # the model input type this board needs: uint8, int8, int16 or any
    kernels: str = "builtin"  # edge.runtime.KERNELS: builtin (no XNNPACK; the desktop), reference (the Pis)
    board: str = ""  # how this board's model name starts (/proc/device-tree/model): "Raspberry Pi 4"; '' for any machine

    def takes(self, dtype: str) -> bool:
        """Whether this board runs a model with `dtype` input (an Edge TPU model wants uint8)."""
        return self.input_dtype in ("any", dtype)

    def check_model_dtype(self, dtype: str, model_path: Path) -> None:
        """Refuse a model whose input type the board cannot take."""
        if not self.takes(dtype):
            raise EdgeError(
                f"{model_path}: the model takes {dtype} input but device '{self.name}' needs "
                f"{self.input_dtype}; convert a {self.input_dtype} model for this board"
                + (" (edge-convert --activations int8 --edgetpu)" if self.input_dtype == "uint8" else "")
            )


def default_config() -> DeviceConfig:
    """No --device and no --config: plain CPU, as many threads as cores (at most 4)."""
    return DeviceConfig(name="default", description="CPU, no accelerator", threads=max(1, min(4, os.cpu_count() or 1)))


def known_devices() -> list[str]:
    """Names accepted by --device, from the packaged TOML files."""
    from importlib.resources import files

    return sorted(entry.name[: -len(".toml")] for entry in files(PACKAGE).iterdir() if entry.name.endswith(".toml"))


def load_device(name: str) -> DeviceConfig:
    """The packaged config `NAME.toml`; an unknown name is an error listing the known ones."""
    from importlib.resources import files

    known = known_devices()
    if name not in known:
        raise EdgeError(f"unknown device {name!r}; known devices: {', '.join(known)} (or --config FILE)")
    text = (files(PACKAGE) / f"{name}.toml").read_text(encoding="utf-8")
    return parse_config(text, name=name, where=f"device config {name}.toml")


def load_config_file(path: str | Path) -> DeviceConfig:
    """A board config from any TOML file (--config)."""
    from edge.fileio import read_text

    path = Path(path)
    text = read_text(path, "device config")
    return parse_config(text, name=path.stem, where=str(path))


def parse_config(text: str, name: str, where: str) -> DeviceConfig:
    """Check every key and value; a typo in a board file is an error, not a silent default."""
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EdgeError(f"{where}: not valid TOML ({exc})") from None
    allowed = {f.name for f in fields(DeviceConfig)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise EdgeError(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    values = dict(raw)
    values["name"] = str(raw.get("name", name))
    problems = []
    for key in ("description", "runtime", "delegate", "model", "input_dtype", "kernels", "board"):
        if key in values and not isinstance(values[key], str):
            problems.append(f"{key} must be a string")
    threads = values.get("threads", 2)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 64:
        problems.append("threads must be a whole number from 1 to 64")
    if values.get("runtime", "auto") not in RUNTIMES:
        problems.append(f"runtime must be one of {', '.join(RUNTIMES)}")
    if values.get("input_dtype", "any") not in INPUT_DTYPES:
        problems.append(f"input_dtype must be one of {', '.join(INPUT_DTYPES)}")
    if values.get("kernels", "builtin") not in KERNELS:
        problems.append(f"kernels must be one of {', '.join(KERNELS)}")
    model = values.get("model", "model.tflite")
    if isinstance(model, str) and (not model.endswith(".tflite") or Path(model).name != model):
        problems.append("model must be a .tflite file name (no folders)")
    if problems:
        raise EdgeError(f"{where}: " + "; ".join(problems))
    return DeviceConfig(**values)


MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")


def machine_model(model_files: tuple[str, ...] = MODEL_FILES, cpuinfo: str = "/proc/cpuinfo") -> str:
    """This machine's board name as the firmware gives it ("Raspberry Pi 4 Model B Rev 1.4"), else ''.

    The device tree has it on a Pi (and on most ARM boards); Raspberry Pi OS also puts it in
    /proc/cpuinfo as "Model". An x86 PC has neither."""
    for path in model_files:
        try:
            name = Path(path).read_text(errors="replace").strip("\x00 \n")
        except OSError:
            continue
        if name:
            return name
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model" and value.strip():
                return value.strip()
    except OSError:
        pass
    return ""


def board_mismatch(config: DeviceConfig, model: str | None = None) -> str | None:
    """One line saying this machine is not the board `config` is for, or None (it is, or the
    config names no board). `model` is this machine's board name (default: `machine_model()`)."""
    if not config.board:
        return None
    import platform

    model = machine_model() if model is None else model
    if model.startswith(config.board):
        return None
    here = f"a {model}" if model else f"an {platform.machine() or 'unknown'} machine with no board model in /proc/device-tree/model"
    return f"note: device '{config.name}' is for a {config.board}, but this is {here}: its figures are not {config.board} figures"
