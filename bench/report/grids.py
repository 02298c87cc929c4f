"""Visual comparison grids: the same crop of the HR image and of every method's SR output.

For each (dataset, scale) of a run the grid shows the image where the methods disagree most and,
in it, the window where their outputs differ most:

- **image**: the largest spread (max - min) across methods of the per-image metric (``psnr`` by
  default) among the methods with an ok value for that image; ties go to the smaller image id.
- **window**: the ``crop`` x ``crop`` window (HR pixels, clipped to the scored region) with the largest
  mean across-method variance of the SR pixel values (per pixel: the variance over methods of each
  RGB value, averaged over the channels). It is found exactly over every window position with an
  integral image of the integer map ``sum_c (M * sum_m v^2 - (sum_m v)^2)`` (= ``3 M^2`` times the
  mean variance), in O(H W). With a single method, or outputs that agree everywhere, the squared
  error to the HR image summed over the methods is used instead. The window lies inside the
  region the protocol scores: the border it shaves (``crop_border``: ``scale`` pixels for
  ``basicsr``, see `iqa.protocols`) is never shown, as methods differ most there for reasons the
  scores ignore. An image too small to keep any pixel after the shave uses the whole image (the
  caption says so).

SR images come from the run folder (``RUN/sr/...``, written with ``save_sr``) or, when absent, are
rebuilt: the method is created from the run's manifest (its name and options for that label) and
applied to the cached LR image (``RUN/lr/...``), or to an LR image computed from HR exactly as the
runner does (modcrop, MATLAB bicubic ``imresize(HR, 1/N)``). Rebuilding runs on the CPU by
default, where the interpolation methods reproduce the saved PNGs bit for bit.

The crops are enlarged by an integer factor with nearest-neighbour repetition, so small crops stay
visible and the pixels stay honest. Panel scores are computed on the crop: PSNR on the BT.601 Y
channel (MATLAB ``rgb2ycbcr``, 0..255, no border shaved) and SSIM on the same Y channel.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iqa.errors import SrbenchError

from bench.report.plots import FigureInfo, _style, _txt, metric_direction, safe_stem, save_figure
from bench.run.store import load_manifest, safe_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

__all__ = ["best_window", "comparison_grids", "disagreement_map", "hr_image", "scored_border", "select_images",
           "sr_image", "window_sums"]

log = logging.getLogger(__name__)

PANEL_PX = 160  # crops are enlarged (nearest neighbour, integer factor) to at least this many pixels
THUMB_PX = 320  # longest side of the HR thumbnail
_LABEL_MAX = 40


# ---------------------------------------------------------------------------------------------
# images of a run


@dataclass
class _RunImages:
    """HR, LR and SR images of one run folder; caches the manifest, the dataset item lists and the
    methods built (one instance per `comparison_grids` call)."""

    run_dir: Path
    data_root: str | None = None
    device: str = "cpu"
    manifest: dict[str, Any] = field(default_factory=dict)
    _items: dict[tuple[str, int], Any] = field(default_factory=dict)
    _methods: dict[str, tuple[Any, str]] = field(default_factory=dict)
    _captions: dict[tuple[str, str, str, str], str] | None = None

    @classmethod
    def open(cls, run_dir: str | Path, data_root: str | Path | None = None, device: str = "cpu") -> "_RunImages":
        run = Path(run_dir)
        manifest = load_manifest(run)
        root = data_root if data_root is not None else manifest.get("spec", {}).get("data_root")
        return cls(run, None if root is None else str(root), device, manifest)

    @property
    def spec(self) -> dict[str, Any]:
        return self.manifest.get("spec", {})

    def item(self, dataset: str, scale: int, image_id: str):
        from bench.run.datasets import Dataset

        key = (dataset, scale)
        if key not in self._items:
            self._items[key] = {it.id: it for it in Dataset(dataset, self.data_root).items(scale)}
        try:
            return self._items[key][image_id]
        except KeyError:
            raise SrbenchError(f"image {image_id!r} is not in dataset {dataset!r} at x{scale}") from None

    def hr_tensor(self, dataset: str, deg, image_id: str) -> "torch.Tensor":
        """The HR image ``(1, 3, H, W)`` as the runner scores it: cropped to a multiple of the scale."""
        from iqa.resize import modcrop

        from bench.run.io import read_image

        item = self.item(dataset, deg.scale, image_id)
        return modcrop(read_image(item.hr).unsqueeze(0), deg.scale)

    def lr_tensor(self, dataset: str, deg, image_id: str) -> "torch.Tensor":
        """The LR input ``(1, 3, h, w)`` the runner gave the methods (see `bench.run.runner.Runner._lr_for`)."""
        from bench.run.io import read_image
        from bench.run.runner import shrink_registered

        if deg.real:
            item = self.item(dataset, deg.scale, image_id)
            if item.lr is None:
                raise SrbenchError(f"{item.hr}: no LR file for x{deg.scale}")
            lr = read_image(item.lr).unsqueeze(0)
            if lr.shape[-2:] == read_image(item.hr).shape[-2:]:  # RealSR: LR registered at the HR size
                lr = shrink_registered(lr, deg.scale)
            return lr
        cache = self.run_dir / "lr" / safe_name(dataset) / deg.key / f"{safe_name(image_id)}.png"
        if cache.is_file():
            return read_image(cache).unsqueeze(0)
        item = self.item(dataset, deg.scale, image_id)
        hr = read_image(item.hr).unsqueeze(0)
        return deg.for_image(hr, int(self.spec.get("seed", 0)), image_id)[1]

    def method(self, label: str) -> tuple[Any, str]:
        """``(method, "")`` or ``(None, why)``; built once per label."""
        if label in self._methods:
            return self._methods[label]
        entry = next((m for m in self.spec.get("methods", []) if m.get("label", m.get("name")) == label), None)
        if entry is None:
            result: tuple[Any, str] = (None, f"method {label!r} is not in the run's manifest")
        else:
            try:
                import sr_methods
                from sr_methods.catalogue import register_assets

                register_assets()
                result = (sr_methods.create_method(entry["name"], device=self.device, **entry.get("options", {})), "")
            except Exception as e:  # missing weights, unknown name, broken checkpoint: say why
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                result = (None, f"method {label!r} cannot be built: {text}")
        self._methods[label] = result
        return result

    def caption(self, dataset: str, degradation: str, label: str, image_id: str) -> str | None:
        """The caption a text-guided method was given for an image in the run (its rows' ``caption``)."""
        if self._captions is None:
            from bench.run.store import load_scores

            df = load_scores(self.run_dir)
            df = df[df["caption"].notna()] if "caption" in df.columns else df.iloc[:0]
            self._captions = {(str(d), str(g), str(m), str(i)): str(c) for d, g, m, i, c in
                              zip(df["dataset"], df["degradation"], df["method"], df["image"], df["caption"])}
        return self._captions.get((dataset, degradation, label, image_id))

    def sr(self, dataset: str, degradation: str, label: str, image_id: str) -> tuple[np.ndarray | None, str]:
        """``(uint8 H x W x 3, "saved"|"rebuilt")`` or ``(None, why)``."""
        from bench.run.degradations import parse_degradation
        from bench.run.io import read_uint8, to_uint8

        deg = parse_degradation(degradation)
        saved = (self.run_dir / "sr" / safe_name(dataset) / deg.key / safe_name(label) /
                 f"{safe_name(image_id)}.png")
        if saved.is_file():
            return read_uint8(saved), "saved"
        method, why = self.method(label)
        if method is None:
            return None, why
        try:
            import torch

            lr = self.lr_tensor(dataset, deg, image_id)
            # a text-guided method gets the caption the run gave it (none recorded: its own missing_caption)
            text = self.caption(dataset, deg.key, label, image_id) if getattr(method, "text_guided", False) else None
            with torch.inference_mode():
                sr = method.upscale(lr, deg.scale, text=text)
            return to_uint8(sr[0].clamp(0, 1).cpu()), "rebuilt"
        except Exception as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return None, f"{label}: cannot rebuild the SR image of {image_id!r}: {text}"


def sr_image(run_dir: str | Path, dataset: str, degradation: str, method_label: str, image_id: str, *,
             data_root: str | Path | None = None, device: str = "cpu",
             messages: list[str] | None = None) -> np.ndarray | None:
    """The SR output (uint8 ``H x W x 3``) of ``method_label`` for one image of a run: the saved PNG
    under ``RUN/sr/`` when there is one, else rebuilt from the run's manifest and LR image (on
    ``device``, CPU by default). ``None`` when it cannot be had; the reason is logged and appended
    to ``messages`` when given. ``data_root`` overrides the manifest's (for HR/LR files)."""
    arr, why = _RunImages.open(run_dir, data_root, device).sr(dataset, degradation, method_label, image_id)
    if arr is None:
        log.warning(why)
        if messages is not None:
            messages.append(why)
    return arr


def hr_image(run_dir: str | Path, dataset: str, degradation: str, image_id: str, *,
             data_root: str | Path | None = None) -> np.ndarray:
    """The HR image (uint8 ``H x W x 3``) of one image of a run, cropped to a multiple of the scale
    (the size of the SR outputs). Raises `SrbenchError` when the dataset or image is not found."""
    from bench.run.degradations import parse_degradation
    from bench.run.io import to_uint8

    images = _RunImages.open(run_dir, data_root)
    return to_uint8(images.hr_tensor(dataset, parse_degradation(degradation), image_id)[0])


# ---------------------------------------------------------------------------------------------
# choosing the image and the window


def select_images(scores: "pd.DataFrame", metric: str = "psnr", per_cell: int = 1) -> "pd.DataFrame":
    """The ``per_cell`` images of each (dataset, degradation, scale) with the largest spread
    (max - min over methods) of ``metric`` among the methods with an ok value (duplicate rows of
    one method and image are averaged). Ties go to the smaller image id. Columns: dataset,
    degradation, scale, image, spread, n_methods."""
    import pandas as pd

    cols = ["dataset", "degradation", "scale", "image", "spread", "n_methods"]
    if scores is None or len(scores) == 0:
        return pd.DataFrame(columns=cols)
    ok = scores[(scores["metric"] == metric) & (scores["status"] == "ok") & np.isfinite(scores["value"].astype(float))]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    per = ok.groupby(["dataset", "degradation", "scale", "image", "method"], sort=False)["value"].mean().reset_index()
    agg = per.groupby(["dataset", "degradation", "scale", "image"], sort=False).agg(
        vmax=("value", "max"), vmin=("value", "min"), n_methods=("method", "nunique")).reset_index()
    agg["spread"] = agg["vmax"] - agg["vmin"]
    agg = agg.sort_values(["dataset", "scale", "degradation", "spread", "image"],
                          ascending=[True, True, True, False, True], kind="stable")
    top = agg.groupby(["dataset", "degradation", "scale"], sort=False).head(max(1, int(per_cell)))
    return top[cols].reset_index(drop=True)


def disagreement_map(srs: list[np.ndarray], hr: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """``(map, rule)``: an integer ``H x W`` map of how much the SR outputs (uint8 ``H x W x 3``)
    differ at each pixel, and the rule used. Two or more outputs that are not identical:
    ``sum_c (M sum_m v^2 - (sum_m v)^2)``, ``3 M^2`` times the across-method variance averaged over
    RGB ("variance"). Otherwise, with ``hr``: the squared error to HR summed over methods and
    channels ("error"). Exact (int64)."""
    if not srs:
        raise SrbenchError("disagreement_map needs at least one SR image")
    shape = srs[0].shape
    if any(a.shape != shape for a in srs):
        raise SrbenchError(f"SR images differ in size: {sorted({a.shape for a in srs})}")
    m = len(srs)
    if m >= 2:
        s1 = np.zeros(shape, np.int64)
        s2 = np.zeros(shape, np.int64)
        for a in srs:
            v = a.astype(np.int64)
            s1 += v
            s2 += v * v
        d = (m * s2 - s1 * s1).sum(axis=2)
        if d.any() or hr is None:
            return d, "variance"
    if hr is None:
        return np.zeros(shape[:2], np.int64), "variance"
    if hr.shape != shape:
        raise SrbenchError(f"HR image of size {hr.shape} does not match the SR size {shape}")
    ref = hr.astype(np.int64)
    d = np.zeros(shape[:2], np.int64)
    for a in srs:
        d += ((a.astype(np.int64) - ref) ** 2).sum(axis=2)
    return d, "error"


def window_sums(dmap: np.ndarray, h: int, w: int) -> np.ndarray:
    """The sum of ``dmap`` over every ``h`` x ``w`` window, indexed by the window's top-left corner
    (shape ``(H - h + 1, W - w + 1)``), from an integral image (exact for integer maps)."""
    H, W = dmap.shape
    if not (1 <= h <= H and 1 <= w <= W):
        raise SrbenchError(f"window {h}x{w} does not fit a {H}x{W} map")
    dtype = np.int64 if np.issubdtype(dmap.dtype, np.integer) else np.float64
    ii = np.zeros((H + 1, W + 1), dtype)
    np.cumsum(dmap, axis=0, dtype=dtype, out=ii[1:, 1:])
    np.cumsum(ii[1:, 1:], axis=1, dtype=dtype, out=ii[1:, 1:])
    return ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]


def best_window(dmap: np.ndarray, crop: int, border: int = 0) -> tuple[int, int, int, int]:
    """``(y, x, h, w)`` of the ``crop`` x ``crop`` window with the largest sum of ``dmap`` among the
    windows inside the map less a ``border`` of pixels on every side (the region a protocol
    scores; the window is clipped to it); the first in row-major order on ties. A border that
    would leave nothing is ignored."""
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or crop < 1:
        raise SrbenchError(f"crop must be a positive int, got {crop!r}")
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise SrbenchError(f"border must be an int >= 0, got {border!r}")
    H, W = dmap.shape
    b = int(border) if H - 2 * int(border) >= 1 and W - 2 * int(border) >= 1 else 0
    inner = dmap[b:H - b, b:W - b]
    h, w = min(int(crop), inner.shape[0]), min(int(crop), inner.shape[1])
    sums = window_sums(inner, h, w)
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y) + b, int(x) + b, h, w


