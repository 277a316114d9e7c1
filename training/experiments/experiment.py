"""`mmrt experiment`: every method on every training-modality set, scored on every eval set.

One seed: pretrain once, then for each non-empty M_T train lp, ft, masd, masd-cw and moddrop (each
from the probe; wiseft and masd+wiseft are weight averages, no training), and score each
model on every non-empty M_E of the eval split (with ``holdout``: of a seeded share of train
held out, never eval). Several seeds: one such run per seed under ``RUN/seed-<s>/``, then mean
and std over seeds. Runs go one after another (two torch jobs at once on 2 cores run 6-8x
slower). Every finished model and score is on disk at once, so ``--resume`` picks up where a
killed run stopped; a resumed run with other downstream settings is refused, never mixed in.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mmrt import atomic
from mmrt.errors import UserError
from mmrt.intervals import resampled_scores, resamples
from mmrt.methods import METHODS, with_dependencies
from mmrt.modalities import all_subsets, parse_subset, subset_key
from mmrt.training.data.data import inspect_data
from mmrt.training.data.overlap import check_pool
from mmrt.training.data.seen import check_unseen, trained_on
from mmrt.training.data.splits import Split, distill_pool
from mmrt.training.experiments.made import add_call
from mmrt.training.experiments.report import write_results
from mmrt.training.model.checkpoint import (
    CONFIG,
    WEIGHTS,
    load_model,
    read_config,
    save_model,
    tokenizer_path,
)
from mmrt.training.model.config import Downstream, Schedule, load_preset
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.distributed import setup
from mmrt.training.stages.downstream import StageRun, tuning_stage
from mmrt.training.stages.evaluate import embed_split, scores_of, subset_probabilities
from mmrt.training.stages.learners import open_downstream
from mmrt.training.stages.pretrain import PretrainOptions, pretrain
from mmrt.training.stages.rundir import prepare_out
from mmrt.training.stages.speed import Speed
from mmrt.training.stages.wiseft import wise

log = logging.getLogger(__name__)

SCORES = "scores.json"  # per seed: {"methods": {method: {M_T: {M_E: p}}}, "alpha_sweep": {...}}
# With one seed: each score on the same bootstrap resamples of the eval examples, for intervals:
# {method: {M_T: {M_E: [score on each resample]}}}.
BOOTSTRAP = "bootstrap.json"


@dataclass
class ExperimentOptions:
    data: Path
    out: Path
    preset: str = "small"
    objective: str = "contrastive"  # the pretraining: contrastive or mae
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: tuple[int, ...] = (0,)
    # the WiSE-FT sweep, scored where the run scores (on validation with a holdout)
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    alpha: float = 0.75  # the alpha of the wiseft and masd+wiseft rows
    downstream: dict = field(default_factory=dict)  # overrides of the preset's downstream section
    pretrained: Path | None = None  # this model for every seed instead of pretraining one each
    holdout: float = 0.0  # > 0: train on the rest of train, score on this share of it (validation)
    train_sets: tuple[str, ...] = ()  # subset keys to train on (default: every non-empty subset)
    pretrain_epochs: int | None = None
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    resume: bool = False
    overwrite: bool = False
    device: str | None = None
    progress: bool = True
    speed: Speed = field(default_factory=Speed)  # how the steps run (the same arithmetic)
    made: dict = field(default_factory=dict)  # this call's command, machine and date (``made``)

    @property
    def distills(self) -> bool:
        """Whether a method of the run, or one it needs, distils (and so reads a distillation pool)."""
        return any(METHODS[m].distills for m in with_dependencies(self.methods))


def downstream_settings(opts: ExperimentOptions, preset_name: str) -> tuple[Schedule, Downstream]:
    """The run's fine-tuning schedule and downstream settings (``Preset.downstream_settings``)."""
    return load_preset(preset_name).downstream_settings(opts.epochs, opts.lr, steps=opts.steps,
                                                        overrides=opts.downstream)


def preset_of(opts: ExperimentOptions) -> str:
    """The preset the downstream stages follow: the given pretrained model's, else --preset."""
    return opts.preset if opts.pretrained is None else read_config(opts.pretrained).preset


def run_settings(opts: ExperimentOptions, schedule: Schedule, downstream: Downstream) -> dict:
    """What every model of a run was trained and scored with (a resumed run must match)."""
    return {"finetune": asdict(schedule), "recipe": downstream.to_dict(), "holdout": opts.holdout,
            "pretrained": None if opts.pretrained is None else str(opts.pretrained)}


