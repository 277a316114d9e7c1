"""The paper table's runs (each one `mmrt experiment` per draw), the rows each gives and the parts
of a draw they are made from: what lab/paper_table.py makes and what lab/figures.py quotes, without
the training code either would load to make them.

Used by lab/paper_table.py, lab/paper_table_report.py, lab/paper_table_mae.py and lab/figures.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    methods: str
    flags: tuple[str, ...] = ()
    data: str = "data"  # "data" (1x labels) or "data-10x"
    pretrained: str = "pretrained"  # or "pretrained-mae"


RUNS = {
    "main": Run("lp,ft,wiseft,masd,masd+wiseft,moddrop,masd-cw", ("--distill-source", "pretrain")),
    "unseen": Run("masd,masd+wiseft", ("--distill-source", "unseen")),
    "carve": Run("masd,masd+wiseft", ("--distill-source", "carve")),
    "labels10x": Run("ft", data="data-10x"),
    "mae": Run("lp,ft,masd,masd+wiseft", ("--distill-source", "pretrain"), pretrained="pretrained-mae"),
    "probe": Run("lp"),  # contrastive's linear probe again: its in-modality scores, beside MAE's
}
MAE_RUNS = ("mae", "probe")  # run only with --mae
# (label, run, method): the paper's rows first, then mmrt's extra ones
ROWS = (
    ("linear probe", "main", "lp"),
    ("fine-tune", "main", "ft"),
    ("WiSE-FT", "main", "wiseft"),
    ("MASD (pretraining pool, 1x)", "main", "masd"),
    ("MASD+WiSE-FT (pretraining pool, 1x)", "main", "masd+wiseft"),
    ("MASD, fresh 4x pool (extra unlabelled data)", "unseen", "masd"),
    ("MASD+WiSE-FT, fresh 4x pool (extra unlabelled data)", "unseen", "masd+wiseft"),
    ("MASD, 20% carved from the labels", "carve", "masd"),
    ("MASD+WiSE-FT, 20% carved from the labels", "carve", "masd+wiseft"),
    ("fine-tune on 10x the labels", "labels10x", "ft"),
    ("linear probe on 10x the labels", "labels10x", "lp"),
    ("modality dropout", "main", "moddrop"),
    ("masd-cw (mmrt's, not the paper's)", "main", "masd-cw"),
    ("MAE: linear probe", "mae", "lp"),
    ("MAE: fine-tune", "mae", "ft"),
    ("MAE: MASD", "mae", "masd"),
    ("MAE: MASD+WiSE-FT", "mae", "masd+wiseft"),
)
MAE_FOUNDATION = "MAE foundation"  # the MAE foundation's part in a draw's record of where each was made


def foundation_part(run: str) -> str:
    """The part of a draw ``run`` is made from (in where each part was made)."""
    return MAE_FOUNDATION if RUNS[run].pretrained == "pretrained-mae" else "foundation"
