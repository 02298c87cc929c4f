"""``srbench score``: no-reference scores of any image files.

    srbench score PATH... --metric NAME [--metric NAME2] [--csv out.csv] [--device auto]
                  [--batch-size 8] [--tile N] [--resize N] [--recursive] [--no-progress]

PATHs are image files or folders (images by extension, see ``bench.run.io.IMAGE_EXTENSIONS``;
``--recursive`` descends into sub-folders); sizes may differ. Each image is read with
``bench.run.io`` (its documented conversions), scored at its own size unless ``--resize N`` asks for
its shorter side to become ``N`` pixels (MATLAB bicubic, aspect ratio kept), and reported as one
row per image and metric: ``path, width, height, metric, score, status, message`` (width and
height of the file; status ``ok``, ``unreadable``, ``too-small`` or ``error``). The rows are printed
as a table on stdout and, with ``--csv``, written to a CSV file as they are computed, so an
interrupted run keeps every finished row.

Batching: images of the same size (after ``--resize``) are scored together, ``--batch-size`` at a
time; a batch whose metric call fails is retried image by image, so one bad image never costs
its neighbours their scores.

Tiling (an approximation): an image larger than ``--tile N`` in either dimension is cut into
``N x N`` tiles (evenly spaced over the image, the last ones shifted inwards so every tile is
whole; neighbours overlap by less than a tile) and its score is the plain mean of the tile
scores. Without ``--tile``, only images of more than ``MAX_PIXELS`` pixels (4K UHD, 3840x2160)
are tiled, by ``DEFAULT_TILE`` tiles; ``--tile 0`` never tiles. The mean of tile scores is not the
score of the whole image: NIQE, BRISQUE and PIQE pool statistics over the whole image, and
CLIP-IQA sees each tile on its own; every no-reference metric of srbench allows it (a metric can
refuse with a ``tileable = False`` attribute: its large images are then scored whole), and the
row's message says how many tiles were averaged.

Only no-reference metrics are accepted: a full-reference metric (PSNR, SSIM, LPIPS, DISTS) needs
the reference image, which ``score`` does not have, and is refused with one line.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

from iqa.base import tile_boxes
from iqa.errors import SrbenchError
from iqa.sfd import checkpoint_options

__all__ = ["COLUMNS", "DEFAULT_TILE", "MAX_PIXELS", "Scorer", "add_score_parser", "cmd_score", "collect_images",
           "resized_size", "tile_boxes"]

COLUMNS = ("path", "width", "height", "metric", "score", "status", "message")
MAX_PIXELS = 3840 * 2160
DEFAULT_TILE = 1024


# -- arguments ----------------------------------------------------------------------------------

def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _tile(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile takes a tile size in pixels (0: never tile), got {text!r}") from None
    if v != 0 and v < 16:
        raise argparse.ArgumentTypeError(f"--tile must be 0 (never tile) or at least 16 pixels, got {v}")
    return v


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    p.add_argument("--metric", dest="metrics", action="append", required=True, metavar="NAME",
                   help="a no-reference metric (srbench list metrics); repeat for several")
    p.add_argument("--sfd-checkpoint", type=Path, metavar="FILE",
                   help="score the SFD-IQA metrics with this checkpoint (from `srbench iqa train sfd`) "
                        "instead of the shipped or cached one")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="also write the rows to this CSV file (written as they come)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=_positive, default=8, metavar="N",
                   help="images of one size per metric call (default 8)")
    p.add_argument("--tile", type=_tile, default=None, metavar="N",
                   help=f"score images larger than N x N by the mean over N x N tiles (an approximation; default: "
                        f"{DEFAULT_TILE} for images over {MAX_PIXELS} pixels; 0: never)")
    p.add_argument("--resize", type=_positive, default=None, metavar="N",
                   help="resize every image so its shorter side is N pixels first (default: no resizing)")
    p.add_argument("--recursive", action="store_true", help="also take images in sub-folders")
    p.add_argument("--offline", action="store_true",
                   help="never fetch a metric's missing assets (also SRBENCH_OFFLINE=1)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is off anyway when stderr is not a terminal)")
    return p


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``score`` sub-command to the top-level parser's sub-parsers (``bench.cli``)."""
    p = subparsers.add_parser(
        "score", help="no-reference scores of image files or folders (table and CSV)",
        description="Score images with no-reference metrics: one row per image and metric. Images of one size are "
                    "batched; large images are scored by tiles (mean of tile scores, an approximation); unreadable "
                    "files are reported and skipped. Full-reference metrics are refused.")
    return _configure(p)


# -- inputs -------------------------------------------------------------------------------------

