"""Encoders, presets, fusion and the head: shapes, norms, and running on any modality subset."""

import json

import pytest
import torch
from helpers import MODS, batch, tiny_model

from mmrt.errors import UserError
from mmrt.modalities import all_subsets
from mmrt.training.data.frontend import LOG_MEL
from mmrt.training.model.config import POOLS, PRESETS, ArchConfig, ModelConfig, load_preset
from mmrt.training.model.model import MultimodalModel


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_as_data_files(name):
    preset = load_preset(name)
    assert preset.arch.width % preset.arch.heads == 0
    assert set(preset.recipe) == {"pretrain", "pretrain_mae", "probe", "finetune"}
    assert all(0 < r < 1 for r in preset.mae.mask_ratio.values())


def test_unknown_preset_and_untileable_arch_are_refused():
    with pytest.raises(UserError, match="expected one of"):
        load_preset("huge")
    arch = load_preset("tiny").arch.to_dict()
    with pytest.raises(UserError, match="tubelet"):
        ArchConfig.from_dict({**arch, "video_tubelet": [3, 8, 8]})
    with pytest.raises(UserError, match="unknown"):
        ArchConfig.from_dict({**arch, "depht": 2})
    with pytest.raises(UserError, match="pool 'attention'"):
        ArchConfig.from_dict({**arch, "pool": "attention"})
    with pytest.raises(UserError, match="stem_norm needs a convolutional stem"):
        ArchConfig.from_dict({**arch, "stem_channels": 0, "stem_norm": True})


def test_each_encoder_gives_unit_vectors_of_the_embedding_size():
    model = tiny_model().eval()
    x = batch(model)
    for m in MODS:
        z = getattr(model, f"encode_{m}")(x[m])
        assert z.shape == (4, model.config.arch.embed_dim)
        torch.testing.assert_close(z.norm(dim=1), torch.ones(4))


@pytest.mark.parametrize("pool", POOLS)
def test_text_padding_does_not_change_the_embedding(pool):
    model = tiny_model(pool=pool).eval()
    ids = torch.zeros(1, model.config.arch.preprocessing.max_tokens, dtype=torch.long)
    ids[0, :5] = torch.tensor([2, 10, 11, 12, 3])
    # The padding positions hold PAD; changing the encoder's view of them must not matter.
    model.encoders["text"].embed.weight.data[0] += 5.0
    z1 = model.encode_text(ids)
    model.encoders["text"].embed.weight.data[0] -= 10.0
    z2 = model.encode_text(ids)
    torch.testing.assert_close(z1, z2)


def test_fusion_is_the_mean_of_present_embeddings_only():
    z = {"audio": torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "video": torch.tensor([[0.0, 1.0], [0.0, 1.0]])}
    mask = {"audio": torch.tensor([True, True]), "video": torch.tensor([True, False])}
    fused = MultimodalModel.fuse(z, mask)
    torch.testing.assert_close(fused, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))


def test_one_model_runs_on_every_subset_and_only_those_encoders_run():
    model = tiny_model().eval()
    x = batch(model)
    present = {m: torch.ones(4, dtype=torch.bool) for m in MODS}
    calls = []
    for m in MODS:
        model.encoders[m].register_forward_hook(lambda mod, i, o, m=m: calls.append(m))
    for subset in all_subsets(MODS):
        calls.clear()
        use = [m for m in MODS if m in subset]
        logits = model({m: x[m] for m in use}, present, use)
        assert logits.shape == (4, 3)
        assert sorted(calls) == sorted(use)


def test_config_round_trips_through_json():
    cfg = tiny_model().config
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_precomputed_log_mel_gives_the_same_embedding_as_raw_audio():
    model = tiny_model().eval()
    pcm = batch(model)["audio"]
    with torch.no_grad():
        mel = model.audio_frontend()(pcm)
        torch.testing.assert_close(model.encode_input({LOG_MEL: mel}, "audio"), model.encode("audio", pcm))
        torch.testing.assert_close(model.encode_input({"audio": pcm}, "audio"), model.encode("audio", pcm))
        # the key names what the batch holds: a log-mel under "audio" is not taken for PCM
        with pytest.raises((RuntimeError, ValueError)):
            model.encode_input({"audio": mel}, "audio")


def test_normalised_stem_uses_no_batch_statistics():
    # A clip's embedding in training mode must not depend on the clips it is batched with.
    model = tiny_model(stem_norm=True).train()
    x = batch(model)["video"]
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.encoders["video"].patch.modules())
    torch.testing.assert_close(model.encode_video(x[:1]), model.encode_video(x)[:1])


def test_convolutional_stem_keeps_the_token_grid():
    plain = tiny_model(stem_channels=0, stem_norm=False)
    stem = tiny_model(stem_channels=8)
    arch = stem.config.arch
    assert stem.encoders["audio"].trunk.pos.shape == plain.encoders["audio"].trunk.pos.shape
    assert stem.encoders["video"].trunk.pos.shape == plain.encoders["video"].trunk.pos.shape
    x = batch(plain)
    assert stem.eval().encode_video(x["video"]).shape == (4, arch.embed_dim)
