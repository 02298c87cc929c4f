"""The ``srbench`` console entry: `bench.cli` (which imports torch, about 3 s cold) is imported
inside the ``try``, so Ctrl-C during start-up is one line, as it is later in the run.

A Ctrl-C that lands inside a C extension's import (numpy's, under torch) can surface as an
``ImportError`` rather than ``KeyboardInterrupt`` (the interrupted module cannot be loaded again
in the process); the start-up SIGINT handler records the signal, so that case is one line too.
"""

from __future__ import annotations

import signal
import sys

_interrupted = False  # a SIGINT arrived while srbench was starting


def _on_sigint(signum: int, frame: object) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("srbench: interrupted", file=sys.stderr)
        return 130
    except ImportError:
        if not _interrupted:
            raise
        print("srbench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return cli_main(argv)
