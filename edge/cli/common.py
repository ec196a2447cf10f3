"""What every command line of the project shares: exit statuses and one-line errors.

Exit statuses: 0 done; 1 some inputs failed (the rest were done); 2 usage or set-up error;
130 interrupted; 141 output pipe closed.

The device commands (`edge-classify`, `edge-bench`, `edge-report`) parse with argparse, which
starts fast and is in the standard library, and end through `finish`. The desktop commands
(`edge-train`, `edge-convert`) share the same statuses through `train.desktop_cli` (Typer).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

from edge.errors import EdgeError

EXIT_OK, EXIT_SOME_FAILED, EXIT_SETUP = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # 128 + SIGINT, 128 + SIGPIPE, as a shell reports them


def one_blas_thread() -> None:
    """Give numpy one BLAS thread (unless OPENBLAS_NUM_THREADS says otherwise); called before numpy loads,
    as the variable asks. On the device the heads' matrix products are small, and a second BLAS thread
    left spinning after them took the cores from the next scan's int8 invoke: its median rose from 31
    to 54-87 ms in `edge-bench` on the 2-core x86 machine, and a cold start cost 350-450 ms of CPU
    instead of 220-300 (`OPENBLAS_NUM_THREADS=2 edge-bench --device x86` shows it again: a set
    variable wins). In `edge-train` the cell head's fits gave the same heads and predictions with one
    thread, at 65 s a fold instead of 250 s beside another job."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# --- device commands (argparse) ---------------------------------------------------------------


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number not below `low`, else a usage error (exit 2) saying so."""
    import argparse

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    return whole


def finish(command: Callable[[], int | None]) -> NoReturn:
    """Run a device command and exit with its status: the project's errors as one `error:` line
    and status 2, never a traceback (EDGE_DEBUG=1 shows one for an unexpected error)."""
    try:
        status = command() or EXIT_OK
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = EXIT_SETUP
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line, not a traceback
        if os.environ.get("EDGE_DEBUG"):
            raise
        print(f"error: unexpected {exc.__class__.__name__} ({exc}); please report it (EDGE_DEBUG=1 shows where)",
              file=sys.stderr)
        status = EXIT_SETUP
    sys.exit(status)