def scored_border(protocol: str | None, scale: int) -> int:
    """The border (pixels) the protocol ``protocol`` shaves at ``scale`` before scoring; an unknown
    or missing protocol is taken as ``basicsr`` (the default, which shaves ``scale`` pixels)."""
    from iqa.protocols import DEFAULT_PROTOCOL, get_protocol

    try:
        return int(get_protocol(protocol or DEFAULT_PROTOCOL).crop_border(int(scale)))
    except SrbenchError:
        return int(get_protocol(DEFAULT_PROTOCOL).crop_border(int(scale)))


# ---------------------------------------------------------------------------------------------
# drawing


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_MAX else label[: _LABEL_MAX - 1] + "\u2026"


def _enlarge(a: np.ndarray) -> np.ndarray:
    k = max(1, math.ceil(PANEL_PX / max(a.shape[:2])))
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1) if k > 1 else a


def _crop_scores(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float | None]:
    """PSNR-Y and SSIM-Y (MATLAB BT.601 Y, no border) of a crop pair; SSIM is None below 11x11."""
    from iqa.fr import psnr, ssim

    from bench.run.io import to_tensor

    x, ref = to_tensor(sr).unsqueeze(0).double(), to_tensor(hr).unsqueeze(0).double()
    p = float(psnr(x, ref, crop_border=0, y_channel=True)[0])
    s = None
    if min(sr.shape[:2]) >= 11:
        s = float(ssim(x.float(), ref.float(), crop_border=0, y_channel=True)[0])
    return p, s


