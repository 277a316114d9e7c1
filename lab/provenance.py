"""Where a lab measurement came from: the checkout's commit, marked when it had uncommitted changes.

Used by lab/paper_table.py, lab/release_foundation.py, lab/figures.py and lab/peers/bench.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit() -> str:
    """HEAD's hash, with " (with uncommitted changes)" when the work tree differs from it."""
    return git("rev-parse", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain") else "")
