"""The peer benchmark's own parts, without the peers' environments (their installs are the lab
script's work): the engine a peer serves answers as mmrt's does, Triton's batch of mixed requests
is split back per request, and the report words a claim within the spread of its rounds."""

import sys
from pathlib import Path

import numpy as np
import pytest

from lab.peers import bench

sys.path.insert(0, str(Path(bench.__file__).parent))  # the peers import their neighbours by name
from engine_model import load_engine, scores  # noqa: E402
from triton_server import infer_function  # noqa: E402


def test_a_peers_engine_answers_as_mmrts_split_and_monolithic(tiny_bundle, tiny_engine):
    tensors = {"AUDIO": np.full((1, 16000), 0.1, np.float32), "TEXT": np.array([[b"seven"]], object)}
    mmrt = tiny_engine.infer(tensors).scores
    assert np.allclose(scores(load_engine(str(tiny_bundle), "split", 1), tensors), mmrt, atol=1e-6)
    mono = scores(load_engine(str(tiny_bundle), "mono", 1), tensors)
    assert mono.shape == mmrt.shape and np.allclose(mono, mmrt, atol=1e-4)
    with pytest.raises(ValueError, match="mode 'fused'"):
        load_engine(str(tiny_bundle), "fused", 1)


def test_tritons_batch_of_mixed_requests_is_answered_per_request(tiny_bundle, tiny_engine):
    rng = np.random.default_rng(0)
    requests = [{"AUDIO": rng.normal(0, 0.1, (1, 16000)).astype(np.float32)},
                {"TEXT": np.array([[b"three"]], object)},
                {"AUDIO": rng.normal(0, 0.1, (2, 16000)).astype(np.float32)},
                {"AUDIO": rng.normal(0, 0.1, (1, 8000)).astype(np.float32)}]
    answers = infer_function(load_engine(str(tiny_bundle), "split", 1))(requests)
    for request, answer in zip(requests, answers, strict=True):
        expected = tiny_engine.infer(request).scores
        assert answer["SCORES"].shape == expected.shape and np.allclose(answer["SCORES"], expected, atol=1e-5)


@pytest.mark.parametrize("ratios,below,word", [([0.5, 0.6, 0.7], True, "mmrt ahead"),
                                               ([0.9, 1.1, 0.8], True, "level"),
                                               ([1.2, 1.3, 1.1], True, "mmrt behind"),
                                               ([1.2, 1.3, 1.1], False, "mmrt ahead"),
                                               ([0.99, 1.04, 1.0], False, "level")])
def test_a_claim_is_ahead_or_behind_only_when_every_round_agrees(ratios, below, word):
    assert bench.wording(ratios, below) == word


def test_the_report_gives_each_servers_range_and_its_ratio_per_round():
    cell = {"p50_ms": 4.0, "p99_ms": 9.0, "loaded_p50_ms": 30.0, "per_s": 400.0}
    rounds = [{"mmrt": cell, "triton": {**cell, "p50_ms": 5.0, "per_s": 380.0}},
              {"mmrt": {**cell, "p50_ms": 4.4}, "triton": {**cell, "p50_ms": 4.0, "per_s": 420.0}}]
    ranges = bench.ranges(rounds, ["mmrt", "triton"])
    assert ranges["triton"]["p50_ms"] == [4.0, 5.0] and ranges["triton"]["p50_ratio"] == [0.8, 1.1]
    doc = {"date": "2026-12-03", "command": "python -m lab.peers.bench", "machine": "x", "commit": "c",
           "bundle": "b", "requests": 2, "carried": "video dropped", "rounds": 2, "threads": 2,
           "versions": {"MLServer": "1.7.1"}, "agreement": {"mmrt": 0.0, "triton": 2e-7}, "ranges": ranges}
    row = next(line for line in bench.report(doc).splitlines() if line.startswith("| triton"))
    assert "| 4.00-5.00 |" in row and "0.80-1.10 (level)" in row and "0.95-1.05 (level)" in row


def test_a_servers_measure_names_the_server_loads_it_after_warming_up_and_keeps_every_answer(tiny_bundle):
    from lab.serve_latency import inputs_for
    from mmrt.benchmarks.client import ServerProcess, triton_inputs
    from mmrt.runtime.backends.loaded_bundle import open_bundle

    arrays = inputs_for(open_bundle(tiny_bundle).manifest, np.random.default_rng(0))
    requests = [triton_inputs(arrays, ["audio", "text"]), triton_inputs(arrays, ["text"])]
    with ServerProcess(tiny_bundle, 1) as server:
        got = bench.measure(server.url, requests, 0.5)
    assert got["server"].startswith("mmrt ")  # what the server said it is, with its version
    assert got["p50_ms"] > 0 and got["per_s"] > 0 and got["scores"].shape[0] == len(requests)
    assert set(got["loaded_scores"]) == {0, 1}  # every request was answered under load too
    assert bench.servers([{"mmrt": got}]) == {"mmrt": got["server"]}
