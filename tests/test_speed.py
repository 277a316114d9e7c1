"""The training speed-ups change how a step runs, never what it computes or what is saved."""

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrt.training.data.data import inspect_data
from mmrt.training.data.splits import Split
from mmrt.training.model.checkpoint import WEIGHTS, load_model, load_state, save_state
from mmrt.training.model.config import ModelConfig, Schedule, load_preset
from mmrt.training.model.model import MultimodalModel
from mmrt.training.stages.distributed import setup
from mmrt.training.stages.loop import epoch_batches, fit
from mmrt.training.stages.objectives import Contrastive
from mmrt.training.stages.pretrain import PretrainOptions, pretrain
from mmrt.training.stages.speed import Speed, cannot_compile, make_optimizer, prepare, release

TINY = load_preset("tiny")
ROUNDING = {"atol": 1e-3, "rtol": 1e-2}  # what float rounding moves a tiny pretraining by, with margin


def tiny_model(modalities=("audio", "video")) -> MultimodalModel:
    torch.manual_seed(0)
    return MultimodalModel(ModelConfig(preset="tiny", arch=TINY.arch, modalities=modalities, text_vocab=0,
                                       task="multi-label"))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / WEIGHTS))


def pretrained(data: Path, out: Path, speed: Speed) -> dict[str, torch.Tensor]:
    pretrain(PretrainOptions(data, out, "tiny", modalities=("audio", "video"), epochs=2, progress=False,
                             speed=speed))
    return weights(out)


