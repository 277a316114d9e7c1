"""Unlabelled pools checked against train and eval, by id and by file, before any work."""

import logging
import shutil

import pytest

from mmrt.cli import main
from mmrt.errors import UserError
from mmrt.training.data.overlap import check_pool

pytestmark = pytest.mark.integration


def _copy(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, symlinks=True)
    return data


def _lines(data, split):
    return (data / f"{split}.jsonl").read_text().splitlines(keepends=True)


def test_a_pool_holding_an_eval_clip_is_refused_naming_it(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    eval_line = _lines(data, "eval")[3]
    (data / "unseen.jsonl").write_text("".join(_lines(data, "unseen")[:5]) + eval_line)
    with pytest.raises(UserError, match=r"unseen.jsonl: 1 of its 6 examples are also in eval.jsonl "
                                        r"\(first: id 'eval-000003'\)"):
        check_pool(data, "unseen")


def test_the_same_file_under_another_id_is_found(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    renamed = _lines(data, "eval")[0].replace('"id": "eval-000000"', '"id": "my-clip"')
    (data / "distill.jsonl").write_text(renamed + "".join(_lines(data, "distill")))
    with pytest.raises(UserError, match=r"first: 'my-clip''s audio file is 'eval-000000''s"):
        check_pool(data, "distill")


def test_a_pool_holding_train_clips_is_warned_about_and_used(tiny_data, tmp_path, caplog):
    data = _copy(tiny_data, tmp_path)
    (data / "unseen.jsonl").write_text("".join(_lines(data, "unseen") + _lines(data, "train")[:2]))
    with caplog.at_level(logging.WARNING):
        check_pool(data, "unseen")
    assert "2 of its 42 examples are also in train.jsonl (first: id 'train-000000')" in caplog.text
    # ...but when a share of train is what gets scored (--holdout), it is refused
    with pytest.raises(UserError, match=r"unseen.jsonl: 2 of its 42 examples are also in train.jsonl"):
        check_pool(data, "unseen", scored_on_train=True)
    caplog.clear()
    check_pool(tiny_data, "unseen")  # the bundled pools are disjoint: nothing to say
    check_pool(tiny_data, "pretrain")
    assert not caplog.text


def test_pretraining_on_eval_clips_is_refused_before_any_work(tiny_data, tmp_path, capsys):
    data = _copy(tiny_data, tmp_path)
    (data / "pretrain.jsonl").write_text("".join(_lines(data, "pretrain") + _lines(data, "eval")[:1]))
    out = tmp_path / "pre"
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--preset", "tiny", "--quiet"]) == 2
    assert "pretrain.jsonl: 1 of its 121 examples are also in eval.jsonl" in capsys.readouterr().err
    assert not out.exists()
