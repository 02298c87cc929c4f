"""The run folder: the only place results live.

Layout::

    RUN/manifest.json                    spec, package versions, git sha, device, seeds, weight sha256s
    RUN/.lock                            held (flock) while a run is active
    RUN/cells/<dataset>/<deg>/<method>/  one folder per cell
        cell.json                        fingerprint, then status, timings and peak memory when done
                                         (with --ray: the worker's host and pid)
        part-NNNNN.parquet               tidy score rows of some images (written atomically)
        time-NNNNN.parquet               per-image timings of the same images
    RUN/lr/<dataset>/<deg>/<image>.png   cached LR images
    RUN/sr/<dataset>/<deg>/<method>/<image>.png   SR images (with save_sr)
    RUN/scores.parquet                   all rows, rewritten at the end of each run

Every file is written to a temporary name in its folder and renamed into place, so a process killed
at any point leaves only whole files. A rerun reads the parts already written and computes only
the images that are missing; a cell whose fingerprint (what was asked of it) changed is recomputed.

Every score row has a ``cause`` when it is not ``ok``, which decides whether a rerun retries it:

- ``input``: a property of the input (an unreadable or truncated image, one too small for the
  scale or above the pixel limit): kept, a rerun gives the same answer (``--retry-errors`` forces);
  an image without a caption, for a text-guided method, is an ``unsupported`` row of this cause,
  computed again only once the image has a caption (see `bench.run.runner`);
- ``method``: the method or a metric raised on this image (or returned a wrong shape): kept, as
  the same code gives the same answer (``--retry-errors`` forces);
- ``environment``: the machine failed (disk full, I/O error, out of memory): retried by the next run;
- ``setup``: the cell or metric could not run here (``missing`` dataset, ``unavailable`` weights or
  metric): retried by the next run once it can run (a dataset added, a file restored).

The ``caption`` column holds the caption a text-guided method was given for the image (``""``: the
empty prompt); it is missing (None) for the rows of other methods, and in run folders written before
the column existed.

A part file that cannot be read (truncated, garbage) is set aside as ``corrupt-*.parquet`` with one
line naming it, and its images are computed again; the report names such a file and stops.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from iqa.errors import SrbenchError

from bench.run.io import DiskFullError, atomic_path, disk_full_error, is_disk_full  # noqa: F401 (re-exported)

SCORE_COLUMNS = ["dataset", "degradation", "scale", "method", "image", "metric", "value", "protocol", "status",
                 "message", "cause", "caption"]
TIMING_COLUMNS = ["dataset", "degradation", "method", "image", "seconds", "megapixels", "device"]
STATUSES = ("ok", "error", "unsupported", "unavailable", "missing")
CAUSES = ("", "input", "method", "environment", "setup")
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EROFS, errno.ESTALE, errno.EAGAIN,
               errno.ETIMEDOUT, errno.ENFILE, errno.EMFILE, errno.EBUSY}


class CorruptFileError(SrbenchError):
    """A run-folder file that cannot be read; the message names it."""


def env_error_cause(e: BaseException) -> bool:
    """Whether ``e`` is the environment's fault (disk, I/O, memory) rather than the input's."""
    if isinstance(e, MemoryError):
        return True
    if isinstance(e, OSError) and e.errno in _ENV_ERRNOS:
        return True
    text = str(e).lower()
    return "out of memory" in text or "no space left" in text or "input/output error" in text


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path, ".parquet") as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: Path) -> pd.DataFrame:
    """A run-folder Parquet file; one that cannot be read is a `CorruptFileError` naming it."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for truncated or garbage files
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptFileError(f"{path}: unreadable Parquet file ({text})") from None


