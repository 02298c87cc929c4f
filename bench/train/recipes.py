"""The recipes ``srbench train METHOD`` knows: method name -> ``module:class`` (imported when used)."""

from __future__ import annotations

from iqa.errors import UnknownNameError

RECIPES = {
    "rrdn-x16": "bench.train.rrdn_x16:RRDNx16",
    "sfd-sr-vgg16": "bench.train.sfd_sr:SFDSRVGG16", "sfd-sr-clip": "bench.train.sfd_sr:SFDSRClip",
    "cdasr": "bench.train.cdasr:CDASR",
    "deplsr-adaptor": "bench.train.deplsr:DePLSRAdaptor", "deplsr": "bench.train.deplsr:DePLSR",
    "clip-sr-align": "bench.train.clipsr:CLIPSRAlign", "clip-sr": "bench.train.clipsr:CLIPSR",
}


def get_recipe(name: str):
    import importlib

    if name not in RECIPES:
        raise UnknownNameError("training recipe", name, list(RECIPES))
    module, _, attr = RECIPES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
