"""The video learnability check: labels drawn again from the generator match the manifest, and
the check trains and scores a preset's video encoder end to end."""

import re
import sys

import torch

from lab import video_learnability
from mmrt.split_files import multi_hot, read_classes, read_split


def test_drawn_labels_are_the_generators(tiny_data):
    classes = read_classes(tiny_data)
    examples = read_split(tiny_data, "train", classes)
    drawn = video_learnability.drawn_labels(tiny_data, "train", len(examples), len(classes))
    assert torch.equal(drawn, torch.from_numpy(multi_hot(examples, classes)).float())


def test_the_check_trains_and_scores_the_video_encoder(tiny_data, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["video_learnability", "--data", str(tiny_data), "--preset", "tiny",
                                      "--epochs", "2", "--arch", '{"pool": "mean"}'])
    video_learnability.main()
    scores = [float(s) for s in re.findall(r"validation mAP ([0-9.]+)", capsys.readouterr().out)]
    assert len(scores) == 2 and all(0.0 < s <= 1.0 for s in scores)
