"""The MAE section of `lab.paper_table`'s table.md: what each draw's MAE foundation learnt (its
reconstruction losses, its alignment, which MAE is not trained for) and its in-modality scores
p(M; M) beside contrastive's, from the same draw's data and seed.

Used by lab/paper_table_report.py."""

from __future__ import annotations

import numpy as np

MAE_PROBE, MAE_FINETUNE = "MAE: linear probe", "MAE: fine-tune"


def _cell(values: list[float]) -> str:
    each = " / ".join(f"{v:.3f}" for v in values)
    if len(values) == 1:
        return each
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} ({each})"


def _diagonals(doc: dict, pick) -> list[dict] | None:
    """Each draw's {M_T: p(M_T; M_T)} of the method ``pick`` finds in a draw, or None where a draw
    lacks it (a record made before runs kept their in-modality scores)."""
    found = [pick(draw) for draw in doc["per_draw"].values()]
    if any(f is None or "in_distribution" not in f for f in found):
        return None
    return [f["in_distribution"] for f in found]


def chance_gap(doc: dict) -> list[float] | None:
    """Per draw, MAE fine-tuning's Transferability P less the chance mAP of that draw's eval."""
    if MAE_FINETUNE not in doc["rows"]:
        return None
    return [draw["rows"][MAE_FINETUNE]["metrics"]["transfer"]["P"] - draw["chance"]
            for draw in doc["per_draw"].values()]


def foundations(doc: dict) -> list[str]:
    lines = []
    for seed, draw in doc["per_draw"].items():
        mae = draw.get("mae_foundation")
        if mae is None:
            continue
        losses = ", ".join(f"{m} {v:.3f}" for m, v in mae["losses"].items())
        held = mae["alignment"].get("held_out", mae["alignment"]["pretrain"])
        retrieval = np.mean([v["retrieval"] for v in held["pairs"].values()])
        lines.append(f"- draw {seed}: reconstruction loss in its last epoch {losses}; mean retrieval "
                     f"between modalities on held-out clips {retrieval:.3f} (chance "
                     f"{held['chance']['retrieval']:.3f}: MAE is not trained to align them)")
    return lines


def in_modality(doc: dict) -> list[str]:
    """p(M; M) per training set: contrastive's linear probe (its `probe` run), MAE's linear probe
    and fine-tuning; each the mean ± std over draws, each draw's beside."""
    columns = {"contrastive: linear probe": _diagonals(doc, lambda d: d.get("probe")),
               MAE_PROBE: _diagonals(doc, lambda d: d["rows"].get(MAE_PROBE)),
               MAE_FINETUNE: _diagonals(doc, lambda d: d["rows"].get(MAE_FINETUNE))}
    known = {name: draws for name, draws in columns.items() if draws is not None}
    if not known:
        return ["(not measured: run with --mae)"]
    chance = [draw["chance"] for draw in doc["per_draw"].values()]
    lines = ["| trained and scored on | " + " | ".join(known) + " |", "|---|" + "---|" * len(known)]
    for subset in next(iter(known.values()))[0]:
        cells = [_cell([d[subset] for d in draws]) for draws in known.values()]
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    lines += ["", f"Chance (a random ranking's mAP on eval): {_cell(chance)}."]
    probe, main = _diagonals(doc, lambda d: d.get("probe")), [d["rows"].get("linear probe") for d in
                                                              doc["per_draw"].values()]
    if probe is not None and all(m is not None for m in main):
        again = [d["probe"]["metrics"]["overall"]["P"] for d in doc["per_draw"].values()]
        first = [m["metrics"]["overall"]["P"] for m in main]
        lines.append(f"The probe run is the main run's linear probe made again (same data, seed and flags): "
                     f"Overall P {' / '.join(f'{v:.3f}' for v in again)} against "
                     f"{' / '.join(f'{v:.3f}' for v in first)}.")
    return lines


def section(doc: dict) -> list[str]:
    if not any(draw.get("mae_foundation") for draw in doc["per_draw"].values()):
        return []
    return ["## MAE against contrastive", "",
            "Each draw's MAE foundation (the preset's `pretrain_mae`, on the same pretraining clips as "
            "its contrastive foundation):", "", *foundations(doc), "",
            "In-modality scores p(M; M), eval mAP:", "", *in_modality(doc), ""]
