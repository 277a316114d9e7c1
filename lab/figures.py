"""One table of the project's current figures, each read from the JSON it came from, and every
figure the README and the reference pages quote kept equal to it.

    python -m lab.figures                               # check (exit 1 naming what differs)
    python -m lab.figures --write                       # rewrite docs/results/figures.md and the quotes
    python -m lab.figures --capture quickstart runs/quickstart/summary.json

A page quotes a figure as <!--fig NAME-->VALUE<!--/fig--> (GitHub shows only the value). A source
is a committed JSON under docs/results/data/ (``--capture`` copies a run's JSON there with the
commit it was made at and the command that made it) or a file the repository ships (the released
foundation's card). Checked by tests/test_docs.py. docs/results/paper-table/table.md names it in
the notes on where runs were made (uncommitted changes to it beside a run)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.paper_table_cells import made_span, superseded_parts
from lab.paper_table_runs import foundation_part
from lab.peers.bench import wording
from lab.provenance import DIRTY, NO_COMMIT, commit
from mmrt import atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "results" / "data"
TABLE = ROOT / "docs" / "results" / "figures.md"
QUOTE = re.compile(r"<!--fig ([\w.+-]+)-->(.*?)<!--/fig-->")
SOURCES = {  # name -> (file, the command that makes it)
    "quickstart": (DATA / "quickstart.json", "make quickstart (mmrt quickstart --out runs/quickstart)"),
    "foundation": (ROOT / "training" / "foundations" / "small" / "release.json",
                   "python -m lab.release_foundation --work runs/release --out training/foundations/small"),
    "peers": (DATA / "peers.json", "python -m lab.peers.bench --bundle runs/quickstart/bundle --data "
              "runs/quickstart/data --drop video"),
    "serving": (DATA / "serving.json", "python -m lab.serve_latency --bundle runs/quickstart/bundle"),
    "paper-table": (ROOT / "docs" / "results" / "paper-table" / "table.json",
                    "python -m lab.paper_table --out runs/paper-table --record docs/results/paper-table"),
}
IMAGES = {  # name -> {a run's plot, relative to its JSON: where the docs show it}, captured with the JSON
    "quickstart": {"bench/score.png": ROOT / "docs" / "results" / "img" / "quickstart-score.png",
                   "bench/vs_monolithic.png": ROOT / "docs" / "results" / "img" / "quickstart-latency.png"},
}


@dataclass(frozen=True)
class Figure:
    name: str
    source: str
    path: str  # dotted keys into the source's JSON (list items by index)
    fmt: str
    what: str
    optional: bool = False  # a row a table may not hold: "–" rather than an error where the table
    # is partial (--runs) or was made without the row's run (``run``: the MAE rows need --mae)
    run: str = ""

    def value(self) -> str:
        node = doc = read(self.source)
        for key in self.path.split("|" if "|" in self.path else "."):  # "|" where keys hold dots
            left_out = doc.get("partial") or (self.run and self.run not in doc.get("runs", ()))
            if self.optional and left_out and isinstance(node, dict) and key not in node:
                return "–"
            node = node[int(key)] if isinstance(node, list) else node[key]
        if node is None:
            return "–"  # not measured
        if self.fmt == "count":
            return str(len(node))
        if self.fmt == "interval":  # a 95% interval [low, high] of a change, in words
            low, high = node
            return "clear of zero" if low > 0 or high < 0 else "not clear of zero"
        if self.fmt in ("range", "range0"):  # a figure per round: its spread
            digits = 0 if self.fmt == "range0" else 2
            return f"{min(node):.{digits}f}-{max(node):.{digits}f}"
        if self.fmt in ("latency", "throughput"):  # mmrt's ratio to a peer per round, in words
            return wording(node, better_below=self.fmt == "latency")
        return format(node, self.fmt)


def _rows(prefix: str, index: int, what: str) -> list[Figure]:
    key = f"rows.{index}"
    return [Figure(f"{prefix}.ft", "quickstart", f"{key}.ft", ".3f", f"{what}: fine-tune mAP"),
            Figure(f"{prefix}.masd", "quickstart", f"{key}.masd+wiseft", ".3f", f"{what}: MASD+WiSE-FT mAP"),
            Figure(f"{prefix}.change", "quickstart", f"{key}.change", "+.3f", f"{what}: the change"),
            Figure(f"{prefix}.low", "quickstart", f"{key}.ci95.0", "+.3f", f"{what}: 95% interval, low"),
            Figure(f"{prefix}.high", "quickstart", f"{key}.ci95.1", "+.3f", f"{what}: 95% interval, high"),
            Figure(f"{prefix}.clear", "quickstart", f"{key}.ci95", "interval",
                   f"{what}: the change's interval")]


PEERS = ("mlserver", "mlserver-batch", "triton", "mlserver-mono", "triton-mono")
FIGURES = [
    Figure("quickstart.minutes", "quickstart", "minutes", ".1f",
           "quickstart end to end, minutes (installs excluded)"),
    *_rows("quickstart.unseen", 0, "quickstart, trained on audio+video, scored on text alone"),
    *_rows("quickstart.dropped", 1, "quickstart, trained on audio+video, scored with video dropped"),
    Figure("quickstart.p50", "quickstart", "served.p50_ms", ".1f",
           "served with video dropped, p50 ms, per-modality"),
    Figure("quickstart.mono_p50", "quickstart", "served.monolithic_p50_ms", ".1f",
           "served with video dropped, p50 ms, monolithic graph"),
    Figure("quickstart.chance", "quickstart", "chance", ".3f", "quickstart eval: chance mAP"),
    Figure("quickstart.ratio", "quickstart", "served.ratio", ".2f", "per-modality p50 over monolithic"),
    *[Figure(f"foundation.probe.{m}", "foundation", f"probe_validation.{m}", ".3f",
             f"released foundation: linear probe on validation, {m}") for m in ("audio", "video", "text")],
    *[Figure(f"foundation.{where}.{pair}", "foundation", f"alignment.{key}.pairs.{pair}.retrieval", ".2f",
             f"released foundation: {pair} retrieval on {where} clips")
      for where, key in (("held_out", "held_out"), ("own", "pretrain"))
      for pair in ("audio+video", "audio+text", "video+text")],
    *[Figure(f"peers.{peer}.{key}.{fmt}", "peers", f"ranges.{peer}.{key}_ratio", fmt,
             f"mmrt's {key} over {peer}'s, per round ({'spread' if fmt == 'range' else 'in words'})")
      for peer in PEERS
      for key, words in (("p50", "latency"), ("per_s", "throughput")) for fmt in ("range", words)],
    *[Figure(f"peers.{server}.{key}", "peers", f"ranges.{server}.{key}", fmt,
             f"{server}: {what}, over rounds")
      for server in ("mmrt", *PEERS)
      for key, fmt, what in (("p50_ms", "range", "p50 ms at 1 client"),
                             ("per_s", "range0", "requests/s at 16 clients"))],
    *[Figure(f"serving.{slug}.{key}", "serving", f"workloads.{workload}.each_round.{key}", "range",
             f"{workload}: {what}, over rounds")
      for slug, workload in (("all", "all"), ("video-dropped", "video dropped"), ("text-only", "text only"))
      for key, what in (("served_ms", "p50 ms through tritonclient.grpc"),
                        ("in_process_ms", "p50 ms of the same engine in-process"),
                        ("added_ms", "ms the server adds (served - in-process)"),
                        ("floor_ms", "p50 ms of a server that answers at once (the gRPC floor)"),
                        ("above_floor_ms", "ms the server adds above the floor"))],
    Figure("paper.draws", "paper-table", "draws", "count", "the paper's table: data draws pooled"),
    *[Figure(f"paper.{slug}.{stratum}.{name}", "paper-table", f"rows|{row}|{stratum}.{name}|mean", ".3f",
             f"the paper's table, {row}: {stratum} {name}, mean over the draws", optional=True, run=run)
      for slug, row, run in (("lp", "linear probe", "main"), ("ft", "fine-tune", "main"),
                             ("masd", "MASD (pretraining pool, 1x)", "main"),
                             ("masd-wiseft", "MASD+WiSE-FT (pretraining pool, 1x)", "main"),
                             ("ft-10x", "fine-tune on 10x the labels", "labels10x"),
                             ("lp-10x", "linear probe on 10x the labels", "labels10x"),
                             ("mae-lp", "MAE: linear probe", "mae"), ("mae-ft", "MAE: fine-tune", "mae"),
                             ("mae-masd", "MAE: MASD", "mae"))
      for stratum, name in (("overall", "P"), ("overall", "R"), ("missing", "R"), ("added", "R"),
                            ("transfer", "P"), ("transfer", "R"))],
    *[Figure(f"paper.unseen-text.{slug}", "paper-table", f"unseen_text|{key}|mean", fmt,
             f"the paper's table, trained on audio+video, scored on text alone: {what}, mean over the draws",
             optional=True, run="main")
      for slug, key, fmt, what in (("ft", "fine-tune", ".3f", "fine-tune"),
                                   ("masd", "MASD+WiSE-FT (pretraining pool, 1x)", ".3f", "MASD+WiSE-FT"),
                                   ("change", "change", "+.3f", "the change"))],
    Figure("foundation.chance", "foundation", "alignment.held_out.chance.retrieval", ".3f",
           "released foundation: retrieval by chance"),
    Figure("foundation.minutes", "foundation", "pretrain_minutes", ".0f",
           "released foundation: pretraining minutes"),
]


def read(source: str) -> dict:
    return json.loads(SOURCES[source][0].read_text("utf-8"))


def available() -> list[Figure]:
    return [f for f in FIGURES if SOURCES[f.source][0].is_file()]


def table() -> str:
    lines = ["# Current figures", "",
             "Generated by `python -m lab.figures --write` from the JSON each figure came from; the README "
             "and the reference pages quote these values (a test keeps them equal). Older pages under "
             "docs/results/ are dated records of their own day.", "",
             "| figure | value | what | date | machine | commit | command | source |",
             "|---|---|---|---|---|---|---|---|"]
    for f in available():
        doc, (path, command) = read(f.source), SOURCES[f.source]
        made = {**doc, **made_of(doc, f.run)}
        date, machine = made.get("made_dates", doc["date"]), made.get("made_machines", doc["machine"])
        what = f.what + (" (**superseded**: made with settings the preset has since changed; the table "
                         "says why)" if superseded(doc, f.run) else "")
        lines.append(f"| `{f.name}` | {f.value()} | {what} | {date} | {machine} | "
                     f"{short(str(made.get('commit', 'not recorded')))} | `{doc.get('command', command)}` | "
                     f"[{path.name}]({os.path.relpath(path, TABLE.parent)}) |")
    return "\n".join([*lines, ""])


def made_of(doc: dict, run: str) -> dict:
    """Where a table's ``run`` and the foundation it was made from were made, on every draw (the
    paper table's record); nothing for a figure of no run."""
    if not run:
        return {}
    parts = [made for draw in doc.get("per_draw", {}).values()
             for part, made in draw.get("made", {}).items() if part in (run, foundation_part(run))]
    return made_span(parts) if parts else {}


