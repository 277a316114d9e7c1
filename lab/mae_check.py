"""Does MAE pretraining learn at this scale? Each modality's linear probe on validation, from MAE
against the same encoders before any step and against contrastive pretraining, with the
reconstruction losses beside what a guess from positions alone would score.

    python -m lab.mae_check --data runs/mae/data --out runs/mae-check [--epochs 10] [--contrastive small]

Run on a data draw that choices are made on (`mmrt data make --size small --seed 0`, the released
foundation's), never on a paper-table draw. For each --epochs (comma list) it pretrains MAE
(`mmrt pretrain --objective mae`, resumable), makes the start (the MAE encoders as pretraining
initialises them: the same config and seed, no step taken), and probes each model with `mmrt
experiment --methods lp --train-sets audio,video,text --holdout 0.25` (trained on one modality,
scored on it, on a seeded quarter of train; eval is never read). MAE and the start are probed with
max and with mean pooling (MAE's loss never pools, so the pooling chosen for contrastive need not
suit it; this check chose mean for the `small` preset's MAE); the contrastive foundation with its
own.

Per modality and pooling it reports each probe, the chance score of the validation clips (the
exact expectation of a random ranking), MAE minus the start with a paired 95% interval (the same
bootstrap resamples), the headroom (contrastive minus the start), and MAE's reconstruction loss
over its last epoch beside the floor of a decoder that reads nothing but positions and lengths:
each position's mean normalised patch for audio and video, each word piece's frequency at its
position in titles of its length for text (scored on clips pretraining never saw). The verdict,
with the margin LEARNS fixed before the check was first run: learns where MAE is at least LEARNS
above the start and above chance and the interval excludes zero; does not where the interval's
top is under LEARNS; else inconclusive. Writes
OUT/check.json and OUT/check.md; run again to resume or to add epoch counts (with the same
data, preset and MAE settings: another preset's MAE needs another --out).

Quoted in docs/results/mae-check.md (its tables: docs/results/mae-check/preset/check.md,
docs/results/mae-check/candidate/check.md, docs/results/mae-check/preset-1200/check.md,
docs/results/mae-check/preset-1200-e80/check.md and docs/results/mae-check/candidate-1200/check.md),
docs/training.md and docs/results/data-draws.md."""

from __future__ import annotations

import argparse
import dataclasses
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
from mmrt.training.data.frontend import input_key
from mmrt.training.data.splits import Split, holdout
from mmrt.training.experiments.tune import in_distribution
from mmrt.training.model.checkpoint import load_model, read_config, save_model, tokenizer_path
from mmrt.training.model.config import MaeConfig, load_preset
from mmrt.training.model.mae import MaskedAutoencoding
from mmrt.training.model.model import MultimodalModel

MODALITIES = ("audio", "video", "text")
POOLS = ("max", "mean")
LEARNS = 0.10  # mAP above the start and above chance: "learns" (fixed before any run)
FLOOR_CLIPS = 512  # clips pretraining never saw, for the audio and video floors
BACKOFF = 1.0  # weight of the overall word-piece frequencies in the text floor's smoothing


def start_weights(mae: Path, out: Path, seed: int) -> Path:
    """The MAE encoders before any step: pretraining's own config and tokenizer, initialised
    as `mmrt pretrain` initialises them (seeded, then built)."""
    if not (out / "config.json").is_file():
        config = replace(read_config(mae), history=())
        torch.manual_seed(seed)
        save_model(out, MultimodalModel(config), tokenizer_path(mae))
    return out


def pooled_by(model: Path, pool: str) -> Path:
    """``model`` with its encoders pooling by ``pool`` (the same weights: pooling has none)."""
    if read_config(model).arch.pool == pool:
        return model
    out = model.with_name(f"{model.name}-{pool}")
    if not (out / "config.json").is_file():
        loaded = load_model(model)
        loaded.config = replace(loaded.config, arch=replace(loaded.config.arch, pool=pool))
        save_model(out, loaded, tokenizer_path(model))
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
    """The expected score of a random ranking of the probes' validation clips."""
    train = read_split(data, "train")
    _, held = holdout(len(train), share, seed)
    return chance_score(multi_hot([train[i] for i in held], read_classes(data)), inspect_data(data).task)


