"""Can a preset's video encoder learn the digits at all? Train it *with labels* on the pretraining pool.

    python -m lab.video_learnability --data runs/bench-train/data [--arch '{"pool": "cls"}']

The pretraining pool is unlabeled on disk; its labels are drawn again from the generator's
seeded streams (the data card holds the config). The encoder plus a BatchNorm + linear head
trains with per-class BCE and the same video augmentation as pretraining; the score is mAP
on the labeled train split (never eval). An encoder that stays at chance here (about 0.16)
cannot be taught the digits by contrastive pretraining either: this is the check that led
the `small` preset to a normalised stem and max pooling (README, "Architecture fields").

Quoted in docs/decisions.md."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from mmrt.scores import mean_average_precision
from mmrt.training.data.augment import video as augment_video
from mmrt.training.data.splits import Split
from mmrt.training.datagen.config import GeneratorConfig
from mmrt.training.datagen.make import _draw_labels, _rng
from mmrt.training.model.config import ArchConfig, load_preset
from mmrt.training.model.encoders import VideoEncoder


def drawn_labels(data: Path, split: str, n: int, classes: int) -> torch.Tensor:
    """Multi-hot labels of a split's first ``n`` examples, drawn again from the generator's
    seeded streams (for the pretraining pool, whose manifest has none)."""
    saved = json.loads((data / "datacard.json").read_text("utf-8"))["config"]
    if saved["labels"] != "multi":
        raise SystemExit(f"{data}: this check scores multi-label data (mAP); the data is "
                         f"{saved['labels']}-label")
    cfg = GeneratorConfig(seed=saved["seed"], labels=saved["labels"],
                          two_label_share=saved["two_label_share"])
    y = torch.zeros(n, classes)
    for i in range(n):
        y[i, _draw_labels(_rng(cfg, split, i, "labels"), cfg)] = 1.0
    return y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a dataset made by 'mmrt data make'")
    p.add_argument("--preset", default="small")
    p.add_argument("--arch", default="{}", help="JSON overrides of the preset's architecture fields")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    torch.manual_seed(0)
    base = load_preset(args.preset).arch
    arch = ArchConfig.from_dict({**base.to_dict(), **json.loads(args.arch)}, "--arch")
    pool = Split(args.data, "pretrain", ["video"], arch.preprocessing, None, labeled=False)
    val = Split(args.data, "train", ["video"], arch.preprocessing, None)
    x, y = pool.tensors["video"], drawn_labels(args.data, "pretrain", len(pool), len(pool.classes))
    encoder = VideoEncoder(arch)
    head = nn.Sequential(nn.BatchNorm1d(arch.embed_dim, affine=False),
                         nn.Linear(arch.embed_dim, len(pool.classes)))
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    steps_per_epoch = len(x) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.1)
    g = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x), generator=g)
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            logits = head(encoder(augment_video(x[idx], g)))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        encoder.eval()
        head.eval()
        with torch.no_grad():
            scores = torch.cat([head(encoder(val.tensors["video"][i:i + 128]))
                                for i in range(0, len(val), 128)])
        encoder.train()
        head.train()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, validation mAP "
              f"{mean_average_precision(val.labels.numpy(), scores.numpy()).value:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
