"""Reproduce the training headline on bundled `small` data: every method on every training set,
three seeds, the paper's robustness metrics, and the ratios and gap shares its targets are set in.

    python -m benchmarks.train_robustness --out runs/bench-train [--seeds 0,1,2]
    python -m benchmarks.train_robustness --out runs/bench-train --objective mae

Writes RUN/experiment[-mae]/report.md, results.json and the plots (see `mmrt experiment`),
then prints the headline with the machine and the date. With both objectives run in the same
--out, also writes RUN/compare.md (contrastive and MAE side by side, as the paper's Table 3).
Resumable: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from mmrt.bench.timing import machine
from mmrt.cli import main as mmrt


def headline(report: str) -> str:
    """The report's Table 3 section: metrics per method and their ratios to fine-tuning's."""
    return report.split("## Robustness (paper Table 3)")[1].split("## Best eval set")[0].strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-train"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--objective", choices=["contrastive", "mae"], default="contrastive")
    args = p.parse_args()
    data = args.out / "data"
    if not (data / "datacard.json").is_file():
        assert mmrt(["data", "make", "--out", str(data), "--size", "small", "--seed", "0",
                     "--overwrite"]) == 0
    runs = {"contrastive": args.out / "experiment", "mae": args.out / "experiment-mae"}
    run = runs[args.objective]
    started = time.monotonic()
    flags = ["--resume"] if run.is_dir() else []
    assert mmrt(["experiment", "--data", str(data), "--out", str(run), "--preset", "small", "--seeds",
                 args.seeds, "--objective", args.objective, "--quiet", *flags]) == 0
    results = json.loads((run / "results.json").read_text())
    print(f"\nmachine: {machine()}; {date.today()}; {(time.monotonic() - started) / 60:.0f} min this "
          f"call; {args.objective} pretraining, seeds {results['seeds']}")
    print(headline((run / "report.md").read_text()))
    print(f"\nfull report: {run / 'report.md'}")
    if all((r / "results.json").is_file() for r in runs.values()):
        assert mmrt(["compare", *map(str, runs.values()), "--out", str(args.out / "compare.md")]) == 0


if __name__ == "__main__":
    main()
