"""srbench SR methods behind one interface.

``create_method(name, device=None, **options)`` builds a method by name; ``list_methods()`` lists
the catalogue names; ``method_info(name)`` describes one without building it. Besides the
catalogue, ``"spandrel:PATH"`` loads any checkpoint spandrel recognises and ``"cascade:A+B"`` runs
methods one after the other (`sr_methods.cascade`); ``"METHOD:PATH"`` runs a checkpoint written by
``srbench train`` (`sr_methods.trained`); ``"NAME[key=value,...]"`` gives options in the name
(``"ioda[base=craft-x4]"``), handy on the command line. Every method maps float32
RGB ``(B, 3, h, w)`` in ``[0, 1]`` to ``(B, 3, h*scale, w*scale)`` (see ``SRMethod``).

Importing this package is cheap: no spandrel, no weights, no model is touched until a method is
built.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iqa.errors import SrbenchError

from .base import SRMethod, UnsupportedScaleError
from .catalogue import METHODS

__all__ = ["CASCADE_PREFIX", "METHODS", "SPANDREL_PREFIX", "SRMethod", "UnsupportedScaleError", "create_method", "list_methods",
           "method_info", "split_options"]

SPANDREL_PREFIX = "spandrel:"
CASCADE_PREFIX = "cascade:"


def _spandrel_path(name: str) -> str | None:
    """The path of a ``"spandrel:PATH"`` name, or ``None`` for catalogue names."""
    if not name.lower().startswith(SPANDREL_PREFIX):
        return None
    path = name[len(SPANDREL_PREFIX):]
    if not path.strip():
        raise SrbenchError(f"{name!r} names no file; use 'spandrel:/path/to/model.pth'")
    return path


def _options(factory: Callable[..., Any]) -> list[str]:
    """The user options a factory accepts: its keyword-only parameters except ``entry``."""
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "entry"]


def _check_options(method: str, accepted: list[str], options: dict[str, Any]) -> None:
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SrbenchError(f"unknown option {key!r} for method {method!r}{hint} "
                               f"(accepted: {', '.join(accepted) or 'none'})")


def split_options(name: str) -> tuple[str, dict[str, Any]]:
    """``"ioda[base=craft-x4,steps=2]"`` -> ``("ioda", {"base": "craft-x4", "steps": 2})``: options
    written in the name (numbers and true/false are typed; other values are text). A name without
    brackets is returned as it is with no options."""
    import re

    m = re.fullmatch(r"([^\[\]]+)\[(.*)\]", name.strip())
    if not m or name.lower().startswith((SPANDREL_PREFIX, CASCADE_PREFIX)):
        return name, {}
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq or not key:
            raise SrbenchError(f"{name!r}: options in brackets are key=value pairs separated by commas, got {part!r}")
        if key in options:
            raise SrbenchError(f"{name!r}: option {key!r} is given twice")
        typed: Any = value
        for cast in (int, float):
            try:
                typed = cast(value)
                break
            except ValueError:
                pass
        options[key] = {"true": True, "false": False}.get(value.lower(), typed) if isinstance(typed, str) else typed
    return m.group(1).strip(), options


def _merge_options(name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    base, inline = split_options(name)
    both = sorted(set(inline) & set(options))
    if both:
        raise SrbenchError(f"{name!r}: option {both[0]!r} is given both in the name and as an option")
    return base, {**inline, **options}


def list_methods() -> list[str]:
    """The catalogue names (any spandrel checkpoint is also accepted as ``"spandrel:PATH"``)."""
    return METHODS.names()


def method_info(name: str) -> dict[str, Any]:
    """Describe method ``name`` without building it: kind, scales, backbone, options, and for named
    networks architecture, weight file, sha256, licence and URL."""
    if not isinstance(name, str):
        raise SrbenchError(f"method name must be a string, got {name!r}")
    name, _ = split_options(name)
    if name.lower().startswith(CASCADE_PREFIX):
        from . import cascade

        return cascade.info(name)
    from . import trained

    if trained.split_name(name) is not None:
        return trained.info(name)
    path = _spandrel_path(name)
    if path is not None:
        from .spandrel_adapter import build_from_path

        return {"name": f"{SPANDREL_PREFIX}{Path(path).stem}", "kind": "spandrel", "scales": None, "backbone": None,
                "weights": path, "options": _options(build_from_path),
                "description": "a spandrel checkpoint; its scale is known once it is loaded"}
    entry = METHODS.get(name)
    return {"name": entry.name, **entry.meta, "options": _options(entry.resolve())}


def create_method(name: str, device: Any = None, **options: Any) -> SRMethod:
    """Build method ``name`` (a catalogue name or ``"spandrel:PATH"``) and move it to ``device``.

    Unknown options raise ``SrbenchError``; unknown names raise ``UnknownNameError`` with a
    suggestion.
    """
    if not isinstance(name, str):
        raise SrbenchError(f"method name must be a string, got {name!r}")
    name, options = _merge_options(name, options)
    path = _spandrel_path(name)
    from . import trained

    if name.lower().startswith(CASCADE_PREFIX):
        from . import cascade

        _check_options(name, [], options)
        method: SRMethod = cascade.build(name)
    elif trained.split_name(name) is not None:
        _check_options(name, ["tile", "tile_overlap", "tile_blend"], options)
        method = trained.build(name, **options)
    elif path is not None:
        from .spandrel_adapter import build_from_path

        _check_options(name, _options(build_from_path), options)
        method = build_from_path(path, **options)
    else:
        entry = METHODS.get(name)
        factory = entry.resolve()
        _check_options(entry.name, _options(factory), options)
        method = factory(entry=entry, **options)
    if device is not None:
        method = method.to(device)
    return method
