"""A gRPC server that answers ModelInfer at once (no engine): the floor under any Python server of
`mmrt serve`'s kind, run as a subprocess on a free loopback port.

    with FloorServer(hop=True) as floor:  # floor.url, floor.proc
        ...

It reads the raw inputs and returns a canned SCORES tensor, on `mmrt serve`'s event loop (uvloop
where installed) with its gRPC channel options; with ``hop`` each answer is made on a worker thread,
as `mmrt serve` makes its own. Used by lab/grpc_floor.py and lab/serve_latency.py; quoted in
docs/serving.md."""

from __future__ import annotations

import select
import statistics
import subprocess
import sys

import numpy as np

from mmrt.benchmarks.timing import timed

MODEL = "floor"
START_S = 60  # how long it may take to start


def serve(hop: bool) -> None:
    """Prints the port, then serves until killed."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from mmrt.runtime.frontends.options import ServerOptions
    from mmrt.runtime.frontends.server import new_event_loop
    from mmrt.runtime.frontends.workers import on_worker
    from mmrt.runtime.protocol import grpc_service_pb2 as pb
    from mmrt.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

    answer = pb.ModelInferResponse(model_name=MODEL, model_version="1")
    answer.outputs.add(name="SCORES", datatype="FP32", shape=[1, 10])
    answer.raw_output_contents.append(np.zeros(10, np.float32).tobytes())

    def read(request):
        for raw in request.raw_input_contents:
            np.frombuffer(raw, np.uint8)  # what decoding the inputs costs at the least
        return answer

    pool = ThreadPoolExecutor(64, thread_name_prefix="floor")

    class AnswerAtOnce(pb_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            return await on_worker(pool, read, request) if hop else read(request)

    async def serve_forever() -> None:
        server = grpc.aio.server(options=ServerOptions().grpc_options())
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(AnswerAtOnce(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    new_event_loop().run_until_complete(serve_forever())


class FloorServer:
    """The answer-at-once server in a subprocess; killed on exit."""

    def __init__(self, hop: bool):
        command = [sys.executable, "-m", "lab.floor_server", *(["--hop"] if hop else [])]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_S)
        port = self.proc.stdout.readline().strip() if ready else ""
        if not port.isdigit():
            self.proc.kill()
            raise SystemExit(f"the answer-at-once server did not print its port within {START_S} s "
                             f"(exit status {self.proc.wait()})")
        self.url = f"127.0.0.1:{port}"

    def p50_ms(self, request: list, repeats: int) -> float:
        """Its p50 at one tritonclient.grpc client for ``request`` (tritonclient inputs)."""
        import tritonclient.grpc as tc

        client = tc.InferenceServerClient(self.url)
        for _ in range(20):
            client.infer(MODEL, request)
        return 1000 * statistics.median(timed(lambda: client.infer(MODEL, request)) for _ in range(repeats))

    def __enter__(self) -> FloorServer:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":
    serve("--hop" in sys.argv[1:])
