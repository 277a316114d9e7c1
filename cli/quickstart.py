"""`mmrt quickstart`: the main job on the embedded default, end to end with what exists so far.

Bundled data -> data card -> the released foundation (or, with --pretrain, contrastive pretraining
here) -> plain fine-tuning and MASD + WiSE-FT on
a training set that lacks a modality (one probe shared) -> both scored on every modality subset,
the missing one included -> export of MASD + WiSE-FT to a verified bundle with the monolithic
baseline -> `mmrt serve` + `mmrt bench` with the missing modality present again and another sensor
dropped -> the two methods side by side on what the rig meets after training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from mmrt.cli.flags import check_seed, made_where
from mmrt.errors import UserError
from mmrt.robustness import STRATA


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="run the main job on the bundled dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart", help="work folder (default runs/quickstart)")
    p.add_argument("--size", choices=("tiny", "small", "base"), default="small",
                   help="data size and preset (default small; tiny: seconds, for a smoke test)")
    p.add_argument("--seed", type=int, default=0, help="data draw and training seed (default 0)")
    p.add_argument("--pretrain", action="store_true",
                   help="pretrain the foundation here, from scratch (small: a 38,400-clip pool and about "
                   "half an hour on 2 cores, resumable; the released card gives its minutes), instead of "
                   "starting from the released one; a size with no released foundation (tiny, base) "
                   "always does")
    p.add_argument("--pretrain-epochs", type=int, metavar="N",
                   help="with --pretrain: contrastive pretraining epochs (default: the preset's, 10 for "
                   "small; fewer is quicker and costs score: "
                   "docs/training.md#what-the-quickstart-budget-costs)")
    p.set_defaults(run=run, prog=p.prog)


STEPS = 8
COMPARED = ("ft", "masd+wiseft")  # the baseline and the method, from one shared linear probe
STRATUM_NAMES = {"missing": "missing at test", "added": "added at test", "transfer": "transfer"}


def _step(n: int, title: str) -> None:
    print(f"\n== [{n}/{STEPS}] {title}", flush=True)


def _dataset(out: Path, size: str, seed: int, pool: bool) -> tuple[Path, bool]:
    """The bundled data; without ``pool`` (a released foundation does the pretraining), only as
    many pretraining clips as MASD distils on and no unseen pool."""
    from mmrt.training.datagen.config import SIZES, GeneratorConfig
    from mmrt.training.datagen.datacard import generator_code
    from mmrt.training.datagen.make import make_dataset

    data = out / "data"
    card = data / "datacard.json"
    cfg = GeneratorConfig(size=size, seed=seed) if pool else \
        GeneratorConfig(size=size, seed=seed, pretrain_size=SIZES[size]["distill"], unseen_size=0)
    # Reuse only data made with exactly this configuration (knob defaults may change) by this
    # generator's code.
    saved = json.loads(card.read_text()) if card.is_file() else {}
    if saved.get("config") == json.loads(json.dumps(cfg.to_dict())) and \
            saved.get("generator_code") == generator_code():
        print(f"reusing {data} (size {size}, seed {seed})")
        return data, True
    made = make_dataset(cfg, data, overwrite=True)
    print(f"generated {data} in {made['generation_seconds']} s with {made['workers']} workers")
    return data, False


def _schedule(saved: dict | None):
    """A saved schedule as a Schedule (fields added since take their defaults), None if unreadable."""
    from mmrt.training.model.config import Schedule

    try:
        return Schedule(**saved) if isinstance(saved, dict) else None
    except (TypeError, UserError):
        return None


def _pretrain(data: Path, out: Path, preset: str, seed: int, data_reused: bool,
              epochs: int | None = None) -> Path:
    from mmrt.training.model.checkpoint import read_config
    from mmrt.training.model.config import load_preset
    from mmrt.training.stages.pretrain import PretrainOptions, pretrain
    from mmrt.training.stages.rundir import STATE

    folder = out / "pretrained"
    if data_reused and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        config = read_config(folder)
        # Reuse only a model pretrained with this seed and the preset's current architecture and recipe.
        current = load_preset(preset)
        schedule = current.recipe["pretrain"].override(epochs)
        if config.history and config.history[0].get("seed") == seed and config.preset == preset \
                and config.arch == current.arch and _schedule(config.history[0].get("schedule")) == schedule:
            print(f"reusing {folder}")
            return folder
    started = time.perf_counter()
    options = PretrainOptions(data, folder, preset, seed=seed, epochs=epochs, overwrite=True)
    if data_reused and (folder / STATE).is_file():  # an earlier quickstart stopped mid-way
        try:
            pretrain(replace(options, resume=True, overwrite=False))
        except UserError as e:  # saved with another recipe or architecture
            print(f"cannot continue the interrupted pretraining ({e}); starting again")
            pretrain(options)
    else:
        print("(saved as it goes: if it is stopped, the same command continues from there)", flush=True)
        pretrain(options)
    print(f"pretrained in {time.perf_counter() - started:.0f} s: {folder}")
    return folder


def _train(data: Path, pretrained: Path, out: Path, train_set: str, seed: int,
           made: dict) -> tuple[dict, dict]:
    """Fine-tuning and MASD + WiSE-FT on ``train_set``, each scored on every eval subset:
    {method: {eval subset: score}} and the same on each bootstrap resample of the eval examples;
    the models are under ``out/models/<method>/<train_set>``."""
    from mmrt.training.experiments.experiment import BOOTSTRAP, SCORES, ExperimentOptions, experiment

    started = time.perf_counter()
    experiment(ExperimentOptions(data, out, methods=COMPARED, seeds=(seed,), alphas=(), pretrained=pretrained,
                                 train_sets=(train_set,), overwrite=True, made=made))
    print(f"trained and scored in {time.perf_counter() - started:.0f} s: {out}")
    scores = json.loads((out / SCORES).read_text("utf-8"))["methods"]
    samples = json.loads((out / BOOTSTRAP).read_text("utf-8"))
    return ({method: scores[method][train_set] for method in COMPARED},
            {method: samples[method][train_set] for method in COMPARED})


def _kind(train_set: str, key: str) -> str:
    trained_on, seen = frozenset(train_set.split("+")), frozenset(key.split("+"))
    strata = [STRATUM_NAMES[name] for name, admit in STRATA.items()
              if name in STRATUM_NAMES and admit(trained_on, seen)]
    return "same" if seen == trained_on else strata[0] if strata else "partial overlap"


def _scores(scores: dict, train_set: str, metric: str) -> None:
    width = max(map(len, scores[COMPARED[0]]))
    print(f"{'eval modalities':<{width}}  {'fine-tune':>9}  {'MASD+WiSE-FT':>12}  "
          f"vs the training set ({metric})")
    for key in scores[COMPARED[0]]:
        ft, masd = (scores[m][key] for m in COMPARED)
        print(f"{key:<{width}}  {ft:9.3f}  {masd:12.3f}  {_kind(train_set, key)}")


def _export(model: Path, data: Path, out: Path) -> None:
    from mmrt.export.exporter import ExportOptions, export_bundle

    started = time.perf_counter()
    manifest = export_bundle(ExportOptions(model, out / "bundle", baseline=True, data=data, overwrite=True))
    worst = max(manifest.parity["max_error"].values())
    print(f"exported in {time.perf_counter() - started:.0f} s: {out / 'bundle'} "
          f"({', '.join(manifest.files)}); parity max error {worst:.1g}")


def _bench(out: Path, data: Path, dropped: str) -> dict:
    from mmrt.benchmarks.report import headline
    from mmrt.benchmarks.run import BenchOptions, run_bench
    from mmrt.benchmarks.workload import DropPlan

    started = time.perf_counter()
    report = run_bench(BenchOptions(data=data, out=out / "bench", bundle=out / "bundle",
                                    drop=DropPlan(frozenset({dropped})), baseline=True, streaming=True))
    print(f"benched in {time.perf_counter() - started:.0f} s: {out / 'bench' / 'report.md'}")
    print(headline(report))
    return report


def _side_by_side(scores: dict, samples: dict, report: dict, train_set: str, unseen: str,
                  dropped: str) -> dict:
    """The point of the method in four lines: both models trained on ``train_set``, scored where
    the rig differs from training, the change with its 95% bootstrap interval (both models on
    the same resamples of the eval examples), and what serving only the present encoders saves.
    Returns the same figures, for summary.json."""
    from mmrt.intervals import ci95

    baseline, method = COMPARED
    left = "+".join(m for m in report["modalities"] if m != dropped)
    rows = [(f"{unseen} alone (training never saw it)", unseen),
            (f"{dropped} dropped ({left}: the bench's workload)", left)]
    head = f"trained on {train_set} (same data, probe and seed)"
    width = max(len(head), *(len(label) for label, _ in rows))
    print(f"{head:<{width}}  {'fine-tune':>9}  {'MASD+WiSE-FT':>12}  change [95% interval]")
    summary: dict = {"trained_on": train_set, "chance": report["chance"], "rows": []}
    for label, key in rows:
        ft, masd = scores[baseline][key], scores[method][key]
        ci = ci95(np.subtract(samples[method][key], samples[baseline][key]))  # paired: same resamples
        print(f"{label:<{width}}  {ft:9.3f}  {masd:12.3f}  {masd - ft:+.3f} "
              f"[{ci['low']:+.3f}, {ci['high']:+.3f}]")
        summary["rows"].append({"label": label, "scored_on": key, baseline: ft, method: masd,
                                "change": masd - ft, "ci95": [ci["low"], ci["high"]]})
    vs = report.get("vs_baseline", {}).get("overall")
    if vs:
        p50, mono = report["overall"]["latency_ms"]["p50"], report["baseline"]["overall"]["latency_ms"]["p50"]
        print(f"served with {dropped} dropped: p50 {p50:.1f} ms running only the present encoders vs "
              f"{mono:.1f} ms for the monolithic graph ({vs['p50_ratio']:.2f}x)")
        summary["served"] = {"dropped": dropped, "p50_ms": p50, "monolithic_p50_ms": mono,
                             "ratio": vs["p50_ratio"]}
    print(plainly(summary["rows"]))
    return summary


def plainly(rows: list[dict]) -> str:
    """Which changes are clear of zero, in one sentence."""
    def said(row: dict) -> str:
        low, high = row["ci95"]
        where = "with " + row["label"].split(" (")[0]
        if low > 0 or high < 0:
            side = "higher" if low > 0 else "lower"
            return f"{where}, MASD+WiSE-FT scores {side} than fine-tuning, clear of zero"
        return f"{where}, the change is not clear of zero (its interval holds it)"
    return ("In plain words: " + "; ".join(said(r) for r in rows) + " (95% intervals over the eval "
            "examples, one training seed on one data draw).")


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    check_seed(args.seed)
    epochs = args.pretrain_epochs
    if epochs is not None and epochs <= 0:
        raise UserError(f"--pretrain-epochs {args.pretrain_epochs}: expected a positive number")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    from mmrt.training.model.foundations import RELEASED, describe, released_folder

    released = args.size in RELEASED and not args.pretrain
    if released and epochs is not None:
        raise UserError("--pretrain-epochs: applies when the quickstart pretrains; add --pretrain")
    _step(1, f"bundled dataset ({args.size})")
    data, reused = _dataset(out, args.size, args.seed, pool=not released)
    _step(2, "data card")
    print((data / "DATACARD.md").read_text(encoding="utf-8"))
    from mmrt.training.model.config import load_preset

    if released:
        _step(3, "the foundation: pretrained encoders released with mmrt")
        print(f"starting from {describe(args.size)}; to pretrain your own instead: mmrt quickstart "
              f"--pretrain, or mmrt pretrain on your clips")
        pretrained = released_folder(args.size)
    else:
        _step(3, f"contrastive pretraining (preset {args.size}, "
              f"{epochs or load_preset(args.size).recipe['pretrain'].epochs} epochs)")
        pretrained = _pretrain(data, out, args.size, args.seed, reused, epochs)
    from mmrt.training.model.checkpoint import read_config

    config = read_config(pretrained)
    modalities, unseen = config.modalities, config.modalities[-1]
    train_set = "+".join(modalities[:-1])
    _step(4, f"fine-tuning and MASD + WiSE-FT on {train_set}: the rig lacked a {unseen} sensor when the "
          "labelled data was recorded")
    scores, samples = _train(data, pretrained, out / "train", train_set, args.seed, made_where(args))
    _step(5, "scores on every modality subset of the eval split (one seed: expect about ±0.1 a cell)")
    _scores(scores, train_set, config.metric)
    _step(6, "export MASD + WiSE-FT: one ONNX graph per modality encoder, the head and the monolithic "
          "baseline, each checked against PyTorch on real examples")
    _export(out / "train" / "models" / "masd+wiseft" / train_set, data, out)
    dropped = modalities[-2]  # a sensor the training set had
    _step(7, f"serve the bundle and bench it through gRPC: {unseen} present again, {dropped} "
          f"dropped, against the monolithic graph")
    report = _bench(out, data, dropped)
    foundation = f"--pretrained {args.size}" if released else f"--preset {args.size}"
    print(f"\nTo serve it yourself: mmrt serve {out / 'bundle'}   (KServe v2 / Triton gRPC on "
          "127.0.0.1:8001)")
    print(f"For all methods on every training set with the paper's report: mmrt experiment "
          f"--data {data} --out runs/exp {foundation} --seeds 0,1,2")
    _step(8, "what the method bought")
    summary = _side_by_side(scores, samples, report, train_set, unseen, dropped)
    from mmrt import atomic
    from mmrt.benchmarks.timing import machine

    minutes = round((time.monotonic() - began) / 60, 1)
    plots = {name: hashlib.sha256((out / "bench" / name).read_bytes()).hexdigest()
             for name in ("score.png", "vs_monolithic.png") if (out / "bench" / name).is_file()}
    summary.update(date=str(date.today()), machine=machine(), minutes=minutes, data_reused=reused,
                   foundation=describe(args.size) if released else f"pretrained here ({pretrained})",
                   flags={"size": args.size, "seed": args.seed, "pretrain": not released,
                          "pretrain_epochs": epochs}, plots=plots)
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return 0
