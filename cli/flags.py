"""Flags and checks several sub-commands share."""

import argparse
import shlex
from datetime import date, datetime, timezone

from mmrt.errors import UserError


def made_where(args: argparse.Namespace) -> dict:
    """This call, for a report to record: the `mmrt` command as ``main`` was given it (so also
    where a lab script runs it in its own process), the machine, the date and when it began (UTC,
    to the second: two calls of the same command on a day are two calls)."""
    from mmrt.benchmarks.timing import machine

    return {"command": shlex.join(["mmrt", *args.argv]), "machine": machine(), "date": str(date.today()),
            "began": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def check_seed(seed: int) -> int:
    """Seeds feed numpy's SeedSequence, which takes non-negative integers only."""
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")
    return seed


def check_checkpoint_every(steps: int) -> int:
    if steps <= 0:
        raise UserError(f"--checkpoint-every {steps}: expected a positive number of steps")
    return steps


def training_flags(p: argparse.ArgumentParser) -> None:
    """Flags every training command shares."""
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs for this stage")
    p.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    p.add_argument("--batch-size", type=int, help="override the preset's global batch size")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS",
                   help="save resumable state every STEPS optimizer steps (default 50)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    speed_flags(p)


def speed_flags(p: argparse.ArgumentParser) -> None:
    """How training steps run: the same arithmetic either way, rounded differently
    (docs/training.md#speed)."""
    g = p.add_argument_group("speed (the same arithmetic either way, rounded differently)")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile each encoder's transformer while a stage trains (a C++ compiler "
                   "on CPU, Triton on CUDA; on 2 CPU cores it did not repay its compile time)")
    g.add_argument("--no-speedups", action="store_true",
                   help="run steps as before the speed-ups (no channels-last layout, no fused AdamW): "
                   "for comparisons")


def speed_of(args: argparse.Namespace):
    """The ``training.speed.Speed`` the flags of ``speed_flags`` ask for."""
    from mmrt.training.stages.speed import Speed

    if args.no_speedups and args.compile:
        raise UserError("--compile and --no-speedups: choose one")
    return Speed.off() if args.no_speedups else Speed(compile=args.compile)


def downstream_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the downstream recipe (``Downstream`` and the fine-tuning steps); each defaults to
    the preset's value."""
    g = p.add_argument_group("downstream recipe (default: the preset's; see 'mmrt tune')")
    g.add_argument("--steps", type=int, help="fine-tuning budget in optimizer steps (replaces epochs)")
    g.add_argument("--mixup", type=float, metavar="SHARE",
                   help="share of a batch's examples mixed with another (audio, video, labels)")
    g.add_argument("--drop-path", type=float, metavar="RATE", help="stochastic depth of the last block")
    g.add_argument("--augment", choices=("on", "off"),
                   help="SpecAugment-style audio masks, video shifts and brightness, text word drop")
    g.add_argument("--drop-prob", type=float, metavar="P",
                   help="moddrop: probability that an example loses each modality")
    g.add_argument("--distill-weight", type=float, help="masd: weight of the self-distillation loss")
    g.add_argument("--distill-temperature", type=float, help="masd: temperature of teacher and student")
    g.add_argument("--distill-loss", choices=("soft", "logits"),
                   help="masd: match the teacher's probabilities at the temperature (soft) or its "
                   "logits (the limit of soft as the temperature grows)")
    g.add_argument("--distill-reduction", choices=("sum", "mean"),
                   help="masd: Eq. 8 summed over a multi-label head's classes, or their mean")
    g.add_argument("--distill-source", choices=("pretrain", "unseen", "carve"),
                   help="masd: distil on DATA/distill.jsonl (pretraining clips), DATA/unseen.jsonl "
                   "(clips pretraining never saw) or a seeded 20%% carved out of train (labels unused; "
                   "every stage then trains on the other 80%%)")
    g.add_argument("--distill-examples", type=int, metavar="N",
                   help="masd: use a seeded sample of N clips of the pool (0: all)")


def downstream_overrides(args: argparse.Namespace) -> dict:
    """The ``Downstream`` fields the flags of ``downstream_flags`` set (None where not given)."""
    return {"mixup": args.mixup, "drop_path": args.drop_path,
            "augment": None if args.augment is None else args.augment == "on", "drop": args.drop_prob,
            "distill_weight": args.distill_weight, "distill_temperature": args.distill_temperature,
            "distill_loss": args.distill_loss, "distill_reduction": args.distill_reduction,
            "distill_source": args.distill_source, "distill_examples": args.distill_examples}
