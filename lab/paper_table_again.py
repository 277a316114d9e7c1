"""A recorded run of the paper table made again and set beside the record: whether the code at
hand, on this machine, makes the figures the record holds.

    python -m lab.paper_table --out runs/again --draws 1001 --record docs/results/paper-table --again main

Used by lab/paper_table.py."""

from __future__ import annotations

STRATA = ("overall", "missing", "added", "transfer")


def compare(recorded: dict, made: dict) -> dict:
    """Every P and R of every method in every stratum, the record's against the run made again:
    how many there are, how many are equal, and the largest difference and where."""
    diffs = []
    for method, kept in recorded.items():
        for stratum in STRATA:
            for name in ("P", "R"):
                a, b = kept["metrics"][stratum][name], made[method]["metrics"][stratum][name]
                if a is not None and b is not None:
                    diffs.append((abs(b - a), f"{method} {stratum} {name}", a, b))
    largest = max(diffs, default=(0.0, "none", None, None))
    return {"figures": len(diffs), "equal": sum(1 for d, *_ in diffs if d == 0),
            "largest": {"difference": largest[0], "where": largest[1], "recorded": largest[2],
                        "made": largest[3]}}


def line(seed: int, run: str, found: dict) -> str:
    largest = found["largest"]
    return (f"draw {seed}, {run} made again: {found['figures']} figures, {found['equal']} equal to the "
            f"record's, the largest difference {largest['difference']:.5f} ({largest['where']})")