def read_json(path: Path) -> dict[str, Any]:
    """A run-folder JSON object; a garbage file is a `CorruptFileError` naming it."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def safe_name(text: str) -> str:
    """A file-system-safe name for a dataset, degradation, method label or image id, kept
    readable and injective: a name made only of ``A-Z a-z 0-9 . _ + -`` (not starting or ending
    with ``.`` or ``_``, at most 100 characters) is used as it is; any other gets its cleaned form
    plus ``-`` and 8 hex digits of the sha256 of the exact text, so ``a b`` and ``a_b`` (or
    ``m<1`` and ``m>1``) never share a file. The result is a fixed point (``safe_name(safe_name(x))
    == safe_name(x)``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")
    if cleaned == text and 0 < len(text) <= 100:
        return text
    return f"{cleaned[:80] or 'id'}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _fill_cause(df: pd.DataFrame) -> pd.DataFrame:
    """Rows written before the ``cause`` column existed get one from their status and message."""
    if "cause" not in df.columns:
        df = df.assign(cause=None)
    df["cause"] = df["cause"].astype(object)  # an all-missing column reads as float64 from Parquet
    todo = df["cause"].isna()
    if todo.any():
        def guess(status: str, message: str) -> str:
            if status == "ok":
                return ""
            if status in ("missing", "unavailable"):
                return "setup"
            if status == "unsupported":
                return "input"
            return "environment" if env_error_cause(Exception(message)) or "errno 28" in str(message).lower() \
                else "input"
        df.loc[todo, "cause"] = [guess(st, msg) for st, msg in zip(df.loc[todo, "status"], df.loc[todo, "message"])]
    return df


def latest_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of score parts (in the order written) with, for each image of each cell, only
    the rows of the last part that holds it: all rows of one image are written in one part, so
    an image computed again (an error retried) replaces every earlier row of it, its error row
    included."""
    if not parts:
        return score_frame([])
    df = pd.concat([score_frame(p).assign(_part=i) for i, p in enumerate(parts)], ignore_index=True)
    key = ["dataset", "degradation", "method", "image"]
    last = df.groupby(key, sort=False, dropna=False)["_part"].transform("max")
    df = df[df["_part"] == last].drop(columns="_part")
    return df.drop_duplicates([*key, "metric"], keep="last").reset_index(drop=True)


def score_frame(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
    df = _fill_cause(df.reindex(columns=SCORE_COLUMNS))
    df["value"] = df["value"].astype("float64")
    df["scale"] = df["scale"].astype("int64")
    df["cause"] = df["cause"].astype(object)
    caption = df["caption"].astype(object)  # rows written before the column existed read as missing
    df["caption"] = caption.where(caption.notna(), None)
    return df


class Cell:
    """One (dataset, degradation, method) cell of a run."""

    def __init__(self, root: Path, dataset: str, degradation: str, method: str):
        self.dir = root / "cells" / safe_name(dataset) / safe_name(degradation) / safe_name(method)
        self.dataset, self.degradation, self.method = dataset, degradation, method
        self._frames: dict[tuple[str, int, int], pd.DataFrame] = {}

    @property
    def info_path(self) -> Path:
        return self.dir / "cell.json"

    def info(self) -> dict[str, Any]:
        """cell.json; missing or garbage (a killed write never leaves one; a hand-edited one may)
        reads as empty, so the cell is computed again."""
        try:
            return read_json(self.info_path)
        except (FileNotFoundError, CorruptFileError):
            return {}

    def start(self, fingerprint: str, worker: dict[str, Any] | None = None) -> None:
        """Begin (or resume) the cell; parts of an earlier, different request are discarded. With
        ``worker`` (a Ray worker's host and pid) cell.json says who is computing it."""
        info = self.info()
        if info.get("fingerprint") != fingerprint:
            if self.dir.exists():
                for p in self.dir.iterdir():
                    p.unlink()
        if info.get("fingerprint") != fingerprint or worker:
            atomic_write_json(self.info_path, {"fingerprint": fingerprint, "status": "running", **self._key(),
                                               **({"worker": worker} if worker else {})})

    def _key(self) -> dict[str, str]:
        return {"dataset": self.dataset, "degradation": self.degradation, "method": self.method}

    def is_done(self, fingerprint: str) -> bool:
        info = self.info()
        return info.get("fingerprint") == fingerprint and info.get("status") == "done"

    def _parts(self, prefix: str) -> list[Path]:
        return sorted(self.dir.glob(f"{prefix}-*.parquet")) if self.dir.is_dir() else []

    def _read(self, p: Path) -> pd.DataFrame:
        """A part file, read once while it is unchanged (name, size, mtime): a rerun checks, reuses
        and reports a finished cell from one read of each part."""
        st = p.stat()
        key = (p.name, st.st_size, st.st_mtime_ns)
        if key not in self._frames:
            self._frames[key] = read_parquet(p)
        return self._frames[key]

    def set_aside_corrupt(self) -> list[str]:
        """Rename every unreadable part file to ``corrupt-*``; returns one line per file."""
        lines = []
        for p in self._parts("part") + self._parts("time"):
            try:
                self._read(p)
            except CorruptFileError as e:
                p.rename(p.with_name(f"corrupt-{p.name}"))
                lines.append(f"{e}; set aside as corrupt-{p.name}, its images are computed again")
        return lines

    def scores(self) -> pd.DataFrame:
        return latest_rows([self._read(p) for p in self._parts("part")])

    def timings(self) -> pd.DataFrame:
        parts = [self._read(p) for p in self._parts("time")]
        if not parts:
            return pd.DataFrame(columns=TIMING_COLUMNS)
        return pd.concat(parts, ignore_index=True).drop_duplicates(["image"], keep="last").reset_index(drop=True)

    def finished_images(self, retry: Callable[[pd.DataFrame], pd.Series] | None = None) -> set[str]:
        """Images with rows; with ``retry`` (rows -> bool mask), images that have a row to retry
        are left out, so they are computed again."""
        df = self.scores()
        if retry is not None and len(df):
            again = set(df.loc[retry(df), "image"])
            df = df[~df["image"].isin(again)]
        return set(df["image"])

    def write_part(self, rows: list[dict[str, Any]], timings: list[dict[str, Any]]) -> None:
        """Write the rows of some images: the timing part first, the score part (the commit) last."""
        if not rows:
            return
        parts = self._parts("part")
        n = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        if timings:
            atomic_write_parquet(self.dir / f"time-{n:05d}.parquet", pd.DataFrame(timings, columns=TIMING_COLUMNS))
        atomic_write_parquet(self.dir / f"part-{n:05d}.parquet", score_frame(rows))

    def compact(self, keep: set[str] | None = None) -> None:
        """Merge the parts of a finished cell into one part each (only the rows of the images in
        ``keep``, when given: images no longer in the dataset, or the placeholder row of an
        earlier missing dataset, are dropped). Safe to kill at any point: the merged part is
        written under the next number before the older ones are removed, and readers keep the
        last row of each (image, metric)."""
        for prefix, frame in (("time", self.timings), ("part", self.scores)):
            parts = self._parts(prefix)
            df = frame() if parts else None
            stale = df is not None and keep is not None and not df["image"].isin(keep).all()
            if len(parts) > 1 or stale:
                n = int(parts[-1].stem.split("-")[1]) + 1
                if keep is not None:
                    df = df[df["image"].isin(keep)]
                atomic_write_parquet(self.dir / f"{prefix}-{n:05d}.parquet",
                                     df if prefix == "time" else score_frame(df))
                for p in parts:
                    p.unlink()

    def finish(self, fingerprint: str, summary: dict[str, Any], keep: set[str] | None = None) -> None:
        self.compact(keep)
        atomic_write_json(self.info_path, {"fingerprint": fingerprint, "status": "done", **self._key(), **summary})


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
    """RUN/manifest.json (``{}`` when there is none); a garbage one is a `CorruptFileError`."""
    try:
        return read_json(Path(root) / "manifest.json")
    except FileNotFoundError:
        return {}


def _cells(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "cells").glob("*/*/*/cell.json"))


def load_scores(root: str | Path) -> pd.DataFrame:
    """Every score row of a run folder (finished and partial cells), in a stable order. An
    unreadable part file is a `CorruptFileError` naming it (``srbench run`` on the folder sets it
    aside and recomputes its images)."""
    root = Path(root)
    if not is_run_dir(root):
        raise SrbenchError(f"{root}: not an srbench run folder (no manifest.json or cells/)")
    df = latest_rows([read_parquet(p) for d in _cells(root) for p in sorted(d.glob("part-*.parquet"))])
    return df.sort_values(["dataset", "scale", "degradation", "method", "image", "metric"], kind="stable").reset_index(drop=True)


def load_timings(root: str | Path) -> pd.DataFrame:
    root = Path(root)
    frames = [read_parquet(p) for d in _cells(root) for p in sorted(d.glob("time-*.parquet"))]
    if not frames:
        return pd.DataFrame(columns=TIMING_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(["dataset", "degradation", "method", "image"], keep="last").reset_index(drop=True)


def load_cells(root: str | Path) -> list[dict[str, Any]]:
    return [read_json(d / "cell.json") for d in _cells(Path(root))]
