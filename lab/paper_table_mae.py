"""The MAE parts of `lab.paper_table`'s table.md: what each draw's MAE foundation learnt (its
reconstruction losses, its alignment, which MAE is not trained for), its in-modality scores
p(M; M) beside contrastive's from the same draw's data and seed, and whether MAE alone collapses
on Transferability as the paper's does.

Used by lab/paper_table_report.py."""

from __future__ import annotations

import numpy as np

from lab.paper_table_cells import SMALL, each, held_out_retrieval, mean_std, pooled, superseded_parts
from lab.paper_table_runs import MAE_FOUNDATION

MAE_PROBE, MAE_FINETUNE = "MAE: linear probe", "MAE: fine-tune"
CONTRASTIVE_PROBE = "contrastive: linear probe"


def _cell(values: list[float]) -> str:
    cell = pooled(values)
    return mean_std(cell) + (f" ({each(cell)})" if len(values) > 1 else "")


def _found(doc: dict, name: str) -> list[dict] | None:
    """Each draw's record of one method (contrastive's probe run or a row), or None where a draw
    lacks it or its scores (a record made before runs kept them)."""
    found = [d.get("probe") if name == CONTRASTIVE_PROBE else d["rows"].get(name)
             for d in doc["per_draw"].values()]
    return None if any(f is None or "scores" not in f for f in found) else found


def diagonal(method: dict) -> dict[str, float]:
    """{M_T: p(M_T; M_T)} of a recorded method."""
    return {mt: row[mt] for mt, row in method["scores"].items()}


def _own_margin(doc: dict, name: str) -> list[float] | None:
    """Per draw, the mean over training sets of p(M; M) above chance: what a method scores on the
    modalities it was trained on, so what it has to transfer."""
    found = _found(doc, name)
    if found is None:
        return None
    return [float(np.mean(list(diagonal(f).values()))) - d["chance"]
            for f, d in zip(found, doc["per_draw"].values(), strict=True)]


def _margins(doc: dict) -> tuple[list[float] | None, list[float] | None]:
    """MAE fine-tuning's and contrastive's probe's own-modality margins over chance, per draw."""
    return _own_margin(doc, MAE_FINETUNE), _own_margin(doc, CONTRASTIVE_PROBE)


def _learns(own: list[float] | None, contrastive_own: list[float] | None) -> bool | None:
    if own is None or contrastive_own is None:
        return None
    return all(m >= c / 2 for m, c in zip(own, contrastive_own, strict=True))


def mae_learns(doc: dict) -> bool | None:
    """Whether MAE fine-tuning's own-modality margin over chance is at least half contrastive's
    probe's on every draw (None: the in-modality scores are not recorded)."""
    return _learns(*_margins(doc))


def collapse(doc: dict) -> str:
    """MAE fine-tuning's Transferability P against the chance mAP of a random ranking, one-sided
    (a constant output scores each class's share of positives, below chance). The claim is that
    MAE transfers nothing although it learns its own modalities, so at chance it is reproduced only
    where MAE fine-tuning's own-modality margin over chance is at least half contrastive's on every
    draw (its probe run's: the run that records in-modality scores on every draw), else untestable.
    Contradicted when every draw is more than ``SMALL`` above chance, whatever MAE learnt."""
    if MAE_FINETUNE not in doc["rows"] or "fine-tune" not in doc["rows"]:
        return "not measured (rows missing)"
    draws = list(doc["per_draw"].values())
    transfer = [d["rows"][r]["metrics"]["transfer"]["P"] for d in draws for r in (MAE_FINETUNE, "fine-tune")]
    if None in transfer:
        return "not measured (no training set leaves a modality out to transfer to)"
    over = [d["rows"][MAE_FINETUNE]["metrics"]["transfer"]["P"] - d["chance"] for d in draws]
    own, contrastive_own = _margins(doc)
    learnt = _learns(own, contrastive_own)
    known = learnt is not None
    if all(g > SMALL for g in over):
        word = "**contradicted** (above chance)"
    elif not all(g <= SMALL for g in over):
        word = "**mixed** (above chance on some draws)"
    elif not known:
        word = "**at chance, testability unknown** (in-modality scores not recorded: run with --mae)"
    elif not learnt:
        word = "**untestable here** (MAE learns too little of its own modalities to have much to transfer)"
    else:
        word = "**reproduced**"
    contrastive = [d["rows"]["fine-tune"]["metrics"]["transfer"]["P"] - d["chance"] for d in draws]
    margins = "" if not known else (
        "; on its own training modalities MAE fine-tuning scores p(M; M) "
        + " / ".join(f"{m:+.3f}" for m in own) + " from chance, contrastive's probe "
        + " / ".join(f"{m:+.3f}" for m in contrastive_own) + " (testable where MAE's is at least half)")
    chance = " / ".join(f"{d['chance']:.3f}" for d in draws)
    return (f"{word}: MAE fine-tuning's Transferability P is "
            + ", ".join(f"{g:+.3f}" for g in over) + f" from chance by draw (within {SMALL} above counts as "
            "at chance); contrastive fine-tuning's " + ", ".join(f"{g:+.3f}" for g in contrastive)
            + f"; chance {chance}{margins}")


