"""The cells of `lab.paper_table`'s table.md: a figure pooled over data draws and how it is written,
the margin one eval set's noise allows, a foundation's retrieval (its mean, and the pairs it
memorised) and where a set of parts was made.

Used by lab/paper_table.py, lab/paper_table_report.py, lab/paper_table_mae.py and lab/figures.py."""

from __future__ import annotations

import numpy as np

SMALL = 0.02  # mAP: a mean difference this size or less is within one eval set's noise (a cell's 95%
# bootstrap interval on 480 eval clips is up to +-0.03 wide, in Overall R)
MEMORISED = 0.02  # retrieval: a pair this much lower on held-out clips than on its own memorised them
# (the rule the foundation was chosen by: docs/results/foundation.md)


def pooled(values: list[float | None]) -> dict:
    known = [v for v in values if v is not None]
    if len(known) < len(values) or not known:
        return {"mean": None, "std": None, "each": values}
    return {"mean": float(np.mean(known)), "std": float(np.std(known, ddof=1)) if len(known) > 1 else 0.0,
            "each": values}


def mean_std(cell: dict) -> str:
    if cell["mean"] is None:
        return "–"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}" if len(cell["each"]) > 1 else f"{cell['mean']:.3f}"


def each(cell: dict) -> str:
    return " / ".join("–" if v is None else f"{v:.3f}" for v in cell["each"])


def held_out_retrieval(alignment: dict) -> tuple[float | None, float]:
    """Mean retrieval over the pairs, on held-out clips (None: none were held out) and on
    pretraining clips."""
    def mean(name: str) -> float | None:
        if name not in alignment:
            return None
        return float(np.mean([v["retrieval"] for v in alignment[name]["pairs"].values()]))
    return mean("held_out"), mean("pretrain")


def memorised_pairs(alignment: dict) -> list[tuple[str, float, float]] | None:
    """The pairs of modalities whose held-out retrieval is more than ``MEMORISED`` below their
    pretraining clips', as (pair, pretraining clips', held-out); None: none were held out."""
    if "held_out" not in alignment:
        return None
    own, held = alignment["pretrain"]["pairs"], alignment["held_out"]["pairs"]
    return [(pair, own[pair]["retrieval"], v["retrieval"]) for pair, v in held.items()
            if own[pair]["retrieval"] - v["retrieval"] > MEMORISED]


def superseded_parts(doc: dict) -> list[str]:
    """The parts of a table (its runs, "MAE foundation"...) kept on some draw though marked superseded:
    made with settings the preset has since changed."""
    return sorted({part for draw in doc.get("per_draw", {}).values()
                   for part, made in draw.get("made", {}).items() if made.get("superseded")})


def made_span(parts: list[dict]) -> dict:
    """Where some parts of a table were made (their "made" entries): the dates as one day or a range,
    the machines and the commits, each once in the order first met."""
    days = sorted({m["date"] for m in parts})
    return {"made_dates": days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}",
            "made_machines": "; ".join(dict.fromkeys(m["machine"] for m in parts)),
            "commit": ", ".join(dict.fromkeys(m["commit"] for m in parts))}
