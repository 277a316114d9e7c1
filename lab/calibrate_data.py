"""Calibrate the bundled data's difficulty from single-modality scores only (DESIGN.md section 2).

    python -m lab.calibrate_data --out runs/calibrate [-- --snr-db -3 12 ...]

Generates `small` data with the given `mmrt data make` knobs, pretrains the `small` preset,
fine-tunes on each modality alone and prints each one's score on a validation split carved
from train (never eval, and never a method's robustness result). Target: each modality
alone roughly 0.4-0.8, audio the strongest.

Quoted in docs/data.md, docs/results/data-draws.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrt.cli import main as mmrt
from mmrt.training.model.checkpoint import read_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/calibrate"))
    p.add_argument("--holdout", default="0.25", help="share of train used for validation")
    p.add_argument("knobs", nargs=argparse.REMAINDER, help="flags for 'mmrt data make' after --")
    args = p.parse_args()
    knobs = [k for k in args.knobs if k != "--"]
    data, pre = args.out / "data", args.out / "pretrained"
    assert mmrt(["data", "make", "--out", str(data), "--size", "small", "--overwrite", *knobs]) == 0
    assert mmrt(["pretrain", "--data", str(data), "--out", str(pre), "--preset", "small", "--overwrite",
                 "--quiet"]) == 0
    scores = {}
    for modality in read_config(pre).modalities:
        out = args.out / f"ft-{modality}"
        assert mmrt(["train", "--data", str(data), "--pretrained", str(pre), "--method", "ft", "--modalities",
                     modality, "--holdout", args.holdout, "--out", str(out), "--overwrite", "--quiet"]) == 0
        scores[modality] = read_config(out).history[-1]["validation"][modality]
    print(json.dumps({"knobs": knobs, "validation": scores}, indent=2))


if __name__ == "__main__":
    main()