def foundations(doc: dict) -> list[str]:
    lines = []
    for seed, draw in doc["per_draw"].items():
        mae = draw.get("mae_foundation")
        if mae is None:
            continue
        losses = ", ".join(f"{m} {v:.3f}" for m, v in mae["losses"].items())
        held, seen = held_out_retrieval(mae["alignment"])
        where = "its pretraining clips" if held is None else "held-out clips"
        chance = mae["alignment"]["pretrain"]["chance"]["retrieval"]
        lines.append(f"- draw {seed}: reconstruction loss in its last epoch {losses}; mean retrieval between "
                     f"modalities on {where} {seen if held is None else held:.3f} (chance {chance:.3f}: MAE "
                     "is not trained to align them)")
    return lines


def in_modality(doc: dict) -> list[str]:
    """p(M; M) per training set: contrastive's linear probe (its `probe` run), MAE's linear probe
    and fine-tuning; each the mean ± std over draws, each draw's beside."""
    known = {name: [diagonal(f) for f in found] for name in (CONTRASTIVE_PROBE, MAE_PROBE, MAE_FINETUNE)
             if (found := _found(doc, name)) is not None}
    if not known:
        return ["(not measured: run with --mae)"]
    lines = ["| trained and scored on | " + " | ".join(known) + " |", "|---|" + "---|" * len(known)]
    for subset in next(iter(known.values()))[0]:
        cells = [_cell([d[subset] for d in draws]) for draws in known.values()]
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    draws = list(doc["per_draw"].values())
    lines += ["", f"Chance (a random ranking's mAP on eval): {_cell([d['chance'] for d in draws])}."]
    if CONTRASTIVE_PROBE in known and all("linear probe" in d["rows"] for d in draws):
        again = [d["probe"]["metrics"]["overall"]["P"] for d in draws]
        first = [d["rows"]["linear probe"]["metrics"]["overall"]["P"] for d in draws]
        lines.append("The probe run is the main run's linear probe made again on the same data and seed: "
                     f"Overall P {' / '.join(f'{v:.3f}' for v in again)} against "
                     f"{' / '.join(f'{v:.3f}' for v in first)}.")
    return lines


def section(doc: dict) -> list[str]:
    draws = list(doc["per_draw"].values())
    if not any(d.get("mae_foundation") or d.get("probe") or MAE_PROBE in d["rows"] for d in draws):
        return []
    which = ("an earlier `pretrain_mae` of the preset, superseded: the last section says why"
             if MAE_FOUNDATION in superseded_parts(doc)
             else "the preset's `pretrain_mae`")
    return ["## MAE against contrastive", "",
            f"Each draw's MAE foundation ({which}; on the same pretraining clips as "
            "its contrastive foundation):", "", *(foundations(doc) or ["(not recorded)"]), "",
            "In-modality scores p(M; M), eval mAP:", "", *in_modality(doc), ""]
