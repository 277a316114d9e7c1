"""KServe's own Python SDK against a real server: its REST client reads health from the body
(`{"live": true}`), model readiness from the status, and inference over REST and gRPC gives the
same scores as tritonclient's for the same input. The SDK runs in its own process: its protocol
stubs and tritonclient's register the same names in protobuf's default pool."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tritonclient.grpc as tc

from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration

SDK_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

grpc_address, http_address = sys.argv[1:3]
audio = np.asarray(json.loads(sys.stdin.read()), dtype=np.float32)

def request():
    x = InferInput("AUDIO", list(audio.shape), "FP32")
    x.set_data_from_numpy(audio, binary_data=True)
    return InferRequest(model_name="mmrt", infer_inputs=[x])

def scores(response):
    return next(o for o in response.outputs if o.name == "SCORES").as_numpy().tolist()

async def ask():
    rest, base = InferenceRESTClient(RESTConfig(protocol="v2", retries=0)), "http://" + http_address
    try:
        health = [await rest.is_server_live(base), await rest.is_server_ready(base),
                  await rest.is_model_ready(base, "mmrt"), await rest.is_model_ready(base, "nope")]
        over_rest = scores(await rest.infer(base, request(), model_name="mmrt"))
    finally:
        await rest.close()
    client = InferenceGRPCClient(grpc_address, retries=0)
    try:
        over_grpc = scores(await client.infer(request()))
    finally:
        await client.close()
    print(json.dumps({"health": health, "rest": over_rest, "grpc": over_grpc}))

asyncio.run(ask())
"""


def test_kserves_sdk_reads_health_and_infers_over_rest_and_grpc(tiny_bundle):
    audio = (np.random.default_rng(3).standard_normal((2, 16_000)) * 0.1).astype(np.float32)
    server = Server(tiny_bundle, ServerOptions(port=0, http_port=0, metrics_port=None, threads=1)).start()
    try:
        x = tc.InferInput("AUDIO", list(audio.shape), "FP32")
        x.set_data_from_numpy(audio)
        expected = tc.InferenceServerClient(server.address).infer("mmrt", [x]).as_numpy("SCORES")
        r = subprocess.run([sys.executable, "-c", SDK_CLIENT, server.address, server.http_address],
                           input=json.dumps(audio.tolist()), capture_output=True, text=True, timeout=120)
    finally:
        server.stop(0)
    assert r.returncode == 0, r.stderr[-2000:]
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer["health"] == [True, True, True, False]
    for protocol in ("rest", "grpc"):
        np.testing.assert_allclose(np.asarray(answer[protocol]), expected, rtol=1e-5, atol=1e-6)
