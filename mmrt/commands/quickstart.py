"""`mmrt quickstart`: the main job on the embedded default, end to end with what exists so far.

Today: bundled data -> data card -> every split through the real loaders (decode, cache,
tokenizer) -> robustness metrics on a sample p-matrix. Training, export, serving and the
dropout bench join this command as they land.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

from mmrt.commands import check_seed
from mmrt.errors import UserError
from mmrt.robustness import PMatrix, robustness_report
from mmrt.robustness_table import markdown_table

NEXT_STEPS = """\
Next in the pipeline (not in this version yet):
  mmrt pretrain   contrastive pretraining over every pair of modalities
  mmrt train      linear probe / fine-tune / MASD / WiSE-FT on a training set lacking a modality
  mmrt export     one ONNX graph per modality encoder (+ TensorRT engines) in a verified bundle
  mmrt serve      KServe v2 / Triton gRPC server running only the encoders a request carries
  mmrt bench      robustness and latency under sensor dropout (--drop audio)
"""


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="run the main job on the bundled dataset",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart", help="work folder (default runs/quickstart)")
    p.add_argument("--size", choices=("tiny", "small", "base"), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run, prog=p.prog)


def _step(n: int, title: str) -> None:
    print(f"\n== [{n}/4] {title}", flush=True)


def _dataset(out: Path, size: str, seed: int) -> Path:
    from mmrt.training.datagen.config import GeneratorConfig
    from mmrt.training.datagen.make import make_dataset

    data = out / "data"
    card = data / "datacard.json"
    cfg = GeneratorConfig(size=size, seed=seed)
    # Reuse only data made with exactly this configuration (knob defaults may change).
    if card.is_file() and json.loads(card.read_text())["config"] == json.loads(json.dumps(cfg.to_dict())):
        print(f"reusing {data} (size {size}, seed {seed})")
        return data
    made = make_dataset(cfg, data, overwrite=True)
    print(f"generated {data} in {made['generation_seconds']} s with {made['workers']} workers")
    return data


def _load_all(data: Path, out: Path) -> None:
    """Decode every labelled example twice: once from the files, once from the cache."""
    from mmrt.manifest import read_manifest
    from mmrt.preprocess import Preprocessing
    from mmrt.text import TextTokenizer
    from mmrt.training.cache import DecodeCache
    from mmrt.training.dataset import MultimodalDataset
    from mmrt.training.tokenizer import train_tokenizer

    pretrain = read_manifest(data, "pretrain")
    model = train_tokenizer([e.inputs.get("text", "") for e in pretrain], out / "tokenizer.model")
    prep = Preprocessing()
    tokenizer = TextTokenizer(model, prep.max_tokens)
    print(f"tokenizer: {tokenizer.vocab_size} pieces trained on {len(pretrain)} pretrain titles")
    cache = DecodeCache(out / "cache")
    for split in ("train", "eval"):
        ds = MultimodalDataset(data, split, ("audio", "video", "text"), prep, tokenizer, cache)
        times = []
        for _ in range(2):
            started = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            times.append(time.perf_counter() - started)
        print(f"{split}: {len(ds)} examples; first pass {times[0]:.2f} s, cached pass "
              f"{times[1]:.2f} s ({times[0] / max(times[1], 1e-9):.0f}x)")
    print(f"decode cache: {dict(cache.stats)} at {cache.root}")


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    _step(1, f"bundled dataset ({args.size})")
    data = _dataset(out, args.size, args.seed)
    _step(2, "data card")
    print((data / "DATACARD.md").read_text(encoding="utf-8"))
    _step(3, "real loaders: decode, cache, tokenizer")
    _load_all(data, out)
    _step(4, "robustness metrics on a sample p-matrix (illustrative numbers, not a measurement)")
    sample = resources.files("mmrt") / "examples" / "pmatrix_example.json"
    print(markdown_table(robustness_report(PMatrix.from_json(json.loads(sample.read_text())))))
    print(NEXT_STEPS)
    return 0
