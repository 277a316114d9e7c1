import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mmrt.scores import average_precision, mean_average_precision, top1_accuracy


def test_average_precision_by_hand():
    # ranking: pos, neg, pos -> precision at the positives 1/1 and 2/3
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.1])) == pytest.approx(
        (1.0 + 2 / 3) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    score = rng.integers(0, 10, 200) / 10  # many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))


def test_map_leaves_out_classes_without_positives_and_counts_them():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5]])
    m = mean_average_precision(y, s)
    assert (m.classes_scored, m.classes_skipped) == (2, 1)
    expected = np.mean([average_precision_score(y[:, c], s[:, c]) for c in (0, 1)])
    assert m.value == pytest.approx(expected)


def test_top1_counts_a_hit_when_argmax_is_any_true_label():
    y = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    s = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])
    assert top1_accuracy(y, s) == pytest.approx(2 / 3)


def test_shape_mismatch_and_nan_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        top1_accuracy(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(np.ones((2, 2)), np.array([[np.nan, 0], [0, 0]]))
