"""Editability of a text-guided SR method (``srbench editability``): does the caption steer the
output, and does the output agree with its own caption?

For each image of a captioned dataset at a scale (LR made exactly as ``srbench run`` makes it: the
degradation seeded by the run seed and the image id; the caption chosen by the run seed, as the runner
chooses it):

- *swap* (the first ``n`` images whose caption has a word of :data:`SWAPS`): the output with the true
  caption ``c`` and with the contrasting caption ``c'`` (every swappable word replaced, e.g. "red" ->
  "blue", "man" -> "woman", "smiling" -> "frowning"). The move toward the new caption is
  ``[s(out', c') - s(out', c)] - [s(out, c') - s(out, c)]`` (positive: the output moved toward
  ``c'``), with ``s`` the judge's text-image similarity; the change of the output is
  ``LPIPS(out, out')``.
- *match* (every image, or the first ``limit``): ``s(out, c) - s(out, m)`` with ``m`` the caption of the
  next image (sorted by id): positive on average when the output agrees with its own caption better
  than with another image's. The picture itself carries its caption's content, so this is positive
  for any faithful SR output; what the text adds is *match gain*: the same margin of the output made
  with the caption minus that of the output made with the empty caption.

Means come with 95 % percentile-bootstrap intervals (`bench.report.stats`). The judge
(:func:`build_judge`): real CLIP (``clip:MODEL/TAG``: its image and text embeddings), or offline the
``clip-sr-align`` aligner (VGG16 features mapped to the MiniLM sentence space; ``shipped`` is the
one that ships). The judge sees the central square of an image resized to its input size. **A
CLIP-SR generator trained with the same judge's cosine is graded by what it was trained on**: the
numbers say whether the text steers the output in the judge's eyes, not in a human's; the output
records the judge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from iqa.errors import SrbenchError

if TYPE_CHECKING:
    import torch

# contrasting words: colours, people and objects common in COCO captions, face attributes of
# Multi-Modal-CelebA-HQ's descriptions (each direction listed; case is kept)
SWAPS: dict[str, str] = {
    "red": "blue", "blue": "red", "white": "black", "black": "white", "green": "yellow", "yellow": "green",
    "brown": "grey", "grey": "brown", "gray": "brown", "orange": "purple", "purple": "orange", "pink": "green",
    "man": "woman", "woman": "man", "men": "women", "women": "men", "boy": "girl", "girl": "boy",
    "he": "she", "she": "he", "his": "her", "her": "his", "male": "female", "female": "male",
    "dog": "cat", "cat": "dog", "bus": "train", "train": "bus", "car": "boat", "boat": "car",
    "horse": "cow", "cow": "horse", "pizza": "cake", "cake": "pizza", "giraffe": "zebra", "zebra": "giraffe",
    "blond": "black", "smiling": "frowning", "young": "old", "old": "young", "beard": "moustache",
    "straight": "wavy", "wavy": "straight", "long": "short", "short": "long",
}
_WORD = re.compile(r"[A-Za-z]+")


def swap_caption(caption: str) -> str | None:
    """``caption`` with every word of :data:`SWAPS` replaced (case kept); None when it has none."""
    hits = 0

    def repl(m: re.Match) -> str:
        nonlocal hits
        w = m.group(0)
        new = SWAPS.get(w.lower())
        if new is None:
            return w
        hits += 1
        return new.capitalize() if w[0].isupper() else new

    out = _WORD.sub(repl, caption)
    return out if hits else None


@dataclass
class Judge:
    """``similarity(images (B, 3, H, W) in [0, 1], texts) -> (B,)`` cosines, and what it is."""

    embed_image: Callable[[torch.Tensor], torch.Tensor]
    embed_text: Callable[[list[str]], torch.Tensor]
    size: int
    record: dict[str, Any]

    def similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        h, w = images.shape[-2:]
        c = min(h, w)
        x = images[..., (h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
        x = F.interpolate(x.float(), size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True)
        with torch.no_grad():
            a = F.normalize(self.embed_image(x).float(), dim=-1)
            b = F.normalize(self.embed_text(texts).float().to(a.device), dim=-1)
        return (a * b).sum(-1)


def build_judge(spec: str = "shipped", *, device: Any = "cpu", vgg16_weights: str | None = None) -> Judge:
    """``"shipped"`` or ``"aligner:PATH"`` (a ``clip-sr-align`` checkpoint with VGG16 and its sentence
    encoder), or ``"clip:MODEL/TAG"`` (real CLIP)."""
    from sr_methods.clipsr.text import build_sentence_encoder

    if spec.startswith("clip:"):
        from iqa.semantic import build_backbone

        bb = build_backbone(spec, device=device)
        enc = build_sentence_encoder(spec, device=device)
        return Judge(lambda x: bb(x, ())[1], enc.encode, bb.native_size, {"judge": spec, **bb.provenance()})
    if spec != "shipped" and not spec.startswith("aligner:"):
        raise SrbenchError(f"judge must be \"shipped\", \"aligner:PATH\" or \"clip:MODEL/TAG\", got {spec!r}")
    from bench.train.clipsr import resolve_aligner
    from iqa.assets import file_record, sha256_file
    from iqa.semantic import VGG16Backbone
    from sr_methods.trained import load_network

    path = resolve_aligner("shipped" if spec == "shipped" else spec[len("aligner:"):])
    aligner, rec, sha = load_network(path)
    if rec.get("arch") != "clip-sr-align":
        raise SrbenchError(f"{path} is a {rec.get('arch')} checkpoint, not a clip-sr-align one")
    opts = rec["arch_options"]
    vgg = VGG16Backbone(vgg16_weights).to(device)
    aligner = aligner.to(device)
    enc = build_sentence_encoder(opts.get("text", "minilm"), device=device)
    levels = tuple(opts["levels"])
    return Judge(lambda x: aligner(vgg(x, levels)[0]), enc.encode, int(opts.get("size", 112)),
                 {"judge": f"aligner:{path}", "aligner": file_record(path, sha or sha256_file(path), verified=False),
                  "backbone": "vgg16", "text": opts.get("text")})


def _lr_pairs(dataset: str, scale: int, seed: int, data_root, limit: int | None):
    from bench.run.datasets import Dataset
    from bench.run.degradations import parse_degradation
    from bench.run.io import read_image
    from bench.run.runner import pick_caption

    ds = Dataset(dataset, data_root)
    deg = parse_degradation(f"x{scale}")
    items = sorted((it for it in ds.items(scale) if it.captions), key=lambda it: it.id)
    if not items:
        raise SrbenchError(f"dataset {dataset!r} has no captioned image: editability needs captions")
    for it in items[:limit] if limit else items:
        hr, lr = deg.for_image(read_image(it.hr)[None], seed, it.id)
        yield it.id, hr, lr, pick_caption(it.captions, seed, it.id)


def editability(method, dataset: str, scale: int, judge: Judge, *, n: int = 10, seed: int = 0,
                data_root=None, limit: int | None = None, lpips=None, echo: Callable[[str], None] = print
                ) -> dict[str, Any]:
    """The figures of the module doc for one method, dataset and scale (a dict, JSON-ready)."""
    from bench.report.stats import bootstrap_mean

    if not getattr(method, "text_guided", False):
        raise SrbenchError(f"method {method.name!r} is not text-guided: editability needs a caption-conditioned method")
    pairs = list(_lr_pairs(dataset, scale, seed, data_root, limit))
    outs, empty = {}, {}
    for image, _hr, lr, cap in pairs:
        outs[image] = (method.upscale(lr, scale, text=cap), cap)
        empty[image] = method.upscale(lr, scale, text="")
    ids = [p[0] for p in pairs]
    match = []
    for i, image in enumerate(ids):
        out, cap = outs[image]
        other = outs[ids[(i + 1) % len(ids)]][1]
        if len(ids) > 1 and other != cap:
            s = judge.similarity(out, [cap])[0] - judge.similarity(out, [other])[0]
            s0 = judge.similarity(empty[image], [cap])[0] - judge.similarity(empty[image], [other])[0]
            match.append({"image": image, "caption": cap, "mismatched": other, "margin": float(s),
                          "margin_empty": float(s0), "gain": float(s - s0)})
    lrs = {p[0]: p[2] for p in pairs}
    swaps = []
    for image in ids:
        if len(swaps) >= n:
            break
        out, cap = outs[image]
        new = swap_caption(cap)
        if new is None:
            continue
        out2 = method.upscale(lrs[image], scale, text=new)
        s = {k: float(judge.similarity(o, [t])[0]) for k, (o, t) in
             {"orig_orig": (out, cap), "orig_new": (out, new), "new_orig": (out2, cap), "new_new": (out2, new)}.items()}
        move = (s["new_new"] - s["new_orig"]) - (s["orig_new"] - s["orig_orig"])
        row = {"image": image, "caption": cap, "swapped": new, **{f"s_{k}": v for k, v in s.items()}, "move": move}
        if lpips is not None:
            row["lpips"] = float(lpips(out2, out)[0])
        swaps.append(row)
    if len(swaps) < n:
        echo(f"!! {dataset} x{scale}: only {len(swaps)} of the images have a caption with a swappable word (asked {n})")

    def summary(rows, key):
        iv = bootstrap_mean([r[key] for r in rows])
        return {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n}

    return {"method": method.name, "dataset": dataset, "scale": scale, "seed": seed, "judge": judge.record,
            "match": summary(match, "margin") if match else None,
            "match_gain": summary(match, "gain") if match else None,
            "move": summary(swaps, "move") if swaps else None,
            "lpips": summary(swaps, "lpips") if swaps and lpips is not None else None,
            "swaps": swaps, "matches": match}


def _iv(s: dict[str, Any] | None) -> str:
    return "n/a" if not s else f"{s['mean']:+.4f} [{s['lo']:+.4f}, {s['hi']:+.4f}]"


def write(results: list[dict[str, Any]], out: str | Path) -> Path:
    """``out/editability.json`` (atomically)."""
    import os

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "editability.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    os.replace(tmp, path)
    return path


# -- the command ---------------------------------------------------------------------------------------------------

def add_parser(sub) -> None:
    e = sub.add_parser("editability", help="does a text-guided method follow its caption? (swapped captions, "
                                           "judge similarity, LPIPS)",
                       description="For text-guided methods on captioned datasets: the output with the true caption "
                                   "and with a contrasting one (documented word swaps), the judge's similarity moves, "
                                   "the LPIPS between the two outputs and the own-vs-other caption margin, written to "
                                   "OUT/editability.json (srbench report shows it when OUT is one of its run folders).")
    e.add_argument("--methods", required=True, help="comma-separated text-guided methods")
    e.add_argument("--datasets", required=True, help="comma-separated captioned datasets (coco, celeba-mm)")
    e.add_argument("--scales", required=True, help="comma-separated scales, e.g. 4,8,16")
    e.add_argument("--judge", default="shipped", help="shipped (the aligner that ships), aligner:PATH or clip:MODEL/TAG")
    e.add_argument("--images", type=int, default=10, help="images with a swapped caption per cell (default 10)")
    e.add_argument("--limit", type=int, help="only the first N captioned images (sorted by id) for the match margin")
    e.add_argument("--seed", type=int, default=0, help="run seed: the LR and the caption of each image (default 0)")
    e.add_argument("--data-root", help="data root (default SRBENCH_DATA or the cache)")
    e.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    e.add_argument("--out", type=Path, required=True, help="folder for editability.json (e.g. a run folder)")


def cmd(args) -> int:
    import iqa
    import sr_methods

    judge = build_judge(args.judge, device=args.device)
    lpips = iqa.create_metric("lpips", device=args.device)
    path = Path(args.out) / "editability.json"
    done = json.loads(path.read_text()) if path.is_file() else []
    for name in [m for m in args.methods.split(",") if m]:
        method = sr_methods.create_method(name, device=args.device)
        for ds in [d for d in args.datasets.split(",") if d]:
            for scale in [int(s.lower().lstrip("x")) for s in args.scales.split(",") if s]:
                if not method.supports(scale):
                    print(f"!! {name} does not run at x{scale}: skipped")
                    continue
                r = editability(method, ds, scale, judge, n=args.images, seed=args.seed, data_root=args.data_root,
                                limit=args.limit, lpips=lpips)
                done = [x for x in done if (x["method"], x["dataset"], x["scale"]) != (name, ds, scale)] + [r]
                write(done, args.out)
                print(f"{name} {ds} x{scale}: " + ", ".join(f"{k} {_iv(r.get(k))}" for k in
                                                             ("move", "lpips", "match", "match_gain")))
    print(f"wrote {path}")
    return 0
