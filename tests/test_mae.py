"""MAE pretraining (`mmrt pretrain --objective mae`): masking, reconstruction, the shared final
block, and everything downstream of it (methods, export, experiment, compare) on tiny data."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from mmrt.bundle import EMBEDDING, input_name
from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.export.samples import parity_samples
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.text import TextTokenizer
from mmrt.training.data.frontend import input_key
from mmrt.training.data.splits import Split
from mmrt.training.model.checkpoint import load_model, load_state, tokenizer_path
from mmrt.training.model.config import Schedule, load_preset
from mmrt.training.model.mae import MaskedAutoencoding, patches, visible_order
from mmrt.training.stages.distributed import setup
from mmrt.training.stages.loop import fit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mae_pretrained(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mae") / "pretrained"
    assert main(["pretrain", "--data", str(tiny_data), "--out", str(out), "--preset", "tiny",
                 "--objective", "mae", "--quiet"]) == 0
    return out


def real_batch(model_dir, data, size=16):
    model = load_model(model_dir)
    prep = model.config.arch.preprocessing
    tokenizer = TextTokenizer(tokenizer_path(model_dir), prep.max_tokens)
    split = Split(data, "pretrain", model.modalities, prep, tokenizer, labeled=False, progress=False,
                  audio_frontend=model.audio_frontend())
    return model, next(split.batches(torch.arange(size), size))


def test_the_pretrained_model_has_sinusoidal_positions_and_one_shared_final_block(mae_pretrained):
    model = load_model(mae_pretrained)
    arch = model.config.arch
    assert arch.positions == "sinusoidal" and arch.shared_depth == load_preset("tiny").mae.shared_depth >= 1
    assert model.config.history[0]["objective"] == "mae"
    shared = [model.encoders[m].trunk.shared for m in model.modalities]
    assert all(s is shared[0] for s in shared)
    # One set of weights, however many encoders hold it.
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids))
    assert "pos" not in dict(model.encoders["audio"].trunk.named_parameters())


def test_each_modality_shows_its_encoder_the_preset_share_of_tokens(mae_pretrained, tiny_data):
    model, batch = real_batch(mae_pretrained, tiny_data)
    objective = MaskedAutoencoding(model, load_preset("tiny").mae)
    seen = {}
    for m in model.modalities:
        trunk = model.encoders[m].trunk
        original = trunk.hidden

        def record(tokens, pad=None, m=m, original=original):
            seen[m] = (~pad).sum(1) if pad is not None else torch.full((len(tokens),), tokens.shape[1])
            return original(tokens, pad)

        trunk.hidden = record
    objective(batch, torch.Generator().manual_seed(0))
    ratios = load_preset("tiny").mae.mask_ratio
    for m in ("audio", "video"):
        n = math.prod(model.encoders[m].grid)
        assert seen[m].tolist() == [n - math.ceil(ratios[m] * n)] * 16, m
    real = (batch["text"] != 0).sum(1)
    expected = real - torch.ceil(real * ratios["text"]).long()
    assert seen["text"].tolist() == expected.tolist()


def test_visible_order_never_shows_padding_and_keeps_one_token():
    valid = torch.tensor([[True] * 5 + [False] * 5, [True] + [False] * 9])
    order, visible = visible_order(valid, 0.9, torch.Generator().manual_seed(0))
    assert visible.tolist() == [1, 1]  # 5 - ceil(4.5) = 0 -> at least one; 1 - 1 = 0 -> one
    for row in range(2):
        assert valid[row, order[row, : visible[row]]].all()


def test_patches_follow_the_patch_embeddings_token_order():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    p = patches(x, (2, 3))  # a 2 x 2 grid of 2 x 3 patches, 3 channels
    assert p.shape == (2, 4, 18)
    # token 1 is row 0, column 1: rows 0-1, columns 3-5; channels last within the patch
    assert torch.equal(p[0, 1].reshape(2, 3, 3), x[0, :, 0:2, 3:6].permute(1, 2, 0))


def test_a_raw_target_is_the_patch_as_the_encoder_sees_it_and_the_others_stay_normalised(mae_pretrained,
                                                                                          tiny_data):
    model, batch = real_batch(mae_pretrained, tiny_data)
    raw_video = dataclasses.replace(load_preset("tiny").mae, raw_targets=("video",))
    objective = MaskedAutoencoding(model, raw_video)
    enc = model.encoders["video"]
    _, raw, _ = objective.tokens("video", batch["video"])
    assert torch.equal(raw, patches(enc.normalised(batch["video"]), tuple(model.config.arch.video_tubelet)))
    assert not torch.allclose(raw.var(dim=-1, unbiased=False), torch.ones(raw.shape[:2]), atol=0.05)
    key = input_key(batch, "audio")
    _, audio, _ = objective.tokens("audio", batch[key], key)
    assert torch.allclose(audio.var(dim=-1, unbiased=False), torch.ones(audio.shape[:2]), atol=1e-3)
    with pytest.raises(UserError, match="raw_targets"):
        dataclasses.replace(load_preset("tiny").mae, raw_targets=["text"])


def test_reconstruction_loss_falls_over_a_few_steps(mae_pretrained, tiny_data):
    model, batch = real_batch(mae_pretrained, tiny_data)
    objective = MaskedAutoencoding(model, load_preset("tiny").mae)
    opt = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss, parts = objective(batch, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(parts) == set(model.modalities)
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses


def test_the_resumable_state_holds_the_decoders(mae_pretrained, tiny_data, tmp_path):
    """An interrupted MAE run resumes with its decoders, not fresh ones."""
    model, batch = real_batch(mae_pretrained, tiny_data)
    objective = MaskedAutoencoding(model, load_preset("tiny").mae)
    state = tmp_path / "resume.safetensors"
    fit(objective, list(objective.parameters()), lambda epoch: iter([batch]), 1,
        Schedule(lr=1e-3, epochs=2, batch_size=16), setup("cpu"), 0, "mae", state_file=state, progress=False)
    fresh = MaskedAutoencoding(load_model(mae_pretrained), load_preset("tiny").mae)
    load_state(state, fresh, torch.optim.AdamW(fresh.parameters()))
    trained, restored = objective.state_dict(), fresh.state_dict()
    assert any(k.startswith("decoders.") for k in restored)
    assert all(torch.equal(trained[k], restored[k]) for k in trained)


def test_downstream_methods_and_export_run_on_an_mae_model(mae_pretrained, tiny_data, tmp_path):
    model_dir, bundle = tmp_path / "masd", tmp_path / "bundle"
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(mae_pretrained), "--method",
                 "masd+wiseft", "--modalities", "audio+video", "--out", str(model_dir), "--quiet"]) == 0
    assert main(["export", str(model_dir), "--out", str(bundle)]) == 0
    # Each exported encoder includes the shared block: on real clips it reproduces the torch
    # encoder, and a model with that block's weights changed does not.
    model = load_model(model_dir).eval()
    samples = parity_samples(model, tiny_data, tokenizer_path(model_dir), 4)
    graphs = open_bundle(bundle).encoders
    altered = load_model(model_dir).eval()
    with torch.no_grad():
        for p in altered.encoders["audio"].trunk.shared.parameters():
            p.add_(0.5)
    for m in model.modalities:
        with torch.no_grad():
            want, other = model.encode(m, samples[m]).numpy(), altered.encode(m, samples[m]).numpy()
        got = graphs[m].run({input_name(m): samples[m].numpy()})[EMBEDDING]
        assert np.abs(got - want).max() < 1e-4, m
        assert np.abs(got - other).max() > 1e-2, m


@pytest.fixture(scope="module")
def mae_experiment(tiny_av_single, tmp_path_factory):
    out = tmp_path_factory.mktemp("mae-exp") / "run"
    assert main(["experiment", "--data", str(tiny_av_single), "--out", str(out), "--preset", "tiny",
                 "--objective", "mae", "--seed", "0", "--methods", "ft,masd+wiseft", "--alphas", "0,1",
                 "--quiet"]) == 0
    return out


def test_experiment_with_mae_writes_the_same_results_and_compares_with_contrastive(
        mae_experiment, tiny_experiment, tmp_path, capsys):
    doc = json.loads((mae_experiment / "results.json").read_text())
    assert doc["settings"]["objective"] == "mae"
    assert list(doc["methods"]) == ["lp", "ft", "masd", "masd+wiseft"]
    out = tmp_path / "compare.md"
    assert main(["compare", str(tiny_experiment), str(mae_experiment), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.strip() == capsys.readouterr().out.strip()
    table3 = text.split("## Robustness (paper Table 3)")[1].split("\n\n")[1]  # before the ratios
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in table3.splitlines()}
    # Table 3 rows: pretraining, method, Overall P_best, R_best, P, R, ...
    cells = [c.strip() for c in rows[("mae", "ft")].strip("|").split("|")]
    overall = doc["methods"]["ft"]["metrics"]["overall"]
    figures = [f"{overall[k]:.3f}" for k in ("P_best", "R_best", "P", "R")]
    assert [c.split(" [")[0] for c in cells[2:6]] == figures
    # one seed: P and R with their 95% bootstrap interval, P_best and R_best without
    ci = doc["methods"]["ft"]["ci95"]["metrics"]["overall"]["P"]
    assert cells[4] == f"{overall['P']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]" and "[" not in cells[2]
    assert ("contrastive", "masd+wiseft") in rows and ("contrastive", "moddrop") in rows


def test_compare_refuses_a_folder_without_results(tiny_experiment, tmp_path, capsys):
    assert main(["compare", str(tiny_experiment), str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_the_preset_mae_pooling_is_the_pretrained_encoders(tiny_data, tmp_path, monkeypatch):
    from mmrt.training.stages import pretrain as stage

    tiny = load_preset("tiny")
    assert tiny.arch.pool != "mean"
    monkeypatch.setattr(stage, "load_preset", lambda name: dataclasses.replace(
        tiny, mae=dataclasses.replace(tiny.mae, pool="mean")))
    out = stage.pretrain(stage.PretrainOptions(data=tiny_data, out=tmp_path / "m", preset="tiny",
                                               objective="mae", epochs=1, progress=False))
    model = load_model(out)
    assert model.config.arch.pool == "mean" and all(e.trunk.pool == "mean" for e in model.encoders.values())
    assert model.config.history[0]["mae"]["pool"] == "mean"
    tuned, bundle = tmp_path / "lp", tmp_path / "bundle"  # each exported encoder averages as in torch
    assert main(["train", "--data", str(tiny_data), "--pretrained", str(out), "--method", "lp",
                 "--modalities", "audio+video+text", "--out", str(tuned), "--quiet"]) == 0
    assert main(["export", str(tuned), "--out", str(bundle)]) == 0
    model = load_model(tuned).eval()
    assert model.config.arch.pool == "mean"
    samples = parity_samples(model, tiny_data, tokenizer_path(tuned), 4)
    graphs = open_bundle(bundle).encoders
    for m in model.modalities:
        with torch.no_grad():
            want = model.encode(m, samples[m]).numpy()
        assert np.abs(graphs[m].run({input_name(m): samples[m].numpy()})[EMBEDDING] - want).max() < 1e-4, m
    with pytest.raises(UserError, match="pool"):
        dataclasses.replace(tiny.mae, pool="sum")
