"""The paper's Performance / Robustness metrics over modality subsets (section 3.2).

p(M_E; M_T) is the score of the model trained on M_T and evaluated on M_E.
For each training set, P(M_T) is the mean and R(M_T) the minimum of p over the
evaluation sets a stratum admits; P, R average those over training sets and
P_best, R_best take their maximum. A training set with no evaluation set in a
stratum does not enter that stratum's figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mmrt.errors import UserError
from mmrt.modalities import Subset, all_subsets, parse_subset, subset_key

Stratum = Callable[[Subset, Subset], bool]  # (M_T, M_E) -> admitted

STRATA: dict[str, Stratum] = {
    "overall": lambda mt, me: True,
    "missing": lambda mt, me: me < mt,  # Missing at Test: M_E strict subset of M_T
    "added": lambda mt, me: mt < me,  # Added at Test: M_T strict subset of M_E
    "transfer": lambda mt, me: not (mt & me),  # Transferability: disjoint
}


@dataclass(frozen=True)
class PMatrix:
    """Scores p(M_E; M_T) for some training sets, each evaluated on every non-empty M_E."""

    modalities: tuple[str, ...]
    scores: dict[Subset, dict[Subset, float]]  # M_T -> M_E -> p

    def key(self, subset: Subset) -> str:
        return subset_key(subset, self.modalities)

    @classmethod
    def from_json(cls, doc: object, source: str = "p-matrix") -> PMatrix:
        """Validate ``{"modalities": [...], "scores": {"<M_T>": {"<M_E>": number}}}``."""
        if not isinstance(doc, Mapping):
            raise UserError(f"{source}: expected a JSON object with 'modalities' and 'scores'")
        mods = doc.get("modalities")
        if (not isinstance(mods, list) or not mods or not all(isinstance(m, str) and m for m in mods)
                or len(set(mods)) != len(mods)):
            raise UserError(f"{source}: 'modalities' must be a non-empty list of distinct names")
        order = tuple(mods)
        rows = doc.get("scores")
        if not isinstance(rows, Mapping) or not rows:
            raise UserError(f"{source}: 'scores' must be a non-empty object keyed by training set")
        expected = all_subsets(order)
        scores: dict[Subset, dict[Subset, float]] = {}
        for mt_key, row in rows.items():
            mt = _parse(mt_key, order, f"{source}: scores[{mt_key!r}]")
            if not isinstance(row, Mapping):
                raise UserError(f"{source}: scores[{mt_key!r}] must be an object keyed by eval set")
            parsed = {_parse(k, order, f"{source}: scores[{mt_key!r}][{k!r}]"): v for k, v in row.items()}
            missing = [subset_key(me, order) for me in expected if me not in parsed]
            if missing:
                raise UserError(f"{source}: scores[{mt_key!r}] lacks eval set(s) {missing} "
                                f"(every non-empty subset of {list(order)} is needed)")
            for me, v in parsed.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise UserError(f"{source}: scores[{mt_key!r}][{subset_key(me, order)!r}] = "
                                    f"{v!r}: expected a finite number")
            scores[mt] = {me: float(parsed[me]) for me in expected}
        return cls(modalities=order, scores=scores)


def _parse(key: str, order: Sequence[str], where: str) -> Subset:
    try:
        return parse_subset(key, order)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def _aggregate(per_train: list[tuple[float, float]]) -> dict[str, float | None]:
    if not per_train:
        return {"P_best": None, "R_best": None, "P": None, "R": None}
    ps, rs = zip(*per_train, strict=True)
    return {"P_best": max(ps), "R_best": max(rs), "P": sum(ps) / len(ps), "R": sum(rs) / len(rs)}


def stratum_metrics(pm: PMatrix, admit: Stratum) -> tuple[dict[str, float | None], dict[str, dict]]:
    """Aggregate P/R for one stratum, and P(M_T)/R(M_T) for each training set that enters it."""
    per_train = {}
    for mt, row in pm.scores.items():
        values = [p for me, p in row.items() if admit(mt, me)]
        if values:
            per_train[pm.key(mt)] = {"P": sum(values) / len(values), "R": min(values)}
    return _aggregate([(v["P"], v["R"]) for v in per_train.values()]), per_train


def oracle(pm: PMatrix) -> PMatrix | None:
    """The scores of a model that matches, on every eval set M_E, the specialist for it: the model
    trained on M_E itself, scored on M_E (the diagonal p(M_E; M_E)). None unless every non-empty
    training set has its row."""
    subsets = all_subsets(pm.modalities)
    if any(s not in pm.scores for s in subsets):
        return None
    return PMatrix(pm.modalities, {mt: {me: pm.scores[me][me] for me in subsets} for mt in subsets})


MIN_GAP = 0.03  # mAP on a 0-1 scale: below it the share of the gap closed swings with one eval set's
# noise (a cell's 95% interval is up to +-0.03) and stops being a measure


def gap_closed(metrics: dict, baseline: dict, ceiling: dict, min_gap: float = MIN_GAP,
               ) -> dict[str, dict[str, float | None]]:
    """Per stratum, the share of the baseline-to-oracle gap in P and in R that ``metrics`` closes:
    (method - baseline) / (oracle - baseline); 1 matches the specialists, 0 the baseline. None
    where the gap is under ``min_gap`` (including none: the baseline at or above the oracle) or a
    figure is missing."""
    out: dict[str, dict[str, float | None]] = {}
    for stratum in STRATA:
        row: dict[str, float | None] = {}
        for name in ("P", "R"):
            m, b, o = metrics[stratum][name], baseline[stratum][name], ceiling[stratum][name]
            row[name] = None if m is None or b is None or o is None or o - b < min_gap else (m - b) / (o - b)
        out[stratum] = row
    return out


def score_unit(pm: PMatrix) -> float:
    """100 for a matrix given in percent (any score above 1), else 1."""
    return 100.0 if any(v > 1.0 for row in pm.scores.values() for v in row.values()) else 1.0


def robustness_report(pm: PMatrix, baseline: PMatrix | None = None) -> dict:
    """Everything ``mmrt metrics --json`` prints. With every training set present, "oracle" holds
    the strata of the specialists' matrix (``oracle``) - from ``baseline``'s diagonal when given
    (the paper's fine-tuning, whose specialists are the fine-tuned models), else this matrix's -
    and with ``baseline``, "gap_closed" the share of the baseline-to-oracle gap closed (None where
    that gap is under ``MIN_GAP``: there it is not a measure)."""
    if baseline is not None and baseline.modalities != pm.modalities:
        raise UserError(f"the baseline's modalities {list(baseline.modalities)} differ from "
                        f"{list(pm.modalities)}")
    report: dict = {"modalities": list(pm.modalities), "train_sets": [pm.key(mt) for mt in pm.scores]}
    aggregate, per_train = _strata(pm)
    report.update(aggregate)
    report["by_overlap"] = {}
    for k in range(len(pm.modalities) + 1):
        def overlaps(mt: Subset, me: Subset, k: int = k) -> bool:
            return len(mt & me) == k

        agg, _ = stratum_metrics(pm, overlaps)
        if agg["P"] is not None:
            report["by_overlap"][str(k)] = {"P": agg["P"], "R": agg["R"]}
    # Table 4: the eval set scoring highest for each training set (first in subset order on ties).
    report["best_eval"] = {pm.key(mt): pm.key(max(row, key=row.__getitem__)) for mt, row in pm.scores.items()}
    report["per_train"] = per_train
    ceiling = oracle(baseline or pm)
    if ceiling is not None:
        report["oracle"] = {s: {"P": v["P"], "R": v["R"]} for s, v in _strata(ceiling)[0].items()}
        if baseline is not None:
            report["gap_closed"] = gap_closed(report, _strata(baseline)[0], report["oracle"],
                                              MIN_GAP * score_unit(baseline))
    return report


def _strata(pm: PMatrix) -> tuple[dict[str, dict], dict[str, dict]]:
    """(stratum -> aggregate P/R, stratum -> per-training-set P/R) for every stratum."""
    aggregate, per_train = {}, {}
    for name, admit in STRATA.items():
        aggregate[name], per_train[name] = stratum_metrics(pm, admit)
    return aggregate, per_train


# Markdown rendering of a report, laid out like the paper's Table 3 and 4.

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
        rows.append([f"share of the baseline-to-oracle gap closed (– where that gap is under {MIN_GAP:g}, "
                     f"or {100 * MIN_GAP:g} on a percent scale)",
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
