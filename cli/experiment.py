"""`mmrt experiment`: every method on every training-modality set, with the paper's report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrt.cli.flags import (
    check_seed,
    downstream_flags,
    downstream_overrides,
    made_where,
    speed_flags,
    speed_of,
)
from mmrt.errors import UserError
from mmrt.methods import METHODS, OBJECTIVES


def _list(text: str, kind, flag: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected a comma list") from None
    if not values:
        raise UserError(f"{flag} {text!r}: expected a comma list")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser(
        "experiment", help="all methods x all training sets x all eval sets, with robustness report",
        description="Per seed: pretrain once, train every method on every non-empty training-modality "
        "set, score each model on every non-empty eval set. Writes RUN/results.json, RUN/report.md "
        "(paper Tables 3-4), PNG plots and RUN/models/<method>/<M_T>/ (RUN/seed-<s>/... with several "
        "seeds). Interrupted runs continue with --resume.")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (see 'mmrt data make')")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--preset", default="small", help="tiny, small or base (default: small)")
    p.add_argument("--objective", choices=list(OBJECTIVES), default="contrastive",
                   help="pretraining: contrastive (default) or mae")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma list (default: all of {','.join(METHODS)})")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="one seed (default 0)")
    seeds.add_argument("--seeds", help="comma list of seeds, e.g. 0,1,2: mean ± std over them")
    p.add_argument("--alpha", type=float, default=0.75,
                   help="WiSE-FT alpha of the wiseft and masd+wiseft rows (default 0.75)")
    p.add_argument("--alphas", default="0,0.25,0.5,0.75,1", help="alphas of the WiSE-FT sweep")
    p.add_argument("--pretrained", metavar="MODEL",
                   help="use this model from 'mmrt pretrain' (or a released foundation by name: small) "
                   "for every seed instead of pretraining")
    p.add_argument("--holdout", type=float, default=0.0, metavar="SHARE",
                   help="score on this share of train held out (validation, seeded by the seed), "
                   "training on the rest; eval is not read (default 0: score on eval)")
    p.add_argument("--train-sets", metavar="LIST",
                   help="comma list of training sets to run, e.g. audio,video,text (default: every "
                   "non-empty subset; the oracle needs them all)")
    p.add_argument("--pretrain-epochs", type=int, help="override the preset's pretraining epochs")
    p.add_argument("--epochs", type=int, help="override the preset's fine-tuning epochs")
    p.add_argument("--lr", type=float, help="override the preset's fine-tuning learning rate")
    downstream_flags(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    speed_flags(p)
    p.set_defaults(run=run, prog=p.prog)


def run(args: argparse.Namespace) -> int:
    from mmrt.training.experiments.experiment import ExperimentOptions, experiment
    from mmrt.training.model.foundations import resolve_pretrained

    seeds = (_list(args.seeds, int, "--seeds") if args.seeds else (args.seed or 0,))
    for s in seeds:
        check_seed(s)
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {args.seeds}: a seed is repeated")
    experiment(ExperimentOptions(
        data=args.data, out=args.out, preset=args.preset, objective=args.objective,
        methods=_list(args.methods, str.strip, "--methods"),
        seeds=seeds, alphas=_list(args.alphas, float, "--alphas"), alpha=args.alpha,
        downstream=downstream_overrides(args), holdout=args.holdout,
        pretrained=None if args.pretrained is None else resolve_pretrained(args.pretrained),
        train_sets=_list(args.train_sets, str.strip, "--train-sets") if args.train_sets else (),
        pretrain_epochs=args.pretrain_epochs, epochs=args.epochs, steps=args.steps, lr=args.lr,
        resume=args.resume,
        overwrite=args.overwrite, device=args.device, progress=not args.quiet, speed=speed_of(args),
        made=made_where(args)))
    return 0
