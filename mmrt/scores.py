"""Task scores p: mAP for multi-label data (AudioSet-like), top-1 for single-label data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeanAP:
    value: float  # macro mean over the classes that have a positive
    classes_scored: int
    classes_skipped: int  # no positive example in the eval set: AP undefined


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Non-interpolated AP of one class: sum over thresholds of (R_n - R_{n-1}) * P_n.

    Equal scores form one threshold (as scikit-learn does). ``y_true`` needs a positive.
    """
    y_true = np.asarray(y_true, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    s, y = np.asarray(score, dtype=np.float64)[order], y_true[order]
    # index of the last item of each run of equal scores
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> MeanAP:
    """Macro mAP over classes. y_true: [N, C] in {0, 1}; scores: [N, C]."""
    y_true, scores = _check_pair(y_true, scores)
    aps = [average_precision(y_true[:, c], scores[:, c])
           for c in range(y_true.shape[1]) if y_true[:, c].any()]
    skipped = y_true.shape[1] - len(aps)
    value = float(np.mean(aps)) if aps else float("nan")
    return MeanAP(value=value, classes_scored=len(aps), classes_skipped=skipped)


def top1_accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Share of examples whose highest-scoring class is one of its labels. y_true: [N, C]."""
    y_true, scores = _check_pair(y_true, scores)
    top = np.argmax(scores, axis=1)
    return float(np.mean(y_true[np.arange(len(top)), top] > 0))


def metric_name(task: str) -> str:
    """The name of the task's metric: "mAP" for "multi-label", "top1" for "single-label"."""
    return "mAP" if task == "multi-label" else "top1"


def task_score(y_true: np.ndarray, scores: np.ndarray, task: str) -> float:
    """The task's metric: macro mAP for "multi-label", top-1 accuracy for "single-label"."""
    if task == "multi-label":
        return mean_average_precision(y_true, scores).value
    return top1_accuracy(y_true, scores)


def chance_score(y_true: np.ndarray, task: str) -> float:
    """What a model that ranks at random scores in expectation. For mAP, each class's expected AP
    over random orders of its n examples with k positives, exactly (``expected_random_ap``; near
    k/n only when n is large: 0.27 against 0.15 for 3 positives in 20), averaged over the classes
    that have one; for top-1, the share of the classes that are an example's labels, averaged
    over examples."""
    y = np.asarray(y_true) > 0
    if task == "multi-label":
        n, positives = y.shape[0], y.sum(axis=0)
        return float(np.mean([expected_random_ap(int(k), n) for k in positives if k > 0]))
    return float(np.mean(y.sum(axis=1) / y.shape[1]))


def expected_random_ap(k: int, n: int) -> float:
    """The expected average precision of a uniformly random order of n examples, k of them
    positive: (H_n + (k - 1) / (n - 1) * (n - H_n)) / n, H_n the n-th harmonic number (the
    positive at rank r counts precision r's expected share of positives above it)."""
    if n == 1:
        return 1.0
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    return (harmonic + (k - 1) / (n - 1) * (n - harmonic)) / n


def _check_pair(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape or len(y_true) == 0:
        raise ValueError(f"expected y_true and scores of one shape [N>0, C], got "
                         f"{y_true.shape} and {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or Inf")
    return y_true, scores
