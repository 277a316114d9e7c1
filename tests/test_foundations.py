"""The released foundation: its files are the ones its card lists, it loads, it is what `mmrt
pretrain` makes (same architecture and tokenizer contract), `--pretrained` takes it by name, and
the quickstart starting from it generates no pretraining pool."""

import json
import shutil

import pytest

from mmrt.errors import UserError
from mmrt.text import BOS_ID, EOS_ID, PAD_ID, TextTokenizer
from mmrt.training.model.checkpoint import load_model, read_config
from mmrt.training.model.foundations import (
    RELEASE,
    RELEASED,
    read_release,
    released_folder,
    resolve_pretrained,
)


@pytest.mark.parametrize("name", RELEASED)
def test_the_released_files_are_the_card_s_and_load(name):
    folder = released_folder(name)
    release = read_release(folder)  # raises unless every file matches its sha256
    assert set(release["files"]) == {"model.safetensors", "config.json", "tokenizer.model"}
    card = (folder / "MODEL.md").read_text("utf-8")
    assert all(digest in card for digest in release["files"].values())
    assert release["steps"] > 0 and release["commit"] and release["probe_validation"].keys() == {
        "audio", "video", "text"}
    model = load_model(folder)
    assert model.config.preset == name and not model.config.classes
    assert model.config.history[0]["objective"] == "contrastive"


def test_a_changed_released_file_is_refused(tmp_path):
    copy = tmp_path / "small"
    shutil.copytree(released_folder("small"), copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "preset": "tiny"}))
    with pytest.raises(UserError, match="config.json: missing or not the released file"):
        read_release(copy)
    (copy / RELEASE).unlink()
    with pytest.raises(UserError, match="release.json: missing or not JSON"):
        read_release(copy)


def test_pretrained_takes_a_folder_or_a_released_name(tiny_pretrained):
    assert resolve_pretrained(tiny_pretrained) == tiny_pretrained
    assert resolve_pretrained("small") == released_folder("small")
    with pytest.raises(UserError, match="--pretrained nosuch: no such folder, and not a released foundation "
                                        r"\(released: small\)"):
        resolve_pretrained("nosuch")


def test_the_released_foundation_is_what_mmrt_pretrain_makes(tiny_data, tmp_path):
    """A `small` model pretrained here for one epoch on the tiny data has the released one's
    architecture, parameters and tokenizer contract (its vocabulary is smaller: tiny text)."""
    from mmrt.cli import main

    here = tmp_path / "pre"
    assert main(["pretrain", "--data", str(tiny_data), "--out", str(here), "--preset", "small",
                 "--epochs", "1", "--quiet"]) == 0
    released = released_folder("small")
    mine, theirs = read_config(here), read_config(released)
    assert mine.arch == theirs.arch and mine.modalities == theirs.modalities
    a, b = load_model(here).state_dict(), load_model(released).state_dict()
    assert a.keys() == b.keys()
    differ = {k for k in a if a[k].shape != b[k].shape}
    assert differ <= {"encoders.text.embed.weight"}, differ  # the text embedding's rows: vocabulary size
    for folder in (here, released):
        tokens = TextTokenizer(folder / "tokenizer.model", mine.arch.preprocessing.max_tokens)
        row = tokens.encode(["counting to seven"])[0]
        assert row[0] == BOS_ID and EOS_ID in row and row[-1] == PAD_ID
        assert len(row) == mine.arch.preprocessing.max_tokens


def test_the_quickstart_from_a_released_foundation_makes_no_pretraining_pool(tmp_path):
    from mmrt.cli.quickstart import _dataset
    from mmrt.training.datagen.config import SIZES

    data, reused = _dataset(tmp_path, "tiny", seed=3, pool=False)
    card = json.loads((data / "datacard.json").read_text())
    assert not reused and card["splits"]["pretrain"]["examples"] == SIZES["tiny"]["distill"]
    assert not (data / "unseen.jsonl").exists() and (data / "distill.jsonl").is_file()


def test_the_quickstart_asks_for_pretrain_before_pretrain_epochs(tmp_path, capsys):
    from mmrt.cli import main

    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--pretrain-epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--pretrain-epochs: applies when the quickstart pretrains; add --pretrain" in err


def test_a_release_is_stamped_with_the_commit_its_work_folder_was_begun_at(tmp_path, monkeypatch):
    from lab import release_foundation

    monkeypatch.setattr("lab.provenance.commit", lambda: "first")
    assert release_foundation.begun(tmp_path / "work") == "first"
    monkeypatch.setattr("lab.provenance.commit", lambda: "later")
    assert release_foundation.begun(tmp_path / "work") == "first"  # resumed later: still the first
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "data").mkdir()
    with pytest.raises(SystemExit, match="without a record of its commit"):
        release_foundation.begun(tmp_path / "old")
