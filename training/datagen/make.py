"""`mmrt data make`: write the bundled dataset as real wav / mp4 / text through a staging folder.

Every example draws from its own random streams, seeded by (seed, split, index,
modality), so the output does not depend on worker count or scheduling, and
leaving a modality out does not change the others.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmrt.atomic import staged_dir, write_text
from mmrt.training.datagen.config import DIGITS, GeneratorConfig
from mmrt.training.datagen.datacard import build_card, render_card

GENERATED_SPLITS = ("pretrain", "train", "eval", "unseen")
SPLIT_IDS = {"pretrain": 0, "train": 1, "eval": 2, "distill": 3, "unseen": 4}
STREAMS = {"labels": 0, "audio": 1, "video": 2, "text": 3}

_state: dict = {}  # per-process generator state (espeak is a process-wide singleton)


def _init_pool_worker(cfg: GeneratorConfig, root: str, bank: str | None) -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from processes; one thread each
    _init_worker(cfg, root, bank)


def _init_worker(cfg: GeneratorConfig, root: str, bank: str | None) -> None:
    _state.clear()
    _state.update(cfg=cfg, root=Path(root))
    if bank is not None:
        from mmrt.training.datagen.speech_bank import SpeechBank

        _state["bank"] = SpeechBank(bank)
    if "video" in cfg.modalities:
        from mmrt.training.datagen.video_scene import DigitBank

        _state["digits"] = DigitBank(cfg.seed, cfg.eval_digit_share)


def _rng(cfg: GeneratorConfig, split: str, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, SPLIT_IDS[split], index, STREAMS[stream]])


def _draw_labels(rng: np.random.Generator, cfg: GeneratorConfig) -> list[int]:
    k = 2 if cfg.labels == "multi" and rng.random() < cfg.two_label_share else 1
    return sorted(int(d) for d in rng.choice(len(DIGITS), size=k, replace=False))


def _make_example(job: tuple[str, int]) -> tuple[dict, dict]:
    """One example's files; returns its split-file record and the facts the data card counts."""
    import soundfile as sf

    split, index = job
    cfg: GeneratorConfig = _state["cfg"]
    root: Path = _state["root"]
    digits = _draw_labels(_rng(cfg, split, index, "labels"), cfg)
    ex_id = f"{split}-{index:06d}"
    record: dict = {"id": ex_id}
    facts: dict = {"labels": [DIGITS[d] for d in digits]}
    if "audio" in cfg.modalities:
        from mmrt.training.datagen.audio_scene import make_audio

        wave, info = make_audio(_rng(cfg, split, index, "audio"), digits, _state["bank"],
                                cfg.audio)
        rel = f"audio/{ex_id}.wav"
        sf.write(root / rel, wave, 16_000, subtype="PCM_16")
        record["audio"] = rel
        facts.update(snr_db=info["snr_db"], voices=info["voices"], spoken=len(info["spoken"]))
    if "video" in cfg.modalities:
        from mmrt.training.datagen.video_scene import make_video, write_mp4

        frames, info = make_video(_rng(cfg, split, index, "video"), digits, _state["digits"], split,
                                  cfg.video)
        rel = f"video/{ex_id}.mp4"
        write_mp4(str(root / rel), frames, cfg.video.fps)
        record["video"] = rel
        facts.update(shown=len(info["shown"]), noise_std=info["noise_std"])
    if "text" in cfg.modalities:
        from mmrt.training.datagen.titles import make_title

        record["text"], facts["title_kind"] = make_title(_rng(cfg, split, index, "text"), digits,
                                                         cfg.text)
    # Pretrain is unlabeled: its split file carries no labels (the card still counts them).
    record["labels"] = facts["labels"] if split in ("train", "eval") else None
    return record, facts


def _speech_bank() -> str:
    from mmrt.training.data.cache import cache_root
    from mmrt.training.datagen.audio_scene import BABBLE
    from mmrt.training.datagen.speech_bank import bank_path

    return str(bank_path([*DIGITS, *BABBLE], cache_root() / "speech"))


def distill_pick(seed: int, pretrain: int, distill: int) -> list[int]:
    """distill.jsonl (D_SD): a seeded sample of ``distill`` of the ``pretrain`` pool's indices.
    Unlike the splits it does not nest: a larger pool gives another sample."""
    pick = np.random.default_rng([seed, SPLIT_IDS["distill"]]).choice(
        pretrain, size=min(distill, pretrain), replace=False)
    return sorted(int(i) for i in pick)


def _write_split_file(path: Path, records: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def make_dataset(cfg: GeneratorConfig, out: str | os.PathLike, workers: int = 0,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Generate the dataset into ``out`` (atomically) and return its data card."""
    workers = workers or min(os.cpu_count() or 1, 8)
    sizes = cfg.split_sizes
    jobs = [(split, i) for split in GENERATED_SPLITS for i in range(sizes[split])]
    started = time.perf_counter()
    with staged_dir(out, overwrite=overwrite) as stage:
        bank = _speech_bank() if "audio" in cfg.modalities else None
        for m in ("audio", "video"):
            if m in cfg.modalities:
                (stage / m).mkdir()
        bar = tqdm(total=len(jobs), desc="mmrt data make", unit="ex", disable=not progress,
                   mininterval=1.0)
        if workers == 1:
            _init_worker(cfg, str(stage), bank)
            results = []
            for job in jobs:
                results.append(_make_example(job))
                bar.update()
        else:
            ctx = mp.get_context("spawn")  # no inherited library state (espeak, torch threads)
            with ctx.Pool(workers, initializer=_init_pool_worker, initargs=(cfg, str(stage), bank)) as pool:
                results = []
                for r in pool.imap(_make_example, jobs, chunksize=8):
                    results.append(r)
                    bar.update()
        bar.close()
        by_split: dict[str, list[tuple[dict, dict]]] = {s: [] for s in GENERATED_SPLITS}
        for (split, _), result in zip(jobs, results, strict=True):
            by_split[split].append(result)
        pick = distill_pick(cfg.seed, sizes["pretrain"], sizes["distill"])
        by_split["distill"] = [by_split["pretrain"][i] for i in pick]
        write_text(stage / "classes.txt", "".join(f"{d}\n" for d in DIGITS))
        if not by_split["unseen"]:
            del by_split["unseen"]  # --unseen-size 0: no pool (an empty split file is refused on read)
        for split, items in by_split.items():
            _write_split_file(stage / f"{split}.jsonl", [rec for rec, _ in items])
        card = build_card(cfg, {s: [facts for _, facts in items] for s, items in by_split.items()})
        write_text(stage / "datacard.json", json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        write_text(stage / "DATACARD.md", render_card(card))
    card["generation_seconds"] = round(time.perf_counter() - started, 1)
    card["workers"] = workers
    return card
