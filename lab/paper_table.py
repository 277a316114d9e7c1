"""The paper's Table 3, row by row, on fresh data draws: every figure from data no choice was made on.

    python -m lab.paper_table --out runs/paper-table --draws 1001,1002,1003 [--mae]
    python -m lab.paper_table --out runs/again --draws 1001 --record docs/results/paper-table --again main

Per data draw D (trained with seed D too, so data and training both vary):
`mmrt data make --size small --seed D --train-size 10x`, seen as two datasets that differ only in
train.jsonl (the first 1x of its examples, and all 10x: each example is seeded by its index), one
`mmrt pretrain` with the shipped defaults, then `mmrt experiment` runs scored on eval:

- `main`: linear probe, fine-tune, WiSE-FT, MASD and MASD+WiSE-FT distilling on the paper's pool
  (distill.jsonl: pretraining clips, as many as the labelled examples), modality dropout, masd-cw;
- `unseen`: MASD and MASD+WiSE-FT on the fresh 4x pool (unseen.jsonl: extra unlabelled data that
  fine-tuning never sees);
- `carve`: MASD and MASD+WiSE-FT distilling on 20% carved out of the labelled set, every stage then
  training on the rest (the paper's distill-on-Kinetics row);
- `labels10x`: fine-tuning on 10x the labels (the paper's fine-tune-on-2M row), for 10x the steps
  (the same epochs);
- with `--mae`: MAE pretraining (the preset's `pretrain_mae`), then (`mae`) probe, fine-tune, MASD
  and MASD+WiSE-FT on the paper's pool; and (`probe`) contrastive's linear probe again, whose
  in-modality scores p(M; M) (each run now records them) stand beside MAE's.

Writes RUN/table.md (each row pooled over draws as mean ± std, each draw's figure beside; the
paper's claims each stated as reproduced or not, with numbers; the targets), RUN/table.json and the
headline's Figures 5 and 6 (RUN/overlap.png, RUN/robustness_vs_performance.png). Every run keeps its
own report under RUN/draw-D/. Resumable: run the same command again. Each part records the commit
the process began at; where the checkout has changed since, the process starts itself again before
the next part (and resumes), so no part begins with code other than the commit it names. With
`--record DIR` each draw's finished figures (its foundation's alignment, each run's scores) are also kept in
DIR/draw-D.json, and its foundations' weights in DIR/draw-D/ (about 3.5 MB each), small enough to
commit: a run or a foundation found there is not made again, so a table longer than a session
survives a fresh checkout; the table and its figures are written there too (the
committed record and page: docs/results/paper-table/). With `--again RUN` a run the record keeps
is made again in --out from the record's foundation (not kept) and set beside the record's
figures in --out/again.json.

Quoted in README.md, docs/data.md, docs/results/data-draws.md, docs/results/first-recipe.md,
docs/results/foundation.md, docs/results/training-recipe.md, docs/training.md,
docs/results/mae-check.md,
docs/results/paper-table/table.md (which it writes) and docs/results/figures.md."""

from __future__ import annotations

import argparse
import copy
import filecmp
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from datetime import date
from importlib import resources
from pathlib import Path

from lab.data_views import data_view
from lab.paper_table_again import compare, line
from lab.paper_table_cells import made_span, pooled
from lab.paper_table_report import BASELINE, COLUMNS, HEADLINE, render, write_figures
from lab.paper_table_runs import MAE_FOUNDATION, MAE_RUNS, ROWS, RUNS, Run
from lab.provenance import command, commit, fingerprint
from mmrt import atomic
from mmrt.benchmarks.timing import machine
from mmrt.cli import main as mmrt
from mmrt.scores import chance_score
from mmrt.split_files import multi_hot, read_classes, read_split
from mmrt.training.datagen.config import SIZES
from mmrt.training.model.config import MaeConfig, Preset, load_preset


