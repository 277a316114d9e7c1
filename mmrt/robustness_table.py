"""Markdown rendering of a robustness report, laid out like the paper's Table 3 and 4."""

from __future__ import annotations

STRATUM_TITLES = {"missing": "Missing at Test", "added": "Added at Test", "transfer": "Transferability"}


def _fmt(v: float | None, scale: float) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if scale <= 1.0 else f"{v:.1f}"


def _headroom(report: dict, scale: float) -> list[str]:
    """The oracle (each eval set's specialist) per stratum and, against a baseline, the share of
    the baseline-to-oracle gap closed."""
    if "oracle" not in report:
        return []
    strata = {"overall": "Overall", **STRATUM_TITLES}
    head = ["", *(f"{t} {n}" for t in strata.values() for n in ("P", "R"))]
    rows = [["oracle: each M_E's specialist", *(_fmt(report["oracle"][s][n], scale)
                                                for s in strata for n in ("P", "R"))]]
    if "gap_closed" in report:
        rows.append(["share of the baseline-to-oracle gap closed",
                     *(_share(report["gap_closed"][s][n]) for s in strata for n in ("P", "R"))])
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def markdown_table(report: dict) -> str:
    """Headline table (Overall P_best R_best P R | each stratum P R), overlap table, best eval sets."""
    values = [v for s in ("overall", *STRATUM_TITLES) for v in report[s].values() if v is not None]
    scale = max(values, default=0.0)
    head = ["Overall P_best", "Overall R_best", "Overall P", "Overall R"]
    row = [_fmt(report["overall"][k], scale) for k in ("P_best", "R_best", "P", "R")]
    for key, title in STRATUM_TITLES.items():
        head += [f"{title} P", f"{title} R"]
        row += [_fmt(report[key]["P"], scale), _fmt(report[key]["R"], scale)]
    lines = [
        f"Training sets: {', '.join(report['train_sets'])} "
        f"(modalities: {', '.join(report['modalities'])})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        "| " + " | ".join(row) + " |",
        "",
        *_headroom(report, scale),
        "| shared modalities k | P | R |",
        "|---|---|---|",
    ]
    for k, pr in report["by_overlap"].items():
        lines.append(f"| {k} | {_fmt(pr['P'], scale)} | {_fmt(pr['R'], scale)} |")
    lines += ["", "| trained on M_T | P(M_T) | R(M_T) | best M_E |", "|---|---|---|---|"]
    for mt, pr in report["per_train"]["overall"].items():
        lines.append(f"| {mt} | {_fmt(pr['P'], scale)} | {_fmt(pr['R'], scale)} | "
                     f"{report['best_eval'][mt]} |")
    lines.append("")
    lines.append("A '–' marks a stratum no training set enters (e.g. Missing at Test for "
                 "single-modality training sets only).")
    return "\n".join(lines) + "\n"
