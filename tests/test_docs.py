"""The README and the docs: every relative link reaches a file, and every #anchor a heading in it
(as GitHub makes anchors); the README stays a first screen."""

import json
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    body = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", body, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target}: no such file"
        if fragment and dest.suffix == ".md":
            assert fragment in anchors(dest), f"{page.name}: link to {target}: no such heading"


def test_the_readme_is_a_first_screen():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_the_command_reference_is_what_the_parsers_say():
    from lab.command_reference import DOC, render, subcommands
    from lab.generated import generated_part
    from mmrt.cli.entry import build_parser

    parser = build_parser()
    assert generated_part(DOC.read_text("utf-8")) == render(parser), \
        "docs/commands.md has drifted: python -m lab.command_reference --write"
    for name, sub in subcommands(parser).items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}: a flag without help"


def test_every_quoted_figure_is_its_sources_and_the_table_is_current():
    from lab import figures

    assert figures.stale() == [], "python -m lab.figures --write"
    first = figures.available()[0]
    page = f"took <!--fig {first.name}-->0.0<!--/fig--> minutes"
    assert figures.quoted(page) == f"took <!--fig {first.name}-->{first.value()}<!--/fig--> minutes"
    assert figures.QUOTE.findall("<!--fig a.b -->1<!--/fig-->") == []  # malformed: stale() counts it
    with pytest.raises(KeyError, match="no figure named 'nothing.here'"):
        figures.quoted("<!--fig nothing.here-->1<!--/fig-->")


def test_capture_takes_a_runs_plots_and_commit_with_its_json_and_refuses_what_is_not_the_command(
        tmp_path, monkeypatch):
    import hashlib

    from lab import figures

    shown = tmp_path / "docs" / "score.png"
    monkeypatch.setattr(figures, "DATA", tmp_path / "data")
    source = (tmp_path / "data" / "quickstart.json", "make it")
    monkeypatch.setattr(figures, "SOURCES", {"quickstart": source})
    monkeypatch.setattr(figures, "IMAGES", {"quickstart": {"bench/score.png": shown}})
    run = tmp_path / "run"
    (run / "bench").mkdir(parents=True)
    shown.parent.mkdir()
    plot = b"this run's plot"
    summary = {"minutes": 2.5, "flags": dict(figures.QUICKSTART_FLAGS),
               "plots": {"score.png": hashlib.sha256(plot).hexdigest()}}

    def capture(**changed) -> None:
        (run / "summary.json").write_text(json.dumps({**summary, **changed}), "utf-8")
        figures.capture("quickstart", run / "summary.json")

    with pytest.raises(SystemExit, match="no provenance.json"):
        capture()
    began = {"commit": "abc123", "date": "2026-12-03", "started": time.time() - 150}  # 2.5 minutes ago
    (run / "provenance.json").write_text(json.dumps(began), "utf-8")
    with pytest.raises(SystemExit, match="not the plot this run made"):
        capture()  # the plot is missing
    (run / "bench" / "score.png").write_bytes(b"another run's plot")
    with pytest.raises(SystemExit, match="not the plot this run made"):
        capture()
    (run / "bench" / "score.png").write_bytes(plot)
    with pytest.raises(SystemExit, match="not make quickstart's"):
        capture(flags={**summary["flags"], "seed": 3})
    with pytest.raises(SystemExit, match="data a previous run generated"):
        capture(data_reused=True)
    with pytest.raises(SystemExit, match="not of the same run"):
        capture(minutes=30.0)  # a later run in the same folder, begun without make quickstart
    with pytest.raises(SystemExit, match="names no plots"):
        capture(plots={})
    assert not (tmp_path / "data" / "quickstart.json").exists()  # nothing half-captured

    capture()
    assert shown.read_bytes() == plot
    captured = json.loads((tmp_path / "data" / "quickstart.json").read_text("utf-8"))
    assert captured["minutes"] == 2.5 and captured["command"] == "make it"
    assert captured["commit"] == "abc123"  # the commit the run began at, not the checkout's now


def test_a_figure_reads_keys_that_hold_dots_says_what_is_not_measured_and_counts(tmp_path, monkeypatch):
    from lab import figures

    rows = {"MASD (pool, 1x)": {"overall.R": {"mean": 0.61234}, "transfer.R": {"mean": None}}}
    doc = {"draws": [1001, 1002], "partial": True, "rows": rows}
    (tmp_path / "table.json").write_text(json.dumps(doc), "utf-8")
    monkeypatch.setattr(figures, "SOURCES", {"t": (tmp_path / "table.json", "make it")})
    assert figures.Figure("a", "t", "rows|MASD (pool, 1x)|overall.R|mean", ".3f", "").value() == "0.612"
    assert figures.Figure("b", "t", "rows|MASD (pool, 1x)|transfer.R|mean", ".3f", "").value() == "–"
    assert figures.Figure("c", "t", "draws", "count", "").value() == "2"
    absent = "rows|fine-tune on 10x the labels|overall.R|mean"  # a partial table without the row
    assert figures.Figure("d", "t", absent, ".3f", "", optional=True).value() == "–"
    with pytest.raises(KeyError):
        figures.Figure("e", "t", absent, ".3f", "").value()  # a figure that must exist does not hide
    (tmp_path / "table.json").write_text(json.dumps({**doc, "partial": False}), "utf-8")
    with pytest.raises(KeyError):  # a whole table lacks no row: a missing one is an error, not "–"
        figures.Figure("d", "t", absent, ".3f", "", optional=True).value()
    (tmp_path / "table.json").write_text(json.dumps({**doc, "partial": False, "runs": ["main"]}), "utf-8")
    mae = "rows|MAE: fine-tune|overall.R|mean"  # a whole table made without --mae lacks the MAE rows
    assert figures.Figure("f", "t", mae, ".3f", "", optional=True, run="mae").value() == "–"
    with pytest.raises(KeyError):  # but not a row of a run it was made with
        figures.Figure("g", "t", mae, ".3f", "", optional=True, run="main").value()


def test_a_figure_from_a_superseded_run_says_so():
    from lab import figures

    doc = {"per_draw": {"1": {"made": {"mae": {"superseded": "old", "x": 1}, "main": {}}}, "2": {"made": {}}}}
    assert figures.superseded(doc, "mae") and not figures.superseded(doc, "main")
    assert not figures.superseded(doc, "") and not figures.superseded({}, "mae")
    results = Path(__file__).parents[1] / "docs" / "results"
    marked = [line for line in (results / "figures.md").read_text().splitlines() if "**superseded**" in line]
    table = json.loads((results / "paper-table" / "table.json").read_text())
    assert bool(marked) == figures.superseded(table, "mae")
    assert all(line.startswith("| `paper.mae-") for line in marked)