def patch_floors(data: Path, mae: Path, preset: str) -> dict[str, float]:
    """Per patched modality, the loss of predicting each hidden patch by the mean target patch at
    its position, on clips pretraining never saw (unseen.jsonl, else train's inputs); the targets
    as the model was pretrained to reconstruct them (its recorded MAE settings, else the preset's)."""
    model = load_model(mae).eval()
    made_with = model.config.history[0].get("mae")
    objective = MaskedAutoencoding(model, MaeConfig(**made_with) if made_with else load_preset(preset).mae)
    name = "unseen" if (data / "unseen.jsonl").is_file() else "train"
    patched = [m for m in ("audio", "video") if m in model.modalities]
    split = Split(data, name, patched, model.config.arch.preprocessing, None, labeled=False, progress=False,
                  audio_frontend=model.audio_frontend())
    batch = next(split.batches(torch.arange(min(FLOOR_CLIPS, len(split))), FLOOR_CLIPS))
    floors = {}
    with torch.no_grad():
        for m in patched:
            key = input_key(batch, m)
            _, target, _ = objective.tokens(m, batch[key][batch["present"][m]], key)
            floors[m] = float((target - target.mean(dim=0)).pow(2).mean())
    return floors


def text_floor(data: Path, mae: Path) -> float:
    """The cross-entropy (nats) of a guess from positions and lengths alone: each word piece's
    frequency at its position in titles of its length, counted on the pretraining titles and scored
    on titles pretraining never saw (unseen.jsonl, else train's), backing off to the overall
    frequencies where a (position, length) was rarely seen. The begin and end markers are scored
    too, as the MAE loss scores them."""
    tokenizer = TextTokenizer(mae / "tokenizer.model", read_config(mae).arch.preprocessing.max_tokens)

    def titles(split: str) -> np.ndarray:
        return tokenizer.encode([ex.inputs["text"] for ex in read_split(data, split, labeled=False)
                                 if ex.inputs.get("text")])

    seen = titles("pretrain")
    fresh = titles("unseen" if (data / "unseen.jsonl").is_file() else "train")
    overall = Counter(seen[seen != PAD_ID].tolist())
    total = sum(overall.values())
    at: dict[tuple[int, int], Counter] = {}
    for row in seen:
        n = int((row != PAD_ID).sum())
        for i in range(n):
            at.setdefault((i, n), Counter())[int(row[i])] += 1
    losses = []
    for row in fresh:
        n = int((row != PAD_ID).sum())
        for i in range(n):
            here = at.get((i, n), Counter())
            backoff = (overall[int(row[i])] + 1) / (total + tokenizer.vocab_size)
            p = (here[int(row[i])] + BACKOFF * backoff) / (sum(here.values()) + BACKOFF)
            losses.append(-math.log(p))
    return float(np.mean(losses))


def verdict(gain: float, low: float, high: float, above_chance: float) -> str:
    if gain >= LEARNS and above_chance >= LEARNS and low > 0:
        return "learns"
    if high < LEARNS:
        return "does not"
    return "inconclusive"


def compare(mae: dict, start: dict, contrastive: dict, chance: float, losses: dict, floors: dict) -> dict:
    """Per modality: the three probes, MAE minus the start (paired interval), headroom, the verdict."""
    out = {}
    for m in MODALITIES:
        low, high = interval(np.asarray(mae["samples"][m]) - np.asarray(start["samples"][m]))
        gain = mae["scores"][m] - start["scores"][m]
        out[m] = {"mae": mae["scores"][m], "start": start["scores"][m],
                  "contrastive": contrastive["scores"][m], "chance": chance,
                  "mae_minus_start": gain, "mae_minus_start_ci95": [low, high],
                  "headroom": contrastive["scores"][m] - start["scores"][m],
                  "loss": losses.get(m), "floor": floors[m],
                  "verdict": verdict(gain, low, high, mae["scores"][m] - chance)}
    return out


