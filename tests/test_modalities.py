import pytest

from mmrt.errors import UserError
from mmrt.modalities import all_subsets, parse_modality_list, parse_subset, subset_key

ORDER = ("audio", "video", "text")


def test_subset_key_follows_modality_order():
    assert subset_key({"text", "audio"}, ORDER) == "audio+text"
    assert parse_subset("audio+text", ORDER) == frozenset({"audio", "text"})


def test_all_subsets_are_the_non_empty_ones_smallest_first():
    keys = [subset_key(s, ORDER) for s in all_subsets(ORDER)]
    assert keys == ["audio", "video", "text", "audio+video", "audio+text", "video+text",
                    "audio+video+text"]
    assert len(all_subsets(("a", "b", "c", "d"))) == 15  # nothing assumes three modalities


@pytest.mark.parametrize("key, message", [
    ("text+audio", "write it as 'audio+text'"),
    ("audio+smell", "unknown modality 'smell'"),
    ("audio+audio", "repeated"),
    ("", "expected modality names"),
    ("audio++text", "expected modality names"),
])
def test_bad_subset_keys_are_named(key, message):
    with pytest.raises(UserError, match=message.replace("+", r"\+")):
        parse_subset(key, ORDER)


def test_modality_list_flag():
    assert parse_modality_list("text, audio") == ("audio", "text")
    with pytest.raises(UserError, match="unknown modality 'lidar'"):
        parse_modality_list("audio,lidar")
