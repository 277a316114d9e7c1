"""The bench's side of the wire: tritonclient requests, timed, and `mmrt serve` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrt.bundle import SCORES, WIRE, input_name
from mmrt.errors import UserError


@dataclass
class Record:
    """One request as the bench saw it (a row of requests.csv)."""

    example: str
    subset: str
    concurrency: int
    client_ms: float
    server_ms: float
    ok: bool
    error: str = ""
    scores: np.ndarray | None = None
    step: int = 0  # position in a streamed sequence (0: unary)


def batch_of_one(modality: str, value) -> np.ndarray:
    if modality == "text":
        return np.array([value], dtype=object)
    return np.asarray(value)[None]


def triton_inputs(example_inputs: dict, carried, tc=None) -> list:
    """tritonclient inputs of batch 1 (``tc``: tritonclient.grpc by default, or tritonclient.http)."""
    if tc is None:
        import tritonclient.grpc as tc

    out = []
    for m in carried:
        x = batch_of_one(m, example_inputs[m])
        tensor = tc.InferInput(input_name(m), list(x.shape), WIRE[m][1])
        tensor.set_data_from_numpy(x)
        out.append(tensor)
    return out


class Client:
    """One tritonclient connection per thread (tritonclient's gRPC client is not thread-safe)."""

    def __init__(self, url: str, model: str):
        self.url, self.model = url, model
        self.local = threading.local()

    def connection(self):
        import tritonclient.grpc as tc

        if not hasattr(self.local, "client"):
            self.local.client = tc.InferenceServerClient(self.url)
        return self.local.client

    def check(self) -> None:
        try:
            ready = self.connection().is_model_ready(self.model)
        except Exception as e:  # noqa: BLE001 - tritonclient raises its own exception types
            raise UserError(f"--url {self.url}: no KServe v2 server answers there ({e})") from None
        if not ready:
            raise UserError(f"--url {self.url}: model {self.model!r} is not ready there")

    def infer(self, example_id: str, inputs: dict, carried, subset: str, concurrency: int) -> Record:
        from tritonclient.utils import InferenceServerException

        request = triton_inputs(inputs, carried)
        start = time.perf_counter()
        try:
            result = self.connection().infer(self.model, request)
        except InferenceServerException as e:
            return Record(example_id, subset, concurrency, 1000 * (time.perf_counter() - start), 0.0, False,
                          f"{e.status()}: {e.message()}")
        client_ms = 1000 * (time.perf_counter() - start)
        server_ms = result.get_response().parameters["server_time_ns"].int64_param / 1e6
        return Record(example_id, subset, concurrency, client_ms, server_ms, True,
                      scores=result.as_numpy(SCORES)[0])


def run_concurrently(jobs: list, fn, concurrency: int, progress=None) -> list:
    """``fn(*job)`` for every job with ``concurrency`` threads; results in job order."""
    results: list = [None] * len(jobs)

    def one(i: int) -> None:
        results[i] = fn(*jobs[i])
        if progress is not None:
            progress.update(1)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(len(jobs))))
    return results


class ServerProcess:
    """`mmrt serve BUNDLE` on a free loopback port, stopped (drained) on exit."""

    def __init__(self, bundle: Path, threads: int, monolithic: bool = False, batching: bool = True,
                 flags: tuple[str, ...] = (), http: bool = False, pythonpath: str | None = None):
        """``http``: REST too (``http_url``); ``pythonpath``: run another build of mmrt (for example
        an older one installed with ``pip install --target``) to compare builds."""
        cmd = [sys.executable, "-m", "mmrt", "serve", str(Path(bundle).resolve()), "--port", "0",
               "--metrics-port", "-1", "--threads", str(threads), *flags]
        cmd += ["--monolithic"] if monolithic else []
        cmd += [] if batching else ["--no-batching"]
        env, cwd = None, None
        if pythonpath is None:
            cmd += ["--http-port", "0" if http else "-1"]
        else:  # run from elsewhere, so that this checkout's editable install stays out of the way
            env, cwd = {**os.environ, "PYTHONPATH": pythonpath}, "/"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=cwd)
        self.url = self.http_url = None
        while self.url is None or (http and self.http_url is None):
            line = self.proc.stdout.readline()
            if line.startswith("mmrt serve: listening on"):
                self.url = line.split()[-1]
            elif line.startswith("mmrt serve: REST listening on"):
                self.http_url = line.split()[-1]
            elif not line:
                self.proc.kill()
                err = self.proc.stderr.read().strip().splitlines()
                raise UserError(f"mmrt serve {bundle} did not start: {err[-1] if err else 'no output'}")

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
