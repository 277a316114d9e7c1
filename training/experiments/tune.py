"""`mmrt tune`: choose the fine-tuning recipe on validation, as a practitioner chooses one.

Each point of a grid (learning rate x steps x augmentation knobs) runs lp and ft on every
training-modality set from one pretrained model, trained on train minus a held-out share and
scored on that share (``mmrt experiment --holdout``; eval is never read). The choice is the
point with the best mean in-distribution score p(M_T; M_T) over the training sets - never a
robustness figure - among the points where fine-tuning beats the linear probe in-distribution
on every training set: a fine-tune weaker than its probe is a weak baseline, not a recipe.
Every point is a run folder of its own, named by all its settings, so ``--resume`` skips the
finished ones, also those a coordinate-wise search shares with an earlier grid in the same folder.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.training.data.data import inspect_data
from mmrt.training.data.seen import check_unseen
from mmrt.training.experiments.experiment import ExperimentOptions, experiment
from mmrt.training.experiments.made import made_line, merged
from mmrt.training.experiments.results import RESULTS
from mmrt.training.model.checkpoint import CONFIG, read_config
from mmrt.training.model.config import Downstream, Schedule, load_preset
from mmrt.training.stages.rundir import prepare_out
from mmrt.training.stages.speed import Speed

log = logging.getLogger(__name__)

AXES = ("lr", "steps", "mixup", "drop_path", "augment")  # what a grid may vary
TUNE = "tune.json"


@dataclass
class TuneOptions:
    data: Path
    pretrained: Path
    out: Path
    grid: dict[str, tuple] = field(default_factory=dict)  # axis -> values; an axis not given: the preset's
    holdout: float = 0.25
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    device: str | None = None
    progress: bool = True
    speed: Speed = field(default_factory=Speed)  # how the steps run (the same arithmetic)
    made: dict = field(default_factory=dict)  # where the search is made (command, machine, date)


def grid_points(grid: dict[str, tuple]) -> list[dict]:
    """Every combination of the axes' values, in the order given."""
    for axis, values in grid.items():
        if axis not in AXES:
            raise UserError(f"grid axis {axis!r}: expected one of {list(AXES)}")
        if not values:
            raise UserError(f"--{axis.replace('_', '-')}: no values (expected a comma list)")
    axes = list(grid)
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*grid.values())]


def resolved(point: dict, schedule: Schedule, downstream: Downstream) -> dict:
    """Every axis of ``point``, the preset's value (``schedule``, ``downstream``) where the grid does not
    vary it."""
    full = {"lr": schedule.lr, "steps": schedule.steps or None, "mixup": downstream.mixup,
            "drop_path": downstream.drop_path, "augment": downstream.augment, **point}
    if full["steps"] is None:
        full["epochs"] = schedule.epochs  # the preset budgets by epochs and the grid gives no steps
    return full


def point_name(point: dict) -> str:
    """A folder name naming every setting of a resolved point, e.g.
    ``lr-0.0003_steps-1050_mixup-0_drop_path-0_augment-off``: a point shared by two grids (run
    into the same --out with --resume) is trained once."""
    parts = []
    for k, v in point.items():
        if v is None:
            continue
        parts.append(f"{k}-{'on' if v else 'off'}" if isinstance(v, bool) else f"{k}-{v:g}")
    return "_".join(parts)


def _experiment_options(opts: TuneOptions, point: dict, folder: Path) -> ExperimentOptions:
    downstream = {k: point[k] for k in ("mixup", "drop_path", "augment")}
    return ExperimentOptions(data=opts.data, out=folder, methods=("lp", "ft"), seeds=(opts.seed,),
                             alphas=(0.0, 1.0), pretrained=opts.pretrained, holdout=opts.holdout,
                             lr=point["lr"], steps=point["steps"], epochs=point.get("epochs"),
                             downstream=downstream, resume=folder.is_dir(), device=opts.device,
                             progress=opts.progress, speed=opts.speed, made=opts.made)


def in_distribution(results: dict, method: str) -> dict[str, float]:
    """{M_T: p(M_T; M_T)} of ``method`` in a results.json."""
    scores = results["methods"][method]["scores"]
    return {mt: row[mt] for mt, row in scores.items()}


