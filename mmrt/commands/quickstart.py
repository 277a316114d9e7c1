"""`mmrt quickstart`: the main job on the embedded default, end to end with what exists so far.

Bundled data -> data card -> contrastive pretraining -> MASD + WiSE-FT on a training set that
lacks a modality -> scores on every modality subset, the missing one included -> export to a
verified bundle with the monolithic baseline -> `mmrt serve` + `mmrt bench` with the missing
modality present again and another sensor dropped, side by side with the monolithic graph.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmrt.commands import check_seed
from mmrt.errors import UserError
from mmrt.robustness import STRATA


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="run the main job on the bundled dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart", help="work folder (default runs/quickstart)")
    p.add_argument("--size", choices=("tiny", "small", "base"), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run, prog=p.prog)


STEPS = 7
STRATUM_NAMES = {"missing": "missing at test", "added": "added at test", "transfer": "transfer"}


def _step(n: int, title: str) -> None:
    print(f"\n== [{n}/{STEPS}] {title}", flush=True)


def _dataset(out: Path, size: str, seed: int) -> tuple[Path, bool]:
    from mmrt.training.datagen.config import GeneratorConfig
    from mmrt.training.datagen.make import make_dataset

    data = out / "data"
    card = data / "datacard.json"
    cfg = GeneratorConfig(size=size, seed=seed)
    # Reuse only data made with exactly this configuration (knob defaults may change).
    if card.is_file() and json.loads(card.read_text())["config"] == json.loads(json.dumps(cfg.to_dict())):
        print(f"reusing {data} (size {size}, seed {seed})")
        return data, True
    made = make_dataset(cfg, data, overwrite=True)
    print(f"generated {data} in {made['generation_seconds']} s with {made['workers']} workers")
    return data, False


def _schedule(saved: dict | None):
    """A saved schedule as a Schedule (fields added since take their defaults), None if unreadable."""
    from mmrt.training.config import Schedule

    try:
        return Schedule(**saved) if isinstance(saved, dict) else None
    except (TypeError, UserError):
        return None


def _pretrain(data: Path, out: Path, preset: str, seed: int, data_reused: bool) -> Path:
    from mmrt.training.checkpoint import read_config
    from mmrt.training.config import load_preset
    from mmrt.training.pretrain import PretrainOptions, pretrain

    folder = out / "pretrained"
    if data_reused and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        config = read_config(folder)
        # Reuse only a model pretrained with this seed and the preset's current architecture and recipe.
        current = load_preset(preset)
        if config.history and config.history[0].get("seed") == seed and config.preset == preset \
                and config.arch == current.arch \
                and _schedule(config.history[0].get("schedule")) == current.recipe["pretrain"]:
            print(f"reusing {folder}")
            return folder
    started = time.perf_counter()
    pretrain(PretrainOptions(data, folder, preset, seed=seed, overwrite=True))
    print(f"pretrained in {time.perf_counter() - started:.0f} s: {folder}")
    return folder


def _train(data: Path, pretrained: Path, out: Path, train_set: str, seed: int) -> Path:
    from mmrt.training.train import TrainOptions, train

    started = time.perf_counter()
    model = train(TrainOptions(data, pretrained, "masd+wiseft", train_set, out / "model", seed=seed,
                               overwrite=True))
    print(f"trained in {time.perf_counter() - started:.0f} s: {model}")
    return model


def _scores(model: Path, data: Path, train_set: str) -> None:
    from mmrt.training.evaluate import evaluate_model

    scores, metric = evaluate_model(model, data)
    trained_on = frozenset(train_set.split("+"))
    width = max(map(len, scores))
    print(f"{'eval modalities':<{width}}  {metric:>6}  vs the training set")
    for key, value in scores.items():
        seen = frozenset(key.split("+"))
        strata = [STRATUM_NAMES[name] for name, admit in STRATA.items()
                  if name in STRATUM_NAMES and admit(trained_on, seen)]
        kind = "same" if seen == trained_on else strata[0] if strata else "partial overlap"
        print(f"{key:<{width}}  {value:6.3f}  {kind}")


def _export(model: Path, data: Path, out: Path) -> None:
    from mmrt.export.exporter import ExportOptions, export_bundle

    started = time.perf_counter()
    manifest = export_bundle(ExportOptions(model, out / "bundle", baseline=True, data=data, overwrite=True))
    worst = max(manifest.parity["max_error"].values())
    print(f"exported in {time.perf_counter() - started:.0f} s: {out / 'bundle'} "
          f"({', '.join(manifest.files)}); parity max error {worst:.1g}")


def _bench(out: Path, data: Path, dropped: str) -> None:
    from mmrt.benchmarks.bench import BenchOptions, run_bench
    from mmrt.benchmarks.bench_report import headline
    from mmrt.benchmarks.workload import DropPlan

    started = time.perf_counter()
    report = run_bench(BenchOptions(data=data, out=out / "bench", bundle=out / "bundle",
                                    drop=DropPlan(frozenset({dropped})), baseline=True, streaming=True))
    print(f"benched in {time.perf_counter() - started:.0f} s: {out / 'bench' / 'report.md'}")
    print(headline(report))


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    _step(1, f"bundled dataset ({args.size})")
    data, reused = _dataset(out, args.size, args.seed)
    _step(2, "data card")
    print((data / "DATACARD.md").read_text(encoding="utf-8"))
    _step(3, f"contrastive pretraining (preset {args.size})")
    pretrained = _pretrain(data, out, args.size, args.seed, reused)
    from mmrt.training.checkpoint import read_config

    modalities = read_config(pretrained).modalities
    train_set = "+".join(modalities[:-1])
    _step(4, f"MASD + WiSE-FT on {train_set}: the rig lacked a {modalities[-1]} sensor when the "
          "labelled data was recorded")
    model = _train(data, pretrained, out, train_set, args.seed)
    _step(5, "scores on every modality subset of the eval split (one seed: expect about ±0.1 a cell)")
    _scores(model, data, train_set)
    _step(6, "export: one ONNX graph per modality encoder, the head and the monolithic baseline, each "
          "checked against PyTorch on real examples")
    _export(model, data, out)
    dropped = modalities[-2]  # a sensor the training set had
    _step(7, f"serve the bundle and bench it through gRPC: {modalities[-1]} present again, {dropped} "
          f"dropped, against the monolithic graph")
    _bench(out, data, dropped)
    print(f"\nFor all methods on every training set with the paper's report: mmrt experiment "
          f"--data {data} --out runs/exp --preset {args.size} --seeds 0,1,2")
    print(f"To serve it yourself: mmrt serve {out / 'bundle'}   (KServe v2 / Triton gRPC on 127.0.0.1:8001)")
    return 0