def device_name(device: torch.device) -> str:
    """The device a run trains on, with the GPU's name where it is one."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


class SeedRun:
    """One seed's pretraining, models and scores under ``folder``."""

    def __init__(self, opts: ExperimentOptions, seed: int, folder: Path):
        self.opts, self.seed, self.folder = opts, seed, folder
        self.ctx = setup(opts.device)
        path = folder / SCORES
        self.scores = json.loads(path.read_text("utf-8")) if path.is_file() else {}
        self.scores.setdefault("methods", {})
        self.scores.setdefault("alpha_sweep", {})
        boot = folder / BOOTSTRAP
        self.bootstrap: dict | None = None  # one seed: resampled scores, for 95% intervals
        if len(opts.seeds) == 1:
            self.bootstrap = json.loads(boot.read_text("utf-8")) if boot.is_file() else {}

    def save_scores(self) -> None:
        if self.ctx.main:
            atomic.write_text(self.folder / SCORES, json.dumps(self.scores, indent=1) + "\n")
            if self.bootstrap is not None:
                atomic.write_text(self.folder / BOOTSTRAP, json.dumps(self.bootstrap) + "\n")

    def run(self) -> None:
        opts, ctx = self.opts, self.ctx
        pre_dir = opts.pretrained or self.folder / "pretrained"
        if opts.pretrained is None and not ((pre_dir / WEIGHTS).is_file() and (pre_dir / CONFIG).is_file()):
            pretrain(PretrainOptions(opts.data, pre_dir, opts.preset, objective=opts.objective,
                                     seed=self.seed, epochs=opts.pretrain_epochs, resume=True,
                                     device=opts.device, progress=opts.progress, speed=opts.speed))
        pretrained = load_model(pre_dir).to(ctx.device)
        self.tokenizer = tokenizer_path(pre_dir)
        info = inspect_data(opts.data, "train")
        self.trained_on = trained_on(info.root, opts.holdout, self.seed)
        show = opts.progress and ctx.main
        schedule, downstream = downstream_settings(opts, pretrained.config.preset)
        settings = run_settings(opts, schedule, downstream)
        if self.scores.setdefault("settings", settings) != settings:
            raise UserError(f"{self.folder}: made with other downstream settings "
                            f"({self.scores['settings']}); start again without --resume, or in another --out")
        if opts.made:
            add_call(self.scores.setdefault("made", []), {**opts.made, "device": device_name(ctx.device),
                                                          "processes": ctx.world})
            self.save_scores()
        data = open_downstream(pretrained, self.tokenizer, info, schedule, downstream, opts.holdout,
                               self.seed, opts.distills, show)
        self.learners = data.learners
        if opts.holdout:  # validation: a seeded share of train, never eval
            self.eval, self.eval_indices = data.train, torch.from_numpy(data.held_out)
        else:
            prep = pretrained.config.arch.preprocessing
            self.eval = Split(info.root, "eval", pretrained.modalities, prep, data.tokenizer, progress=show,
                              audio_frontend=pretrained.audio_frontend())
            self.eval_indices = None
        subsets = [s for s in all_subsets(pretrained.modalities)
                   if not opts.train_sets or subset_key(s, pretrained.modalities) in opts.train_sets]
        bar = tqdm(subsets, desc=f"seed {self.seed}: training sets", unit="M_T", disable=not show)
        for mt in bar:
            bar.set_postfix(M_T=subset_key(mt, pretrained.modalities))
            self.train_set(pretrained, [m for m in pretrained.modalities if m in mt])

    def score(self, model: MultimodalModel) -> tuple[dict, dict | None]:
        """{M_E: score} on the eval split, or on the held-out validation share of train; with one
        seed also {M_E: [score on each bootstrap resample]} (the same resamples for every model)."""
        model = model.to(self.ctx.device)
        features = embed_split(model, self.eval, model.modalities, indices=self.eval_indices,
                               device=self.ctx.device)
        labels, task = features["labels"].numpy(), model.config.task
        probs = subset_probabilities(model, features)
        scores = scores_of(probs, labels, task)
        if self.bootstrap is None:
            return scores, None
        draws = resamples(len(labels))
        return scores, {k: np.round(resampled_scores(labels, p, task, draws), 5).tolist()
                        for k, p in probs.items()}

    def model_dir(self, method: str, mt_key: str) -> Path:
        return self.folder / "models" / method / mt_key

    def done(self, method: str, mt_key: str) -> bool:
        folder = self.model_dir(method, mt_key)
        return (mt_key in self.scores["methods"].get(method, {}) and (folder / WEIGHTS).is_file()
                and (folder / CONFIG).is_file())

    def record(self, method: str, mt_key: str, model: MultimodalModel, note: dict,
               scored: tuple[dict, dict | None] | None = None) -> None:
        """Score ``model`` on every eval set (unless ``scored`` already holds its scores), save it
        and its scores."""
        model.config = replace(model.config, history=(*model.config.history, note))
        scores, samples = scored or self.score(model)
        if self.ctx.main:
            save_model(self.model_dir(method, mt_key), model.cpu(), self.tokenizer, overwrite=True)
        self.scores["methods"].setdefault(method, {})[mt_key] = scores
        if self.bootstrap is not None:
            self.bootstrap.setdefault(method, {})[mt_key] = samples
        self.save_scores()

    def scored_as(self, method: str, mt_key: str) -> tuple[dict, dict | None] | None:
        """The scores (and bootstrap samples) recorded for ``method`` on ``mt_key``, or None where
        a run stopped between writing the two."""
        if self.bootstrap is None:
            return self.scores["methods"][method][mt_key], None
        samples = self.bootstrap.get(method, {}).get(mt_key)
        return None if samples is None else (self.scores["methods"][method][mt_key], samples)

    def train_set(self, pretrained: MultimodalModel, use: list[str]) -> None:
        key = subset_key(use, pretrained.modalities)
        models: dict[str, MultimodalModel] = {}
        # method -> the method of this set whose model it is, computed the same way (a stage that
        # collapses to plain fine-tuning is ft's; WiSE-FT of equal models is the same average)
        same: dict[str, str] = {}
        for method in with_dependencies(self.opts.methods):
            started = time.monotonic()
            if self.done(method, key):
                if method in ("lp", "ft", "masd"):  # the WiSE-FT rows need them
                    models[method] = load_model(self.model_dir(method, key))
                continue
            (self.folder / "models").mkdir(parents=True, exist_ok=True)
            run = StageRun(self.ctx, self.seed, state_file=self.folder / "models" / f"{method}-{key}.resume",
                           resume=True, progress=self.opts.progress, speed=self.opts.speed)
            torch.manual_seed(self.seed)
            scored = None
            twin = self.twin(method, use, pretrained.modalities, models, same)
            if twin is not None:
                same[method] = twin
                model, scored = copy.deepcopy(models[twin]), self.scored_as(twin, key)
                *earlier, note = model.config.history  # the twin's own record gives way to this one
                model.config = replace(model.config, history=tuple(earlier))
                note = {**note, "same_as": twin}
                if METHODS[method].averages:
                    self.copy_sweep(method, twin, key)
            elif method == "lp":
                model, note = self.learners.probe(pretrained, use, run)
            elif METHODS[method].averages:
                base = METHODS[method].averages
                model = wise(models[base].cpu(), models["lp"].cpu(), self.opts.alpha)
                note = {"stage": "wiseft", "alpha": self.opts.alpha}
                scored = self.sweep(method, key, base, models, model)
            else:
                stage = tuning_stage(method, use, pretrained.modalities)
                model, note = self.learners.tune(stage, models["lp"], use, run)
            note = {**note, "method": method, "train_modalities": key, **self.trained_on,
                    "seconds": round(time.monotonic() - started, 1)}
            self.record(method, key, model, note, scored)
            models[method] = model.cpu()
            run.state_file.unlink(missing_ok=True)

    def twin(self, method: str, use: list[str], modalities, models: dict, same: dict) -> str | None:
        """A method of this set already done whose model ``method``'s would equal, or None: a
        stage that collapses to plain fine-tuning (``tuning_stage``) gives ft's model, and WiSE-FT
        of a method equal to another's base gives that other's average."""
        if METHODS[method].averages:
            base = same.get(METHODS[method].averages)
            return next((m for m in models if METHODS[m].averages == base), None) if base else None
        if method not in ("lp", "ft") and "ft" in models \
                and tuning_stage(method, use, modalities) == METHODS["ft"].trains:
            return "ft"
        return None

    def sweep(self, method: str, key: str, base: str, models: dict[str, MultimodalModel],
              model: MultimodalModel) -> tuple[dict, dict | None]:
        """Eval scores of alpha * base + (1 - alpha) * lp for each alpha of the sweep; the ends
        are the lp and base models themselves, already scored, and ``model`` is the one at the
        run's alpha: its scores (and samples) are returned for its row."""
        rows = self.scores["alpha_sweep"].setdefault(method, {})
        scored = self.scores["methods"]
        own = None
        for alpha in self.opts.alphas:
            if alpha in (0.0, 1.0):
                scores = scored["lp" if alpha == 0.0 else base][key]
            elif alpha == self.opts.alpha:
                own = self.score(model)
                scores = own[0]
            else:
                scores, _ = self.score(wise(models[base].cpu(), models["lp"].cpu(), alpha))
            rows.setdefault(f"{alpha:g}", {})[key] = scores
        self.save_scores()
        return own or self.score(model)

    def copy_sweep(self, method: str, twin: str, key: str) -> None:
        """``method``'s sweep on ``key`` is ``twin``'s (their averaged models are equal)."""
        rows = self.scores["alpha_sweep"].setdefault(method, {})
        for alpha, row in self.scores["alpha_sweep"].get(twin, {}).items():
            if key in row:
                rows.setdefault(alpha, {})[key] = row[key]
        self.save_scores()


