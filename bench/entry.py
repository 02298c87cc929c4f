"""The ``srbench`` console entry: `bench.cli` (which imports torch, about 3 s cold) is imported
inside the ``try``, so Ctrl-C during start-up is one line, as it is later in the run."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("srbench: interrupted", file=sys.stderr)
        return 130
    return cli_main(argv)
