"""The pretraining pool against memorising, at the same compute: held-out alignment and validation
scores for pools of several sizes, each pretrained for about the same number of steps.

    python -m lab.foundation_curve --data D --out runs/foundation-curve \\
        [--sizes 38400,9600,2400] [--steps 2960] [--seed 0] [--holdout 0.25]

D needs a pretraining pool as large as the largest size (`mmrt data make --pretrain-size 38400`:
every clip is seeded by its index, so the first N clips of the pool are the pool of size N). For
each size N, in the order given: a view of D whose pretrain.jsonl is D's first N clips (the other
files linked), `mmrt pretrain` for round(steps / (N // batch)) epochs, then `mmrt experiment
--holdout` with ft and MASD+WiSE-FT on every training set, scored on validation (a seeded share of
train; eval is never read). Writes RUN/curve.json, RUN/curve.md and RUN/curve.png: alignment on
pretraining and held-out clips, and validation P and R, against the pool size. Resumable: run the
same command again (a finished point is read back, a killed pretraining resumes).

Quoted in docs/data.md, docs/results/foundation.md."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from lab.data_views import data_view
from mmrt import atomic
from mmrt.benchmarks.timing import machine
from mmrt.cli import main as mmrt
from mmrt.training.experiments.plots import save_figure
from mmrt.training.model.config import load_preset

METHODS = ("ft", "masd+wiseft")


def pretrained(args: argparse.Namespace, view: Path, size: int, batch: int) -> Path:
    out = args.out / f"pre-{size}"
    if size < batch:
        raise SystemExit(f"--sizes {size}: a pool smaller than the pretraining batch ({batch}) makes no step")
    epochs = max(1, round(args.steps / (size // batch)))
    if not (out / "config.json").is_file():
        resume = ["--resume"] if out.is_dir() else []
        assert mmrt(["pretrain", "--data", str(view), "--out", str(out), "--preset", args.preset,
                     "--seed", str(args.seed), "--epochs", str(epochs), "--quiet", *resume]) == 0
    return out


def validation(args: argparse.Namespace, view: Path, model: Path, size: int) -> dict:
    out = args.out / f"val-{size}"
    if not (out / "results.json").is_file():
        resume = ["--resume"] if out.is_dir() else []
        assert mmrt(["experiment", "--data", str(view), "--pretrained", str(model), "--out", str(out),
                     "--holdout", str(args.holdout), "--methods", ",".join(METHODS), "--seed",
                     str(args.seed), "--quiet", *resume]) == 0
    return json.loads((out / "results.json").read_text("utf-8"))


def point(model: Path, results: dict) -> dict:
    stage = json.loads((model / "config.json").read_text("utf-8"))["history"][0]
    checks = stage["alignment"]
    align = {name: {pair: v["retrieval"] for pair, v in check["pairs"].items()}
             for name, check in checks.items()}
    scores = {m: {k: results["methods"][m]["metrics"]["overall"][k] for k in ("P", "R")}
              for m in METHODS}
    return {"epochs": stage["schedule"]["epochs"], "steps": stage["steps"], "seconds": stage.get("seconds"),
            "retrieval": align, "chance": checks["pretrain"]["chance"]["retrieval"],
            "validation": scores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/foundation-curve"))
    p.add_argument("--sizes", default="38400,9600,2400", help="pool sizes (clips), comma list, run in order")
    p.add_argument("--steps", type=int, default=2960,
                   help="pretraining steps each size gets, about (the small preset's 80 epochs of 2,400)")
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.25)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    batch = load_preset(args.preset).recipe["pretrain"].batch_size
    points = {}
    for size in sizes:
        view = data_view(args.data, args.out / f"data-{size}", {"pretrain": size})
        model = pretrained(args, view, size, batch)
        points[str(size)] = point(model, validation(args, view, model, size))
        report(args, points)


def report(args: argparse.Namespace, points: dict) -> None:
    doc = {"machine": machine(), "date": str(date.today()), "data": str(args.data), "seed": args.seed,
           "holdout": args.holdout, "points": points}
    atomic.write_text(args.out / "curve.json", json.dumps(doc, indent=1) + "\n")
    pairs = list(next(iter(points.values()))["retrieval"]["pretrain"])
    lines = [f"Pretraining pool against memorising at about {args.steps} steps; data {args.data}, "
             f"seed {args.seed}; {doc['machine']}; {doc['date']}. Retrieval in batches of the "
             f"pretraining batch (chance {next(iter(points.values()))['chance']:.3f}), pretraining clips "
             f"/ held-out clips; P and R on validation (holdout {args.holdout:g} of train).", "",
             "| pool (clips) | epochs | " + " | ".join(f"{p} retrieval" for p in pairs)
             + " | " + " | ".join(f"{m} P / R" for m in METHODS) + " |",
             "|---" * (2 + len(pairs) + len(METHODS)) + "|"]
    for size in sorted(points, key=int):
        pt = points[size]
        held = pt["retrieval"].get("held_out", {})
        cells = [f"{pt['retrieval']['pretrain'][p]:.3f} / {held[p]:.3f}" if p in held else
                 f"{pt['retrieval']['pretrain'][p]:.3f} / –" for p in pairs]
        cells += [f"{pt['validation'][m]['P']:.3f} / {pt['validation'][m]['R']:.3f}" for m in METHODS]
        lines.append(f"| {size} | {pt['epochs']} | " + " | ".join(cells) + " |")
    atomic.write_text(args.out / "curve.md", "\n".join(lines) + "\n")
    plot(args.out / "curve.png", points, pairs)
    print("\n".join(lines))


def plot(path: Path, points: dict, pairs: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(points, key=int)
    x = [int(s) for s in sizes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for pair in pairs:
        line, = left.plot(x, [points[s]["retrieval"]["pretrain"][pair] for s in sizes], "o-",
                          label=f"{pair}: pretraining clips")
        left.plot(x, [points[s]["retrieval"].get("held_out", {}).get(pair, float("nan")) for s in sizes],
                  "s--", color=line.get_color(), label=f"{pair}: held out")
    left.axhline(points[sizes[0]]["chance"], color="grey", lw=0.8, ls=":", label="chance")
    left.set_ylabel("retrieval")
    for m in METHODS:
        for key, style in (("P", "o-"), ("R", "s--")):
            right.plot(x, [points[s]["validation"][m][key] for s in sizes], style, label=f"{m} {key}")
    right.set_ylabel("validation mAP")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlim(min(x) / 1.5, max(x) * 1.5)
        ax.set_xlabel("pretraining pool (clips), same steps")
        ax.legend(fontsize=6)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
