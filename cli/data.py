"""`mmrt data make`: generate the bundled audio/video/text digits dataset."""

from __future__ import annotations

import argparse

from mmrt.cli.flags import check_seed
from mmrt.errors import UserError
from mmrt.modalities import parse_modality_list

MAX_EXAMPLES = 1_000_000  # a split's size; ids are written with six digits


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="make the bundled dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION",
                                   parser_class=type(data))
    make = data_sub.add_parser(
        "make", help="write the bundled dataset (real wav, mp4 and text) to a folder",
        description="Write the bundled dataset: spoken digits (espeak-ng) in noise, handwritten "
        "digits (scikit-learn) moving in noisy clips, and video-style titles. Knob defaults are "
        "documented in the data card written beside the data.")
    make.add_argument("--out", required=True, help="dataset folder to create")
    make.add_argument("--size", choices=("tiny", "small", "base"), default="small",
                      help="tiny: tests, seconds; small: quickstart and experiments, about 4 minutes on "
                      "2 cores; base: larger runs")
    make.add_argument("--seed", type=int, default=0,
                      help="the draw: every clip is seeded from it and its index (default 0)")
    make.add_argument("--labels", choices=("multi", "single"), default="multi",
                      help="multi: one or two digits an example (mAP); single: one (top-1)")
    make.add_argument("--modalities", default="audio,video,text",
                      help="comma list of modalities to generate (default: audio,video,text)")
    make.add_argument("--pretrain-size", type=int, metavar="N",
                      help="clips in pretrain.jsonl, the unlabeled pretraining pool (default: the size's; "
                      "each clip is seeded by its index, so a larger pool starts with a smaller one)")
    make.add_argument("--train-size", type=int, metavar="N",
                      help="labelled examples in train.jsonl (default: the size's; a larger train starts "
                      "with a smaller one, as --pretrain-size)")
    make.add_argument("--unseen-size", type=int, metavar="N",
                      help="clips in unseen.jsonl, the distillation pool pretraining never sees (default: "
                      "4x the size's train split for small and base; 0: none)")
    make.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    from mmrt.training.datagen.config import AudioKnobs, TextKnobs, VideoKnobs

    a, v, t = AudioKnobs(), VideoKnobs(), TextKnobs()  # the calibrated defaults (see the data card)

    def pair(p: tuple) -> str:
        return f"{p[0]:g} {p[1]:g}"

    knobs = make.add_argument_group("difficulty knobs (defaults in the data card)")
    knobs.add_argument("--snr-db", nargs=2, type=float, metavar=("MIN", "MAX"),
                       help=f"speech-to-noise ratio range in dB (default {pair(a.snr_db)})")
    knobs.add_argument("--audio-miss", type=float, metavar="P",
                       help=f"chance a labelled digit is not spoken (default {a.miss:g})")
    knobs.add_argument("--video-noise", nargs=2, type=float, metavar=("MIN", "MAX"),
                       help=f"pixel noise std range on 0-255 (default {pair(v.noise_std)})")
    knobs.add_argument("--distractors", nargs=2, type=int, metavar=("MIN", "MAX"),
                       help=f"moving letters per clip (default {pair(v.distractors)})")
    knobs.add_argument("--video-miss", type=float, metavar="P",
                       help=f"chance a labelled digit is not on screen (default {v.miss:g})")
    knobs.add_argument("--title-named", type=float, metavar="P",
                       help=f"share of titles naming the label (default {t.named:g})")
    knobs.add_argument("--title-cue", type=float, metavar="P",
                       help=f"share of titles with a partial cue (default {t.cue:g})")
    knobs.add_argument("--title-foreign", type=float, metavar="P",
                       help=f"share of titles naming the label in another language (default {t.foreign:g})")
    make.set_defaults(run=run_make, prog=make.prog)


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise UserError(f"--{name} {value}: expected a probability between 0 and 1")
    return value


def _range(name: str, pair, low: float | None = None):
    lo, hi = pair
    if lo > hi or (low is not None and lo < low):
        bound = f", both >= {low}" if low is not None else ""
        raise UserError(f"--{name} {lo} {hi}: expected MIN <= MAX{bound}")
    return (lo, hi)


def config_from_args(args: argparse.Namespace):
    """Build a GeneratorConfig from flags, validating each knob."""
    from dataclasses import replace

    from mmrt.training.datagen.config import GeneratorConfig

    if args.unseen_size is not None and args.unseen_size < 0:
        raise UserError(f"--unseen-size {args.unseen_size}: expected 0 or a positive count")
    for flag in ("pretrain_size", "train_size"):
        value = getattr(args, flag)
        if value is not None and not 1 <= value <= MAX_EXAMPLES:
            raise UserError(f"--{flag.replace('_', '-')} {value}: expected a count from 1 to {MAX_EXAMPLES}")
    cfg = GeneratorConfig(size=args.size, seed=args.seed, labels=args.labels,
                          modalities=parse_modality_list(args.modalities),
                          pretrain_size=args.pretrain_size, train_size=args.train_size,
                          unseen_size=args.unseen_size)
    audio, video, text = cfg.audio, cfg.video, cfg.text
    if args.snr_db:
        audio = replace(audio, snr_db=_range("snr-db", args.snr_db))
    if args.audio_miss is not None:
        audio = replace(audio, miss=_probability("audio-miss", args.audio_miss))
    if args.video_noise:
        video = replace(video, noise_std=_range("video-noise", args.video_noise, low=0.0))
    if args.distractors:
        video = replace(video, distractors=_range("distractors", args.distractors, low=0))
    if args.video_miss is not None:
        video = replace(video, miss=_probability("video-miss", args.video_miss))
    for flag, field in (("title_named", "named"), ("title_cue", "cue"), ("title_foreign", "foreign")):
        value = getattr(args, flag)
        if value is not None:
            text = replace(text, **{field: _probability(flag.replace("_", "-"), value)})
    if text.named + text.cue + text.foreign > 1.0 + 1e-9:
        raise UserError(f"--title-named + --title-cue + --title-foreign = "
                        f"{text.named + text.cue + text.foreign:.2f}: expected at most 1")
    return replace(cfg, audio=audio, video=video, text=text)


def run_make(args: argparse.Namespace) -> int:
    from mmrt.training.datagen.make import make_dataset

    check_seed(args.seed)
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: expected 0 (all cores) or a positive count")
    cfg = config_from_args(args)
    card = make_dataset(cfg, args.out, workers=args.workers, overwrite=args.overwrite,
                        progress=not args.no_progress)
    splits = ", ".join(f"{s} {v['examples']}" for s, v in card["splits"].items())
    print(f"wrote {args.out}: {splits} examples in {card['generation_seconds']} s "
          f"({card['workers']} workers)")
    print(f"data card: {args.out}/DATACARD.md")
    return 0
