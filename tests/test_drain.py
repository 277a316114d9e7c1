"""SIGTERM through traffic that does not stop: `mmrt serve` drains while 8 clients keep calling
back to back (6 unary without a retry policy, so every refusal is seen, 2 streaming sequences),
and every call ends OK or UNAVAILABLE, never CANCELLED; every sequence is refused at its start or
answered to its end. `python -m lab.drain --drains 20` is the long form."""

import pytest

from lab.drain import failures, one_drain

pytestmark = pytest.mark.integration


def test_drains_under_load_refuse_only_with_unavailable(tiny_bundle):
    for _ in range(2):
        counts, code = one_drain(tiny_bundle, clients=8, streams=2, load_s=1.0, retry=False)
        assert code == 0
        assert counts["unary OK"] > 0 and counts["sequence complete"] > 0, counts
        assert counts["unary UNAVAILABLE"] > 0, counts  # calls did arrive while it drained
        assert not failures(counts), counts