@pytest.fixture(scope="module")
def plain_weights(tiny_data, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Pretrained with every lever off."""
    return pretrained(tiny_data, tmp_path_factory.mktemp("plain") / "m", Speed.off())


@pytest.mark.parametrize("speed", [Speed(), Speed(channels_last=True, fused_optimizer=False),
                                   Speed(channels_last=False, fused_optimizer=True)])
def test_speedups_train_the_same_model(tiny_data, tmp_path, plain_weights, speed):
    """Pretraining with a lever on ends where it ends with every lever off, float rounding apart
    (AdamW turns the rounding noise of near-zero gradients, such as the key biases', into steps
    of up to the learning rate: 1e-4 after these 12 steps, against 1e-2 that the weights move)."""
    fast = pretrained(tiny_data, tmp_path / "fast", speed)
    assert plain_weights.keys() == fast.keys()
    for key, value in plain_weights.items():
        torch.testing.assert_close(fast[key], value, **ROUNDING, msg=key)
        assert fast[key].is_contiguous(), key  # written dense whatever the layout in training
    init = tiny_model().state_dict()
    moved = [k for k, v in plain_weights.items() if k in init and not torch.equal(init[k], v)]
    assert len(moved) > len(init) // 2  # the runs trained (the same start, so equal ends mean something)


def test_channels_last_reaches_the_stems_and_not_the_saved_model(tmp_path):
    from mmrt.training.model.checkpoint import save_model

    model = prepare(tiny_model(), Speed())
    layouts = {torch.nn.Conv2d: torch.channels_last, torch.nn.Conv3d: torch.channels_last_3d}
    convs = [m for m in model.modules() if type(m) in layouts]
    assert len(convs) == 6  # three in each stem
    assert all(c.weight.is_contiguous(memory_format=layouts[type(c)]) for c in convs)
    assert sum(not c.weight.is_contiguous() for c in convs) == 5  # all but audio's 1-channel input's
    assert model.encoders["audio"].dense_input
    save_model(tmp_path / "m", model, None)
    again = load_model(tmp_path / "m")
    for key, value in again.state_dict().items():
        assert value.is_contiguous(), key
        torch.testing.assert_close(value, model.state_dict()[key].contiguous(), msg=key)
    assert not again.encoders["audio"].dense_input  # export opens a plain model


def test_dense_audio_input_gives_the_same_embedding():
    model = tiny_model().eval()
    mel = torch.randn(3, TINY.arch.n_mels, 201)  # more frames than the patches cover, as precomputed
    plain = model.encode_input({"audio_log_mel": mel}, "audio")
    prepare(model, Speed())
    fast = model.encode_input({"audio_log_mel": mel}, "audio")
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)


def compiled(model) -> list[str]:
    return [type(m).__name__ for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None]


def test_compile_lasts_while_a_stage_trains_and_falls_back_where_it_cannot(monkeypatch, caplog):
    model = prepare(tiny_model(), Speed(compile=True))
    if cannot_compile(torch.device("cpu")) is None:
        assert compiled(model) == ["TokenEncoder", "TokenEncoder"]  # each encoder's transformer
    release(model)
    assert compiled(model) == []  # scored and saved as a plain model
    monkeypatch.setattr("mmrt.training.stages.speed.cannot_compile", lambda device: "no C++ compiler (g++)")
    with caplog.at_level(logging.WARNING):
        model = prepare(tiny_model(), Speed(compile=True))
    assert "cannot build kernels here (no C++ compiler (g++)); training uncompiled" in caplog.text
    assert compiled(model) == []


def test_a_state_saved_without_the_fused_optimizer_resumes_with_it(tmp_path):
    model = tiny_model()
    schedule = Schedule(lr=1e-3, batch_size=8, epochs=1)
    params = list(model.parameters())
    plain = make_optimizer(params, schedule, Speed.off())
    for p in params:
        p.grad = torch.ones_like(p)
    plain.step()
    save_state(tmp_path / "state", model, plain, {"step": 1})
    fast_model = prepare(tiny_model(), Speed())
    fast = make_optimizer(list(fast_model.parameters()), schedule, Speed())
    load_state(tmp_path / "state", fast_model, fast)
    assert all(group["fused"] for group in fast.param_groups)  # the running choice, not the saved one
    for p in fast_model.parameters():  # moments in each parameter's own layout
        for value in fast.state[p].values():
            if value.shape == p.shape:
                assert value.stride() == p.stride()


class Stop(Exception):
    pass


def resumable_run(data: Path, state: Path, speeds: list[Speed], stop_at: int | None = None):
    """A tiny contrastive pretraining through ``fit``: with ``stop_at``, stopped when it asks for
    that batch (after its last checkpoint) and run again from the state file, a new model each
    time as a new process would have, with the next of ``speeds``. -> (weights, steps taken)."""
    ctx = setup("cpu")
    info = inspect_data(data)
    schedule = Schedule(lr=1e-3, epochs=3, batch_size=16, warmup_steps=2)
    result: dict = {}
    model = tiny_model()
    for i, speed in enumerate(speeds):
        model = tiny_model()
        split = Split(info.root, "pretrain", ("audio", "video"), TINY.arch.preprocessing, None, labeled=False,
                      progress=False, audio_frontend=model.audio_frontend())
        batches, steps = epoch_batches(split, torch.arange(len(split)), 16, 0, ctx)
        asked = []

        last = i == len(speeds) - 1

        def stopping(epoch, batches=batches, asked=asked, last=last):
            for batch in batches(epoch):
                if not last and len(asked) == stop_at:
                    raise Stop
                asked.append(epoch)
                yield batch

        try:
            result = fit(Contrastive(model), list(model.parameters()), stopping, steps, schedule, ctx, 0, "t",
                         state_file=state, resume=i > 0, checkpoint_every=2, progress=False, speed=speed)
        except Stop:
            continue
    return model.state_dict(), result["steps"]


def test_a_resumed_run_takes_exactly_the_uninterrupted_steps(tiny_data, tmp_path):
    whole, steps = resumable_run(tiny_data, tmp_path / "whole", [Speed()])
    resumed, resumed_steps = resumable_run(tiny_data, tmp_path / "resumed", [Speed(), Speed()], stop_at=5)
    assert resumed_steps == steps
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=1e-6, msg=key)


def test_a_run_resumed_with_the_speedups_switched_ends_where_the_uninterrupted_one_does(tiny_data, tmp_path):
    """A state saved by the plain path resumes on the fast one (and the other way round)."""
    whole, steps = resumable_run(tiny_data, tmp_path / "whole", [Speed()])
    for speeds in ([Speed.off(), Speed()], [Speed(), Speed.off()]):
        state = tmp_path / f"{speeds[0].describe()}.state"
        resumed, resumed_steps = resumable_run(tiny_data, state, speeds, stop_at=5)
        assert resumed_steps == steps
        for key, value in whole.items():
            torch.testing.assert_close(resumed[key], value, **ROUNDING, msg=key)


def test_compile_and_no_speedups_together_are_refused(tiny_data, tmp_path, capsys):
    from mmrt.cli import main

    code = main(["pretrain", "--data", str(tiny_data), "--out", str(tmp_path / "p"), "--preset", "tiny",
                 "--compile", "--no-speedups", "--quiet"])
    assert code == 2
    assert "--compile and --no-speedups" in capsys.readouterr().err


def test_an_unattended_run_logs_where_it_is_at_the_end_of_an_epoch(tiny_data, tmp_path, monkeypatch, caplog):
    """Without a bar a person sees, an epoch's end is logged, at most once a PROGRESS_EVERY_S."""
    monkeypatch.setattr("mmrt.training.stages.loop.PROGRESS_EVERY_S", 1e9)
    with caplog.at_level(logging.INFO, logger="mmrt.training.stages.loop"):
        resumable_run(tiny_data, tmp_path / "quiet", [Speed()])
    assert "epoch" not in caplog.text  # a run shorter than the interval says nothing more
    monkeypatch.setattr("mmrt.training.stages.loop.PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="mmrt.training.stages.loop"):
        resumable_run(tiny_data, tmp_path / "every", [Speed()])
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [f"t: epoch {n} of 3" for n in (1, 2, 3)]
    assert all("loss" in line and "s a step" in line for line in lines)
    assert lines[-1].endswith("about 0 min left")
