"""Make the released `small` foundation, or re-run its card's command and compare: `mmrt data make`
and `mmrt pretrain` with the shipped defaults at the quickstart's seed, then a linear probe per
modality on validation, the figure a re-run is compared by.

    python -m lab.release_foundation --work runs/release --out training/foundations/small
    python -m lab.release_foundation --work runs/release-check --check training/foundations/small

Building writes the model directory, its MODEL.md with a release section, and release.json (the
commands, data, machine, date, commit, steps, final loss, probe scores and each file's sha256).
Checking prints the released and the re-run probe scores side by side (reported, not a test:
weights differ across machines in their last bits). Both resume.

Quoted in docs/training.md, docs/results/figures.md, docs/results/data-draws.md."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from datetime import date
from pathlib import Path

from lab.provenance import record as record_provenance
from mmrt import atomic
from mmrt.benchmarks.timing import machine
from mmrt.cli.entry import main as mmrt
from mmrt.training.model.foundations import RELEASE, read_release

NAME, SEED = "small", 0
FILES = ("model.safetensors", "config.json", "tokenizer.model")
USE = ("For the bundled data (`mmrt data make --size small`) and the quickstart: it starts there in "
       "minutes instead of pretraining for half an hour on 2 cores. Not for a real rig's sensors: pretrain "
       "on your own clips, on a GPU server (`mmrt pretrain`), since these encoders know only spoken and "
       "handwritten digits and titles, at 2 s of 16 kHz audio and 8 frames of 32 px.")


def commands(work: Path) -> list[list[str]]:
    return [["data", "make", "--size", NAME, "--seed", str(SEED), "--out", str(work / "data"),
             "--no-progress"],
            ["pretrain", "--data", str(work / "data"), "--out", str(work / "pretrained"), "--preset", NAME,
             "--seed", str(SEED), "--quiet"],
            ["experiment", "--data", str(work / "data"), "--pretrained", str(work / "pretrained"), "--out",
             str(work / "probe"), "--methods", "lp", "--train-sets", "audio,video,text", "--holdout", "0.25",
             "--seed", str(SEED), "--quiet"]]


def begun(work: Path) -> str:
    """The commit the work folder was begun at, recorded when it is first made, so that a build
    resumed at a later commit is stamped with the code that made its data and weights."""
    record = work / "provenance.json"
    if not record.is_file():
        if work.is_dir() and any(work.iterdir()):
            raise SystemExit(f"{work}: begun without a record of its commit (provenance.json): start from an "
                             "empty --work")
        record_provenance(work)
    return json.loads(record.read_text("utf-8"))["commit"]


def run(work: Path) -> dict[str, float]:
    """The card's commands, each skipped or resumed where its output exists: probe scores by modality."""
    begun(work)
    make, pretrain, probe = commands(work)
    if not (work / "data" / "datacard.json").is_file():
        assert mmrt([*make, "--overwrite"]) == 0
    if not (work / "pretrained" / "config.json").is_file():
        assert mmrt([*pretrain, *(["--resume"] if (work / "pretrained").is_dir() else [])]) == 0
    if not (work / "probe" / "results.json").is_file():
        assert mmrt([*probe, *(["--resume"] if (work / "probe").is_dir() else [])]) == 0
    scores = json.loads((work / "probe" / "results.json").read_text("utf-8"))["methods"]["lp"]["scores"]
    return {m: round(scores[m][m], 4) for m in ("audio", "video", "text")}


def build(work: Path, out: Path) -> None:
    probe = run(work)
    made_at = begun(work)
    pretrained = work / "pretrained"
    config = json.loads((pretrained / "config.json").read_text("utf-8"))
    stage = config["history"][0]
    card = json.loads((work / "data" / "datacard.json").read_text("utf-8"))
    with atomic.staged_dir(out, overwrite=True) as stage_dir:
        for name in FILES:
            shutil.copyfile(pretrained / name, stage_dir / name)
        release = {
            "name": NAME, "commands": [["mmrt", *c] for c in commands(work)[:2]],
            "probe_command": ["mmrt", *commands(work)[2]],
            "data": f"mmrt data make --size {NAME} --seed {SEED} ({card['generator']}; "
                    f"{card['splits']['pretrain']['examples']:,} pretraining clips)",
            "preset": config["preset"], "schedule": stage["schedule"], "steps": stage["steps"],
            "final_loss": stage["final_loss"],
            "pretrain_minutes": round(stage["seconds"] / 60, 1), "alignment": stage.get("alignment"),
            "probe_validation": probe, "date": str(date.today()), "machine": machine(), "commit": made_at,
            "use": USE, "files": {n: hashlib.sha256((stage_dir / n).read_bytes()).hexdigest() for n in FILES}}
        atomic.write_text(stage_dir / RELEASE, json.dumps(release, indent=1) + "\n")
        shutil.copyfile(pretrained / "MODEL.md", stage_dir / "MODEL.md")
        with (stage_dir / "MODEL.md").open("a", encoding="utf-8") as f:
            f.write(release_section(release))
    print(f"released {NAME} in {out}: probe on validation {probe}")


def release_section(r: dict) -> str:
    files = "\n".join(f"- `{n}`: sha256 `{d}`" for n, d in r["files"].items())
    probe = ", ".join(f"{m} {v:.3f}" for m, v in r["probe_validation"].items())
    return (f"\n## Release\n\n- made by: {'; '.join(' '.join(c) for c in r['commands'])}\n"
            f"- data: {r['data']}\n- preset `{r['preset']}`, {r['steps']} steps, final loss "
            f"{r['final_loss']:.3f}, {r['pretrain_minutes']:.0f} minutes of pretraining\n- linear probe per "
            f"modality, p(M; M) on validation (a seeded quarter of train): {probe} "
            f"(`{' '.join(r['probe_command'])}`)\n- {r['date']}, {r['machine']}, commit "
            f"{r['commit']}\n{files}\n\n**What it is for.** {r['use']}\n")


def check(work: Path, released: Path) -> None:
    release = read_release(released)
    again = run(work)
    print("modality  released  re-run  difference")
    for m, v in release["probe_validation"].items():
        print(f"{m:8s}  {v:8.3f}  {again[m]:6.3f}  {again[m] - v:+.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True,
                   help="folder for the data, the pretraining and the probe")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the released model directory here")
    group.add_argument("--check", type=Path, metavar="RELEASED", help="re-run and compare with this release")
    args = p.parse_args()
    if args.out:
        build(args.work, args.out)
    else:
        check(args.work, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
