"""`mmrt tune`: a grid search of the fine-tuning recipe, scored on validation only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmrt.cli.flags import check_seed, made_where, speed_flags, speed_of
from mmrt.errors import UserError

GRID_FLAGS = {"lr": float, "steps": int, "mixup": float, "drop_path": float, "augment": str}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tune", help="choose the fine-tuning recipe on validation (grid search)",
        description="For each point of the grid (the product of the comma lists given; an axis not "
        "given keeps the preset's value), train lp and ft on every training-modality set from "
        "--pretrained, on train minus a held-out share, and score on that share (eval is never "
        "read). The chosen point has the best mean in-distribution score p(M_T; M_T) among the "
        "points where ft beats lp on every training set. Writes OUT/tune.md, OUT/tune.json and a "
        "run folder per point (OUT/points/<point>/); --resume skips finished points.")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (see 'mmrt data make')")
    p.add_argument("--pretrained", required=True, metavar="MODEL",
                   help="model directory from 'mmrt pretrain', or a released foundation by name (small)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--holdout", type=float, default=0.25, metavar="SHARE",
                   help="share of train held out for validation (default 0.25)")
    grid = p.add_argument_group("the grid: comma lists")
    grid.add_argument("--lr", help="fine-tuning peak learning rates, e.g. 1e-4,3e-4")
    grid.add_argument("--steps", help="fine-tuning budgets in optimizer steps, e.g. 210,1050")
    grid.add_argument("--mixup", help="mixup shares, e.g. 0,0.5")
    grid.add_argument("--drop-path", help="drop path rates, e.g. 0,0.1")
    grid.add_argument("--augment", help="modality augmentation: on,off")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split and training (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    speed_flags(p)
    p.set_defaults(run=run, prog=p.prog)


def parse_axis(flag: str, text: str, kind) -> tuple:
    """A comma list of one grid axis; ``on``/``off`` for augment."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise UserError(f"--{flag} {text!r}: no values (expected a comma list, e.g. 1e-4,3e-4)")
    try:
        if kind is str:
            if any(v not in ("on", "off") for v in items):
                raise ValueError
            return tuple(v == "on" for v in items)
        values = tuple(kind(v) for v in items)
    except ValueError:
        expected = "on,off" if kind is str else f"{kind.__name__} values"
        raise UserError(f"--{flag} {text!r}: expected a comma list of {expected}") from None
    if len(set(values)) != len(values):
        raise UserError(f"--{flag} {text!r}: a value is repeated")
    return values


def run(args: argparse.Namespace) -> int:
    from mmrt.training.experiments.tune import TuneOptions, tune
    from mmrt.training.model.foundations import resolve_pretrained

    grid = {axis: parse_axis(axis.replace("_", "-"), getattr(args, axis), kind)
            for axis, kind in GRID_FLAGS.items() if getattr(args, axis) is not None}
    pretrained = resolve_pretrained(args.pretrained)
    doc = tune(TuneOptions(data=args.data, pretrained=pretrained, out=args.out, grid=grid,
                           holdout=args.holdout, seed=check_seed(args.seed), resume=args.resume,
                           overwrite=args.overwrite, device=args.device, progress=not args.quiet,
                           speed=speed_of(args), made=made_where(args)))
    print((args.out / "tune.md").read_text("utf-8"), end="")
    if doc["chosen"] is None:
        print("mmrt tune: no grid point passes the guard (ft above lp on every training set)",
              file=sys.stderr)
        return 1
    return 0
