"""Drains under load: SIGTERM to `mmrt serve` while clients hammer it, round after round.

    python -m lab.drain --bundle runs/quickstart/bundle [--drains 20] [--clients 8]

Each round starts a server and lets `--clients` threads call it back to back: most send
ModelInfer with the retry policy the README shows (UNAVAILABLE retried with backoff; none with
`--no-retry`), the others stream three-request sequences, one stream each, without a retry
policy. After `--load-s` the server gets SIGTERM; the clients keep going until it has exited.
Every call's final status is counted.
Pass: no CANCELLED, no failure other than UNAVAILABLE (a refusal, which a client retries
elsewhere), every sequence either refused at its start or answered to its end, exit code 0.

Quoted in docs/reliability.md, docs/serving.md."""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from lab.fuzz_streams import in_sequence
from mmrt.benchmarks.client import ServerProcess

RETRY = {"methodConfig": [{"name": [{"service": "inference.GRPCInferenceService", "method": "ModelInfer"}],
                           "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "2s",
                                           "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}
CHANNEL_OPTIONS = [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY))]
REFUSED = "shutting down"  # what a stream's error_message says when the drain refuses a new sequence


def request(sequence: int | None = None, start: bool = False, end: bool = False):
    from mmrt.runtime.protocol import grpc_service_pb2 as pb

    r = pb.ModelInferRequest(model_name="mmrt")
    r.inputs.add(name="AUDIO", datatype="FP32", shape=[1, 16000])
    r.raw_input_contents.append(np.zeros(16000, np.float32).tobytes())
    return in_sequence(r, sequence, start, end)


class Tally:
    """Final statuses, counted from every client thread."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1


def unary_client(url: str, until: threading.Event, counts: Tally, retry: bool = True) -> None:
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    client = tc.InferenceServerClient(url, channel_args=CHANNEL_OPTIONS if retry else None)
    x = tc.InferInput("AUDIO", [1, 16000], "FP32")
    x.set_data_from_numpy(np.zeros((1, 16000), np.float32))
    while not until.is_set():
        try:
            client.infer("mmrt", [x], client_timeout=30)
            counts.add("unary OK")
        except InferenceServerException as e:
            counts.add(f"unary {e.status().replace('StatusCode.', '')}")
            time.sleep(0.05)  # the server is gone or going: a client backs off


def stream_client(url: str, until: threading.Event, counts: Tally, first_id: int) -> None:
    from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

    sequence = first_id
    while not until.is_set():
        sequence += 1
        steps = [request(sequence, start=True), request(sequence), request(sequence, end=True)]
        with grpc.insecure_channel(url) as channel:  # no retry policy: a refused stream counts as such
            try:
                call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(steps), timeout=30)
                answers = list(call)
            except grpc.RpcError as e:
                counts.add(f"stream {e.code().name}")
                time.sleep(0.05)
                continue
        errors = [a.error_message for a in answers]
        if not any(errors):
            counts.add("sequence complete")
        elif REFUSED in errors[0]:
            counts.add("sequence refused at its start")  # the later steps then find no sequence
        else:
            counts.add("sequence broken")


def one_drain(bundle: Path, clients: int, streams: int, load_s: float, retry: bool = True
              ) -> tuple[collections.Counter, int]:
    counts = Tally()
    server = ServerProcess(bundle, threads=1)
    until = threading.Event()
    threads = [threading.Thread(target=unary_client, args=(server.url, until, counts, retry))
               for _ in range(clients - streams)]
    threads += [threading.Thread(target=stream_client, args=(server.url, until, counts, 1000 * i))
                for i in range(streams)]
    for t in threads:
        t.start()
    time.sleep(load_s)
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=120)
    time.sleep(0.5)  # calls after the exit find nobody: UNAVAILABLE
    until.set()
    for t in threads:
        t.join()
    return counts.counts, code


def failures(counts: collections.Counter) -> dict:
    """Every outcome that is neither an answer nor a retryable refusal (UNAVAILABLE)."""
    return {k: v for k, v in counts.items() if not k.endswith(("OK", "UNAVAILABLE", "complete", "start"))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--drains", type=int, default=20)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--streams", type=int, default=2, help="how many of the clients stream (default 2)")
    p.add_argument("--load-s", type=float, default=1.5, help="load before each SIGTERM (default 1.5)")
    p.add_argument("--no-retry", action="store_true",
                   help="unary clients without the retry policy: every refusal is seen and counted")
    args = p.parse_args()
    total: collections.Counter = collections.Counter()
    codes = []
    for i in range(args.drains):
        counts, code = one_drain(args.bundle, args.clients, args.streams, args.load_s, not args.no_retry)
        total.update(counts)
        codes.append(code)
        print(f"drain {i + 1}/{args.drains}: exit {code}, {dict(sorted(counts.items()))}", flush=True)
    bad = failures(total)
    print(json.dumps({"drains": args.drains, "clients": args.clients, "streams": args.streams,
                      "retry": not args.no_retry,
                      "counts": dict(sorted(total.items())), "exit_codes": sorted(set(codes)),
                      "failures": bad}, indent=1))
    return 0 if not bad and set(codes) == {0} else 1


if __name__ == "__main__":
    sys.exit(main())
