"""One module a sub-command: ``add_parser(subparsers)`` registers flags, ``run(args)`` does the work."""

import argparse

from mmrt.errors import UserError


def check_seed(seed: int) -> int:
    """Seeds feed numpy's SeedSequence, which takes non-negative integers only."""
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")
    return seed


def check_checkpoint_every(steps: int) -> int:
    if steps <= 0:
        raise UserError(f"--checkpoint-every {steps}: expected a positive number of steps")
    return steps


def training_flags(p: argparse.ArgumentParser) -> None:
    """Flags every training command shares."""
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs for this stage")
    p.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    p.add_argument("--batch-size", type=int, help="override the preset's global batch size")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS",
                   help="save resumable state every STEPS optimizer steps (default 50)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
