"""``srbench perf``: throughput of SR methods and metrics (`bench.perf.throughput`) and the regression
gate that compares two such measurements (`bench.perf.compare`). The command's parser and handler
live here; importing this package imports nothing heavy."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("perf", help="throughput of SR methods and metrics, or --compare two results (CI gate)",
                       description="Measure images/s, ms per output megapixel, FLOPs, TFLOP/s and peak memory of SR "
                                   "methods and metrics (warm-up, repeats, median and spread; the machine recorded) "
                                   "into a JSON file; or compare two such files and exit 1 on a slowdown beyond "
                                   "--max-slowdown and beyond the measured spread.")
    p.add_argument("--methods", default="", help="comma-separated SR methods")
    p.add_argument("--metrics", default="", help="comma-separated metrics")
    p.add_argument("--sizes", default="64x64", help="generated inputs, width x height, comma-separated (LR size for "
                                                    "methods; metrics score HR = size x scale); default 64x64")
    p.add_argument("--dataset", help="measure on a dataset's LR images instead of generated inputs")
    p.add_argument("--limit", type=int, help="with --dataset: the first N images (sorted by id)")
    p.add_argument("--scale", type=int, default=4, help="SR scale (default 4)")
    p.add_argument("--batch", type=int, default=1, help="images per call for generated inputs (default 1)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), tf32, bf16 or fp16; recorded in every result")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (default 5)")
    p.add_argument("--data-root", help="with --dataset: data root")
    p.add_argument("--harness", action="store_true", help="with --dataset: also time the whole `srbench run` of the "
                                                          "methods x metrics (fresh run folder per pass) against the "
                                                          "methods' forward time inside it and called bare")
    p.add_argument("--orders", default="serial,pipelined",
                   help="with --harness: the run orders to time, in one invocation (default serial,pipelined: the "
                        "before/after of the pipelined runner); --batch and --workers apply to the pipelined one")
    p.add_argument("--workers", type=int, help="with --harness: loader threads of the pipelined run (default as "
                                               "srbench run)")
    p.add_argument("--out", type=Path, help="the JSON file to write (required unless --compare)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("BASELINE", "CURRENT"), help="compare two result files")
    p.add_argument("--max-slowdown", default="5%", help="with --compare: tolerated slowdown of the median (default 5%%)")
    p.add_argument("--junit", type=Path, help="with --compare: write JUnit XML here")
    p.add_argument("--markdown", type=Path, help="with --compare: write a Markdown summary here (also appended to "
                                                 "$GITHUB_STEP_SUMMARY when set)")


def cmd(args) -> int:
    from iqa.errors import SrbenchError

    if args.compare:
        from .compare import run_compare

        return run_compare(*args.compare, args.max_slowdown, junit_path=args.junit, markdown_path=args.markdown)
    if args.out is None:
        raise SrbenchError("srbench perf needs --out FILE (or --compare BASELINE CURRENT)")
    from .throughput import parse_sizes, run_perf, write

    doc = run_perf(methods=[m for m in args.methods.split(",") if m], metrics=[m for m in args.metrics.split(",") if m],
                   sizes=None if args.dataset else parse_sizes(args.sizes), dataset=args.dataset, limit=args.limit,
                   scale=args.scale, batch=args.batch, precision=args.precision, device=args.device,
                   warmup=args.warmup, repeats=args.repeats, data_root=args.data_root, harness=args.harness,
                   orders=tuple(o for o in args.orders.split(",") if o), workers=args.workers)
    print(f"wrote {write(doc, args.out)}")
    return 1 if any(r["error"] for r in doc["results"]) else 0
