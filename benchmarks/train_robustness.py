"""Reproduce the training headline on bundled `small` data: every method on every training set,
three seeds, the paper's robustness metrics, and the ratios the training issue targets.

    python -m mmrt.benchmarks.train_robustness --out runs/bench-train [--seeds 0,1,2]

Writes RUN/report.md, RUN/results.json and the plots (see `mmrt experiment`), then prints
the headline with the machine and the date. Resumable: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

from mmrt.cli import main as mmrt


def headline(report: str) -> str:
    """The report's Table 3 section: metrics per method and their ratios to fine-tuning's."""
    return report.split("## Robustness (paper Table 3)")[1].split("## Best eval set")[0].strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-train"))
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    data = args.out / "data"
    if not (data / "datacard.json").is_file():
        assert mmrt(["data", "make", "--out", str(data), "--size", "small", "--seed", "0",
                     "--overwrite"]) == 0
    run = args.out / "experiment"
    started = time.monotonic()
    flags = ["--resume"] if run.is_dir() else []
    assert mmrt(["experiment", "--data", str(data), "--out", str(run), "--preset", "small", "--seeds",
                 args.seeds, "--quiet", *flags]) == 0
    results = json.loads((run / "results.json").read_text())
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{date.today()}; {(time.monotonic() - started) / 60:.0f} min this call; seeds {results['seeds']}")
    print(headline((run / "report.md").read_text()))
    print(f"\nfull report: {run / 'report.md'}")


if __name__ == "__main__":
    main()