def experiment(opts: ExperimentOptions) -> Path:
    ctx = setup(opts.device)
    with_dependencies(opts.methods)
    for a in (*opts.alphas, opts.alpha):
        if not 0.0 <= a <= 1.0:
            raise UserError(f"--alpha {a}: expected a number from 0 to 1")
    info = inspect_data(opts.data)
    if len(info.modalities) < 2:
        raise UserError(f"{opts.data}: an experiment needs two modalities or more, the data has "
                        f"{list(info.modalities)}")
    if not 0.0 <= opts.holdout < 1.0:
        raise UserError(f"--holdout {opts.holdout}: expected a fraction below 1")
    if opts.pretrained is not None and not ((Path(opts.pretrained) / WEIGHTS).is_file()
                                            and (Path(opts.pretrained) / CONFIG).is_file()):
        raise UserError(f"--pretrained {opts.pretrained}: not a model directory (make one with "
                        "'mmrt pretrain')")
    for key in opts.train_sets:
        try:
            parse_subset(key, info.modalities)
        except UserError as e:
            raise UserError(f"--train-sets: {e}") from None
    schedule, downstream = downstream_settings(opts, preset_of(opts))  # bad flags fail before any work
    if opts.holdout and opts.pretrained is None:  # pretrains on this folder, then scores a share of train
        check_pool(info.root, "pretrain", scored_on_train=True)
    elif opts.pretrained is not None:
        history = read_config(opts.pretrained).history
        check_unseen(info.root, opts.pretrained, history, opts.holdout, opts.seeds)
    if opts.distills:
        check_pool(info.root, distill_pool(info.root, downstream.distill_source, downstream.distill_examples,
                                           opts.holdout), scored_on_train=opts.holdout > 0)
    out = prepare_out(opts.out, opts.resume, opts.overwrite) if ctx.main else Path(opts.out)
    ctx.barrier()
    started = time.monotonic()
    folders = {s: out if len(opts.seeds) == 1 else out / f"seed-{s}" for s in opts.seeds}
    for seed, folder in folders.items():
        log.info("experiment: seed %d in %s", seed, folder)
        seed_started = time.monotonic()
        SeedRun(opts, seed, folder).run()
        log.info("experiment: seed %d took %.1f min", seed, (time.monotonic() - seed_started) / 60)
    if ctx.main:
        settings = run_settings(opts, schedule, downstream)
        boot = out / BOOTSTRAP
        samples = json.loads(boot.read_text("utf-8")) if len(opts.seeds) == 1 and boot.is_file() else None
        write_results(out, {s: json.loads((f / SCORES).read_text("utf-8")) for s, f in folders.items()},
                      list(info.modalities), opts, info.task, time.monotonic() - started, settings, samples)
        log.info("experiment: results in %s (report.md, results.json, plots)", out)
    ctx.barrier()
    return out
