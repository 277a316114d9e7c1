"""Bootstrap intervals: the vectorised scores equal mmrt.scores' on every resample, ties and
excluded examples included, and the intervals behave as intervals."""

import numpy as np
import pytest

from mmrt.intervals import (
    average_precision_counts,
    ci95,
    draw_counts,
    figure_intervals,
    resampled_scores,
    resamples,
)
from mmrt.scores import average_precision, chance_score, task_score


def _data(n=60, classes=5, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, classes)) < 0.3).astype(np.int64)
    scores = rng.random((n, classes))
    if ties:  # a block of identical answers, as examples with no sensor of a subset get
        scores[: n // 4] = scores[0]
        scores = np.round(scores, 1)
    return y, scores


def test_vectorised_average_precision_equals_the_scalar_one_with_ties_and_duplicates():
    y, s = _data()
    y[:, 0] = 0
    y[7, 0] = 1  # one positive: a third of the resamples draw none (NaN)
    draws = resamples(len(y), count=40, seed=3)  # drawing with replacement duplicates examples
    counts = draw_counts(draws, len(y))
    assert (counts.sum(axis=1) == len(y)).all()
    assert np.isnan(average_precision_counts(y[:, 0], s[:, 0], counts)).sum() > 5
    for c in range(y.shape[1]):
        rows = average_precision_counts(y[:, c], s[:, c], counts)
        for r, d in enumerate(draws):
            expected = average_precision(y[d, c], s[d, c]) if y[d, c].any() else np.nan
            assert rows[r] == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize("task", ["multi-label", "single-label"])
def test_resampled_scores_equal_task_score_on_each_resample(task):
    y, s = _data(seed=1)
    if task == "single-label":
        y = np.eye(5, dtype=np.int64)[np.random.default_rng(1).integers(0, 5, len(y))]
    draws = resamples(len(y), count=25, seed=4)
    got = resampled_scores(y, s, task, draws)
    assert got == pytest.approx([task_score(y[d], s[d], task) for d in draws])
    identity = np.arange(len(y))[None]
    assert resampled_scores(y, s, task, identity)[0] == pytest.approx(task_score(y, s, task))


@pytest.mark.parametrize("task", ["multi-label", "single-label"])
def test_scoring_in_blocks_changes_nothing(task, monkeypatch):
    import mmrt.intervals as intervals

    y, s = _data(seed=9)
    if task == "single-label":
        y = np.eye(5, dtype=np.int64)[np.random.default_rng(9).integers(0, 5, len(y))]
    draws = resamples(len(y), count=50, seed=10)
    whole = resampled_scores(y, s, task, draws)
    monkeypatch.setattr(intervals, "BLOCK", 7 * len(y))  # blocks of 7 resamples, the last short
    np.testing.assert_array_equal(resampled_scores(y, s, task, draws), whole)


@pytest.mark.parametrize("task", ["multi-label", "single-label"])
def test_excluded_examples_count_for_nothing(task):
    y, s = _data(seed=2, ties=False)
    include = np.arange(len(y)) % 3 != 0
    draws = resamples(len(y), count=20, seed=5)
    got = resampled_scores(y, s, task, draws, include)
    for r, d in enumerate(draws):
        kept = d[include[d]]
        assert got[r] == pytest.approx(task_score(y[kept], s[kept], task))


def test_intervals_hold_the_estimate_and_narrow_with_more_examples():
    widths = []
    for n in (60, 960):
        y, s = _data(n=n, seed=6, ties=False)
        s = s + 0.5 * y  # an informative model, not a perfect one
        interval = ci95(resampled_scores(y, s, "multi-label", resamples(n, count=300)))
        assert interval["low"] <= task_score(y, s, "multi-label") <= interval["high"]
        widths.append(interval["high"] - interval["low"])
    assert widths[1] < widths[0] / 2


def test_figure_intervals_take_each_figure_on_each_resample():
    samples = {"a": np.array([0.1, 0.2, 0.3, 0.4]), "b": np.array([0.4, 0.1, 0.5, 0.2])}
    got = figure_intervals(samples, {"min": lambda v: min(v.values()), "none": lambda v: None})
    assert got["none"] is None
    assert got["min"] == ci95(np.array([0.1, 0.1, 0.3, 0.2]))


def test_chance_score_is_what_a_random_ranking_scores():
    y, _ = _data(n=4000, seed=7, ties=False)
    rng = np.random.default_rng(8)
    random = np.mean([task_score(y, rng.random(y.shape), "multi-label") for _ in range(20)])
    assert random == pytest.approx(chance_score(y, "multi-label"), abs=0.01)
    single = np.eye(4, dtype=np.int64)[rng.integers(0, 4, 1000)]
    assert chance_score(single, "single-label") == pytest.approx(0.25)


def test_chance_on_few_examples_is_the_exact_expectation_not_the_share_of_positives():
    rng = np.random.default_rng(3)
    y = np.zeros((20, 2), dtype=np.int64)
    y[:3, 0], y[:10, 1] = 1, 1  # 3 and 10 positives in 20
    random = np.mean([task_score(y, rng.random(y.shape), "multi-label") for _ in range(4000)])
    assert random == pytest.approx(chance_score(y, "multi-label"), abs=0.01)
    assert chance_score(y, "multi-label") > (3 / 20 + 10 / 20) / 2 + 0.05  # the share is well below
