"""Hostile requests (hypothesis, over gRPC) against a real server: proper statuses only, the server
stays healthy, and a valid request afterwards gets the same answer as before. The benchmark mode
(`python -m lab.fuzz`) sends 10,000; CI sends a few hundred."""

import pytest
import tritonclient.grpc as tc
from test_repository import add_version, answered_by

from lab.fuzz import fuzz
from lab.fuzz_control import fuzz_control
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration


def test_the_server_answers_hostile_requests_with_proper_statuses(tiny_bundle):
    options = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1)
    server = Server(tiny_bundle, options).start()
    try:
        result = fuzz(server.address, count=300, rest=server.http_address, forbidden=(str(tiny_bundle),))
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
    assert codes.get("CONTROL_FAILED_PRECONDITION", 0) > 0  # one bundle: load and unload refused


def test_hostile_control_calls_against_a_repository_that_takes_them(tmp_path, tiny_bundle):
    add_version(tmp_path / "repo", "mmrt", 1, tiny_bundle)
    options = ServerOptions(port=0, http_port=0, metrics_port=None, threads=1, model_control="explicit")
    server = Server(tmp_path / "repo", options).start()
    try:
        codes, unexpected = fuzz_control(server.address, 200, server.http_address,
                                         forbidden=(str(tmp_path), str(tiny_bundle)))
        client = tc.InferenceServerClient(server.address)
        client.load_model("mmrt")
        assert answered_by(client) == "1"
    finally:
        server.stop(0)
    assert unexpected == []
    assert codes["OK"] > 0 and codes["INVALID_ARGUMENT"] > 0 and codes["REST_400"] > 0, codes
