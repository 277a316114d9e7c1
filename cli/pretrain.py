"""`mmrt pretrain`: contrastive (default) or masked-autoencoder pretraining of one encoder per
modality on the unlabeled split."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrt.cli.flags import check_checkpoint_every, check_seed, speed_of, training_flags
from mmrt.methods import OBJECTIVES
from mmrt.modalities import parse_modality_list


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="contrastive (pairwise InfoNCE) or MAE pretraining on DATA/pretrain.jsonl",
        description="Trains one encoder per modality: contrastive (default) so that paired modalities "
        "embed alike, or as masked autoencoders (--objective mae: the encoders' last block shared by "
        "every modality, fixed sin-cos positions, the preset's mask ratios). Writes a model directory "
        "(model.safetensors, config.json, tokenizer.model) for "
        "'mmrt train --pretrained'. Runs under torchrun for several processes.")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (see 'mmrt data make')")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--preset", default="small", help="architecture and recipe: tiny, small or base "
                   "(default: small)")
    p.add_argument("--modalities", help="comma list (default: every modality of the pretrain split)")
    p.add_argument("--objective", choices=list(OBJECTIVES), default="contrastive",
                   help="contrastive (default) or mae (masked autoencoding, paper section 4.1)")
    training_flags(p)
    p.set_defaults(run=run, prog=p.prog)


def run(args: argparse.Namespace) -> int:
    from mmrt.training.stages.pretrain import PretrainOptions, pretrain

    pretrain(PretrainOptions(
        data=args.data, out=args.out, preset=args.preset,
        modalities=parse_modality_list(args.modalities) if args.modalities else None,
        objective=args.objective, seed=check_seed(args.seed), epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size,
        resume=args.resume, checkpoint_every=check_checkpoint_every(args.checkpoint_every),
        overwrite=args.overwrite,
        device=args.device, progress=not args.quiet, speed=speed_of(args)))
    return 0
