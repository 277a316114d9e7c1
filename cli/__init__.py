"""mmrt.cli: the command line, the top room. It alone imports every other room (lazily, per
sub-command, so `mmrt serve` never loads torch); nothing below imports it.

One module a sub-command: ``add_parser(subparsers)`` registers its flags, ``run(args)`` does the
work; the flags several commands share are in ``flags``.
"""

from mmrt.cli.entry import main

__all__ = ["main"]