def collect_images(paths: Iterable[Path], recursive: bool = False) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files named by ``paths`` (files as given, folders by extension, sorted) and the
    ``(path, problem)`` of paths that do not exist. A file is listed once."""
    from bench.run.io import IMAGE_EXTENSIONS

    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files += sorted(f for f in found if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            problems.append((p, "no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def probe_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file as ``bench.run.io`` will read it (EXIF rotation applied),
    from its header; `ImageReadError` (one line) when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    from bench.run.io import ImageReadError

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # a damaged EXIF block: bench.run.io will decide
                orientation = 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: cannot read image ({msg})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def resized_size(width: int, height: int, short: int | None) -> tuple[int, int]:
    """``(width, height)`` after ``--resize short`` (shorter side ``short``, aspect ratio kept)."""
    if not short:
        return width, height
    if width <= height:
        return short, max(1, round(height * short / width))
    return max(1, round(width * short / height)), short


# -- scoring ------------------------------------------------------------------------------------

@dataclass
class _Image:
    index: int
    path: Path
    width: int | None  # None when the file is not an image
    height: int | None
    size: tuple[int, int]  # (width, height) after --resize
    tiled: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class Scorer:
    """Scores images with built metrics; ``emit(row)`` receives each finished row."""

    def __init__(self, metrics: dict[str, Any], device: Any, *, batch_size: int = 8, tile: int | None = None,
                 resize: int | None = None, emit: Any = None, report: Any = None, progress: Any = None):
        self.metrics = metrics
        self.device = device
        self.batch_size = batch_size
        self.tile = tile
        self.resize = resize
        self.emit = emit or (lambda row: None)
        self.report = report or (lambda line: print(line, file=sys.stderr))
        self.progress = progress
        self.images: list[_Image] = []  # every image seen so far, with its finished rows

    def _tile_size(self, w: int, h: int) -> int | None:
        if self.tile == 0:
            return None
        if self.tile is not None:
            return self.tile if (w > self.tile or h > self.tile) else None
        return DEFAULT_TILE if w * h > MAX_PIXELS else None

    def _row(self, img: _Image, metric: str, score: float | None, status: str, message: str = "") -> None:
        row = {"path": str(img.path), "width": img.width, "height": img.height, "metric": metric,
               "score": score, "status": status, "message": message}
        img.rows.append(row)
        self.emit(row)

    def _fail(self, img: _Image, status: str, message: str) -> None:
        self.report(f"srbench score: skipped {message}" if message.startswith(str(img.path))
                    else f"srbench score: skipped {img.path}: {message}")
        for name in self.metrics:
            self._row(img, name, None, status, message)

    def _advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(n)

    def run(self, files: list[Path]) -> list[_Image]:
        from bench.run.io import ImageReadError

        images = self.images
        groups: dict[tuple[int, int], list[_Image]] = defaultdict(list)
        tiled: list[_Image] = []
        for i, path in enumerate(files):
            try:
                w, h = probe_size(path)
            except ImageReadError as e:
                img = _Image(i, path, None, None, (0, 0))
                images.append(img)
                self._fail(img, "unreadable", str(e))
                self._advance()
                continue
            img = _Image(i, path, w, h, resized_size(w, h, self.resize))
            images.append(img)
            img.tiled = self._tile_size(*img.size) is not None
            (tiled if img.tiled else groups[img.size]).append(img)
        for size in sorted(groups):
            members = groups[size]
            for k in range(0, len(members), self.batch_size):
                self._score_batch(members[k:k + self.batch_size])
        for img in tiled:
            self._score_tiled(img)
        return images

    def _read(self, img: _Image):
        """The image tensor (3, H, W) after --resize, and its gray flag; None after reporting."""
        from bench.run.io import ImageReadError, read_image_gray

        try:
            x, gray = read_image_gray(img.path)
        except ImageReadError as e:
            self._fail(img, "unreadable", str(e))
            return None
        except Exception as e:  # never stop the run for one file
            self._fail(img, "unreadable", f"{img.path}: cannot read image ({_one_line(e)})")
            return None
        h, w = x.shape[-2:]
        if (w, h) != (img.width, img.height):  # the header said otherwise: trust the pixels
            img.width, img.height = w, h
            img.size = resized_size(w, h, self.resize)
        if self.resize and img.size != (w, h):
            from iqa.resize import imresize

            x = imresize(x, size=(img.size[1], img.size[0]))
        return x, gray

    def _metric_scores(self, name: str, metric: Any, x, gray: bool) -> list[tuple[float | None, str]]:
        """Scores of the batch ``x`` by one metric; a failing batch is retried image by image."""
        try:
            s = metric(x.to(self.device), gray=gray).detach().double().cpu().tolist()
            return [(v, "") for v in s]
        except Exception as e:
            if x.shape[0] == 1:
                return [(None, _one_line(e))]
        return [self._metric_scores(name, metric, x[i:i + 1], gray)[0] for i in range(x.shape[0])]

    def _finish(self, img: _Image, name: str, value: float | None, problem: str, note: str = "") -> None:
        if value is None:
            self.report(f"srbench score: {img.path}: {name} failed: {problem}")
            self._row(img, name, None, "error", problem)
        elif not math.isfinite(value):
            self.report(f"srbench score: {img.path}: {name} gave {value} (undefined for this image)")
            self._row(img, name, None, "error", f"{name} gave {value} (undefined for this image)")
        else:
            self._row(img, name, float(value), "ok", note)

    def _too_small(self, metric: Any, w: int, h: int) -> str | None:
        need = int(getattr(metric, "min_size", 1) or 1)
        if w < need or h < need:
            return f"{w}x{h} pixels is too small (needs at least {need}x{need})"
        return None

    def _score_batch(self, batch: list[_Image]) -> None:
        import torch

        loaded = []
        for img in batch:
            got = self._read(img)
            if got is not None:
                loaded.append((img, *got))
            else:
                self._advance()
        # an image whose pixels disagree with its header, or a mix of gray and colour, is split off
        by_key: dict[tuple, list] = defaultdict(list)
        for img, x, gray in loaded:
            by_key[(tuple(x.shape), gray)].append((img, x))
        for (shape, gray), items in by_key.items():
            x = torch.stack([t for _, t in items])
            h, w = shape[-2:]
            note = f"resized to {w}x{h}" if self.resize else ""
            for name, metric in self.metrics.items():
                small = self._too_small(metric, w, h)
                if small:
                    for img, _ in items:
                        self.report(f"srbench score: skipped {img.path} for {name}: {small}")
                        self._row(img, name, None, "too-small", small)
                    continue
                for (img, _), (value, problem) in zip(items, self._metric_scores(name, metric, x, gray)):
                    self._finish(img, name, value, problem, note)
            self._advance(len(items))

    def _score_tiled(self, img: _Image) -> None:
        import torch

        got = self._read(img)
        if got is None:
            self._advance()
            return
        x, gray = got
        h, w = x.shape[-2:]
        size = self._tile_size(w, h)
        resized = f"resized to {w}x{h}; " if self.resize else ""
        for name, metric in self.metrics.items():
            if size is None or getattr(metric, "tileable", True) is False:
                why = "" if size is None else "not tiled: the metric does not allow tiling"
                value, problem = self._metric_scores(name, metric, x[None], gray)[0]
                self._finish(img, name, value, problem, (resized + why).strip("; "))
                continue
            boxes = tile_boxes(h, w, size)
            th, tw = boxes[0][2], boxes[0][3]
            small = self._too_small(metric, tw, th)
            if small:
                self.report(f"srbench score: skipped {img.path} for {name}: tiles of {small}")
                self._row(img, name, None, "too-small", f"tiles of {small}")
                continue
            values: list[float] = []
            problem = ""
            for k in range(0, len(boxes), self.batch_size):
                part = torch.stack([x[:, t:t + bh, c:c + bw] for t, c, bh, bw in boxes[k:k + self.batch_size]])
                for value, why in self._metric_scores(name, metric, part, gray):
                    if value is None or not math.isfinite(value):
                        problem = problem or why or f"a tile gave {value}"
                    else:
                        values.append(value)
            if problem or not values:
                self._finish(img, name, None, f"tile failed: {problem}")
            else:
                self._finish(img, name, sum(values) / len(values), "",
                             f"{resized}mean of {len(values)} tiles of {tw}x{th} (approximation)")
        self._advance()


# -- the command --------------------------------------------------------------------------------

def _offline(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "offline", False)) or os.environ.get("SRBENCH_OFFLINE", "") not in ("", "0")


def _build_metric(name: str, device: Any, offline: bool, options: dict[str, Any]) -> Any:
    """Build metric ``name`` with ``options``; fetch its missing assets (public sources) once
    unless offline."""
    import iqa
    from iqa.assets import build_with_assets

    return build_with_assets(lambda: iqa.create_metric(name, device=device, **options),
                             tuple(iqa.METRICS.get(name).meta.get("assets", ())), fetch=not offline,
                             echo=lambda line: print(f"srbench score: {line}", file=sys.stderr), what=f"metric {name}")


def check_metrics(names: list[str]) -> list[str]:
    """The metric names, deduplicated; unknown ones raise the catalogue's did-you-mean error and
    full-reference ones are refused (one line)."""
    import iqa

    out: list[str] = []
    for name in names:
        iqa.METRICS.get(name)  # UnknownNameError: "unknown metric ...; did you mean ...?"
        info = iqa.metric_info(name)
        if info.kind != "nr":
            nr = [n for n in iqa.list_metrics() if iqa.metric_info(n).kind == "nr"]
            raise SrbenchError(f"metric {name!r} is full-reference and needs a reference image; `srbench score` takes "
                               f"no-reference metrics only ({', '.join(nr) or 'none registered'})")
        if info.name not in out:
            out.append(info.name)
    return out


def _format_table(rows: list[dict[str, Any]]) -> str:
    head = list(COLUMNS)
    body = [[str(r["path"]), "" if r["width"] is None else str(r["width"]),
             "" if r["height"] is None else str(r["height"]), r["metric"],
             "" if r["score"] is None else f"{r['score']:.4f}", r["status"], r["message"]] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(head)).rstrip(),
             "  ".join("-" * widths[i] for i in range(len(head)))]
    lines += ["  ".join(c.rjust(widths[i]) if i in (1, 2, 4) else c.ljust(widths[i]) for i, c in enumerate(b)).rstrip()
              for b in body]
    return "\n".join(lines)


def _table_rows(images: list[_Image], names: list[str], missing: list[tuple[Path, str]]) -> list[dict[str, Any]]:
    """Finished rows in input order (metrics in the order asked), then the paths that do not exist."""
    rows = [r for img in sorted(images, key=lambda i: i.index) for name in names for r in img.rows
            if r["metric"] == name]
    return rows + [{"path": str(p), "width": None, "height": None, "metric": n, "score": None, "status": "unreadable",
                    "message": problem} for p, problem in missing for n in names]


def _open_csv(path: Path) -> tuple[TextIO, Any]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise SrbenchError(f"cannot write {path}: {e.strerror or e}") from None
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    f.flush()
    return f, writer


def cmd_score(args: argparse.Namespace) -> int:
    """Run ``srbench score``; 0 when every image got every score, 1 when some were skipped."""
    from bench.run.runner import resolve_device

    names = check_metrics(list(args.metrics))
    files, missing = collect_images(list(args.paths), recursive=args.recursive)
    for path, problem in missing:
        print(f"srbench score: skipped {path}: {problem}", file=sys.stderr)
    if not files:
        raise SrbenchError("no images found in " + ", ".join(str(p) for p in args.paths)
                           + (" (give --recursive to look in sub-folders)" if not args.recursive else ""))
    device = resolve_device(args.device)
    offline = _offline(args)
    options = checkpoint_options(names, args.sfd_checkpoint)
    metrics = {name: _build_metric(name, device, offline, options.get(name, {})) for name in names}

    csv_file, writer = _open_csv(args.csv) if args.csv else (None, None)

    def emit(row: dict[str, Any]) -> None:
        if writer is not None:
            from bench.run.io import csv_safe  # paths like "=cmd.png" must not run as spreadsheet formulas

            writer.writerow({k: csv_safe(v) for k, v in
                             {**row, "score": "" if row["score"] is None else repr(row["score"])}.items()})
            csv_file.flush()

    for row in _table_rows([], names, missing):
        emit(row)
    show = not args.no_progress and sys.stderr.isatty()
    from tqdm import tqdm

    bar = tqdm(total=len(files), unit="img", desc="score", file=sys.stderr, disable=not show, leave=False)
    scorer = Scorer(metrics, device, batch_size=args.batch_size, tile=args.tile, resize=args.resize, emit=emit,
                    report=lambda line: tqdm.write(line, file=sys.stderr) if show else print(line, file=sys.stderr),
                    progress=bar)
    try:
        scorer.run(files)
    except KeyboardInterrupt:
        bar.close()
        print(_format_table(_table_rows(scorer.images, names, missing)))
        raise
    finally:
        bar.close()
        if csv_file is not None:
            csv_file.close()
    images = scorer.images
    rows = _table_rows(images, names, missing)
    print(_format_table(rows))
    bad = sum(r["status"] != "ok" for r in rows)
    ok_images = sum(all(r["status"] == "ok" for r in img.rows) for img in images)
    print(f"srbench score: {ok_images} of {len(images) + len(missing)} image(s) scored by {', '.join(names)}"
          + (f"; {bad} score(s) missing (see the lines above)" if bad else "")
          + (f"; rows in {args.csv}" if args.csv else ""), file=sys.stderr)
    return 1 if bad else 0
