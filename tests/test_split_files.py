"""Manifest validation: every problem names the file, the line and the field."""

import json

import pytest

from mmrt.errors import UserError
from mmrt.split_files import multi_hot, read_split


@pytest.fixture
def root(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    return tmp_path


def write(root, lines, split="train"):
    (root / f"{split}.jsonl").write_text("".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


GOOD = {"id": "x1", "audio": "a.wav", "text": "a cat", "labels": ["cat"]}


@pytest.mark.parametrize("bad, message", [
    ("{broken", r"train.jsonl line 2: not valid JSON"),
    ({**GOOD, "id": "x2", "labels": ["cow"]}, r"line 2: field 'labels': unknown class 'cow'"),
    ({**GOOD, "id": "x2", "audio": "missing.wav"}, r"line 2: field 'audio': file not found"),
    ({**GOOD, "id": "x2", "labels": []}, r"line 2: field 'labels': expected a non-empty list"),
    ({**GOOD, "id": 5}, r"line 2: field 'id': expected a non-empty string"),
    ({**GOOD}, r"line 2: field 'id': 'x1' already used on line 1"),
    ({"id": "x2", "labels": ["cat"]}, r"line 2: no modality present"),
    ({**GOOD, "id": "x2", "text": 3}, r"line 2: field 'text': expected a string"),
    ([1, 2], r"line 2: expected a JSON object"),
])
def test_bad_lines_are_named(root, bad, message):
    write(root, [GOOD, bad])
    with pytest.raises(UserError, match=message):
        read_split(root, "train")


def test_empty_and_missing_manifests(root):
    write(root, [])
    with pytest.raises(UserError, match="empty split file"):
        read_split(root, "train")
    with pytest.raises(UserError, match="eval.jsonl: split file not found"):
        read_split(root, "eval")


def test_unlabeled_splits_ignore_labels_and_nulls_mean_absent(root):
    write(root, [{"id": "p1", "audio": None, "text": "hello", "labels": None}], split="pretrain")
    [ex] = read_split(root, "pretrain")
    assert ex.modalities == {"text"} and ex.labels == ()


def test_multi_hot(root):
    write(root, [GOOD, {**GOOD, "id": "x2", "labels": ["dog", "cat"]}])
    y = multi_hot(read_split(root, "train"), ["cat", "dog"])
    assert y.tolist() == [[1, 0], [1, 1]]
