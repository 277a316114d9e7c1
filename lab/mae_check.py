"""Does MAE pretraining learn at this scale? Each modality's linear probe on validation, from MAE
against the same encoders before any step and against contrastive pretraining, with the
reconstruction losses beside the floors they must beat.

    python -m lab.mae_check --data runs/mae/data --out runs/mae-check [--epochs 10] [--contrastive small]

Run on a data draw that choices are made on (`mmrt data make --size small --seed 0`, the released
foundation's), never on a paper-table draw. For each --epochs (comma list) it pretrains MAE
(`mmrt pretrain --objective mae`, resumable), makes the start (the MAE encoders as pretraining
initialises them: the same config and seed, no step taken), and probes each model with `mmrt
experiment --methods lp --train-sets audio,video,text --holdout 0.25` (trained on one modality,
scored on it, on a seeded quarter of train; eval is never read). Per modality it reports each probe
with its 95% interval, the chance score of the validation clips, MAE minus the start with a paired
95% interval (the same bootstrap resamples), the headroom (contrastive minus the start), and MAE's
reconstruction loss over its last epoch against the floor of a guess that ignores the visible
tokens (1.0 for the normalised audio and video patches; for text, the entropy of the word pieces'
frequencies). MAE learns a modality when its probe beats both the start and chance by at least
LEARNS, a margin fixed before the check was run. Writes OUT/check.json and OUT/check.md; run again
to resume or to add epoch counts.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch

from mmrt import atomic
from mmrt.benchmarks.timing import machine
from mmrt.cli import main as mmrt
from mmrt.scores import chance_score
from mmrt.split_files import multi_hot, read_classes, read_split
from mmrt.text import PAD_ID, TextTokenizer
from mmrt.training.data.data import inspect_data
from mmrt.training.data.splits import holdout
from mmrt.training.experiments.tune import in_distribution
from mmrt.training.model.checkpoint import read_config, save_model, tokenizer_path
from mmrt.training.model.config import load_preset
from mmrt.training.model.model import MultimodalModel

MODALITIES = ("audio", "video", "text")
LEARNS = 0.10  # mAP above the start and above chance: "learns" (fixed before any run)
PATCH_FLOOR = 1.0  # MSE of predicting zero for a patch normalised to zero mean, unit variance
# (less for a flat patch, whose normalised pixels are all near zero)


def start_weights(mae: Path, out: Path, seed: int) -> Path:
    """The MAE encoders before any step: pretraining's own config and tokenizer, initialised
    as `mmrt pretrain` initialises them (seeded, then built)."""
    if not (out / "config.json").is_file():
        config = replace(read_config(mae), history=())
        torch.manual_seed(seed)
        save_model(out, MultimodalModel(config), tokenizer_path(mae))
    return out


def probe(data: Path, model: str | Path, out: Path, seed: int, share: float) -> dict:
    """{"scores": {modality: p(m; m)}, "samples": {modality: [p on each bootstrap resample]}}."""
    if not (out / "results.json").is_file():
        resume = ["--resume"] if out.is_dir() else []
        assert mmrt(["experiment", "--data", str(data), "--pretrained", str(model), "--out", str(out),
                     "--methods", "lp", "--train-sets", ",".join(MODALITIES), "--holdout", str(share),
                     "--seed", str(seed), "--quiet", *resume]) == 0
    scores = in_distribution(json.loads((out / "results.json").read_text("utf-8")), "lp")
    samples = json.loads((out / "bootstrap.json").read_text("utf-8"))["lp"]
    return {"scores": scores, "samples": {m: samples[m][m] for m in scores}}


def interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def validation_chance(data: Path, share: float, seed: int) -> float:
    """The score of a guess that ignores the input, on the probes' validation clips."""
    train = read_split(data, "train")
    _, held = holdout(len(train), share, seed)
    return chance_score(multi_hot([train[i] for i in held], read_classes(data)), inspect_data(data).task)


def text_floor(data: Path, mae: Path) -> float:
    """Cross-entropy (nats) of predicting every hidden word piece by the word pieces' frequencies in
    the pretraining titles: what the text decoder scores without reading the visible ones."""
    prep = read_config(mae).arch.preprocessing
    tokenizer = TextTokenizer(mae / "tokenizer.model", prep.max_tokens)
    pretrain = read_split(data, "pretrain", labeled=False)
    titles = [ex.inputs["text"] for ex in pretrain if ex.inputs.get("text")]
    ids = tokenizer.encode(titles)
    counts = Counter(ids[ids != PAD_ID].tolist())
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def compare(mae: dict, start: dict, contrastive: dict, chance: float, losses: dict, floors: dict) -> dict:
    """Per modality: the three probes, MAE minus the start (paired interval), headroom, the verdict."""
    out = {}
    for m in MODALITIES:
        diff = np.asarray(mae["samples"][m]) - np.asarray(start["samples"][m])
        gain = mae["scores"][m] - start["scores"][m]
        out[m] = {"mae": mae["scores"][m], "start": start["scores"][m],
                  "contrastive": contrastive["scores"][m], "chance": chance,
                  "mae_minus_start": gain, "mae_minus_start_ci95": interval(diff),
                  "headroom": contrastive["scores"][m] - start["scores"][m],
                  "loss": losses.get(m), "floor": floors[m],
                  "learns": gain >= LEARNS and mae["scores"][m] - chance >= LEARNS}
    return out


