"""`mmrt compare RUN_A RUN_B ...`: experiments side by side, as the paper's Table 3 sets its
contrastive and MAE rows one above the other."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrt import atomic
from mmrt.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="experiments side by side (e.g. contrastive vs MAE pretraining)",
        description="Reads RUN/results.json of each 'mmrt experiment' run and prints their Table 3 "
        "rows one run after the other, each method's ratios against its own run's ft, and each "
        "run's Table 4. Runs must share the metric and the modalities.")
    p.add_argument("runs", nargs="+", type=Path, help="experiment run folders (two or more)")
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    p.set_defaults(run=run, prog=p.prog)


def load_results(run: Path) -> dict:
    path = run / "results.json"
    try:
        doc = json.loads(path.read_text("utf-8"))
    except OSError:
        raise UserError(f"{run}: no results.json (is it an 'mmrt experiment' run that finished?)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or not {"metric", "modalities", "methods", "settings"} <= set(doc):
        raise UserError(f"{path}: not an mmrt experiment's results.json")
    return doc


def labels(runs: list[Path], docs: list[dict]) -> list[str]:
    """Each run's pretraining objective; with its folder name where two runs share one; the
    folder's path where even those clash."""
    objectives = [d["settings"].get("objective", "contrastive") for d in docs]
    for names in (objectives, [f"{o} ({r.name})" for o, r in zip(objectives, runs, strict=True)]):
        if len(set(names)) == len(names):
            return names
    return [str(r) for r in runs]


def run(args: argparse.Namespace) -> int:
    from mmrt.training.experiments.report import comparison

    if len(args.runs) < 2:
        raise UserError("compare needs two run folders or more")
    docs = [load_results(r) for r in args.runs]
    for r, d in zip(args.runs[1:], docs[1:], strict=True):
        if (d["metric"], d["modalities"]) != (docs[0]["metric"], docs[0]["modalities"]):
            raise UserError(f"{r}: metric {d['metric']} on {d['modalities']} cannot sit beside "
                            f"{args.runs[0]}'s {docs[0]['metric']} on {docs[0]['modalities']}")
    text = comparison(dict(zip(labels(args.runs, docs), docs, strict=True)))
    print(text)
    if args.out:
        atomic.write_text(args.out, text + "\n")
    return 0
