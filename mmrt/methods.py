"""The registry of pretraining objectives and downstream training methods: for each method, what
it trains after the linear probe and what it averages. Training, the experiment runner, the
CLI and the reports all read it; a new method is one entry here plus its stage."""

from __future__ import annotations

from dataclasses import dataclass

from mmrt.errors import UserError

# The stages a method may train after the probe are "finetune", "masd", "masd-cw" and "moddrop"
# (``training.downstream`` implements each); these two read an unlabelled distillation pool.
DISTILLING = ("masd", "masd-cw")


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    trains: str | None = None  # the stage trained after the probe; None: the probe alone
    averages: str | None = None  # WiSE-FT: the method whose weights are averaged with the probe's

    @property
    def distills(self) -> bool:
        return self.trains in DISTILLING


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("lp", "linear probe on frozen encoders"),
    Method("ft", "fine-tune every weight, head initialised from the probe", "finetune"),
    Method("masd", "fine-tune plus self-distillation from M_T to the other modalities (MASD)", "masd"),
    Method("wiseft", "alpha * fine-tuned + (1 - alpha) * probe weights (WiSE-FT)", "finetune", averages="ft"),
    Method("masd+wiseft", "alpha * MASD + (1 - alpha) * probe weights", "masd", averages="masd"),
    Method("masd-cw", "MASD with each example's distillation weighted by the teacher's confidence "
                      "(mmrt's, not the paper's)", "masd-cw"),
    Method("moddrop", "fine-tune with modalities dropped at random per example", "moddrop"),
)}

OBJECTIVES: dict[str, str] = {
    "contrastive": "pairwise InfoNCE between the modalities of each clip",
    "mae": "masked autoencoding per modality, the encoders' last block shared",
}


def get_method(name: str) -> Method:
    """The registered method called ``name``, or a UserError naming ``--method`` and the choices."""
    if name not in METHODS:
        raise UserError(f"--method {name!r}: expected one of {list(METHODS)}")
    return METHODS[name]


def with_dependencies(names: tuple[str, ...] | list[str]) -> list[str]:
    """The methods to train for ``names``, in registry order: every method starts from lp, and a
    WiSE-FT row needs the method it averages."""
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown method {unknown[0]!r} (expected some of {list(METHODS)})")
    need = set(names) | {"lp"} | {METHODS[n].averages for n in names if METHODS[n].averages}
    return [name for name in METHODS if name in need]
