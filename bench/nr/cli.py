"""``srbench iqa train sfd`` (and the ``iqa eval`` sub-command of bench.nr.eval)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_iqa_parser(sub) -> None:
    iqa = sub.add_parser("iqa", help="train and evaluate no-reference quality metrics (SFD-IQA)")
    isub = iqa.add_subparsers(dest="iqa_action", required=True, parser_class=type(iqa))
    t = isub.add_parser("train", help="train a metric's discriminators (opinion-unaware)",
                        description="Train the SFD discriminators (Feat-D + prompt/anchor pair) on real HR patches "
                                    "of <data>/train (T91, BSDS500, Kodak24) against SR outputs and synthetic "
                                    "degradations. Resumes when --out already holds a training of the same config.")
    t.add_argument("what", choices=["sfd"])
    t.add_argument("--backbone", help="vgg16 (default) or an open_clip model, e.g. clip:ViT-B-16/openai")
    t.add_argument("--config", default="cpu", help="preset cpu (default: minutes on a CPU), gpu, or a TOML file")
    t.add_argument("--out", type=Path, required=True, help="training folder (checkpoint, log, resumable state)")
    t.add_argument("--data-root", help="folder holding train/ (default: first entry of SRBENCH_DATA)")
    t.add_argument("--steps", type=int, help="override the number of steps")
    t.add_argument("--seed", type=int, help="override the seed")
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    t.add_argument("--no-progress", action="store_true")
    try:
        from bench.nr.eval import add_eval_parser
    except ImportError:  # pragma: no cover
        return
    add_eval_parser(isub)


def cmd_iqa(args: argparse.Namespace) -> int:
    if args.iqa_action == "eval":
        from bench.nr.eval import cmd_eval

        return cmd_eval(args)
    from bench.train.sfd_iqa import load_config, train_sfd

    cfg = load_config(args.config, args.backbone, steps=args.steps, seed=args.seed, device=args.device)
    path = train_sfd(cfg, args.out, data_root=args.data_root, progress=False if args.no_progress else None)
    print(f"score with it: srbench score PATH --metric sfd-iqa-vgg16 (shipped), or in Python "
          f"iqa.create_metric('sfd-iqa', checkpoint='{path}')")
    return 0