def render(doc: dict) -> str:
    lines = ["# Does MAE learn at this scale?", "",
             f"`{doc['command']}`; {doc['machine']}, {doc['date']}. Data: {doc['data']} (a draw choices "
             f"are made on). Linear probe per modality, trained and scored on it, on validation (a seeded "
             f"{doc['holdout']:.0%} of train); chance {doc['chance']:.3f}. MAE learns a modality when its "
             f"probe is at least {LEARNS} mAP above the start (its encoders before any step) and above "
             "chance.",
             ""]
    for epochs, run in doc["runs"].items():
        lines += [f"## MAE, {epochs} epochs ({run['steps']} steps, {run['seconds_per_step']} s a step, "
                  f"{run['minutes']} min)", "",
                  "| modality | start | MAE | MAE − start [95%] | contrastive | headroom | MAE loss | floor "
                  "| learns |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for m, r in run["modalities"].items():
            low, high = r["mae_minus_start_ci95"]
            loss = "-" if r["loss"] is None else f"{r['loss']:.3f}"
            lines.append(f"| {m} | {r['start']:.3f} | {r['mae']:.3f} | {r['mae_minus_start']:+.3f} "
                         f"[{low:+.3f}, {high:+.3f}] | {r['contrastive']:.3f} | {r['headroom']:+.3f} | "
                         f"{loss} | {r['floor']:.3f} | {'yes' if r['learns'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a draw choices are made on (seed 0)")
    p.add_argument("--out", type=Path, default=Path("runs/mae-check"))
    p.add_argument("--epochs", default=None, help="comma list of MAE epoch counts (default: the preset's)")
    p.add_argument("--contrastive", default="small", help="contrastive foundation to compare with "
                   "(default: the released `small`, pretrained on seed 0's clips)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.25)
    p.add_argument("--preset", default="small")
    args = p.parse_args()
    settings = {"data": str(args.data.resolve()), "contrastive": args.contrastive, "seed": args.seed,
                "holdout": args.holdout, "preset": args.preset}
    made = args.out / "settings.json"
    if made.is_file() and json.loads(made.read_text("utf-8")) != settings:
        raise SystemExit(f"{args.out} was made with {made.read_text('utf-8').strip()}: use another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(made, json.dumps(settings) + "\n")

    epochs = ([int(e) for e in args.epochs.split(",")] if args.epochs
              else [load_preset(args.preset).recipe["pretrain_mae"].epochs])
    contrastive = probe(args.data, args.contrastive, args.out / "probe-contrastive", args.seed, args.holdout)
    chance = validation_chance(args.data, args.holdout, args.seed)
    doc = {"command": "python -m lab.mae_check " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
           "machine": machine(), "date": str(date.today()), "data": str(args.data), "holdout": args.holdout,
           "chance": chance, "learns_margin": LEARNS, "runs": {}}
    for n in epochs:
        model = args.out / f"mae-e{n}"
        if not (model / "config.json").is_file():
            resume = ["--resume"] if model.is_dir() else []
            assert mmrt(["pretrain", "--data", str(args.data), "--out", str(model), "--objective", "mae",
                         "--preset", args.preset, "--seed", str(args.seed), "--epochs", str(n), "--quiet",
                         *resume]) == 0
        stage = read_config(model).history[0]
        start = start_weights(model, args.out / "start", args.seed)
        floors = {"audio": PATCH_FLOOR, "video": PATCH_FLOOR, "text": text_floor(args.data, model)}
        doc["runs"][str(n)] = {
            "steps": stage["steps"], "seconds_per_step": stage.get("seconds_per_step"),
            "minutes": round(stage["seconds"] / 60, 1), "final_loss": stage["final_loss"],
            "modalities": compare(
                probe(args.data, model, args.out / f"probe-mae-e{n}", args.seed, args.holdout),
                probe(args.data, start, args.out / "probe-start", args.seed, args.holdout),
                contrastive, chance, stage.get("final_metrics", {}), floors)}
    atomic.write_text(args.out / "check.json", json.dumps(doc, indent=1) + "\n")
    atomic.write_text(args.out / "check.md", render(doc))
    print(render(doc))


if __name__ == "__main__":
    main()
