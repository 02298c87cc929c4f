"""Errors shared by every srbench package.

Every error a user can cause (a bad name, a bad option, a bad image, a missing file) is a
`SrbenchError`: the command line prints its message as one line, never a traceback.
"""

from __future__ import annotations

import difflib


class SrbenchError(Exception):
    """A user-facing error whose message is one complete line."""


class UnknownNameError(SrbenchError, KeyError):
    """An unknown registry name; the message suggests the closest known names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        msg = f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known))})"
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return self.msg


class MissingAssetError(SrbenchError):
    """A weights or data file that is needed but not present locally."""