class Draw:
    """One data draw: its data, its foundation(s) and its experiment runs, each made once."""

    def __init__(self, args: argparse.Namespace, seed: int):
        self.args, self.seed = args, seed
        self.root = args.out / f"draw-{seed}"
        self.labels = SIZES[args.size]["train"]
        self.settings = {"data_seed": seed, "training_seed": seed, "size": args.size}
        self.record = args.record / f"draw-{seed}.json" if args.record else None

    def same_code(self) -> str:
        """The commit this process began at, which the part about to begin records. The commands it
        runs load their code as they first run, so where the checkout has changed since (a commit, an
        edit: its ``fingerprint``), the process starts again from the checkout as it is now, and
        resumes, rather than begin a part with code other than the commit it would name. (A part
        resumed so records the commit of the call that finished it, as its minutes are that call's;
        the checkout is not watched while a part is made.)"""
        if fingerprint(*written(self.args)) != self.args.began_as:
            again = int(os.environ.get(RESTARTS, "0"))
            if again >= MAX_RESTARTS:
                raise SystemExit(f"the checkout changed {again} times with no part made between: stopped; "
                                 "run the command again when it is still")
            print(f"the checkout changed since this run began at {self.args.began_at}: starting again "
                  "with the code as it is now, resuming where it stopped", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os.environ[RESTARTS] = str(again + 1)
            os.execv(sys.executable, [sys.executable, "-m", "lab.paper_table", *sys.argv[1:]])
        return self.args.began_at

    def check(self) -> None:
        """A draw's folder is reused only with the settings it was made with."""
        record = self.root / "draw.json"
        if record.is_file():
            made = json.loads(record.read_text("utf-8"))
            if made != self.settings:
                raise SystemExit(f"{self.root} was made with {made}, not {self.settings}: use another --out")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic.write_text(record, json.dumps(self.settings) + "\n")

    def kept(self) -> dict:
        """The draw's record: {"settings", "foundation": {alignment, chance}, "runs": {name: scores}}."""
        if self.record is None or not self.record.is_file():
            return {"settings": self.settings, "runs": {}}
        kept = json.loads(self.record.read_text("utf-8"))
        if kept["settings"] != self.settings:
            raise SystemExit(f"{self.record} was made with {kept['settings']}, not {self.settings}: "
                             "use another --record")
        # A part marked superseded in the record (made with settings the preset has since changed) is
        # kept as it is and labelled in the table, until it is taken out of the record to be made again;
        # the mark names the preset digest it was made stale by, and excuses no other change.
        for name, done in kept["runs"].items():
            want = self.spec(name, RUNS[name]) if name in RUNS else done["spec"]
            marked = (done["made"].get("superseded_by") == want["preset_sha256"]
                      and {**done["spec"], "preset_sha256": want["preset_sha256"]} == want)
            if done["spec"] != want and not marked:
                raise SystemExit(f"{self.record}: run {name!r} was made with {done['spec']}, not {want}: use "
                                 "another --record, or delete the run from it")
        return kept

    def keep(self, kept: dict) -> None:
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(self.record, json.dumps(kept, indent=1) + "\n")

    def data(self) -> None:
        full = self.root / "data-full"
        if not (full / "datacard.json").is_file():
            assert mmrt(["data", "make", "--size", self.args.size, "--seed", str(self.seed), "--train-size",
                         str(10 * self.labels), "--out", str(full), "--overwrite", "--no-progress"]) == 0
        data_view(full, self.root / "data", {"train": self.labels})
        data_view(full, self.root / "data-10x", {"train": 10 * self.labels})

    def pretrain(self, name: str, made_from_it: tuple[str, ...] = ()) -> bool:
        """The draw's foundation: from the record when it keeps one (pretraining is the longest step
        of a draw), else pretrained here and then kept there; reused only if made with the preset's
        current pretraining settings, and pretrained again only where no kept part (``made_from_it``)
        was made from the one before. Whether this call pretrained it."""
        out, kept = self.root / name, self.record.with_suffix("") / name if self.record else None
        mae = name == "pretrained-mae"
        flags = ["--objective", "mae"] if mae else []
        made_with = {"pretraining_sha256": foundation_digest(self.preset(), mae)}
        if kept is not None and (kept / "config.json").is_file():
            self.made_as_now(kept, made_with, mae)
            if not (out / "config.json").is_file():
                shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(kept, out)
        fresh = not (out / "config.json").is_file()
        if fresh and made_from_it:
            raise SystemExit(f"{self.record}: {', '.join(made_from_it)} were made from a foundation that is "
                             f"neither in {out} nor kept in the record: delete them from the record to "
                             "pretrain again and make them from the new one")
        if fresh:
            resume = ["--resume"] if out.is_dir() else []
            assert mmrt(["pretrain", "--data", str(self.root / "data"), "--out", str(out), "--preset",
                         self.args.size, "--seed", str(self.seed), "--quiet", *flags, *resume]) == 0
            atomic.write_text(out / MADE_WITH, json.dumps(made_with) + "\n")
        self.made_as_now(out, made_with, mae)
        if kept is not None and not (kept / "config.json").is_file():
            keep_model(out, kept)
        return fresh

    def made_as_now(self, model: Path, made_with: dict, mae: bool) -> None:
        """Refuses a foundation pretrained with other settings than the preset's now."""
        stamp = model / MADE_WITH
        if stamp.is_file():
            same = json.loads(stamp.read_text("utf-8")) == made_with
        else:  # kept before foundations were stamped: what it records of itself
            config = json.loads((model / "config.json").read_text("utf-8"))
            same = made_as_preset(config, load_preset(self.args.size), mae)
        if not same:
            raise SystemExit(f"{model}: pretrained with other settings than the preset's now; delete it "
                             "to pretrain again (and from the record, if it is the record's, the runs made "
                             "from it)")

    def flags(self, name: str, run: Run) -> list[str]:
        """The experiment's flags but its folders: with the data and foundation it reads and the
        preset file's digest, what a recorded run must have been made with to be reused."""
        flags = ["--methods", run.methods, "--seed", str(self.seed), *run.flags]
        steps = load_preset(self.args.size).recipe["finetune"].steps
        if name == "labels10x" and steps:  # a budget in epochs is 10x the steps already
            flags += ["--steps", str(10 * steps)]
        return flags

    def spec(self, name: str, run: Run) -> dict:
        return {"flags": self.flags(name, run), "data": run.data, "pretrained": run.pretrained,
                "preset_sha256": preset_digest(self.preset(), mae=run.pretrained == "pretrained-mae")}

    def preset(self) -> dict:
        preset = resources.files("mmrt.training").joinpath("presets", f"{self.args.size}.json")
        return json.loads(preset.read_bytes())

    def experiment(self, name: str, run: Run) -> dict:
        out = self.root / name
        if not (out / "results.json").is_file():
            resume = ["--resume"] if out.is_dir() else []
            assert mmrt(["experiment", "--data", str(self.root / run.data), "--pretrained",
                         str(self.root / run.pretrained), "--out", str(out), "--quiet",
                         *self.flags(name, run), *resume]) == 0
        return json.loads((out / "results.json").read_text("utf-8"))

    def run(self, runs: list[str]) -> dict:
        """{"rows": {label: metrics}, "alignment": the foundation's, "chance": eval's chance mAP}."""
        self.check()
        kept = self.kept()
        todo = [name for name in runs if name not in kept["runs"]]
        if todo or "foundation" not in kept:
            made_at, started = self.same_code(), time.monotonic()
            self.data()
            self.pretrain("pretrained", made_from_it=made_from(kept, "pretrained"))
            config = json.loads((self.root / "pretrained" / "config.json").read_text("utf-8"))
            if "foundation" not in kept:
                kept["foundation"] = {"alignment": config["history"][0]["alignment"],
                                      "made": made_here(made_at, started)}
            kept["foundation"]["chance"] = chance_map(self.root / "data")  # the data's, as scored now
            self.keep(kept)
        if "mae" in todo:
            self.pretrain_mae(kept)
        for name in todo:
            made_at, started = self.same_code(), time.monotonic()
            resumed = (self.root / name).is_dir()  # begun earlier: its minutes are this call's only
            results = self.experiment(name, RUNS[name])
            kept["runs"][name] = {
                "spec": self.spec(name, RUNS[name]),
                "made": made_here(made_at, started, resumed=resumed),
                "methods": {m: {"metrics": r["metrics"], "ci95": r.get("ci95", {}).get("metrics"),
                                "scores": r["scores"]}  # p(M_E; M_T): Table 4 and p(M; M) from it
                            for m, r in results["methods"].items()}}
            self.keep(kept)
        stale = [name for name in runs if kept["runs"][name]["made"].get("superseded")]
        if stale:
            print(f"draw {self.seed}: {', '.join(stale)} superseded (kept, labelled): take them out of the "
                  "record to make them again", file=sys.stderr)
        rows = {label: kept["runs"][run]["methods"][method] for label, run, method in ROWS if run in runs}
        made = {"foundation": kept["foundation"]["made"]}
        mae = self.mae_foundation(kept) if "mae" in runs else None
        if mae is not None:
            made[MAE_FOUNDATION] = mae["made"]
        made.update({name: kept["runs"][name]["made"] for name in runs})
        probe = kept["runs"]["probe"]["methods"]["lp"] if "probe" in runs else None
        return {"rows": rows, "made": made, "alignment": kept["foundation"]["alignment"],
                "chance": kept["foundation"]["chance"], "mae_foundation": mae, "probe": probe}

    def again(self, name: str) -> dict:
        """A run the record keeps, made again here (in --out, never kept) from the foundation the
        record keeps, and set beside the record's figures: in RUN/draw-D/again-NAME.json, so a call
        cut short goes on where it stopped."""
        done, begun = self.root / f"again-{name}.json", self.root / f"{name}.again"
        if done.is_file():
            return json.loads(done.read_text("utf-8"))
        kept = self.kept()
        if name not in kept["runs"]:
            raise SystemExit(f"{self.record}: no run {name!r} to make again")
        if kept["runs"][name]["made"].get("superseded"):
            raise SystemExit(f"{self.record}: run {name!r} is superseded (made with an earlier preset): "
                             "there is nothing to make again with this one")
        foundation, folder = RUNS[name].pretrained, self.record.with_suffix("")
        if not (folder / foundation / "config.json").is_file():
            raise SystemExit(f"{folder}: keeps no {foundation} to make {name!r} again from")
        own = self.root / foundation / "model.safetensors"
        if (self.root / name).exists() and not begun.is_file() or own.is_file() and not filecmp.cmp(
                own, folder / foundation / "model.safetensors", shallow=False):
            raise SystemExit(f"{self.root}: holds {name!r} or a foundation other than the record's: use an "
                             "empty --out")
        self.check()
        made_at, started = self.same_code(), time.monotonic()
        resumed = begun.is_file()
        begun.touch()
        self.data()
        self.pretrain(foundation)
        results = self.experiment(name, RUNS[name])
        found = {"draw": self.seed, "run": name, "spec": kept["runs"][name]["spec"],
                 "recorded": kept["runs"][name]["made"], "made": made_here(made_at, started, resumed=resumed),
                 **compare(kept["runs"][name]["methods"], results["methods"])}
        atomic.write_text(done, json.dumps(found, indent=1) + "\n")
        return found

    def pretrain_mae(self, kept: dict) -> None:
        """The draw's MAE foundation, and what it is in the record: its reconstruction losses (the
        last epoch's), its alignment (MAE is not trained to align) and where it was made."""
        out = self.root / "pretrained-mae"
        made_at, started = self.same_code(), time.monotonic()
        resumed = out.is_dir() and not (out / "config.json").is_file()
        fresh = self.pretrain("pretrained-mae")  # the preset's, or refused
        digest = foundation_digest(self.preset(), mae=True)
        if fresh or kept.get("foundation_mae", {}).get("pretraining_sha256") != digest:
            stage = json.loads((out / "config.json").read_text("utf-8"))["history"][0]
            note = {} if fresh else {"note": "recorded after it was made: this call's date and commit"}
            kept["foundation_mae"] = {"losses": stage["final_metrics"], "alignment": stage["alignment"],
                                      "pretraining_sha256": digest,
                                      "made": made_here(made_at, started, resumed=resumed, **note)}
            self.keep(kept)

    def mae_foundation(self, kept: dict) -> dict | None:
        """The record's MAE foundation, refused if made with other pretraining settings than the
        preset's now, unless the MAE run made from it is marked superseded by this preset (kept and
        labelled until both are made again)."""
        mae = kept.get("foundation_mae")
        if mae is None or mae.get("pretraining_sha256") == foundation_digest(self.preset(), mae=True):
            return mae
        made = kept["runs"].get("mae", {}).get("made", {})
        if made.get("superseded_by") == preset_digest(self.preset(), mae=True):
            return mae
        raise SystemExit(f"{self.record}: foundation_mae was made with other pretraining settings than "
                         "the preset's now: delete it and the mae run from the record to make them again")


RESTARTS, MAX_RESTARTS = "LAB_PAPER_TABLE_RESTARTS", 3  # restarts in a row with no part made between


def written(args: argparse.Namespace) -> list[Path]:
    """The folders a run writes (left out of the checkout's fingerprint)."""
    return [args.out, *([args.record] if args.record else [])]


def made_from(kept: dict, foundation: str) -> tuple[str, ...]:
    """The parts a record keeps that were made from a draw's ``foundation`` ("pretrained"): the
    foundation's own entry and the runs read from it."""
    own = ("foundation",) if foundation == "pretrained" and "foundation" in kept else ()
    return (*own, *(n for n, r in kept["runs"].items() if r["spec"]["pretrained"] == foundation))


def made_here(made_at: str, started: float, **more) -> dict:
    """Where and when this call made a part of a draw (its minutes: this call's only). A part made,
    the restarts before it (``Draw.same_code``) count no more."""
    os.environ[RESTARTS] = "0"
    return {"date": str(date.today()), "machine": machine(), "commit": made_at,
            "minutes": round((time.monotonic() - started) / 60, 1), **more}


MAE_SECTIONS = (("recipe", "pretrain_mae"), ("mae",))  # what only MAE pretraining reads


def preset_digest(preset: dict, mae: bool) -> str:
    """The digest of the preset a run depends on: all of it, less MAE's sections for a run that
    does not pretrain with MAE (choosing MAE's schedule voids only the MAE rows)."""
    preset = copy.deepcopy(preset)
    if not mae:
        for *parents, key in MAE_SECTIONS:
            section = preset
            for parent in parents:
                section = section[parent]
            section.pop(key, None)
    return digest(preset)


def foundation_digest(preset: dict, mae: bool) -> str:
    """The digest of what a draw's foundation depends on: the architecture, its pretraining
    schedule and, for MAE, the preset's mae section (not the downstream recipe)."""
    stage = "pretrain_mae" if mae else "pretrain"
    parts = {"arch": preset["arch"], stage: preset["recipe"][stage]}
    return digest({**parts, "mae": preset["mae"]} if mae else parts)


def made_as_preset(config: dict, preset: Preset, mae: bool) -> bool:
    """Whether a model's config.json records the architecture and pretraining schedule the preset
    gives (and, for MAE, its MAE settings): for a foundation kept without a stamp."""
    stage = config["history"][0]
    arch = preset.mae.encoder_arch(preset.arch) if mae else preset.arch
    schedule = preset.recipe["pretrain_mae" if mae else "pretrain"]
    same = config["arch"] == json.loads(json.dumps(arch.to_dict())) and stage["schedule"] == asdict(schedule)
    return same and (not mae or ("mae" in stage and MaeConfig(**stage["mae"]) == preset.mae))


def digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


MADE_WITH = "made_with.json"  # the digest of the preset's pretraining settings a foundation was made with
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.model", "MODEL.md")


def keep_model(model: Path, kept: Path) -> None:
    """A foundation's files (about 3.5 MB for `small`; no optimizer state) into the record."""
    with atomic.staged_dir(kept, overwrite=True) as stage:
        for name in MODEL_FILES:
            shutil.copyfile(model / name, stage / name)
        if (model / MADE_WITH).is_file():  # foundations made before the stamp lack it
            shutil.copyfile(model / MADE_WITH, stage / MADE_WITH)


def chance_map(data: Path) -> float:
    """The mAP of scores that ignore the input, on eval (``chance_score``)."""
    return chance_score(multi_hot(read_split(data, "eval"), read_classes(data)), "multi-label")


def pool_rows(draws: dict[int, dict]) -> dict:
    labels = [label for label, _, _ in ROWS if all(label in d["rows"] for d in draws.values())]
    return {label: {f"{s}.{n}": pooled([d["rows"][label]["metrics"][s][n] for d in draws.values()])
                    for s, n in COLUMNS} for label in labels}


def unseen_text(draws: dict[int, dict]) -> dict:
    """The quickstart's first cell on these draws: trained on audio+video, scored on text alone (the
    Transferability score of that training set), fine-tuning's and the headline's, and the change."""
    def cell(label: str) -> list[float] | None:
        rows = [d["rows"].get(label, {}).get("metrics", {}).get("per_train", {}) for d in draws.values()]
        if not all("audio+video" in r.get("transfer", {}) for r in rows):
            return None
        return [r["transfer"]["audio+video"]["P"] for r in rows]
    ft, headline = cell(BASELINE), cell(HEADLINE)
    if ft is None or headline is None:
        return {}
    return {BASELINE: pooled(ft), HEADLINE: pooled(headline),
            "change": pooled([h - f for h, f in zip(headline, ft, strict=True)])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/paper-table"))
    p.add_argument("--draws", default="1001,1002,1003", help="data seeds never used for a choice")
    p.add_argument("--record", type=Path, help="keep each draw's finished figures here (committed: "
                   "docs/results/paper-table); runs found there are not run again")
    p.add_argument("--runs", help=f"only these runs (of {', '.join(RUNS)}; default all but "
                   f"{' and '.join(MAE_RUNS)}, which --mae adds): a "
                   "table of what a record holds so far, its other rows reported as not measured")
    p.add_argument("--mae", action="store_true", help="add the MAE rows (the preset's MAE pretraining) "
                   "and contrastive's linear probe again for its in-modality scores")
    p.add_argument("--size", default="small", choices=("tiny", "small"),
                   help="data size and preset (tiny: the test of this script)")
    p.add_argument("--again", metavar="RUN", help="make this run of the record again in --out (not kept) "
                   "and set its figures beside the record's, in --out/again.json")
    args = p.parse_args()
    started, made_at = time.monotonic(), commit(args.record)
    args.began_at = made_at  # what each part records; and the code it was, as Draw.same_code reads it:
    args.began_as = fingerprint(*written(args))
    if args.again:
        if args.again not in RUNS or args.record is None:
            raise SystemExit(f"--again {args.again}: expected one of {', '.join(RUNS)}, with --record")
        found = [Draw(args, int(s)).again(args.again) for s in args.draws.split(",")]
        atomic.write_text(args.out / "again.json", json.dumps(found, indent=1) + "\n")
        print("\n".join(line(d["draw"], d["run"], d) for d in found))
        return
    runs = [r for r in RUNS
            if (r not in MAE_RUNS or args.mae) and (args.runs is None or r in args.runs.split(","))]
    if args.runs is not None and set(args.runs.split(",")) - set(RUNS):
        raise SystemExit(f"--runs {args.runs}: expected some of {', '.join(RUNS)}")
    draws = {}
    for seed in (int(s) for s in args.draws.split(",")):
        draws[seed] = Draw(args, seed).run(runs)
    parts = [m for d in draws.values() for m in d["made"].values()]  # where the figures were made
    doc = {"machine": machine(), "date": str(date.today()), "size": args.size, "assembled_at": made_at,
           **made_span(parts),  # "commit": the commits the figures were made at
           "command": command("lab.paper_table"), "draws": list(draws),
           "runs": runs, "partial": args.runs is not None,
           "minutes": round((time.monotonic() - started) / 60, 1), "rows": pool_rows(draws),
           "unseen_text": unseen_text(draws),
           "per_draw": draws}
    for folder in (args.out, *([args.record] if args.record else [])):  # the record's copy is the docs' page
        atomic.write_text(folder / "table.json", json.dumps(doc, indent=1) + "\n")
        atomic.write_text(folder / "table.md", render(doc))
        write_figures(folder, draws)
    print((args.out / "table.md").read_text("utf-8"))


if __name__ == "__main__":
    main()
