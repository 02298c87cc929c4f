"""srbench quality metrics.

``create_metric(name, protocol="basicsr", device=None, **options)`` builds a metric by name;
``list_metrics()`` lists the names. Importing this package is cheap: no models, no open_clip, no
pyiqa are imported until a metric is built.
"""

from __future__ import annotations

from typing import Any

from .base import Metric, MetricInfo, check_images, quantize_uint8
from .catalogue import METRICS
from .errors import MissingAssetError, SrbenchError, UnknownNameError
from .protocols import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, get_protocol

__all__ = [
    "METRICS", "Metric", "MetricInfo", "MissingAssetError", "PROTOCOLS", "Protocol", "SrbenchError",
    "UnknownNameError", "check_images", "create_metric", "get_protocol", "list_metrics", "metric_info",
    "quantize_uint8",
]


def list_metrics() -> list[str]:
    return METRICS.names()


def metric_info(name: str) -> MetricInfo:
    e = METRICS.get(name)
    m = e.meta
    return MetricInfo(e.name, m["kind"], m["higher_better"], m["range"], m.get("description", ""), m.get("backbone"))


def create_metric(name: str, protocol: str | Protocol = DEFAULT_PROTOCOL, device: Any = None, **options: Any) -> Metric:
    """Build metric ``name`` under ``protocol``; unknown options raise."""
    proto = get_protocol(protocol)
    entry = METRICS.get(name)
    metric = entry.build(protocol=proto, **{**entry.meta.get("defaults", {}), **options})
    metric.eval()
    if device is not None:
        metric = metric.to(device)
    return metric
