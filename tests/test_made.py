"""Where a run's figures were made: the calls that worked on it, each once and in order, quoted in
one line; a record with none (a run made through the API, or before runs recorded it) reads as
before."""

from mmrt.training.experiments.made import add_call, made_line, merged
from mmrt.training.experiments.report import comparison

A = {"command": "mmrt experiment --data d", "machine": "Xeon, 2 cores", "date": "2026-12-07",
     "began": "2026-12-07T10:00:00Z", "device": "cpu", "processes": 1}
B = {**A, "command": "mmrt experiment --data d --resume", "began": "2026-12-07T11:00:00Z",
     "device": "cuda (H100)", "processes": 2}
C = {**A, "began": "2026-12-07T12:00:00Z"}  # the first command again, later: another call


def test_a_call_is_added_once_and_an_empty_one_never():
    calls = add_call([], A)
    assert add_call(calls, A) == [A] and add_call(calls, {}) == [A]
    assert add_call(calls, B) == [A, B] and add_call(calls, A) == [A, B, A]


def test_the_seeds_calls_are_merged_each_once_in_the_order_they_began():
    assert merged([[A], [A, B], [B]]) == [A, B] and merged([[], []]) == []
    assert merged([[A, C], [A, B, C]]) == [A, B, C] and merged([[A, B, C]]) == [A, B, C]


def test_the_line_names_the_first_call_and_each_resume():
    assert made_line([A]) == "Made by `mmrt experiment --data d` on Xeon, 2 cores, cpu, 2026-12-07."
    assert made_line([A, B]).endswith("; resumed by `mmrt experiment --data d --resume` on Xeon, 2 cores, "
                                      "cuda (H100) x2, 2026-12-07.")
    assert made_line([]) == ""


def test_a_comparison_of_records_without_calls_reads_as_before():
    doc = {"metric": "mAP", "task": "multilabel", "modalities": ["audio"], "seeds": [0], "methods": {},
           "settings": {"data": "d", "preset": "small", "minutes": 1.0}}
    lines = comparison({"old": doc, "new": {**doc, "made": [A]}}).splitlines()
    assert "- **old**: data `d`, preset `small`, contrastive pretraining, seeds 0; 1.0 min" in lines
    assert any(ln.endswith("1.0 min. Made by `mmrt experiment --data d` on Xeon, 2 cores, cpu, 2026-12-07.")
               for ln in lines)


def test_a_search_names_its_calls_without_a_device():
    call = {"command": "mmrt tune --lr 1e-3", "machine": "Xeon, 2 cores", "date": "2026-12-08"}
    assert made_line([call]) == "Made by `mmrt tune --lr 1e-3` on Xeon, 2 cores, 2026-12-08."
