"""Helpers the test files share: a tiny random model with a batch for it, and a Python with
torch blocked (for what must run without it)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from mmrt.training.model.config import ArchConfig, ModelConfig, load_preset
from mmrt.training.model.model import MultimodalModel

MODS = ("audio", "video", "text")


def tiny_model(classes=("a", "b", "c"), modalities=MODS, **arch) -> MultimodalModel:
    """The tiny preset's model; ``arch`` overrides architecture fields."""
    torch.manual_seed(0)
    config = ArchConfig.from_dict({**load_preset("tiny").arch.to_dict(), **arch})
    return MultimodalModel(ModelConfig(preset="tiny", arch=config, modalities=modalities,
                                       text_vocab=50, classes=tuple(classes)))


def batch(model: MultimodalModel, b: int = 4) -> dict:
    p = model.config.arch.preprocessing
    g = torch.Generator().manual_seed(1)
    t = torch.arange(p.clip_samples) / p.sample_rate
    tones = 200.0 + 3000.0 * torch.rand(b, 1, generator=g)  # a distinct tone per example
    hiss = 0.01 * torch.randn(b, p.clip_samples, generator=g)
    return {"audio": 0.3 * torch.sin(2 * torch.pi * tones * t) + hiss,
            "video": torch.randint(0, 256, (b, p.frames, p.frame_size, p.frame_size, 3), generator=g,
                                   dtype=torch.uint8),
            "text": torch.randint(4, 50, (b, p.max_tokens), generator=g)}


BLOCK_TORCH = textwrap.dedent("""
    import sys
    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, BlockTorch())
""")


def run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