def render(doc: dict) -> str:
    lines = ["# Does MAE learn at this scale?", "",
             f"`{doc['command']}`; {doc['machine']}, {doc['date']}. Data: {doc['data']} (a draw choices "
             f"are made on). Linear probe per modality, trained and scored on it, on validation (a seeded "
             f"{doc['holdout']:.0%} of train); chance {doc['chance']:.3f} (a random ranking's expected mAP). "
             f"MAE learns a modality where its probe is at least {LEARNS} mAP above the start (its encoders "
             "before any step) and above chance, the interval excluding zero; it does not where the "
             f"interval's top is under {LEARNS}. The floor: the loss of a decoder that reads only positions.",
             ""]
    for epochs, run in doc["runs"].items():
        minutes = f"{run['minutes']} min" + (" this call" if run.get("resumed_at") else "")
        lines += [f"## MAE, {epochs} epochs ({run['steps']} steps, {run['seconds_per_step']} s a step, "
                  f"{minutes})", "", *settings_line(run.get("mae")),
                  "| modality | pooling | start | MAE | MAE − start [95%] | contrastive | headroom | "
                  "MAE loss | floor | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for pool, modalities in run["pools"].items():
            for m, r in modalities.items():
                low, high = r["mae_minus_start_ci95"]
                loss = "-" if r["loss"] is None else f"{r['loss']:.3f}"
                lines.append(f"| {m} | {pool} | {r['start']:.3f} | {r['mae']:.3f} | "
                             f"{r['mae_minus_start']:+.3f} [{low:+.3f}, {high:+.3f}] | "
                             f"{r['contrastive']:.3f} | {r['headroom']:+.3f} | "
                             f"{loss} | {r['floor']:.3f} | {r['verdict']} |")
        lines.append("")
    return "\n".join(lines)


def settings_line(mae: dict | None) -> list[str]:
    """The MAE settings a run was pretrained with, as its model records them."""
    if mae is None:
        return []
    ratios = ", ".join(f"{m} {r:g}" for m, r in mae["mask_ratio"].items())
    targets = ", ".join(mae.get("raw_targets") or []) or "none"
    return [f"Hidden: {ratios}; reconstructed unnormalised: {targets}; each batch {mae['repeats']}x.", ""]


def check_epochs(args: argparse.Namespace, n: int, contrastive: dict, chance: float) -> dict:
    model = args.out / f"mae-e{n}"
    if not (model / "config.json").is_file():
        resume = ["--resume"] if model.is_dir() else []
        assert mmrt(["pretrain", "--data", str(args.data), "--out", str(model), "--objective", "mae",
                     "--preset", args.preset, "--seed", str(args.seed), "--epochs", str(n), "--quiet",
                     *resume]) == 0
    stage = read_config(model).history[0]
    start = start_weights(model, args.out / "start", args.seed)
    floors = {**patch_floors(args.data, model, args.preset), "text": text_floor(args.data, model)}
    losses, pools = stage.get("final_metrics", {}), {}
    for pool in POOLS:
        mae_probe, start_probe = (probe(args.data, pooled_by(m, pool), args.out / f"probe-{m.name}-{pool}",
                                        args.seed, args.holdout) for m in (model, start))
        pools[pool] = compare(mae_probe, start_probe, contrastive, chance, losses, floors)
    return {"steps": stage["steps"], "seconds_per_step": stage.get("seconds_per_step"),
            "minutes": round(stage["seconds"] / 60, 1), "resumed_at": stage.get("resumed_at"),
            "final_loss": stage["final_loss"], "final_metrics": stage.get("final_metrics"),
            "mae": stage.get("mae"), "pools": pools}


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
                "holdout": args.holdout, "preset": args.preset,
                "mae": json.loads(json.dumps(dataclasses.asdict(load_preset(args.preset).mae)))}  # as stored
    made = args.out / "settings.json"
    if made.is_file() and json.loads(made.read_text("utf-8")) != settings:
        raise SystemExit(f"{args.out} was made with {made.read_text('utf-8').strip()}: use another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(made, json.dumps(settings) + "\n")

    epochs = ([int(e) for e in args.epochs.split(",")] if args.epochs
              else [load_preset(args.preset).recipe["pretrain_mae"].epochs])
    contrastive = probe(args.data, args.contrastive, args.out / "probe-contrastive", args.seed, args.holdout)
    chance = validation_chance(args.data, args.holdout, args.seed)
    checked = args.out / "check.json"
    runs = json.loads(checked.read_text("utf-8"))["runs"] if checked.is_file() else {}
    runs.update({str(n): check_epochs(args, n, contrastive, chance) for n in epochs})
    doc = {"command": "python -m lab.mae_check " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
           "machine": machine(), "date": str(date.today()), "data": str(args.data), "holdout": args.holdout,
           "chance": chance, "learns_margin": LEARNS,
           "runs": dict(sorted(runs.items(), key=lambda kv: int(kv[0])))}
    atomic.write_text(checked, json.dumps(doc, indent=1) + "\n")
    atomic.write_text(args.out / "check.md", render(doc))
    print(render(doc))


if __name__ == "__main__":
    main()
