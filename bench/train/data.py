"""Training data: the images of ``<data>/train`` (never a test image), HR patches drawn from a seed,
and their LR made on the fly by a degradation of `bench.run.degradations`.

- ``training_images(root, sets)``: ``(path, sha256)`` of every image of ``train/<set>`` for the
  sets asked (T91, BSDS500, Kodak24, and the captioned COCO / CelebA training splits); a file whose
  sha256 equals a file of a test set found in the data root stops training.
- ``PatchSampler``: holds the images in memory as uint8 and gives batch ``k`` of a run as
  ``(hr, lr)``: a generator seeded by ``(seed, k)`` picks the images, the crop corners and a
  flip/rotation, and the LR of each patch comes from the degradation seeded by ``derive_seed(seed,
  "train:k:i", key)``. Batch ``k`` is therefore the same whether a run is resumed or not, and
  independent of every other batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from iqa.errors import SrbenchError

TRAIN_SETS = ("t91", "bsds500", "kodak24", "coco", "celeba_mm")
TEST_SETS = ("set5", "set14", "bsd100", "urban100", "manga109", "celeba_hq", "acdc", "acdc-full", "coco",
             "celeba_mm", "realsr-canon", "div2k-val")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


def find_data_root(data_root: str | os.PathLike[str] | None) -> Path:
    """``data_root``, else the first data root (``SRBENCH_DATA``, then the cache) holding ``train/``."""
    if data_root is not None:
        return Path(data_root)
    from bench.run.datasets import data_roots

    roots = data_roots()
    return next((r for r in roots if (r / "train").is_dir()), roots[0] if roots else Path("data"))


def training_images(data_root: str | os.PathLike[str], sets: tuple[str, ...] = ("t91", "bsds500", "kodak24")
                    ) -> list[tuple[Path, str]]:
    """``(path, sha256)`` of every training image under ``<data_root>/train/<set>`` for ``sets``;
    refuses any file that is also a file of a test set under ``data_root`` (same sha256)."""
    from iqa.assets import sha256_file

    bad = [s for s in sets if s not in TRAIN_SETS]
    if bad or not sets:
        raise SrbenchError(f"training sets must be some of {', '.join(TRAIN_SETS)}, got {list(sets)}")
    root = Path(data_root)
    folders = [root / "train" / s for s in sets if (root / "train" / s).is_dir()]
    if not folders:
        raise SrbenchError(f"no training images: expected {root}/train/{{{','.join(sets)}}}/ "
                           "(T91, BSDS500, Kodak24, ...)")
    images = [(p, sha256_file(p)) for f in folders for p in _files(f)]
    test = {}
    for name in TEST_SETS:
        for p in _files(root / name) if (root / name).is_dir() else []:
            test[sha256_file(p)] = p
    clash = [(p, test[h]) for p, h in images if h in test]
    if clash:
        raise SrbenchError(f"training image {clash[0][0]} is the test image {clash[0][1]} (same sha256): "
                           "never train on a test set")
    return images


def image_captions(paths: list[Path]) -> dict[Path, list[str]]:
    """``{image path: its captions}`` for those of ``paths`` whose folder has a ``captions.jsonl``
    (``{"id": stem, "captions": [...]}`` per line: `bench.run.datasets`'s layout of COCO and
    CelebA-HQ, and of ``train/coco``, ``train/celeba_mm``, read by its parser); a malformed line is
    a one-line error naming the file and the line. Blank captions are left out."""
    from bench.run.datasets import caption_line, caption_records

    found: dict[Path, list[str]] = {}
    for folder in sorted({p.parent for p in paths}):
        file = folder / "captions.jsonl"
        if not file.is_file():
            continue
        by_id = {}
        for n, rec in caption_records(file):
            image_id, texts = caption_line(file, n, rec, strict=False)
            by_id[image_id] = [c for c in texts if c.strip()]
        found.update({p: by_id[p.stem] for p in paths if p.parent == folder and by_id.get(p.stem)})
    return found


def draw_captions(sources: list[Path], captions: dict[Path, list[str]], g: torch.Generator) -> list[str | None]:
    """One caption per patch (``sources``: the image each is cut from), drawn from ``g`` among its
    image's captions; None for a patch of an uncaptioned image."""
    out: list[str | None] = []
    for path in sources:
        c = captions.get(path)
        out.append(c[int(torch.randint(len(c), (1,), generator=g))] if c else None)
    return out


def augment(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """``k`` quarter turns, then a horizontal flip: the eight symmetries of the square."""
    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip else x


class PatchSampler:
    """Batch ``k`` of HR patches and their LR (see the module doc)."""

    def __init__(self, images: list[Path], *, patch: int, batch: int, degradation: str, seed: int = 0,
                 augment: bool = True):
        from bench.run.degradations import parse_degradation
        from bench.run.io import read_uint8

        self.deg = parse_degradation(degradation)
        if self.deg.real:
            raise SrbenchError(f"degradation {degradation!r} reads real LR files; training needs a synthetic one")
        if patch % self.deg.scale:
            raise SrbenchError(f"the HR patch ({patch}) must be a multiple of the scale x{self.deg.scale}")
        self.patch, self.batch, self.seed, self.augment = patch, batch, seed, augment
        pics = [(Path(p), read_uint8(p)) for p in images]
        kept = [(p, a) for p, a in pics if min(a.shape[:2]) >= patch]
        self.paths, self.images = [p for p, _ in kept], [a for _, a in kept]
        if not self.images:
            raise SrbenchError(f"no training image is at least {patch}x{patch} pixels")

    def _plan(self, k: int) -> list[tuple[int, int, int, int, bool]]:
        """Batch ``k``'s draws: ``(image index, top, left, quarter turns, flip)`` per patch."""
        rng = np.random.default_rng([self.seed, k])
        plan = []
        for _ in range(self.batch):
            i = int(rng.integers(len(self.images)))
            h, w = self.images[i].shape[:2]
            t, l = int(rng.integers(0, h - self.patch + 1)), int(rng.integers(0, w - self.patch + 1))
            rot, flip = (int(rng.integers(4)), bool(rng.integers(2))) if self.augment else (0, False)
            plan.append((i, t, l, rot, flip))
        return plan

    def sources(self, k: int) -> list[Path]:
        """The image each patch of batch ``k`` is cut from (the draws of `hr`, without the pixels)."""
        return [self.paths[i] for i, *_ in self._plan(k)]

    def hr(self, k: int) -> torch.Tensor:
        """The HR patches of batch ``k``: ``(batch, 3, patch, patch)`` float32 in [0, 1]."""
        out = []
        for i, t, l, rot, flip in self._plan(k):
            a = self.images[i]
            x = torch.from_numpy(np.ascontiguousarray(a[t:t + self.patch, l:l + self.patch])).permute(2, 0, 1)
            out.append(augment(x, rot, flip))
        return torch.stack(out).float().div_(255.0)

    def __call__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hr, lr)`` of batch ``k``; LR on the uint8 grid, as a benchmark LR file would be."""
        from bench.run.degradations import derive_seed

        hr = self.hr(k)
        lrs = [self.deg.apply(hr[i:i + 1], seed=derive_seed(self.seed, f"train:{k}:{i}", self.deg.key))[1]
               for i in range(len(hr))]
        lr = torch.cat(lrs)
        return hr, (lr.clamp(0, 1) * 255).round() / 255
