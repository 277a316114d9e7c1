"""`mmrt eval MODEL --data DIR`: a trained model's score on every modality subset of a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="score a trained model on every modality subset",
                       description="Scores (mAP for multi-label, top-1 for single-label) of MODEL on "
                       "every non-empty modality subset of DATA/<split>.jsonl.")
    p.add_argument("model", type=Path, help="model directory from 'mmrt train'")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", default="eval", help="labeled split to score (default: eval)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.set_defaults(run=run, prog=p.prog)


def run(args: argparse.Namespace) -> int:
    from mmrt.training.stages.evaluate import evaluate_model

    scores, metric = evaluate_model(args.model, args.data, args.split, args.device)
    if args.json:
        print(json.dumps({"metric": metric, "scores": scores}, indent=2))
    else:
        width = max(map(len, scores))
        print(f"{'modalities':<{width}}  {metric}")
        for key, value in scores.items():
            print(f"{key:<{width}}  {value:.4f}")
    return 0
