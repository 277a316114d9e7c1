"""Where a lab measurement came from: the checkout's commit, marked when it had uncommitted changes.

    python -m lab.provenance FOLDER   # FOLDER/provenance.json, before a run writes there (make quickstart)

Used by lab/paper_table.py, lab/paper_table_report.py, lab/release_foundation.py, lab/figures.py,
lab/serve_latency.py and lab/peers/bench.py."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


DIRTY = "with uncommitted changes"
NAMED = 8  # changed paths a commit names; more are counted


def commit(ignoring: Path | None = None) -> str:
    """HEAD's hash, with " (with uncommitted changes: PATH; PATH)" naming what the work tree changes
    (the first ``NAMED``, then a count); changes under ``ignoring`` (a run's own record folder, which
    it writes as it goes) do not count, where it is a folder below the checkout's root (the root
    itself exempts nothing)."""
    changed = [line.split(maxsplit=1)[1]
               for line in git("status", "--porcelain", *_excluding(ignoring)).splitlines()]
    if not changed:
        return git("rev-parse", "HEAD")
    more = f"; and {len(changed) - NAMED} more" if len(changed) > NAMED else ""
    return git("rev-parse", "HEAD") + f" ({DIRTY}: {'; '.join(changed[:NAMED])}{more})"


def _excluding(ignoring: Path | None) -> list[str]:
    """The pathspec that leaves ``ignoring`` out, where it is a folder below the checkout's root."""
    folder = None if ignoring is None else ignoring.resolve()
    if folder is not None and folder != CHECKOUT and folder.is_relative_to(CHECKOUT):
        return ["--", ".", f":(exclude,literal){folder.relative_to(CHECKOUT)}"]
    return []


CODE = ("*.py", "*.json", "*.toml", "*.cfg", "*.txt")  # what a run's code and settings are read from


def fingerprint(*ignoring: Path) -> str:
    """A digest of the checkout's code as it is: HEAD, and the uncommitted changes to its code and
    settings files (``CODE``), tracked or not, names and contents (leaving out the folders
    ``ignoring``: what a run writes). Unlike ``commit`` it changes with a second edit to a file
    already changed; an edit to the docs leaves it as it is."""
    spec = ["--", *CODE, *(f":(exclude,literal){f.resolve().relative_to(CHECKOUT)}" for f in ignoring
                           if f.resolve() != CHECKOUT and f.resolve().is_relative_to(CHECKOUT))]
    def out(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, check=True).stdout
    h = hashlib.sha256(out("rev-parse", "HEAD"))
    h.update(out("diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", *spec))
    for name in out("ls-files", "-z", "--others", "--exclude-standard", *spec).split(b"\0"):
        path = CHECKOUT / name.decode("utf-8", "surrogateescape")
        if name and path.is_file():
            h.update(b"\0" + name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def command(module: str) -> str:
    """The command line this lab script runs as, quoted as a shell takes it: ``python -m MODULE ARGS``."""
    return shlex.join(["python", "-m", module, *sys.argv[1:]])


NO_COMMIT = "unknown (not a git checkout)"


def record(folder: Path) -> None:
    """FOLDER/provenance.json: the commit, date and time a run begins at, for a run whose own
    summary cannot know them (the installed `mmrt quickstart`). Outside a git checkout (a source
    archive, no git) the commit is recorded as unknown and the run goes on."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        made_at = commit()
    except (OSError, subprocess.CalledProcessError):
        made_at = NO_COMMIT
    made = {"commit": made_at, "date": str(date.today()), "started": time.time()}
    (folder / "provenance.json").write_text(json.dumps(made) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m lab.provenance FOLDER")
    record(Path(sys.argv[1]))
