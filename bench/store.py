"""The run folder: the only place results live.

Layout::

    RUN/manifest.json                    spec, package versions, git sha, device, seeds, weight sha256s
    RUN/.lock                            held (flock) while a run is active
    RUN/cells/<dataset>/<deg>/<method>/  one folder per cell
        cell.json                        fingerprint, then status, timings and peak memory when done
        part-NNNNN.parquet               tidy score rows of some images (written atomically)
        time-NNNNN.parquet               per-image timings of the same images
    RUN/lr/<dataset>/<deg>/<image>.png   cached LR images
    RUN/sr/<dataset>/<deg>/<method>/<image>.png   SR images (with save_sr)
    RUN/scores.parquet                   all rows, rewritten at the end of each run

Every file is written to a temporary name in its folder and renamed into place, so a process killed
at any point leaves only whole files. A rerun reads the parts already written and computes only
the images that are missing; a cell whose fingerprint (what was asked of it) changed is recomputed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from iqa.errors import SrbenchError

SCORE_COLUMNS = ["dataset", "degradation", "scale", "method", "image", "metric", "value", "protocol", "status",
                 "message"]
TIMING_COLUMNS = ["dataset", "degradation", "method", "image", "seconds", "megapixels", "device"]
STATUSES = ("ok", "error", "unsupported", "unavailable", "missing")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_name(text: str) -> str:
    """A file-system-safe folder name for a method label or image id (kept readable)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")
    return cleaned or "_"


def score_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
    df["value"] = df["value"].astype("float64")
    df["scale"] = df["scale"].astype("int64")
    return df


class Cell:
    """One (dataset, degradation, method) cell of a run."""

    def __init__(self, root: Path, dataset: str, degradation: str, method: str):
        self.dir = root / "cells" / safe_name(dataset) / safe_name(degradation) / safe_name(method)
        self.dataset, self.degradation, self.method = dataset, degradation, method

    @property
    def info_path(self) -> Path:
        return self.dir / "cell.json"

    def info(self) -> dict[str, Any]:
        try:
            return json.loads(self.info_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def start(self, fingerprint: str) -> None:
        """Begin (or resume) the cell; parts of an earlier, different request are discarded."""
        info = self.info()
        if info.get("fingerprint") != fingerprint:
            if self.dir.exists():
                for p in self.dir.iterdir():
                    p.unlink()
            atomic_write_json(self.info_path, {"fingerprint": fingerprint, "status": "running"})

    def is_done(self, fingerprint: str) -> bool:
        info = self.info()
        return info.get("fingerprint") == fingerprint and info.get("status") == "done"

    def _parts(self, prefix: str) -> list[Path]:
        return sorted(self.dir.glob(f"{prefix}-*.parquet")) if self.dir.is_dir() else []

    def scores(self) -> pd.DataFrame:
        parts = [pd.read_parquet(p) for p in self._parts("part")]
        if not parts:
            return score_frame([])
        df = pd.concat(parts, ignore_index=True)
        return df.drop_duplicates(["image", "metric"], keep="last").reset_index(drop=True)

    def timings(self) -> pd.DataFrame:
        parts = [pd.read_parquet(p) for p in self._parts("time")]
        if not parts:
            return pd.DataFrame(columns=TIMING_COLUMNS)
        return pd.concat(parts, ignore_index=True).drop_duplicates(["image"], keep="last").reset_index(drop=True)

    def finished_images(self) -> set[str]:
        return set(self.scores()["image"])

    def write_part(self, rows: list[dict[str, Any]], timings: list[dict[str, Any]]) -> None:
        """Write the rows of some images: the timing part first, the score part (the commit) last."""
        if not rows:
            return
        parts = self._parts("part")
        n = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        if timings:
            atomic_write_parquet(self.dir / f"time-{n:05d}.parquet", pd.DataFrame(timings, columns=TIMING_COLUMNS))
        atomic_write_parquet(self.dir / f"part-{n:05d}.parquet", score_frame(rows))

    def compact(self) -> None:
        """Merge the parts of a finished cell into one part each. Safe to kill at any point: the
        merged part is written under the next number before the older ones are removed, and
        readers keep the last row of each (image, metric)."""
        for prefix, frame in (("time", self.timings), ("part", self.scores)):
            parts = self._parts(prefix)
            if len(parts) > 1:
                n = int(parts[-1].stem.split("-")[1]) + 1
                atomic_write_parquet(self.dir / f"{prefix}-{n:05d}.parquet", frame())
                for p in parts:
                    p.unlink()

    def finish(self, fingerprint: str, summary: dict[str, Any]) -> None:
        self.compact()
        atomic_write_json(self.info_path, {"fingerprint": fingerprint, "status": "done", **summary})


class RunLock:
    """An exclusive lock on a run folder (flock on RUN/.lock); a second run refuses to start."""

    def __init__(self, root: Path):
        self.path = root / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SrbenchError(f"run folder {self.path.parent} is in use by another srbench run (pid {other}); "
                               f"wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_run_dir(path: Path) -> bool:
    return (path / "manifest.json").is_file() or (path / "cells").is_dir()


def load_manifest(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / "manifest.json").read_text())
    except FileNotFoundError:
        return {}


def _cells(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "cells").glob("*/*/*/cell.json"))


def load_scores(root: str | Path) -> pd.DataFrame:
    """Every score row of a run folder (finished and partial cells), in a stable order."""
    root = Path(root)
    if not is_run_dir(root):
        raise SrbenchError(f"{root}: not an srbench run folder (no manifest.json or cells/)")
    frames = [pd.read_parquet(p) for d in _cells(root) for p in sorted(d.glob("part-*.parquet"))]
    if not frames:
        return score_frame([])
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates(["dataset", "degradation", "method", "image", "metric"], keep="last")
    return df.sort_values(["dataset", "scale", "degradation", "method", "image", "metric"], kind="stable").reset_index(drop=True)


def load_timings(root: str | Path) -> pd.DataFrame:
    root = Path(root)
    frames = [pd.read_parquet(p) for d in _cells(root) for p in sorted(d.glob("time-*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=TIMING_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(["dataset", "degradation", "method", "image"], keep="last").reset_index(drop=True)


def load_cells(root: str | Path) -> list[dict[str, Any]]:
    return [json.loads((d / "cell.json").read_text()) for d in _cells(Path(root))]
