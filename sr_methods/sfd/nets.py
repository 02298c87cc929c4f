"""Generators of SFD-SR.

`RRDBNet` is the generator of the SFD paper (whose repository ships only this network, a
KAIR-style RRDBNet) and of ESRGAN/SeD before it. Written from the ESRGAN paper (Wang et al.,
ECCVW 2018, Fig. 4 and Sec. 3.1)::

    x (B, in_ch, h, w)
    f   = conv_first(x)                                            in_ch -> nf
    RDB(y):    x1 = lrelu(conv1(y)); x2 = lrelu(conv2([y, x1])); ...; x4 = lrelu(conv4([y, x1..x3]))
               x5 = conv5([y, x1..x4]);  return y + 0.2 * x5       (5 convs, growth gc)
    RRDB(y):   return y + 0.2 * rdb3(rdb2(rdb1(y)))
    f   = f + conv_body(body(f))                                   body = nb RRDBs
    log2(scale) times:  f = lrelu(conv_upI(nearest_x2(f)))        I = 1, 2, ...
    out = conv_last(lrelu(conv_hr(f)))                             nf -> out_ch, (B, out_ch, h*s, w*s)

All convolutions 3x3, stride 1, padding 1, with bias; LeakyReLU slope 0.2. The parameter names
follow BasicSR's ``RRDBNet`` (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_upI``,
``conv_hr``, ``conv_last``), so its x4 state dicts (e.g. ESRGAN's ``RRDB_PSNR_x4``) load as they
are; the x8/x16 networks add ``conv_up3``/``conv_up4`` (the paper's x2/x4 nearest + conv scheme
repeated). `load_rrdbnet_state` also accepts the original ESRGAN repository's names
(``RRDB_trunk``, ``trunk_conv``, ``upconv1``, ``HRconv``). At nf 64, nb 23, gc 32, x4 the network
has 16,697,987 parameters, ESRGAN's published figure (tested).

The output is not clamped (the losses see the raw output; `sr_methods.base.SRMethod` clamps).

`rrdn_from_config` builds idealo's RRDN (`sr_methods.rrdn.RRDN`, the catalogue's
``esrgan-thick-xN``) from its config dict: a fine-tuned copy ships all its weights under arch
``rrdn``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa.errors import SrbenchError

__all__ = ["RDB", "RRDB", "RRDBNet", "load_rrdbnet_state", "rrdn_from_config"]


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=True)


class RDB(nn.Module):
    """Residual dense block: ``(B, nf, H, W) -> (B, nf, H, W)``, five convs, growth ``gc``."""

    def __init__(self, nf: int = 64, gc: int = 32):
        super().__init__()
        self.conv1 = _conv(nf, gc)
        self.conv2 = _conv(nf + gc, gc)
        self.conv3 = _conv(nf + 2 * gc, gc)
        self.conv4 = _conv(nf + 3 * gc, gc)
        self.conv5 = _conv(nf + 4 * gc, nf)
        # ESRGAN's initialisation of the dense blocks: Kaiming normal scaled by 0.1, zero bias
        # (small residuals make the very deep network trainable)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three `RDB` and a 0.2-scaled residual; shape-preserving."""

    def __init__(self, nf: int = 64, gc: int = 32):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = RDB(nf, gc), RDB(nf, gc), RDB(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


def _int_option(name: str, v: Any, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise SrbenchError(f"RRDBNet: {name} must be an int >= {low}, got {v!r}")
    return v


class RRDBNet(nn.Module):
    """ESRGAN's generator: ``(B, in_ch, h, w)`` float -> ``(B, out_ch, h*scale, w*scale)``,
    ``scale`` in 2, 4, 8, 16 (``log2(scale)`` nearest-x2 + conv + LeakyReLU stages). The paper's
    configuration is the default: ``nf`` 64 features, ``nb`` 23 RRDBs, growth ``gc`` 32."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, nf: int = 64, nb: int = 23, gc: int = 32, scale: int = 4):
        super().__init__()
        for name, v, low in (("in_ch", in_ch, 1), ("out_ch", out_ch, 1), ("nf", nf, 1), ("nb", nb, 0),
                             ("gc", gc, 1), ("scale", scale, 2)):
            _int_option(name, v, low)
        if scale not in (2, 4, 8, 16):
            raise SrbenchError(f"RRDBNet upsamples by nearest x2 stages: scale must be 2, 4, 8 or 16, got {scale!r}")
        self.scale = scale
        self.options = {"in_ch": in_ch, "out_ch": out_ch, "nf": nf, "nb": nb, "gc": gc, "scale": scale}
        self.conv_first = _conv(in_ch, nf)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = _conv(nf, nf)
        self.ups = round(math.log2(scale))
        for i in range(1, self.ups + 1):
            setattr(self, f"conv_up{i}", _conv(nf, nf))
        self.conv_hr = _conv(nf, nf)
        self.conv_last = _conv(nf, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv_first(x)
        f = f + self.conv_body(self.body(f))
        for i in range(1, self.ups + 1):
            f = F.leaky_relu(getattr(self, f"conv_up{i}")(F.interpolate(f, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(f), 0.2))


# the original ESRGAN repository's names -> BasicSR's (ours)
_ESRGAN_NAMES = (("RRDB_trunk.", "body."), (".RDB1.", ".rdb1."), (".RDB2.", ".rdb2."), (".RDB3.", ".rdb3."),
                 ("trunk_conv.", "conv_body."), ("upconv1.", "conv_up1."), ("upconv2.", "conv_up2."),
                 ("upconv3.", "conv_up3."), ("upconv4.", "conv_up4."), ("HRconv.", "conv_hr."))


def load_rrdbnet_state(net: RRDBNet, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Load a BasicSR- or ESRGAN-named RRDBNet state dict (``params``/``params_ema`` wrappers
    unwrapped) into ``net``; any missing, unexpected or misshapen tensor is a one-line error."""
    for wrapper in ("params_ema", "params", "state_dict"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    fixed = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        for old, new in _ESRGAN_NAMES:
            if k.startswith(old) or (old.startswith(".") and old in k):
                k = k.replace(old, new, 1)
        fixed[k] = v
    from ..weights import load_exact_state

    load_exact_state(net, fixed, source, f"RRDBNet{net.options}")


def rrdn_from_config(**config: Any) -> nn.Module:
    """idealo's RRDN (`sr_methods.rrdn.RRDN`) from an ``RRDNConfig`` dict (``C``, ``D``, ``G``,
    ``G0``, ``T``, ``scale``, ...): ``(B, 3, h, w) -> (B, 3, h*scale, w*scale)``, output not clamped.
    The builder of arch ``rrdn`` (fine-tuned ``esrgan-thick`` networks, all weights shipped)."""
    from ..rrdn import RRDN, RRDNConfig

    return RRDN(RRDNConfig.from_dict(dict(config)))
