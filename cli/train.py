"""`mmrt train`: a downstream method (lp, ft, masd, wiseft, masd+wiseft, masd-cw, moddrop) on one
modality set."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrt.cli.flags import (
    check_checkpoint_every,
    check_seed,
    downstream_flags,
    downstream_overrides,
    speed_of,
    training_flags,
)
from mmrt.methods import METHODS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a classifier on the modalities M_T from a pretrained model",
        description="Methods: " + "; ".join(f"{m.name}: {m.description}" for m in METHODS.values())
        + ". Writes a model directory for 'mmrt export'.")
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train.jsonl")
    p.add_argument("--pretrained", required=True, metavar="MODEL",
                   help="model directory from 'mmrt pretrain', or a released foundation by name (small)")
    p.add_argument("--method", required=True, choices=METHODS, metavar="METHOD",
                   help=f"one of {', '.join(METHODS)} (above)")
    p.add_argument("--modalities", required=True,
                   help="training modalities M_T joined by '+', e.g. audio+video")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.75],
                   help="WiSE-FT mixing weight(s) of the tuned model (default 0.75); several values "
                   "write OUT/alpha-<a>/ each")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="share of train.jsonl kept out as a validation split; its scores on every "
                   "modality subset are logged and saved in config.json (default 0)")
    p.add_argument("--keep-stages", action="store_true",
                   help="keep the intermediate models (probe, fine-tuned) under OUT/stages/")
    training_flags(p)
    downstream_flags(p)
    p.set_defaults(run=run, prog=p.prog)


def run(args: argparse.Namespace) -> int:
    from mmrt.training.experiments.train import TrainOptions, train
    from mmrt.training.model.foundations import resolve_pretrained

    train(TrainOptions(
        data=args.data, pretrained=resolve_pretrained(args.pretrained), method=args.method,
        modalities=args.modalities,
        out=args.out, alphas=tuple(args.alpha), downstream=downstream_overrides(args), epochs=args.epochs,
        steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, holdout=args.holdout, seed=check_seed(args.seed),
        resume=args.resume, checkpoint_every=check_checkpoint_every(args.checkpoint_every),
        overwrite=args.overwrite,
        keep_stages=args.keep_stages, device=args.device,
        progress=not args.quiet, speed=speed_of(args)))
    return 0