def superseded(doc: dict, run: str) -> bool:
    """Whether a table's ``run`` is kept, marked superseded, on some draw (the paper table's record)."""
    return bool(run) and run in superseded_parts(doc)


def short(commit: str) -> str:
    """A commit's first 12 characters, marked when made with uncommitted changes; several, each so."""
    if ", " in commit:
        return ", ".join(short(one) for one in commit.split(", "))
    dirty = DIRTY in commit
    return commit.split()[0][:12] + (" (uncommitted changes)" if dirty else "")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def quoted(text: str) -> str:
    values = {f.name: f.value() for f in available()}

    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no figure named {m.group(1)!r} (or its source is missing)")
        return f"<!--fig {m.group(1)}-->{values[m.group(1)]}<!--/fig-->"
    return QUOTE.sub(one, text)


def stale() -> list[str]:
    """What differs from the sources: the table, or a page's quote (by page and figure)."""
    out = [] if TABLE.is_file() and TABLE.read_text("utf-8") == table() else [str(TABLE.relative_to(ROOT))]
    for page in pages():
        text = page.read_text("utf-8")
        if quoted(text) != text or text.count("<!--fig") != len(QUOTE.findall(text)):
            out.append(str(page.relative_to(ROOT)))  # a quote differs, or one is malformed and unchecked
    return out


