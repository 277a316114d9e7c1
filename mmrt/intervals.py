"""95% bootstrap intervals for task scores: resample the examples with replacement (seeded),
score each resample, and take the 2.5th and 97.5th percentiles.

Every score of one report is recomputed on the *same* resamples, so figures built from several
scores (P is a mean and R a minimum over modality subsets) get intervals the same way: compute
the figure on each resample, then take its percentiles.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np

RESAMPLES = 1000
SEED = 0
BLOCK = 1 << 20  # example draws scored at once (resamples x examples): about 8 MB an array


def resamples(n: int, count: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[count, n] example indices, each row a resample of range(n) with replacement."""
    if n <= 0 or count <= 0:
        raise ValueError(f"resamples: need n > 0 and count > 0, got {n} and {count}")
    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def average_precision_counts(y_true: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AP of one class on each resample given as counts: y_true, score [n]; counts [R, n], how
    many times each example was drawn -> [R] (NaN where a resample has no positive).

    The same definition as ``mmrt.scores.average_precision`` (equal scores form one threshold):
    a resample ranks its draws as the examples rank, so the examples are sorted once and each
    resample weighs them by their counts; each positive draw counts the precision at the end of
    its run of equal scores.
    """
    order = np.argsort(-score, kind="stable")
    s, y = score[order], y_true[order].astype(bool)
    w = counts[:, order].astype(np.float64)  # [R, n] draws of each example, in rank order
    drawn = np.cumsum(w, axis=1)
    hits = np.cumsum(w * y, axis=1)
    run_end = np.ones(len(s), dtype=bool)
    run_end[:-1] = s[1:] != s[:-1]
    ends = np.flatnonzero(run_end)
    end_of = np.repeat(ends, np.diff(np.r_[-1, ends]))  # [n] the last rank of each rank's run
    positive = np.flatnonzero(y)
    at = end_of[positive]
    with np.errstate(invalid="ignore", divide="ignore"):
        # a run nobody drew (drawn 0) holds no positive draw: its precision is weighted by zero
        precision = hits[:, at] / np.maximum(drawn[:, at], 1.0)
        return np.where(hits[:, -1] > 0, (w[:, positive] * precision).sum(axis=1) / hits[:, -1], np.nan)


def draw_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """[R, n]: how many times each of n examples appears in each resample of ``draws`` [R, N]."""
    rows = len(draws)
    flat = draws + (np.arange(rows) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n)


def resampled_scores(y_true: np.ndarray, scores: np.ndarray, task: str, draws: np.ndarray,
                     include: np.ndarray | None = None) -> np.ndarray:
    """The task's score (macro mAP or top-1, as ``mmrt.scores.task_score``) on each resample:
    y_true, scores [N, C]; draws [R, N] -> [R]. ``include`` [N] (default all) marks the examples
    this score is taken over; the others may be drawn but count for nothing, so scores taken over
    different examples of one split still share its resamples. Resamples are scored a block at a
    time, so memory stays bounded whatever N."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if include is not None:  # ranked last with no positive: outside every AP, and out of top-1's mean
        include = np.asarray(include, dtype=bool)
        y_true = np.where(include[:, None], y_true, 0)
        scores = np.where(include[:, None], scores, -np.inf)
    rows = max(1, BLOCK // max(1, draws.shape[1]))
    return np.concatenate([_scored(y_true, scores, task, draws[i:i + rows], include)
                           for i in range(0, len(draws), rows)])


def _scored(y_true: np.ndarray, scores: np.ndarray, task: str, draws: np.ndarray,
            include: np.ndarray | None) -> np.ndarray:
    if task == "multi-label":
        counts = draw_counts(draws, len(y_true))
        aps = np.stack([average_precision_counts(y_true[:, c], scores[:, c], counts)
                        for c in range(y_true.shape[1])], axis=1)
        with warnings.catch_warnings():  # a resample with no positive at all: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(aps, axis=1)
    top = np.argmax(scores, axis=1)
    hit = (y_true[np.arange(len(top)), top] > 0).astype(np.float64)
    weight = np.ones(len(hit)) if include is None else include.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hit[draws].sum(axis=1) / weight[draws].sum(axis=1)


def ci95(samples: np.ndarray) -> dict[str, float]:
    """The percentile interval of a figure's resampled values."""
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [2.5, 97.5])
    return {"low": float(low), "high": float(high)}


def figure_intervals(samples: Mapping[str, np.ndarray],
                     figures: Mapping[str, Callable[[Mapping[str, float]], float | None]]) -> dict:
    """Intervals of figures computed from several scores: ``samples`` maps each score's name to
    its [R] resampled values (all on the same resamples); each figure maps one resample's
    {name: score} to a number (None: undefined). -> {figure: ci95, or None}."""
    count = len(next(iter(samples.values())))
    out: dict = {}
    for name, figure in figures.items():
        values = [figure({k: float(v[r]) for k, v in samples.items()}) for r in range(count)]
        out[name] = None if any(v is None for v in values) else ci95(np.asarray(values))
    return out
