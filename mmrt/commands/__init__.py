"""One module a sub-command: ``add_parser(subparsers)`` registers flags, ``run(args)`` does the work."""

from mmrt.errors import UserError


def check_seed(seed: int) -> int:
    """Seeds feed numpy's SeedSequence, which takes non-negative integers only."""
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")
    return seed
