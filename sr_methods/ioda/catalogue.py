"""The catalogue line of IODA: one adaptive method around any single-scale base network
(``{ name = "ioda", base = "craft-x4" }``); nothing is shipped (adaptation happens per run).
Registered by `sr_methods.catalogue`; nothing here imports torch."""

from __future__ import annotations

from iqa.registry import Registry


def register(methods: Registry) -> None:
    methods.register("ioda", "sr_methods.ioda.method:build", kind="adaptive", adaptive=True, scales=None,
                     backbone="vgg16", assets=("vgg16",),
                     description="IODA (one-shot domain adaptation, NeurIPS 2024) around base=NETWORK: adapts a copy "
                                 "of the base on the target LR images (run with adapt = {shots, steps, seed}); "
                                 "VGG16 masked pooling instead of Alpha-CLIP, SLIC regions instead of SAM by default")