def _fmt_psnr(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:.2f}"


def _thumbnail(hr: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = hr.shape[:2]
    if max(h, w) <= THUMB_PX:
        return hr
    f = THUMB_PX / max(h, w)
    return np.asarray(Image.fromarray(hr).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX))


def _draw(hr: np.ndarray, panels: list[tuple[str, np.ndarray, str]], window: tuple[int, int, int, int],
          title: str, border: int = 0):
    """Figure: HR thumbnail with the window (and, dashed, the scored region inside the shaved
    ``border``), then the HR crop and one crop per method."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    y, x, h, w = window
    n = 1 + len(panels)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.4 * ncols, 2.75 * nrows + 0.35), dpi=120, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    H, W = hr.shape[:2]
    ax = axes[0]
    ax.imshow(_thumbnail(hr), extent=(0, W, H, 0), interpolation="antialiased")
    if border:
        ax.add_patch(Rectangle((border, border), W - 2 * border, H - 2 * border, fill=False, edgecolor="white",
                               linewidth=0.8, linestyle="--"))
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_title(f"HR {W}x{H}, crop at ({x}, {y})", fontsize=8)
    for ax, (label, crop, text) in zip(axes[1:], panels):
        ax.imshow(_enlarge(crop), interpolation="nearest", resample=False)
        ax.set_title(_txt(_short(label)) + "\n" + text, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(_txt(title), fontsize=10)
    return fig


def comparison_grids(run_dir: str | Path, scores: "pd.DataFrame", out_dir: str | Path, *, per_cell: int = 1,
                     max_grids: int = 6, crop: int = 96, metric: str = "psnr",
                     data_root: str | Path | None = None, device: str = "cpu") -> list[FigureInfo]:
    """Comparison grids of one run: per (dataset, scale) the ``per_cell`` images where the methods'
    ``metric`` spreads most, each shown as the HR crop and every method's crop of the window where
    the outputs differ most (see the module doc), at most ``max_grids`` figures. ``scores`` may hold
    several runs: only this run's datasets, methods and protocol are used. Methods whose output
    cannot be had (no saved PNG and cannot be rebuilt) are left out and named in the caption."""
    import pandas as pd

    if scores is None or len(scores) == 0 or max_grids < 1:
        return []
    images = _RunImages.open(run_dir, data_root, device)
    spec = images.spec
    df = scores
    labels = [m.get("label", m.get("name")) for m in spec.get("methods", [])]
    if labels:
        df = df[df["method"].isin(labels)]
    if spec.get("datasets"):
        df = df[df["dataset"].isin(spec["datasets"])]
    if spec.get("protocol") and "protocol" in df:
        df = df[df["protocol"] == spec["protocol"]]
    chosen_metric = metric
    picks = select_images(df, metric, per_cell)
    if picks.empty:  # fall back to another metric that has numbers
        present = [m for m in dict.fromkeys(df.loc[df["status"] == "ok", "metric"]) if m != "*"]
        for alt in present:
            picks = select_images(df, alt, per_cell)
            if not picks.empty:
                chosen_metric = alt
                break
    if picks.empty:
        return []
    order = {d: i for i, d in enumerate(spec.get("datasets", []))}
    picks = picks.assign(_o=picks["dataset"].map(lambda d: order.get(d, len(order))))
    picks = picks.sort_values(["_o", "dataset", "scale", "spread", "image"], ascending=[True, True, True, False, True],
                              kind="stable")
    direction = metric_direction(chosen_metric)[1]
    ok = df[(df["metric"] == chosen_metric) & (df["status"] == "ok")]
    infos: list[FigureInfo] = []
    for _, pick in picks.iterrows():
        if len(infos) >= max_grids:
            break
        ds, deg, scale, image = pick["dataset"], pick["degradation"], int(pick["scale"]), pick["image"]
        rows = ok[(ok["dataset"] == ds) & (ok["degradation"] == deg) & (ok["image"] == image)]
        values = rows.groupby("method", sort=False)["value"].mean()
        method_order = [m for m in labels if m in values.index] + [m for m in values.index if m not in labels]
        skipped: list[str] = []
        srs: list[tuple[str, np.ndarray]] = []
        for label in method_order:
            arr, why = images.sr(ds, deg, label, image)
            if arr is None:
                skipped.append(why)
                continue
            srs.append((label, arr))
        try:
            from bench.run.degradations import parse_degradation
            from bench.run.io import to_uint8

            hr = to_uint8(images.hr_tensor(ds, parse_degradation(deg), image)[0])
        except SrbenchError as e:
            log.warning("no grid for %s %s %s: %s", ds, deg, image, e)
            continue
        wrong = [lab for lab, a in srs if a.shape != hr.shape]
        skipped += [f"{lab}: SR size {a.shape[1]}x{a.shape[0]} differs from HR {hr.shape[1]}x{hr.shape[0]}"
                    for lab, a in srs if lab in wrong]
        srs = [(lab, a) for lab, a in srs if lab not in wrong]
        if not srs:
            log.warning("no grid for %s %s %s: %s", ds, deg, image, "; ".join(skipped))
            continue
        dmap, rule = disagreement_map([a for _, a in srs], hr)
        protocols = df.loc[(df["dataset"] == ds) & (df["degradation"] == deg), "protocol"].dropna() \
            if "protocol" in df else []
        protocol = spec.get("protocol") or (str(protocols.iloc[0]) if len(protocols) else None)
        border = scored_border(protocol, scale)
        y, x, h, w = best_window(dmap, crop, border)
        shaved = border if (hr.shape[0] > 2 * border and hr.shape[1] > 2 * border) else 0
        hr_crop = hr[y:y + h, x:x + w]
        panels = [("HR", hr_crop, f"crop {w}x{h} (x{scale} SR)")]
        table = []
        for label, a in srs:
            c = a[y:y + h, x:x + w]
            p, s = _crop_scores(c, hr_crop)
            text = f"crop PSNR-Y {_fmt_psnr(p)} dB" + (f", SSIM-Y {s:.3f}" if s is not None else "")
            text += f"\nimage {chosen_metric.upper()} {values[label]:.4g}"
            panels.append((label, c, text))
            table.append({"dataset": ds, "degradation": deg, "scale": scale, "image": image, "method": label,
                          "crop_y": y, "crop_x": x, "crop_h": h, "crop_w": w, "border": shaved,
                          "crop_psnr_y": p, "crop_ssim_y": s,
                          f"image_{chosen_metric}": float(values[label])})
        title = f"{ds} {deg}, image {image}"
        with _style():
            fig = _draw(hr, panels, (y, x, h, w), title, shaved)
        rule_text = ("the largest mean across-method variance of the SR pixel values (RGB)" if rule == "variance"
                     else "the largest squared error to HR summed over the methods (the outputs do not differ)")
        caption = (f"{ds} {deg} (x{scale}), image {image}: crop of {w}x{h} HR pixels at x={x}, y={y} (top-left "
                   f"corner) of the {hr.shape[1]}x{hr.shape[0]} HR image (cropped to a multiple of {scale}). The "
                   f"image is the one of this cell where the methods' {chosen_metric.upper()} ({direction}) "
                   f"spreads most (max - min = {pick['spread']:.4g} over {int(pick['n_methods'])} methods); the "
                   f"window is the one with {rule_text}, "
                   + (f"inside the scored region (the {shaved}-pixel border the {protocol or 'basicsr'} protocol "
                      f"shaves is never shown)" if shaved else
                      ("anywhere in the image (the protocol shaves no border)" if not border else
                       f"anywhere in the image (too small to keep the {border}-pixel shaved border out)"))
                   + f". Panels: HR, then each method's crop, enlarged with "
                   f"nearest neighbour; scores on the crop: PSNR and SSIM on the BT.601 Y channel (0..255, no "
                   f"border shaved), and the method's whole-image {chosen_metric.upper()} from the run.")
        if chosen_metric != metric:
            caption += f" ({metric.upper()} had no numbers; {chosen_metric.upper()} was used instead.)"
        cell = df[(df["dataset"] == ds) & (df["degradation"] == deg) & df["image"].isin([image, "*"])]
        for label in [m for m in dict.fromkeys(cell["method"]) if m not in values.index]:
            bad = cell[(cell["method"] == label) & (cell["status"] != "ok")]["status"]
            status = bad.iloc[0] if len(bad) else "no score"
            skipped.append(f"{label}: {'failed' if status == 'error' else status}")
        if skipped:
            caption += " Not shown: " + "; ".join(skipped) + "."
        stem = safe_stem("grid", str(ds), str(deg), str(image))
        infos.append(save_figure(fig, out_dir, stem, title=title, caption=caption, data=pd.DataFrame(table),
                                 dataset=ds))
    return infos
