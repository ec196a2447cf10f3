"""What every command line of the project shares: one-line errors and exit statuses.

Exit statuses: 0 done; 1 some inputs failed (the rest were done); 2 usage or set-up error.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer

from edge.errors import EdgeError

EXIT_OK, EXIT_SOME_FAILED, EXIT_SETUP = 0, 1, 2


def make_app(help_text: str) -> typer.Typer:
    """A single-command Typer app that never shows a traceback to the person at the board."""
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False)


def fail(message: str, status: int = EXIT_SETUP) -> typer.Exit:
    """Print `message` as one line on stderr and return the Exit to raise."""
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
            raise fail("interrupted", 130) from None

    return wrapper
