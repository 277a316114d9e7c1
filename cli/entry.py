"""The `mmrt` command: one sub-command a module; user errors print one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys

import mmrt
from mmrt.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (plus where to look), exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from mmrt.cli import (
        bench,
        compare,
        data,
        evaluate,
        experiment,
        export,
        metrics,
        pretrain,
        quickstart,
        serve,
        train,
        tune,
    )

    parser = Parser(prog="mmrt", description="Multimodal runtime for edge sensor rigs: robust "
                    "training, per-modality export, KServe v2 serving, dropout benchmarks.")
    parser.add_argument("--version", action="version", version=f"mmrt {mmrt.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser,
                                metavar="COMMAND")
    for module in (data, pretrain, train, tune, evaluate, experiment, compare, metrics, export, serve,
                   bench, quickstart):
        module.add_parser(sub)
    return parser


def log_as(prog: str) -> None:
    """Log lines prefixed by the running command; a later call in the same process (a lab script
    running several commands) renames the prefix instead of keeping the first one's."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "mmrt", False)]
    if not ours and not root.handlers:  # as logging.basicConfig: leave a host's logging alone
        logging.basicConfig(level=logging.INFO)
        ours = root.handlers[:1]
        ours[0].mmrt = True  # type: ignore[attr-defined]
    for handler in ours:
        handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a report names the command that made it (``flags.made_where``)
    log_as(args.prog)
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"{args.prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
