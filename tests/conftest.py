"""Shared test fixtures. Tests never touch the network: every non-loopback connection is refused.

Tests never touch the user's caches either: before anything is imported, every cache folder that a
library reads from the environment once, at its own import (Hugging Face hub and ``datasets``,
torch hub, XDG caches such as matplotlib's), points into one temporary folder, removed at exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# pytest imports this file as `conftest`; a test that imports `tests.conftest` runs it again:
# the second run must reuse the first one's folder (the libraries read the first one)
_MARK = "SRBENCH_TEST_CACHES"
_FIRST = not os.environ.get(_MARK, "").startswith(f"{os.getpid()}:")
if _FIRST:
    # the user's Hugging Face folder, as the libraries would have found it (for the isolation test)
    _user_hf = Path(os.environ.get("HF_HOME")
                    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface").expanduser()
    os.environ[_MARK] = f"{os.getpid()}:{tempfile.mkdtemp(prefix='srbench-test-caches-')}"
    os.environ["SRBENCH_TEST_USER_HF_HOME"] = str(_user_hf)
TEST_CACHES = Path(os.environ[_MARK].split(":", 1)[1])
USER_HF_HOME = Path(os.environ["SRBENCH_TEST_USER_HF_HOME"])
_CACHE_VARS = {
    "XDG_CACHE_HOME": "xdg",
    "HF_HOME": "huggingface",
    "HF_HUB_CACHE": "huggingface/hub",
    "HUGGINGFACE_HUB_CACHE": "huggingface/hub",  # the older name, still read
    "HF_XET_CACHE": "huggingface/xet",
    "HF_ASSETS_CACHE": "huggingface/assets",
    "HF_DATASETS_CACHE": "huggingface/datasets",
    "HF_MODULES_CACHE": "huggingface/modules",
    "TORCH_HOME": "torch",
}
for _var, _sub in _CACHE_VARS.items():
    os.environ[_var] = str(TEST_CACHES / _sub)

# the caches above must be set before any import that may read them
import socket
import sys

import pytest

_too_late = sorted(m for m in ("huggingface_hub", "datasets", "torch") if m in sys.modules)
if _FIRST and _too_late:  # a plugin imported them before this file ran: their cache folders were read already
    import warnings

    warnings.warn(f"{', '.join(_too_late)} imported before tests/conftest.py: they may use the user's caches")


def pytest_unconfigure(config) -> None:
    if _FIRST:
        shutil.rmtree(TEST_CACHES, ignore_errors=True)


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
