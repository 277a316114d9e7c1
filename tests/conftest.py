"""Shared fixtures: tiny bundled datasets generated once per test session."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from mmrt.training.datagen.config import GeneratorConfig, TextKnobs
from mmrt.training.datagen.make import make_dataset

TINY = GeneratorConfig(size="tiny", seed=7)


def pytest_configure(config):
    # Decode cache and speech bank go to a throwaway folder, not the user's ~/.cache.
    if "MMRT_CACHE_DIR" not in os.environ:
        os.environ["MMRT_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmrt-test-cache-")



def _make(tmp_path_factory, name: str, cfg: GeneratorConfig, workers: int = 1) -> Path:
    out = tmp_path_factory.mktemp("data") / name
    make_dataset(cfg, out, workers=workers, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny three-modality multi-label dataset, seed 7."""
    return _make(tmp_path_factory, "tiny", TINY)


@pytest.fixture(scope="session")
def tiny_data_again(tmp_path_factory) -> Path:
    """The same config made again with two worker processes (output must not change)."""
    return _make(tmp_path_factory, "tiny-again", TINY, workers=2)


@pytest.fixture(scope="session")
def tiny_av_single(tmp_path_factory) -> Path:
    """Audio + video only, single-label (Kinetics-like)."""
    return _make(tmp_path_factory, "tiny-av", replace(TINY, modalities=("audio", "video"),
                                                      labels="single"))


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_data, tmp_path_factory) -> Path:
    """A tiny contrastively pretrained model directory (no head)."""
    from mmrt.cli import main

    out = tmp_path_factory.mktemp("pre") / "pretrained"
    assert main(["pretrain", "--data", str(tiny_data), "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tiny_pretrained, tmp_path_factory) -> Path:
    """A tiny fine-tuned model directory on all three modalities (multi-label)."""
    from mmrt.cli import main

    out = tmp_path_factory.mktemp("model") / "ft"
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(tiny_pretrained), "--method", "ft",
                 "--modalities", "audio+video+text", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory) -> Path:
    """The tiny model exported with the monolithic baseline (read-only: copy it to alter it)."""
    from mmrt.cli import main

    out = tmp_path_factory.mktemp("export") / "bundle"
    assert main(["export", str(tiny_model), "--out", str(out), "--baseline"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_engine(tiny_bundle):
    """The tiny bundle's engine in this process, unbatched: what a server's answers must equal."""
    from mmrt.runtime.backends.loaded_bundle import open_bundle
    from mmrt.runtime.engine.batcher import BatchingOptions
    from mmrt.runtime.engine.engine import Engine

    engine = Engine(open_bundle(tiny_bundle), BatchingOptions(enabled=False))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_named_titles(tmp_path_factory) -> Path:
    """Text only, every title naming its label."""
    cfg = replace(TINY, modalities=("text",), text=TextKnobs(named=1.0, cue=0.0, foreign=0.0))
    return _make(tmp_path_factory, "tiny-named", cfg)


@pytest.fixture(scope="session")
def tiny_experiment(tiny_av_single, tmp_path_factory) -> Path:
    """`mmrt experiment` (contrastive, every method, seeds 0 and 1) on the tiny audio+video data."""
    from mmrt.cli import main

    out = tmp_path_factory.mktemp("exp") / "run"
    assert main(["experiment", "--data", str(tiny_av_single), "--out", str(out), "--preset", "tiny",
                 "--seeds", "0,1", "--alphas", "0,0.5,1", "--quiet"]) == 0
    return out
