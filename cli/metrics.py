"""`mmrt metrics FILE`: the paper's Performance / Robustness metrics from a p-matrix."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmrt.errors import UserError
from mmrt.robustness import PMatrix, markdown_table, robustness_report


def add_parser(sub) -> None:
    p = sub.add_parser(
        "metrics", help="P/R robustness metrics from a p-matrix JSON",
        description='Input: {"modalities": [...], "scores": {"<M_T>": {"<M_E>": number}}} with '
        "subset keys such as 'audio+text' (names in the order of 'modalities'); every training "
        "set needs a score on every non-empty eval set. Use '-' to read standard input.")
    p.add_argument("file", help="p-matrix JSON file, or - for standard input")
    p.add_argument("--baseline", metavar="FILE",
                   help="the fine-tuning p-matrix: its diagonal gives the oracle (each eval set's "
                   "specialist) and the report adds the share of the baseline-to-oracle gap closed")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    p.set_defaults(run=run, prog=p.prog)


def load_pmatrix(file: str) -> PMatrix:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{file}: cannot read ({e.strerror})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return PMatrix.from_json(doc, source=file)


def run(args: argparse.Namespace) -> int:
    if args.file == "-" and args.baseline == "-":
        raise UserError("FILE and --baseline cannot both be standard input")
    baseline = load_pmatrix(args.baseline) if args.baseline else None
    report = robustness_report(load_pmatrix(args.file), baseline)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown_table(report), end="")
    return 0