def summarise(results: dict) -> dict:
    """One grid point: its settings, ft's and lp's in-distribution scores, their means, the guard."""
    ft, lp = in_distribution(results, "ft"), in_distribution(results, "lp")
    return {"finetune": results["settings"]["finetune"], "recipe": results["settings"]["recipe"],
            "ft": ft, "lp": lp, "ft_mean": sum(ft.values()) / len(ft), "lp_mean": sum(lp.values()) / len(lp),
            "ft_beats_lp": all(ft[mt] > lp[mt] for mt in ft),
            "ft_below_lp": [mt for mt in ft if ft[mt] <= lp[mt]]}


def choose(points: dict[str, dict]) -> str | None:
    """The point with the best mean in-distribution ft score among those that pass the guard."""
    passing = {name: p for name, p in points.items() if p["ft_beats_lp"]}
    return max(passing, key=lambda name: passing[name]["ft_mean"]) if passing else None


def tune(opts: TuneOptions) -> dict:
    if opts.holdout <= 0.0 or opts.holdout >= 1.0:
        raise UserError(f"--holdout {opts.holdout:g}: a grid search is scored on validation only; give "
                        "the share of train to hold out, e.g. 0.25")
    if not (Path(opts.pretrained) / CONFIG).is_file():
        raise UserError(f"--pretrained {opts.pretrained}: not a model directory (make one with "
                        "'mmrt pretrain')")
    config = read_config(opts.pretrained)
    check_unseen(inspect_data(opts.data).root, opts.pretrained, config.history, opts.holdout, [opts.seed])
    preset = load_preset(config.preset)
    points = [resolved(p, *preset.downstream_settings()) for p in grid_points(opts.grid)]
    out = prepare_out(opts.out, opts.resume, opts.overwrite)
    summaries, calls = {}, []
    for i, point in enumerate(points, 1):
        name = point_name(point)
        folder = out / "points" / name
        log.info("tune: grid point %d of %d: %s", i, len(points), name)
        experiment(_experiment_options(opts, point, folder))
        results = json.loads((folder / RESULTS).read_text("utf-8"))
        summaries[name] = summarise(results)
        calls.append(results.get("made", []))
    chosen = choose(summaries)
    doc = {"data": str(opts.data), "pretrained": str(opts.pretrained), "holdout": opts.holdout,
           "seed": opts.seed, "grid": {k: list(v) for k, v in opts.grid.items()}, "points": summaries,
           "chosen": chosen, "criterion": "mean over training sets of ft's validation p(M_T; M_T), among "
           "points where ft beats lp on every training set",
           "made": merged(calls)}  # the calls that worked on these points, an interrupted one too
    atomic.write_text(out / TUNE, json.dumps(doc, indent=1) + "\n")
    atomic.write_text(out / "tune.md", render(doc))
    return doc


def render(doc: dict) -> str:
    """tune.md: a row per grid point, the in-distribution validation score of each training set."""
    points = doc["points"]
    train_sets = list(next(iter(points.values()))["ft"])
    head = ["grid point", *train_sets, "mean", "ft > lp on every M_T"]
    lines = ["# mmrt tune", "",
             f"Data `{doc['data']}`, pretrained `{doc['pretrained']}`, seed {doc['seed']}. Scores: ft's "
             f"p(M_T; M_T) on validation ({doc['holdout']:g} of train held out, never eval). Chosen by "
             f"{doc['criterion']}.", "", *([made_line(doc["made"]), ""] if doc.get("made") else []),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    any_point = next(iter(points.values()))
    lines.append("| lp (the probe) | " + " | ".join(f"{any_point['lp'][mt]:.3f}" for mt in train_sets)
                 + f" | {any_point['lp_mean']:.3f} | |")
    for name, p in points.items():
        mark = " **(chosen)**" if name == doc["chosen"] else ""
        guard = "yes" if p["ft_beats_lp"] else "no: " + ", ".join(p["ft_below_lp"])
        lines.append(f"| {name}{mark} | " + " | ".join(f"{p['ft'][mt]:.3f}" for mt in train_sets)
                     + f" | {p['ft_mean']:.3f} | {guard} |")
    verdict = (f"Chosen: `{doc['chosen']}`." if doc["chosen"] else
               "No grid point passes the guard: fine-tuning does not beat the probe on every training set.")
    return "\n".join([*lines, "", verdict, ""])
