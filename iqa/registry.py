"""One small registry class that serves metrics, SR methods and datasets.

Entries are registered with a lazy factory: either a callable or a ``"module:attr"`` string that
is imported only when the entry is built, so that importing a catalogue stays cheap (no torch
models, no open_clip, no pyiqa at import time).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import SrbenchError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T] | str
    meta: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., T]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def build(self, **kwargs: Any) -> T:
        return self.resolve()(**kwargs)


class Registry(Generic[T]):
    """Named entries of one kind ("metric", "method", "dataset")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, factory: Callable[..., T] | str, **meta: Any) -> Entry[T]:
        key = name.lower()
        if key in self._entries:
            raise SrbenchError(f"{self.kind} {name!r} is registered twice")
        entry = Entry(key, factory, dict(meta))
        self._entries[key] = entry
        return entry

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name).build(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[k] for k in self.names())

    def __len__(self) -> int:
        return len(self._entries)


PLUGINS_ENV = "SRBENCH_PLUGINS"


def import_plugins() -> list[str]:
    """Import the modules named in ``SRBENCH_PLUGINS`` (comma-separated), where users register
    their own methods, metrics and datasets; the CLI and every Ray worker call it, so that a
    worker knows what the driver knows. A module that cannot be imported is a one-line error."""
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 (one line, naming the module)
            raise SrbenchError(f"{PLUGINS_ENV}: cannot import {name!r} ({type(e).__name__}: {e})") from None
    return names
