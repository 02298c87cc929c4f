"""Shared test fixtures. Tests never touch the network: every non-loopback connection is refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRBENCH_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0]
    return host in ("localhost", "::1", "0.0.0.0") or str(host).startswith("127.")


def _guard(connect):
    def guarded(self, address):
        if not _is_local(address):
            raise ConnectionRefusedError(f"network access is blocked in tests (tried {address!r})")
        return connect(self, address)
    return guarded


@pytest.fixture(autouse=True, scope="session")
def _block_network(tmp_path_factory):
    # tests never see the user's cache (downloaded or converted assets): a fresh one per session
    os.environ["SRBENCH_CACHE"] = str(tmp_path_factory.mktemp("srbench-cache"))
    os.environ.pop("SRBENCH_WEIGHTS", None)
    os.environ["SRBENCH_OFFLINE"] = "1"  # `srbench run` never fetches assets in tests
    socket.socket.connect = _guard(_real_connect)
    socket.socket.connect_ex = _guard(_real_connect_ex)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real benchmark images); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def craft_weights() -> Path:
    path = SHARED_WEIGHTS / "craft_x4.pth"
    if not path.is_file():
        pytest.skip(f"CRAFT checkpoint not present at {path}")
    return path
