"""table.md of `lab.paper_table`: Table 3 pooled over data draws, each draw's figures, the
paper's claims as reproduced or not, the targets, and the headline's Figures 5 and 6.

Used by lab/paper_table.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.paper_table_cells import (
    MEMORISED,
    SMALL,
    each,
    held_out_retrieval,
    mean_std,
    memorised_pairs,
    superseded_parts,
)
from lab.paper_table_mae import MAE_FINETUNE, MAE_PROBE, collapse, mae_learns, section
from lab.paper_table_runs import ROWS
from lab.provenance import DIRTY
from mmrt.robustness import STRATUM_TITLES

TITLES = {"overall": "Overall", **STRATUM_TITLES}
HEADLINE = "MASD+WiSE-FT (pretraining pool, 1x)"
BASELINE, PROBE = "fine-tune", "linear probe"
COLUMNS = [("overall", "P_best"), ("overall", "R_best"), ("overall", "P"), ("overall", "R"),
           *((s, n) for s in STRATUM_TITLES for n in ("P", "R"))]


def _shown(doc: dict, label: str) -> str:
    """A row's label, marked where its run is kept though superseded (made with settings the preset
    has since changed: the last section says why)."""
    stale = superseded_parts(doc)
    marked = any(row == label and run in stale for row, run, _ in ROWS)
    return f"{label} (**superseded**)" if marked else label


def table(doc: dict) -> list[str]:
    head = ["row", *(f"{TITLES[s]} {n}" for s, n in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cells in doc["rows"].items():
        row = [mean_std(cells[f"{s}.{n}"]) for s, n in COLUMNS]
        lines.append(f"| {_shown(doc, label)} | " + " | ".join(row) + " |")
    return lines


EACH_DRAW = [(s, n) for s in ("overall", "missing", "added", "transfer") for n in ("P", "R")]


def _with_interval(row: dict, stratum: str, name: str) -> str:
    """One draw's figure and its 95% bootstrap interval (eval clips resampled), "–" where missing."""
    value = row["metrics"][stratum][name]
    if value is None:
        return "–"
    ci = (row.get("ci95") or {}).get(stratum, {}).get(name)
    return f"{value:.3f}" if ci is None else f"{value:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def each_draw(doc: dict) -> list[str]:
    """Per row, each draw's figure with its 95% interval, one line per draw in a cell."""
    head = ["row", *(f"{TITLES[s]} {n}" for s, n in EACH_DRAW)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in doc["rows"]:
        draws = [d["rows"][label] for d in doc["per_draw"].values()]
        row = ["<br>".join(_with_interval(r, s, n) for r in draws) for s, n in EACH_DRAW]
        lines.append(f"| {_shown(doc, label)} | " + " | ".join(row) + " |")
    return lines


def _diffs(doc: dict, a: str, b: str, stratum: str, name: str) -> list[float] | None:
    rows = doc["rows"]
    if a not in rows or b not in rows:
        return None
    x, y = rows[a][f"{stratum}.{name}"]["each"], rows[b][f"{stratum}.{name}"]["each"]
    if any(v is None for v in x + y):
        return None
    return [u - v for u, v in zip(x, y, strict=True)]


def verdict(diffs: list[float] | None) -> str:
    """Symmetric: within ``SMALL`` of zero on average, too small to tell; beyond it, reproduced
    (higher) or contradicted (lower) when every draw agrees, else mixed. One draw says so."""
    if diffs is None:
        return "not measured (rows missing)"
    mean = float(np.mean(diffs))
    by_draw = ", ".join(f"{d:+.3f}" for d in diffs)
    if abs(mean) <= SMALL:
        word = f"**too small to tell** (within {SMALL} mAP of zero, one eval set's noise)"
    elif all(d > 0 for d in diffs):
        word = "**reproduced**"
    elif all(d < 0 for d in diffs):
        word = "**contradicted** (lower)"
    else:
        word = f"**mixed** ({'higher' if mean > 0 else 'lower'} on average, not on every draw)"
    one = " (one draw)" if len(diffs) == 1 else ""
    return f"{word}{one}: {mean:+.3f} on average (each draw: {by_draw})"


MASD = "MASD (pretraining pool, 1x)"
MAE_MASD = "MAE: MASD"
CARVED = "MASD, 20% carved from the labels"
LABELS10X = "fine-tune on 10x the labels"
OVER_FT = 0.03  # the project's target margin over fine-tuning, in Overall and Transferability R
PROBE10X = "linear probe on 10x the labels"
DROP = (MASD, BASELINE, "missing", "R")  # the drop WiSE-FT on MASD is said to repair
# (claim, row, the row it is read against, stratum, metric, what must hold for it to be testable)
CLAIMS = (
    ("MASD raises R on Added at Test", MASD, BASELINE, "added", "R", None),
    ("MASD raises R on Transferability", MASD, BASELINE, "transfer", "R", None),
    ("WiSE-FT on MASD repairs Missing at Test: against MASD", HEADLINE, MASD, "missing", "R", DROP),
    ("WiSE-FT on MASD repairs Missing at Test: against fine-tuning", HEADLINE, BASELINE, "missing", "R",
     DROP),
    ("MASD+WiSE-FT beats fine-tuning on 10x the labels in R", HEADLINE, LABELS10X, "overall", "R", None),
    ("The same against the linear probe on those 10x labels, the stronger baseline where fine-tuning is "
     "below it", HEADLINE, PROBE10X, "overall", "R", None),
    ("Distilling on held-out downstream clips beats distilling on pretraining clips on Transferability "
     "(the carved row also trains on 20% fewer labels, as the paper's)", CARVED, MASD, "transfer", "R", None),
    ("MASD lifts MAE's Transferability", MAE_MASD, MAE_FINETUNE, "transfer", "R", None),
)


def no_drop(doc: dict, premise: tuple[str, str, str, str] | None) -> str | None:
    """Where a claim repairs a drop (``premise``: the row that drops, against what, where) and the
    row does not drop by more than ``SMALL``, what says so; else None."""
    drop = None if premise is None else _diffs(doc, *premise)
    mean = None if drop is None else float(np.mean(drop))
    if mean is None or mean < -SMALL:
        return None
    a, b, stratum, name = premise
    return (f"**no drop to repair** ({a} against {b}, {TITLES[stratum]} {name}: {mean:+.3f} on average, "
            "each draw " + ", ".join(f"{d:+.3f}" for d in drop) + f"; a drop is more than {SMALL} "
            "below)")


def difference_claims(doc: dict) -> list[str]:
    """The claims read as one row against another."""
    lines = []
    for claim, a, b, s, n, premise in CLAIMS:
        found = verdict(_diffs(doc, a, b, s, n))
        missing = no_drop(doc, premise)
        if missing is not None:
            found = f"{missing}; the difference itself: {found.split(': ', 1)[-1]}"
        lines.append(f"- {claim} ({_shown(doc, a)} against {_shown(doc, b)}, {TITLES[s]} {n}): {found}")
    return lines


def claims(doc: dict) -> list[str]:
    lines = difference_claims(doc)
    marked = "" if _shown(doc, MAE_FINETUNE) == MAE_FINETUNE else f"; {_shown(doc, MAE_FINETUNE)}"
    lines.append("- MAE alone collapses on Transferability, to about chance (the paper's: 1.1 mAP against "
                 f"contrastive's 15.1{marked}): {collapse(doc)}")
    for label, always, paper, against in BEST_CLAIMS:
        claim = ("every training set scores best with all modalities at eval" if always else
                 "some training sets score best with a subset of the modalities at eval")
        found = table_4(doc, label, always, against)
        lines.append(f"- {_shown(doc, label)}: {claim} (Table 4; the paper's: {paper}): {found}")
    return lines


def unseen_text(doc: dict) -> list[str]:
    """The quickstart's first row (there on a choice draw) on these draws, as a section."""
    cell = doc.get("unseen_text")
    if not cell:
        return []
    return ["## The quickstart's first row on these draws", "",
            f"Trained on audio+video, scored on text alone (the quickstart shows it on data seed 0, a draw "
            f"choices were made on): fine-tune {mean_std(cell[BASELINE])}, {HEADLINE} "
            f"{mean_std(cell[HEADLINE])}, the change {cell['change']['mean']:+.3f} (each draw: "
            + ", ".join(f"{v:+.3f}" for v in cell["change"]["each"]) + ").", ""]


def table_4(doc: dict, label: str, always: bool, against: str | None) -> str:
    """A Table 4 claim's verdict; untestable for MAE's rows where MAE learns too little of its own
    modalities for the best of its near-chance eval sets to mean anything."""
    found = always_all(doc, label, against) if always else sometimes_subset(doc, label)
    if label.startswith("MAE:") and mae_learns(doc) is False:
        found = ("**untestable here** (MAE learns too little of its own modalities: its eval sets score "
                 "near chance, so which is best is noise): " + found.split(": ", 1)[-1])
    return found


def baselines(doc: dict) -> list[str]:
    """Each fine-tuning row against its own linear probe in Overall P (in-distribution): a fine-tune
    below its probe is a weak baseline, and the claims against it are read beside the probe."""
    lines = []
    pairs = ((BASELINE, PROBE), (LABELS10X, PROBE10X), (MAE_FINETUNE, MAE_PROBE))
    for tuned, probe in pairs:
        d = _diffs(doc, tuned, probe, "overall", "P")
        if d is None:
            continue
        word = ("below its probe on every draw: a weak baseline" if all(x < 0 for x in d) else
                "at or above its probe on every draw" if all(x >= 0 for x in d) else
                "below its probe on some draws")
        lines.append(f"- {_shown(doc, tuned)} against {_shown(doc, probe)}, Overall P: "
                     f"{float(np.mean(d)):+.3f} on average (each draw: "
                     + ", ".join(f"{x:+.3f}" for x in d) + f"): {word}")
    return lines


# (row, the paper claims every training set best with all, the paper's count, the row it contrasts with)
BEST_CLAIMS = ((MASD, True, "6 of 6", BASELINE),
               (BASELINE, False, "4 of 6 best with all", None),
               (MAE_MASD, True, "6 of 6", MAE_FINETUNE),
               (MAE_FINETUNE, False, "1 of 6 best with all", None))
BEST_ROWS = (BASELINE, MASD, HEADLINE, MAE_FINETUNE, MAE_MASD)


def _letters(subset: str) -> str:
    return "".join(m[0].upper() for m in subset.split("+"))


def _best(doc: dict, label: str) -> list[tuple[str, dict[str, str]]] | None:
    """Each draw's (all modalities, {training set: its best eval set}), all modalities' own
    training set left out."""
    if label not in doc["rows"]:
        return None
    draws = [d["rows"][label]["metrics"] for d in doc["per_draw"].values()]
    return [(full, {mt: me for mt, me in m["best_eval"].items() if mt != full})
            for m in draws for full in ["+".join(m["modalities"])]]


def _all_is_best(row: dict, mt: str, full: str) -> bool:
    """Whether training set ``mt`` scores best with all modalities: within ``SMALL`` of its best
    eval set (a record made before runs kept their scores: all modalities are its best)."""
    scores = row.get("scores")
    if scores is None:
        return row["metrics"]["best_eval"][mt] == full
    return scores[mt][full] >= max(scores[mt].values()) - SMALL


def _with_all(doc: dict, label: str) -> list[tuple[int, int]] | None:
    """Per draw, (training sets best with all modalities, training sets)."""
    if label not in doc["rows"]:
        return None
    counts = []
    for draw in doc["per_draw"].values():
        row = draw["rows"][label]
        full = "+".join(row["metrics"]["modalities"])
        sets = [mt for mt in row["metrics"]["best_eval"] if mt != full]
        counts.append((sum(_all_is_best(row, mt, full) for mt in sets), len(sets)))
    return counts


def _counts(doc: dict, label: str, counts: list[tuple[int, int]]) -> str:
    scored = all(d["rows"][label].get("scores") is not None for d in doc["per_draw"].values())
    rule = f"within {SMALL} of the best eval set" if scored else "the top score alone: scores not recorded"
    return f"{' / '.join(str(k) for k, _ in counts)} of {counts[0][1]} best with all ({rule}), by draw"


def always_all(doc: dict, label: str, against: str) -> str:
    """Reproduced when every training set of every draw scores best with all modalities; the claim
    is that MASD makes them do so, so where ``against`` (fine-tuning) does too it has no contrast."""
    counts = _with_all(doc, label)
    if counts is None:
        return "not measured (rows missing)"
    word = "**reproduced**" if all(k == n for k, n in counts) else "**not reproduced**"
    contrast = _with_all(doc, against)
    if contrast is not None and all(k == n for k, n in counts) and all(k == n for k, n in contrast):
        word += f" but with no contrast ({against} does too, so MASD repairs nothing here)"
    return f"{word}: {_counts(doc, label, counts)}"


def sometimes_subset(doc: dict, label: str) -> str:
    """Reproduced when some training set of every draw scores best with a subset; contradicted
    when none of any draw does."""
    counts = _with_all(doc, label)
    if counts is None:
        return "not measured (rows missing)"
    if all(k < n for k, n in counts):
        word = "**reproduced**"
    elif all(k == n for k, n in counts):
        word = "**contradicted** (every training set scores best with all modalities)"
    else:
        word = "**mixed** (on some draws only)"
    return f"{word}: {_counts(doc, label, counts)}"


def best_eval(doc: dict) -> list[str]:
    """Table 4: per row and training set, the eval set scoring highest on each draw."""
    known = {label: [b for _, b in best] for label in BEST_ROWS if (best := _best(doc, label)) is not None}
    if not known:
        return ["(the rows are missing)"]
    subsets = list(next(iter(known.values()))[0])
    lines = ["| row | " + " | ".join(_letters(s) for s in subsets) + " |", "|---|" + "---|" * len(subsets)]
    for label, draws in known.items():
        lines.append(f"| {_shown(doc, label)} | "
                     + " | ".join(" / ".join(_letters(d[s]) for d in draws) for s in subsets)
                     + " |")
    return lines


def _check(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def targets(doc: dict) -> list[str]:
    """The project's targets for the shipped defaults (set in its issue tracker, not the paper's)."""
    rows = doc["rows"]
    if HEADLINE not in rows or BASELINE not in rows:
        return ["(the headline rows are missing)"]
    r, p = rows[HEADLINE]["overall.R"], rows[HEADLINE]["overall.P"]
    least = None if any(v is None for v in r["each"]) else min(r["each"])
    lines = [f"- Overall R {_num(r['mean'])} (at least 0.65): {_check(_at_least(r['mean'], 0.65))}; each "
             f"draw {each(r)}, none under 0.60: {_check(_at_least(least, 0.60))}",
             f"- Overall P {_num(p['mean'])} (at least 0.82): {_check(_at_least(p['mean'], 0.82))}"]
    if PROBE in rows:
        lines.append(f"- the linear probe alone: Overall R {_num(rows[PROBE]['overall.R']['mean'])}, P "
                     f"{_num(rows[PROBE]['overall.P']['mean'])}: the two targets above measure the "
                     "foundation as much as the method; the margins below measure the method")
    for other, stratum, name, bound in ((BASELINE, "overall", "R", OVER_FT),
                                        (BASELINE, "transfer", "R", OVER_FT),
                                        (BASELINE, "overall", "P", 0.0), (BASELINE, "missing", "P", 0.0),
                                        (LABELS10X, "overall", "R", 1e-9)):
        d = _diffs(doc, HEADLINE, other, stratum, name)
        if d is None:
            lines.append(f"- over {other}, {TITLES[stratum]} {name}: not measured")
            continue
        m = float(np.mean(d))
        lines.append(f"- over {other}, {TITLES[stratum]} {name}: {m:+.3f} (at least {bound:+.2f}): "
                     f"{_check(m >= bound)}; each draw " + ", ".join(f"{x:+.3f}" for x in d))
    lines += headroom(doc)
    for seed, draw in doc["per_draw"].items():
        held, seen = held_out_retrieval(draw["alignment"])
        below = memorised_pairs(draw["alignment"])
        pairs = ("–" if below is None else "met" if not below else "**missed** (" + ", ".join(
            f"{pair} {own:.3f} against {new:.3f}" for pair, own, new in below) + ")")
        lines.append(f"- draw {seed}'s foundation, mean retrieval over the pairs: held-out {_num(held)} "
                     f"(at least 0.25: {_check(_at_least(held, 0.25))}), "
                     f"its pretraining clips' {_num(seen)}; "
                     f"each pair's held-out no more than {MEMORISED} below its pretraining clips' (the rule "
                     f"the foundation was chosen by): {pairs}")
    return lines


def headroom(doc: dict) -> list[str]:
    """How far the specialists (the oracle) are above fine-tuning per draw: the room a margin over
    fine-tuning is read against, and the rows that pass the specialists."""
    draws = list(doc["per_draw"].values())
    fts = [d["rows"].get(BASELINE, {}).get("metrics", {}) for d in draws]
    if not all("oracle" in m for m in fts):
        return []
    lines = []
    for stratum in ("overall", "transfer"):
        ceiling = [m["oracle"][stratum]["R"] for m in fts]
        if any(v is None for v in ceiling) or any(m[stratum]["R"] is None for m in fts):
            continue  # an empty stratum: no room to state
        room = [c - m[stratum]["R"] for c, m in zip(ceiling, fts, strict=True)]
        above = [label for label in doc["rows"] if label != BASELINE and all(
            _above(d["rows"].get(label), stratum, c) for d, c in zip(draws, ceiling, strict=True))]
        beyond = (f", so a margin of {OVER_FT:+.2f} asks for more than the specialists score"
                  if max(room) < OVER_FT else "")
        lines.append(f"- the room above fine-tuning, {TITLES[stratum]} R: the specialists (each eval set's "
                     f"own fine-tuned model) are {', '.join(f'{r:+.3f}' for r in room)} above it by draw"
                     f"{beyond}; above them on every draw: " + (", ".join(above) if above else "no row"))
    return lines


def _above(row: dict | None, stratum: str, ceiling: float) -> bool:
    r = None if row is None else row["metrics"][stratum]["R"]
    return r is not None and r > ceiling


def made(doc: dict) -> list[str]:
    """Each draw's foundation and runs: date, machine, commit and minutes (a table rebuilt from the
    record keeps them; the header's machine and date are only the call that assembled it)."""
    lines = ["| draw | part | date | machine | commit | minutes |", "|---|---|---|---|---|---|"]
    notes = []
    for seed, draw in doc["per_draw"].items():
        for part, m in draw["made"].items():
            minutes = f"{m['minutes']} (resumed: the last call's only)" if m.get("resumed") else m["minutes"]
            lines.append(f"| {seed} | {part} | {m['date']} | {m['machine']} | {m['commit'][:12]}"
                         f"{_changes(m['commit'])} | {minutes} |")
            if m.get("note"):
                notes.append(f"- draw {seed}, {part}: {m['note']}")
            if m.get("superseded"):
                notes.append(f"- draw {seed}, {part}: **superseded**: {m['superseded']}")
    return [*lines, *([""] + notes if notes else [])]


def superseded(doc: dict) -> str:
    """A sentence for the header where some parts were made with settings the preset has since
    changed (kept, marked in the record, until they are made again), else empty."""
    parts = superseded_parts(doc)
    if not parts:
        return ""
    return (f" **Superseded**: {', '.join(parts)} (and the rows made from them) were made with settings "
            "the preset has since changed; they are kept until made again (why: the last section).")


def _changes(commit: str) -> str:
    """What a recorded commit says of the work tree's changes beside it."""
    if DIRTY not in commit:
        return ""
    named = commit.partition(f"{DIRTY}: ")[2]  # the paths, then ")"; empty in records made before paths
    return f" (uncommitted changes: {named[:-1]})" if named else " (uncommitted changes, not named)"


def _assembled_at(doc: dict) -> str:
    """The commit the table was assembled at (the runs' own are in the last section)."""
    at = doc.get("assembled_at")
    return at[:12] + _changes(at) if at else "an unrecorded commit"


def partial(doc: dict) -> tuple[str, str]:
    """A table of part of the runs: its --runs flag, and a sentence on what that leaves out."""
    if not doc.get("partial"):
        return "", ""
    return (f" --runs {','.join(doc['runs'])}",
            " **Part of the table**: only these runs had been measured; the rows of the others are "
            "missing, and the claims and targets that need them say so.")


AFTER_THE_FACT = (
    "Rules set after results had been read, each with what it changed: a margin of 0.01 under which a "
    "difference reads 'too small to tell' was added after draw 1001's one-draw table had called both "
    "WiSE-FT repair claims reproduced on +0.006 and +0.004 (it withdrew those verdicts), and raised to "
    "0.02 half an hour later on the same table and made symmetric (a difference below -0.02 reads "
    "'contradicted', within the margin 'too small to tell', where it had read 'not reproduced': that "
    "softened MASD's Transferability result, -0.018 on that draw, to 'too small to tell'; the three "
    "draws read 'contradicted', -0.021); the 10x claim is also read against the linear probe on those "
    "labels, added after the table showed fine-tuning on them below that probe (a second, harder "
    "reading; the first stands), and the 10x row's recipe was then checked on the choice draw's "
    "validation (kept); the foundation target reads each pair by the rule the foundation was chosen by,"
    " instead of the mean over pairs (no verdict moved); MAE's collapse claim counts as testable only "
    "where MAE learns at least half what contrastive does of its own modalities, written after the two-"
    "draw table had called it reproduced (it withdrew that verdict); and after the three-draw table had"
    " been read (2026-12-07): Table 4 counts all modalities as best within the margin where scores are "
    "recorded (which makes 'best with all' easier to reach, so it favours the claim that MASD makes "
    "every training set so; the contrastive runs recorded only their top eval set, so it applies to the"
    " MAE rows alone), MASD's Table 4 claim adds 'but with no contrast' where fine-tuning is best with "
    "all modalities too (it had read 'reproduced' alone), MAE's Table 4 claims are untestable where its"
    " collapse claim is (they had read 'reproduced' and 'not reproduced'), and a claim that WiSE-FT "
    "repairs a drop says when there is no drop (it had read 'too small to tell').")
NEAR_CHANCE = (
    "Intervals are percentiles of the resampled mAP. Near chance (the MAE rows) resampling repeats "
    "clips and leans mAP upward, so a figure can sit at its interval's lower edge: there the interval "
    "gives the spread, not a range centred on the figure.")


def render(doc: dict) -> str:
    draws = ",".join(str(d) for d in doc["draws"])
    runs_flag, left_out = partial(doc)
    lines = [
        "# The paper's Table 3 on fresh data draws", "",
        f"`{doc.get('command', 'python -m lab.paper_table --draws ' + draws + runs_flag)}`; assembled on "
        f"{doc['machine']}, {doc['date']}, at {_assembled_at(doc)}, in "
        f"{doc['minutes']} min (where each run was made: the last section). Data draws "
        f"{draws.replace(',', ', ')} (`mmrt data make --size {doc['size']} --seed D`), none used for any "
        "training or recipe choice (the rules for reading this table that were set after results had "
        "been read are listed with the claims); the figures on the draw the recipe was chosen on are "
        "beside this table in docs/training.md, labelled. Each draw trained with its own seed, so data and "
        "training both vary. Eval mAP; in Table 3 each cell is the mean ± std over the draws, and the "
        "next table gives each draw's figure with its 95% bootstrap interval (eval clips resampled). "
        "Each draw's own report, every stratum and training set, is in the run folder (--out) under "
        "draw-D/<run>/report.md." + left_out + superseded(doc), "",
        "## Table 3, pooled over the draws", "", *table(doc), "",
        "## Each draw with its 95% interval (one line per draw, in the order of the draws)", "",
        *each_draw(doc), "", NEAR_CHANCE, "",
        "## The baselines: each fine-tune against its own probe", "", *(baselines(doc) or ["(rows missing)"]),
        "", *unseen_text(doc),
        "## The paper's claims", "",
        f"A difference is read against a margin of {SMALL} mAP (about one eval set's noise: a cell's "
        "95% interval is up to ±0.03 wide, in Overall R; narrower in the other strata), the same for "
        f"every claim. {AFTER_THE_FACT}", "",
        *claims(doc), "",
        "## The best eval set per training set (Table 4; each draw's, A audio, V video, T text)", "",
        *best_eval(doc), "", *section(doc),
        "## The project's targets (the shipped defaults; headline: MASD+WiSE-FT on the paper's pool)", "",
        *targets(doc), "",
        "## Where each run was made", "", *made(doc), "",
        "The figures: each point the mean over the draws (their spread is in the tables above), of the "
        "runs the last section dates.", "",
        "![R against P per training set (Fig. 6)](robustness_vs_performance.png)",
        "![P and R by overlap (Fig. 5)](overlap.png)", ""]
    return "\n".join(lines)


def _mean_tree(trees: list):
    """The element-wise mean of equally shaped nested dicts of numbers (None where any draw's is
    None: a mean of some draws is not the draws' mean)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _mean_tree([t[k] for t in trees]) for k in first}
    if any(t is None for t in trees):
        return None
    if all(isinstance(t, (int, float)) for t in trees):
        return float(np.mean(trees))
    return first


def write_figures(out: Path, draws: dict) -> None:
    import matplotlib

    from mmrt.training.experiments.plots import by_overlap, robustness_vs_performance, save_figure

    matplotlib.use("Agg")
    labels = [PROBE, BASELINE, MASD, HEADLINE]
    methods = {}
    for label in labels:
        if all(label in d["rows"] for d in draws.values()):
            metrics = [d["rows"][label]["metrics"] for d in draws.values()]
            methods[label] = {"metrics": {k: _mean_tree([m[k] for m in metrics])
                                          for k in ("per_train", "by_overlap")}}
    doc = {"metric": "mAP, mean over draws", "methods": methods}
    save_figure(robustness_vs_performance(doc), out / "robustness_vs_performance.png")
    save_figure(by_overlap(doc), out / "overlap.png")
