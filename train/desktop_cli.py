"""What the desktop commands (`edge-train`, `edge-convert`) share: a Typer app that never shows a
traceback, and one-line errors with the device commands' exit statuses (`edge.cli.common`).
Typer is a desktop dependency (the `train` extra), so this lives outside `edge`."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import typer

from edge.cli.common import EXIT_INTERRUPTED, EXIT_SETUP
from edge.errors import EdgeError


def make_app(help_text: str) -> Any:
    """A single-command Typer app that never shows a traceback to the person at the keyboard."""
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False)


def fail(message: str, status: int = EXIT_SETUP) -> Any:
    """Print `message` as one line on stderr and return the typer.Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(status)


def friendly_errors(command: Callable) -> Callable:
    """Turn the project's own errors into `error: ...` on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgeError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper
