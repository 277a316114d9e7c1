"""Modality names and subsets, and how a subset is written as a key ("audio+text").

Nothing here assumes three modalities: the modality list comes from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from mmrt.errors import UserError

# The order in which the bundled dataset, reports and keys list modalities.
DEFAULT_MODALITIES: tuple[str, ...] = ("audio", "video", "text")
SEPARATOR = "+"

Subset = frozenset[str]


def subset_key(subset: Sequence[str] | frozenset[str], order: Sequence[str]) -> str:
    """Join a subset's names with '+' in the order of ``order``: {"text","audio"} -> "audio+text"."""
    unknown = set(subset) - set(order)
    if unknown:
        raise UserError(f"unknown modality {sorted(unknown)[0]!r} (expected one of {list(order)})")
    if not subset:
        raise UserError("a modality subset must not be empty")
    return SEPARATOR.join(m for m in order if m in subset)


def parse_subset(key: str, order: Sequence[str]) -> Subset:
    """Inverse of :func:`subset_key`; names must be known, distinct, and in ``order``'s order."""
    names = key.split(SEPARATOR) if key else []
    if not names or any(not n for n in names):
        raise UserError(f"subset key {key!r}: expected modality names joined by '+', e.g. "
                        f"{SEPARATOR.join(order[:2])!r}")
    for n in names:
        if n not in order:
            raise UserError(f"subset key {key!r}: unknown modality {n!r} (expected one of {list(order)})")
    if len(set(names)) != len(names):
        raise UserError(f"subset key {key!r}: a modality is repeated")
    canonical = subset_key(names, order)
    if canonical != key:
        raise UserError(f"subset key {key!r}: write it as {canonical!r} (the order of 'modalities')")
    return frozenset(names)


def all_subsets(order: Sequence[str]) -> list[Subset]:
    """Every non-empty subset, smallest first, each size in ``order``'s order."""
    return [frozenset(c) for k in range(1, len(order) + 1) for c in combinations(order, k)]


def parse_modality_list(text: str, allowed: Sequence[str] = DEFAULT_MODALITIES) -> tuple[str, ...]:
    """Parse a comma list such as "audio,video" into names in ``allowed``'s order."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--modalities {text!r}: expected a comma list from {list(allowed)}")
    for n in names:
        if n not in allowed:
            raise UserError(f"--modalities: unknown modality {n!r} (expected some of {list(allowed)})")
    return tuple(m for m in allowed if m in names)
