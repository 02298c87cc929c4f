"""Few-shot adaptation: the contract of a method that adapts, and the trainable network inside a
catalogue method.

A method that can adapt (IODA, CDASR) is an `AdaptiveMethod`. The harness's protocol
(`bench.run.adapt`) picks ``k`` target LR images, calls ``adapt`` on them, keeps
``adapted_state()`` in the run folder (a resumed run rebuilds the adapted method with
``with_state`` instead of adapting again), and scores both the adapted method and ``self`` (the
unadapted reference) on the remaining images.

- ``adapt(lr_images, *, steps, seed, source=None, echo=print) -> AdaptiveMethod``: a new method
  (``self`` stays as it was) adapted on ``lr_images``, a list of ``(1, 3, h, w)`` float32 tensors
  in ``[0, 1]``, for exactly ``steps`` optimisation steps (no selection of any kind: the protocol
  never lets a method see a target HR image or a test score). ``source``, for methods that pair
  target images with source-domain training pairs (IODA), is a callable
  ``source(k, patch, batch, seed) -> (hr, lr)``: batch ``k`` of ``batch`` HR patches of side
  ``patch`` from the training data (never a test image) and their bicubic LR at the method's
  scale (`bench.run.adapt.SourceData`; the harness owns the data, ``sr_methods`` never reads it).
- ``adapted_state() -> dict[str, Tensor]``: the tensors adaptation changes, on the CPU.
- ``with_state(state) -> AdaptiveMethod``: a copy of the unadapted method carrying ``state``.

`trainable_network(method, scale)` finds the differentiable network of a catalogue method (an
RRDN, an ``srbench train`` network, any spandrel network, a family's member at ``scale``) so that
an adaptive method can wrap any base network of the catalogue.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from iqa.errors import SrbenchError

from .base import SRMethod

__all__ = ["AdaptiveMethod", "SpandrelNetwork", "base_network", "trainable_network"]


class AdaptiveMethod(SRMethod):
    """An SR method that adapts to a target domain from a few LR images (see the module doc)."""

    def adapt(self, lr_images: list[torch.Tensor], *, steps: int, seed: int, source: Any = None,
              echo: Callable[[str], None] = print) -> "AdaptiveMethod":
        raise NotImplementedError

    def adapted_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def with_state(self, state: dict[str, torch.Tensor]) -> "AdaptiveMethod":
        raise NotImplementedError


def check_adapt_inputs(name: str, lr_images: Any, steps: Any, seed: Any) -> None:
    """One-line errors for bad ``adapt`` arguments."""
    if not isinstance(lr_images, (list, tuple)) or not lr_images:
        raise SrbenchError(f"{name}: adapt needs at least one target LR image, got {lr_images!r}")
    for i, x in enumerate(lr_images):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[:2] != (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SrbenchError(f"{name}: target LR image {i} must be a (1, 3, h, w) tensor, got {got}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise SrbenchError(f"{name}: steps must be an integer >= 0, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SrbenchError(f"{name}: seed must be an integer, got {seed!r}")


class SpandrelNetwork(nn.Module):
    """A spandrel network as a differentiable module with the method's input handling: RGB in
    ``[0, 1]`` -> RGB, padded to the architecture's size requirements and cropped back (see
    ``SpandrelMethod._run``). Its parameters are the network's."""

    def __init__(self, method: Any):
        super().__init__()
        self.model = method.descriptor.model
        self._method = [method]  # not a submodule: the method holds the same model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self._method[0].descriptor
        return self._method[0]._run(x, call=lambda t: d._call_fn(d.model, t))


def trainable_network(method: SRMethod, scale: int) -> nn.Module:
    """The network that computes ``method.upscale(lr, scale)``: ``(B, 3, h, w) -> (B, 3, h*s, w*s)``,
    differentiable, its parameters the method's own (training it changes the method)."""
    from .family import FamilyMethod
    from .rrdn import RRDNMethod
    from .spandrel_adapter import SpandrelMethod
    from .trained import TrainedMethod

    if not method.supports(scale):
        raise SrbenchError(f"{method.name} does not run at x{scale} (scales: {method.scales})")
    if isinstance(method, FamilyMethod):
        return trainable_network(method.members[scale], scale)
    if isinstance(method, RRDNMethod):
        return method.model
    if isinstance(method, TrainedMethod):
        return method.net
    if isinstance(method, SpandrelMethod):
        if method.half:
            raise SrbenchError(f"{method.name}: adaptation trains in float32; build the base without half=True")
        return SpandrelNetwork(method)
    raise SrbenchError(f"{method.name} ({type(method).__name__}) has no trainable network to adapt: use a "
                       f"catalogue network (RRDN, spandrel, an srbench-trained checkpoint)")


def base_network(method: SRMethod, scale: int) -> SRMethod:
    """The single-scale method serving ``scale`` (a family's member, else ``method``)."""
    from .family import FamilyMethod

    return base_network(method.members[scale], scale) if isinstance(method, FamilyMethod) else method


def copy_method(method: SRMethod) -> SRMethod:
    """A deep copy of ``method`` (its networks included) on the same device."""
    return copy.deepcopy(method)
