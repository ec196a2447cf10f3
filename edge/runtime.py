"""The TFLite interpreter, from whichever runtime the board has, built once per run.

`ai-edge-litert` (LiteRT) is the maintained runtime; `tflite-runtime` 2.14 is the last release
of the old one and still what many Pis have. Nothing here imports TensorFlow.

Kernels. By default LiteRT 2.x hands int8 ops to its XNNPACK delegate, tflite-runtime 2.14
runs TFLite's optimized builtin int8 kernels, and the two round differently (0.03 in a
probability). So the runner asks every runtime for the kernels the board's config names
(reports/boards/README.md has the evidence, for the shipped model):
- `builtin` (the desktop's and the Corals' CPU fallback; the default): the optimized builtin
  kernels without default delegates. On x86 LiteRT and tflite-runtime then give identical
  outputs (all 258 development scans). Not across CPUs: LiteRT's aarch64 build rounds its
  CONV_2D otherwise (one step on a few tenths of a percent of values, grown to 0.16 in a
  probability), and tflite-runtime's its one-channel CONV_2D (1 of 258 answers).
- `reference` (the Pis): TFLite's portable reference kernels, one thread, 7.5x a core's builtin
  invoke on x86. Every tensor of the model is the same on aarch64 as on x86 in each runtime
  (emulated), so a Pi's answer is a desktop's with these kernels; the two runtimes' reference
  FULLY_CONNECTED differ (class probabilities of 4 of 258 scans).
- `default`: the runtime's own choice (fastest; no two agree).
A delegate named by the board (the Edge TPU) is loaded in every case. All of this is about int8
activations: a 16x8 model's int16 ops (the shipped model) run TFLite's reference code under every
choice, one thread, and gave the same outputs in all three and in both runtimes on x86.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from edge.errors import EdgeError

RUNTIMES = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
KERNELS = ("builtin", "reference", "default")
"""builtin: the optimized builtin kernels, no default delegate (same outputs in both runtimes on x86);
reference: TFLite's portable reference kernels, no default delegate (same outputs on x86 and aarch64
within one runtime; slow; the Pis' choice); default: whatever the runtime picks (LiteRT 2.x: XNNPACK)."""
RESOLVERS = {"reference": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


def _import_runtime(choice: str = "auto"):
    """(interpreter module, distribution name) of the runtime asked for."""
    names = list(RUNTIMES) if choice == "auto" else [choice.replace("-", "_")]
    for name in names:
        if name not in RUNTIMES:
            raise EdgeError(f"unknown runtime {choice!r}; use auto, ai_edge_litert or tflite_runtime")
        try:
            module = __import__(f"{name}.interpreter", fromlist=["Interpreter", "load_delegate"])
        except ImportError:
            continue
        return module, RUNTIMES[name]
    wanted = " or ".join(RUNTIMES.values()) if choice == "auto" else RUNTIMES.get(choice, choice)
    raise EdgeError(f"no TFLite runtime installed: pip install {wanted}")


def runtime_version(choice: str = "auto") -> str:
    """e.g. 'ai-edge-litert 2.3.0'."""
    from importlib import metadata  # here, not at the top: 13 ms of every edge-classify start

    _, distribution = _import_runtime(choice)
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return distribution


def make_interpreter(
    model_content: bytes, threads: int = 2, delegate: str = "", runtime: str = "auto", kernels: str = "builtin",
    preserve_all_tensors: bool = False,
) -> Any:
    """An allocated interpreter for `model_content`, with an optional delegate library (Edge TPU).

    `kernels`: "builtin" (TFLite's optimized builtin kernels without the default XNNPACK delegate:
    the same outputs in both runtimes on x86), "reference" (the portable reference kernels) or
    "default" (the runtime's own choice). `preserve_all_tensors`: every intermediate tensor can be
    read after `invoke` (the converter's bias correction needs them; slower, more memory)."""
    if kernels not in KERNELS:
        raise EdgeError(f"unknown kernels {kernels!r}; use {', '.join(KERNELS)}")
    module, distribution = _import_runtime(runtime)
    options = {"experimental_op_resolver_type": _resolver(module, distribution, kernels)} if kernels in RESOLVERS else {}
    if preserve_all_tensors:
        options["experimental_preserve_all_tensors"] = True
    delegates = [_load_delegate(module.load_delegate, delegate)] if delegate else []
    try:
        interpreter = module.Interpreter(
            model_content=model_content, num_threads=threads, experimental_delegates=delegates or None, **options
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgeError(f"{distribution} cannot load the model ({str(exc).strip().splitlines()[0]})") from None
    return interpreter


def _resolver(module, distribution: str, kernels: str) -> Any:
    """The OpResolverType member for `kernels` (LiteRT 2.x, tflite-runtime >= 2.6 have them)."""
    resolver = getattr(getattr(module, "OpResolverType", None), RESOLVERS[kernels], None)
    if resolver is None:
        raise EdgeError(
            f"{distribution} cannot be asked for its {kernels} kernels (no OpResolverType.{RESOLVERS[kernels]}); "
            'install tflite-runtime 2.14 or ai-edge-litert, or set kernels = "default" in the device config'
        )
    return resolver


def _load_delegate(load_delegate, library: str) -> Any:
    """The delegate, or an EdgeError. A failed load leaves a half-built Delegate whose __del__
    raises AttributeError ("Exception ignored in ... Traceback" on stderr at exit); it is
    collected here, with that one unraisable report silenced, so the user sees one clean line."""
    import gc
    import sys

    problem = None
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        try:
            return load_delegate(library)
        except (ValueError, OSError, RuntimeError) as exc:
            problem = str(exc)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise EdgeError(
        f"cannot load delegate {library} ({problem}); is the library installed and the "
        "accelerator plugged in? (Coral: install libedgetpu1-std and replug the USB stick)"
    )


class Quantization(NamedTuple):
    """A tensor's int <-> real mapping: real = scale * (q - zero_point); scale 0 means float."""

    scale: float
    zero_point: int

    @classmethod
    def of(cls, detail: dict) -> "Quantization":
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return cls(float(scale), int(zero_point))

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.scale == 0.0:
            return values.astype(np.float32)
        return (values.astype(np.float32) - self.zero_point) * self.scale
