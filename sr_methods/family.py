"""One method name for a family of single-scale networks (e.g. ``esrgan-thick`` = the x2, x3, x4
and x8 RRDN checkpoints): each scale is served by its own catalogue method.

The catalogue entry names its members in ``members`` (``{scale: method name}``). All members are
built up front, so a missing weight file is reported before the run starts, naming every file that
is missing and the command that fetches them.
"""

from __future__ import annotations

from typing import Any

from iqa.errors import MissingAssetError
from iqa.registry import Entry

from .base import SRMethod

__all__ = ["FamilyMethod", "build_family"]


class FamilyMethod(SRMethod):
    """Delegates ``upscale(lr, s)`` to the member network for scale ``s``."""

    def __init__(self, name: str, members: dict[int, SRMethod]):
        super().__init__()
        self.name = name
        self.members = dict(sorted(members.items()))
        self.scales = tuple(self.members)
        # a family of text-guided networks (clip-sr-*) is text-guided: the caption goes to the member
        self.text_guided = all(getattr(m, "text_guided", False) for m in self.members.values())
        if self.text_guided:
            self.missing_caption = next(iter(self.members.values())).missing_caption

    def _upscale(self, lr, scale: int, texts: list[str] | None = None):
        return self.members[scale].upscale(lr, scale, text=texts)

    def to(self, device: Any) -> "FamilyMethod":
        super().to(device)
        for m in self.members.values():
            m.to(device)
        return self

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "members": {f"x{s}": m.provenance() for s, m in self.members.items()}}


def build_family(*, entry: Entry, weights: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None, text: str | None = None,
                 missing_caption: str | None = None) -> FamilyMethod:
    """Catalogue factory: builds every member in ``entry.meta["members"]`` with the same options
    (``text``, ``missing_caption``: for families of text-guided networks)."""
    from . import create_method

    options = {k: v for k, v in (("weights", weights), ("tile", tile), ("tile_overlap", tile_overlap), ("text", text),
                                 ("missing_caption", missing_caption)) if v is not None}
    members, missing = {}, []
    for scale, member in entry.meta["members"].items():
        try:
            members[int(scale)] = create_method(member, **options)
        except MissingAssetError:
            missing.append(member)
    if missing:  # the assets the missing members are built from (a trained member names its base network)
        from .catalogue import METHODS

        fetch = list(dict.fromkeys(a for m in missing for a in METHODS.get(m).meta.get("assets", ()))) or missing
        raise MissingAssetError(f"{entry.name}: weights missing for {', '.join(missing)}; "
                                f"run `srbench assets fetch {' '.join(fetch)}` (or pass weights=FOLDER)")
    family = FamilyMethod(entry.name, members)
    family.backbone = entry.meta.get("backbone")  # a guided family (sfd-sr-vgg16) names its backbone
    return family