QUICKSTART_FLAGS = {"size": "small", "seed": 0, "pretrain": False, "pretrain_epochs": None}  # its defaults


def refused(source: str, path: Path, doc: dict) -> str | None:
    """Why a run's JSON cannot stand for its source's command, if it cannot."""
    if doc.get("data_reused"):
        return ("made with data a previous run generated, so its minutes are not a fresh run's: rm -rf the "
                "run's folder and run it again")
    if source == "quickstart":
        if doc.get("flags") != QUICKSTART_FLAGS:
            return f"made with {doc.get('flags')}, not make quickstart's {QUICKSTART_FLAGS}"
        provenance = path.parent / "provenance.json"
        if not provenance.is_file():
            return "no provenance.json beside it (the commit it ran at): run it with make quickstart"
        began = json.loads(provenance.read_text("utf-8"))
        if began["commit"] == NO_COMMIT:
            return "made outside a git checkout: its commit is unknown"
        took = path.stat().st_mtime - began.get("started", 0)
        if abs(took - 60 * doc["minutes"]) > 120:  # the summary is written as the run ends
            return (f"provenance.json was written {took / 60:.1f} minutes before the summary, which says "
                    f"its run took {doc['minutes']}: they are not of the same run")
        if not doc.get("plots"):
            return "the summary names no plots"
        for name, digest in doc["plots"].items():
            plot = path.parent / "bench" / name
            if not plot.is_file() or hashlib.sha256(plot.read_bytes()).hexdigest() != digest:
                return f"bench/{name} is not the plot this run made"
    return None


