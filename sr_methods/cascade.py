"""Cascades: ``cascade:A+B[+C...]`` runs method A, then B on A's output, with the product scale.

A common baseline at x16 (``cascade:esrgan-thick-x4+esrgan-thick-x4``) and a way to reach a scale
no single network has (``cascade:esrgan-thick-x8+bicubic-x2``). Each stage runs at one fixed
scale: a catalogue name with a single scale (``esrgan-thick-x4``) runs at that scale; any other
method names its stage scale with a ``-xN`` suffix (``bicubic-x2``, ``esrgan-thick-x2``).
Between stages the image stays float32 in ``[0, 1]`` (no uint8 rounding): the cascade is one
method, and the protocol rounds its final output like any other method's. Stage names cannot hold
``+`` (a ``spandrel:PATH`` stage needs a path without one).
"""

from __future__ import annotations

import re
from math import prod
from typing import Any

import torch

from iqa.errors import SrbenchError

from .base import SRMethod

PREFIX = "cascade:"
_SUFFIX = re.compile(r"^(?P<base>.+)-x(?P<scale>\d+)$")


def parse(name: str) -> list[tuple[str, int]]:
    """``cascade:A+B`` -> ``[(method name, stage scale), ...]`` (names resolved, nothing built)."""
    from . import method_info

    body = name[len(PREFIX):]
    stages = [s.strip() for s in body.split("+")]
    if len(stages) < 2 or not all(stages):
        raise SrbenchError(f"{name!r}: a cascade names two or more methods joined by '+', "
                           f"e.g. 'cascade:esrgan-thick-x4+esrgan-thick-x4'")
    return [_stage(name, s, method_info) for s in stages]


def _stage(cascade: str, stage: str, method_info: Any) -> tuple[str, int]:
    """(method name, scale) of one stage: a single-scale catalogue name as it is, else NAME-xN."""
    if stage.lower().startswith(PREFIX):
        raise SrbenchError(f"{cascade!r}: a cascade cannot nest another cascade ({stage!r}); list every stage")
    try:
        info = method_info(stage)
    except SrbenchError:
        info = None
    if info is not None and info.get("scales") and len(info["scales"]) == 1:
        return stage, int(info["scales"][0])
    m = _SUFFIX.match(stage)
    if m is not None:
        base, scale = m["base"], int(m["scale"])
        scales = method_info(base).get("scales")  # unknown names raise here, with a suggestion
        if scale < 1 or (scales and scale not in scales):
            raise SrbenchError(f"{cascade!r}: stage {stage!r} asks {base!r} for x{scale}, but it supports "
                               f"{', '.join(f'x{s}' for s in scales)}")
        return base, scale
    if info is None:
        method_info(stage)  # raises the unknown-name error with its suggestion
    raise SrbenchError(f"{cascade!r}: stage {stage!r} runs at several scales; name one as {stage}-xN "
                       f"(e.g. {stage}-x2)")


def info(name: str) -> dict[str, Any]:
    """`sr_methods.method_info` for a cascade, without building anything."""
    from . import method_info

    stages = parse(name)
    assets = tuple(dict.fromkeys(a for n, _ in stages for a in method_info(n).get("assets", ())))
    return {"name": name, "kind": "cascade", "scales": (prod(s for _, s in stages),), "backbone": None,
            "assets": assets,
            "stages": [f"{n} x{s}" for n, s in stages], "options": [],
            "description": "runs " + ", then ".join(f"{n} at x{s}" for n, s in stages)}


class Cascade(SRMethod):
    """Runs ``stages`` (built methods, each at its fixed scale) one after the other."""

    def __init__(self, name: str, stages: list[tuple[SRMethod, int]]):
        super().__init__()
        if len(stages) < 2:
            raise SrbenchError(f"{name!r}: a cascade needs two or more stages, got {len(stages)}")
        self.name = name
        self.stages = stages
        self.scales = (prod(s for _, s in stages),)
        self.backbone = next((m.backbone for m, _ in stages if m.backbone), None)

    def _upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        x = lr
        for method, s in self.stages:
            x = method.upscale(x, s)
        return x

    def to(self, device: Any) -> "Cascade":
        super().to(device)
        for method, _ in self.stages:
            method.to(device)
        return self

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "stages": [{"scale": s, **m.provenance()} for m, s in self.stages]}


def build(name: str) -> Cascade:
    from . import create_method

    return Cascade(name, [(create_method(n), s) for n, s in parse(name)])
