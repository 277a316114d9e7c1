"""Augmentation: same shapes and types, seeded, and special tokens survive."""

import torch

from mmrt.training.data import augment


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_log_mel_augmentation_is_seeded_and_keeps_shape():
    x = torch.randn(4, 16, 50)
    a, b = augment.log_mel(x, gen()), augment.log_mel(x, gen())
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    assert not torch.equal(a, augment.log_mel(x, gen(1)))


def test_video_augmentation_keeps_uint8_frames():
    x = torch.randint(0, 256, (3, 4, 8, 8, 3), dtype=torch.uint8)
    y = augment.video(x, gen())
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert torch.equal(y, augment.video(x, gen()))


def test_text_augmentation_drops_only_word_pieces():
    x = torch.tensor([[2, 10, 11, 12, 13, 3, 0, 0]] * 64)
    y = augment.text(x, gen())
    assert torch.equal(y[:, [0, 5, 6, 7]], x[:, [0, 5, 6, 7]])
    dropped = (y[:, 1:5] == 0).float().mean()
    assert 0.05 < dropped < 0.3


def test_augment_leaves_the_input_batch_alone():
    batch = {"audio": torch.randn(2, 16, 50), "video": torch.zeros(2, 2, 8, 8, 3, dtype=torch.uint8),
             "text": torch.tensor([[2, 9, 3], [2, 8, 3]])}
    before = {k: v.clone() for k, v in batch.items()}
    augment.augment(batch, ("audio", "video", "text"), gen())
    assert all(torch.equal(batch[k], before[k]) for k in batch)
