"""The serving benchmarks' own measurements: CPU accounting under load, and the grpc.aio floor."""

from __future__ import annotations

import argparse
import json

import numpy as np

from lab import grpc_floor
from lab.floor_server import FloorServer
from lab.serve_latency import clients_rps, inputs_for, workload
from mmrt.benchmarks.client import ServerProcess, triton_inputs
from mmrt.runtime.backends.loaded_bundle import open_bundle
from mmrt.runtime.engine.batcher import BatchingOptions
from mmrt.runtime.engine.engine import Engine


def test_clients_rps_accounts_the_cpu_of_the_server_and_of_the_clients(tiny_bundle):
    m = open_bundle(tiny_bundle).manifest
    request = triton_inputs(inputs_for(m, np.random.default_rng(0)), ["text"])
    with ServerProcess(tiny_bundle, 1) as server:
        load = clients_rps(server.url, m.name, [request], 2, 1.0, server.proc.pid)
        without_pid = clients_rps(server.url, m.name, [request], 2, 0.5)
    assert load.rps > 0 and load.server_cpu_ms > 0 and load.client_cpu_ms > 0
    assert 0 < load.cores_busy
    assert without_pid.rps > 0 and without_pid.server_cpu_ms is None


def test_the_grpc_floor_answers_every_workload_and_reports_it(tiny_bundle, tmp_path):
    grpc_floor.main(["--bundle", str(tiny_bundle), "--out", str(tmp_path), "--clients", "2",
                     "--seconds", "0.5", "--repeats", "5", "--hop"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["workloads"]) == ["all", "video dropped", "text only"]
    for measured in report["workloads"].values():
        assert measured["rps"] > 0 and measured["p50_ms"] > 0 and measured["server_cpu_ms"] > 0
    assert report["hop"] and "on a worker thread" in (tmp_path / "report.md").read_text()


def test_the_served_time_is_split_into_engine_floor_and_what_the_server_adds_above_it(tiny_bundle):
    bundle = open_bundle(tiny_bundle)
    arrays = inputs_for(bundle.manifest, np.random.default_rng(0))
    engine = Engine(bundle, BatchingOptions())
    args = argparse.Namespace(repeats=5, http=False, clients=2, seconds=0.5, latency_rounds=2)
    try:
        with ServerProcess(tiny_bundle, 1) as server, FloorServer(hop=True) as floor:
            measured = workload(server, floor, engine, arrays, ["text"], args)
    finally:
        engine.close()
    each = measured["each_round"]
    assert all(len(values) == 2 for values in each.values())
    keys = ("served_ms", "in_process_ms", "floor_ms", "added_ms", "above_floor_ms")
    for served, in_process, floor, added, above in zip(*(each[k] for k in keys), strict=True):
        assert floor > 0 and in_process > 0
        assert served > floor  # a served answer crosses the same transport, and more
        assert added == served - in_process and above == added - floor
    assert measured["above_floor_ms"] in each["above_floor_ms"]  # one round's figures, which add up:
    m = measured
    assert m["above_floor_ms"] == m["served_ms"] - m["in_process_ms"] - m["floor_ms"]
