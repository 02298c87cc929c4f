"""An SRBENCH_PLUGINS module for the Ray tests: registers ``slow-nearest`` (nearest-neighbour
upscaling that takes 0.25 s per call), so that a test can kill a worker in the middle of a cell."""

import time

import torch.nn.functional as F

from sr_methods.base import SRMethod
from sr_methods.catalogue import METHODS

SECONDS = 0.25


class SlowNearest(SRMethod):
    name = "slow-nearest"

    def _upscale(self, lr, scale):
        time.sleep(SECONDS)
        return F.interpolate(lr, scale_factor=scale, mode="nearest")


def _build(**_):
    return SlowNearest()


if "slow-nearest" not in METHODS._entries:
    METHODS.register("slow-nearest", _build, kind="test", scales=None, backbone=None,
                     description="test plugin: nearest, 0.25 s per call")