def capture(source: str, path: Path) -> None:
    """Copy a run's JSON into docs/results/data with the commit it ran at (its own record, the
    provenance.json beside it, or else the checkout's now), and the plots the docs show from the
    same run."""
    target, command = SOURCES[source]
    doc = json.loads(path.read_text("utf-8"))
    why = refused(source, path, doc)
    if why:
        raise SystemExit(f"{path}: {why}")
    provenance = path.parent / "provenance.json"
    if provenance.is_file():
        doc.setdefault("commit", json.loads(provenance.read_text("utf-8"))["commit"])
    doc.setdefault("command", command)
    doc.setdefault("commit", commit())  # a report that records its own commit keeps it
    plots = {path.parent / name: shown for name, shown in IMAGES.get(source, {}).items()}
    missing = [str(plot) for plot in plots if not plot.is_file()]
    if missing:
        raise SystemExit(f"{path}: the run has no {', '.join(missing)}: capture a whole run's folder")
    DATA.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, json.dumps(doc, indent=1) + "\n")
    for plot, shown in plots.items():
        atomic.write_bytes(shown, plot.read_bytes())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the table and every quote")
    p.add_argument("--capture", nargs=2, metavar=("SOURCE", "JSON"), help=f"one of {', '.join(SOURCES)}")
    args = p.parse_args()
    if args.capture:
        capture(args.capture[0], Path(args.capture[1]))
    if args.write or args.capture:
        atomic.write_text(TABLE, table())
        for page in pages():
            text = page.read_text("utf-8")
            if quoted(text) != text:
                atomic.write_text(page, quoted(text))
        return 0
    differ = stale()
    for name in differ:
        print(f"{name}: differs from its sources (python -m lab.figures --write)", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
