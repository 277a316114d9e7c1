"""Hostile requests (hypothesis, over gRPC) against a real server: proper statuses only, the server
stays healthy, and a valid request afterwards gets the same answer as before. The benchmark mode
(`python -m benchmarks.fuzz`) sends 10,000; CI sends a few hundred."""

import pytest

from benchmarks.fuzz import fuzz
from mmrt.runtime.server import Server, ServerOptions

pytestmark = pytest.mark.integration


def test_the_server_answers_hostile_requests_with_proper_statuses(tiny_bundle):
    options = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1)
    server = Server(tiny_bundle, options).start()
    try:
        result = fuzz(server.address, count=300, rest=server.http_address)
    finally:
        server.stop(0)
    assert result["unexpected"] == []
    assert result["requests"] >= 270 and result["healthy_after"] and result["same_answer_after"]
    codes = result["codes"]
    assert codes.get("INVALID_ARGUMENT", 0) > 100 and codes.get("NOT_FOUND", 0) > 0
    assert codes.get("STREAM_ERROR", 0) > 0
    assert result["healthy_with_streams_held"]  # 8 idle and 8 half-open streams hang on meanwhile
    assert codes.get("SHARED_OK", 0) > 0 and codes.get("DEADLINE_DEADLINE_EXCEEDED", 0) > 0
    assert result["costs"]["worst_time"]  # the costly requests ran and were timed
    assert codes.get("REST_400", 0) > 20 and codes.get("REST_404", 0) > 0
