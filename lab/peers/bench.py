"""`mmrt serve` against the servers a user would pick instead, on the same graphs and requests:
MLServer (a custom runtime) and Triton (PyTriton's bundled server, its front end and dynamic
batcher in front of a Python model), each running mmrt's own engine in ONNX Runtime, installed by
this script into their own virtual environments.

    python -m lab.peers.bench --bundle runs/quickstart/bundle --data runs/quickstart/data \
        --out runs/peers [--rounds 3 --requests 200 --drop video --venvs runs/peer-venvs]

Per round, every server in turn (the order rotated each round, so that drift on a shared machine
falls on all alike): started on loopback ports, warmed, then timed at one client (latency) and with
16 clients for --seconds (throughput), all with stock tritonclient.grpc and the same requests
(eval examples as a rig captures them, minus the dropped sensor). Reported as the range over
rounds, and mmrt's ratio to each peer per round (paired: same round). A claim is worded within
that spread.

Quoted in docs/results/peers.md."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np

from lab.provenance import command, commit
from mmrt import atomic
from mmrt.benchmarks.client import ServerProcess, triton_inputs
from mmrt.benchmarks.timing import machine
from mmrt.benchmarks.workload import DropPlan, load_examples, plan
from mmrt.bundle import SCORES, verify_bundle

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[1]
CLIENTS = 16


def pins() -> dict[str, list[str]]:
    """Each peer's packages: the peer at a fixed release, ONNX Runtime and sentencepiece at the
    versions mmrt's environment runs, so every server runs the same graphs the same way."""
    same = [f"onnxruntime=={metadata.version('onnxruntime')}",
            f"sentencepiece=={metadata.version('sentencepiece')}"]
    return {
        # MLServer 1.7.1's inference workers die on uvloop 0.22+ (SeldonIO/MLServer#2286)
        "mlserver": ["mlserver==1.7.1", "uvloop<0.22", *same, "opencv-python-headless==4.11.0.86"],
        # PyTriton 0.7.0 needs numpy 1.x, hence OpenCV 4.11
        "triton": ["nvidia-pytriton==0.7.0", "numpy<2", *same, "opencv-python-headless==4.11.0.86"],
    }


PACKAGES = (("mlserver", "mlserver"), ("triton", "nvidia-pytriton"))


def installed(folder: Path, package: str) -> str:
    """The version of ``package`` in the virtual environment ``folder``, as installed ("unknown" if
    it cannot be read)."""
    code = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    done = subprocess.run([str(folder / "bin" / "python"), "-c", code, package], capture_output=True,
                          text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"  # never lose a finished run to it


def servers(rounds: list[dict]) -> dict[str, str]:
    """What each server said it is (ServerMetadata: name and version), from the first round."""
    return {name: cell["server"] for name, cell in rounds[0].items()}


def venv(root: Path, name: str, packages: list[str]) -> Path:
    """A virtual environment with ``packages`` and this checkout's mmrt (without its dependencies:
    the peer brings its own numpy and ONNX Runtime); made again when the package list changes, and
    mmrt installed again when its code does, so a peer never runs an older engine than mmrt serve."""
    folder = (root / name).resolve()  # the servers start from other folders
    stamp = folder / "mmrt-peer.json"
    want = {"packages": packages, "python": sys.version}
    made = json.loads(stamp.read_text("utf-8")) if stamp.is_file() else {}
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if {k: made.get(k) for k in want} != want:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"installing {name}: {' '.join(packages)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([*pip, *packages], check=True)
    elif made.get("mmrt") == code_digest():
        return folder
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(CHECKOUT)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-c", "import engine_model"], check=True, cwd=HERE)
    atomic.write_text(stamp, json.dumps({**want, "mmrt": code_digest()}) + "\n")
    return folder


def code_digest() -> str:
    """sha256 over the Python files of mmrt's installed folders (pyproject's mapping)."""
    from lab.architecture import setuptools_config

    digest = hashlib.sha256()
    for folder in sorted(set(setuptools_config()["package-dir"].values())):
        for path in sorted((CHECKOUT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(CHECKOUT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    import tritonclient.grpc as tc

    client, deadline = tc.InferenceServerClient(url), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before it was ready: see {log}")
        try:
            if client.is_model_ready("mmrt"):
                return
        except Exception:  # noqa: BLE001, S110 - not listening yet
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready in {timeout_s:.0f} s: see {log}")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a peer and every process it started (MLServer's workers, tritonserver and its backend
    stubs): SIGTERM to the group, then SIGKILL to what is left after 30 s, until none is left."""
    deadline = time.monotonic() + 30
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so that the group empties
            os.killpg(proc.pid, 0)  # raises once no process of the group is left
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class Peer:
    name: str
    kind: str  # mmrt, mlserver or triton
    mode: str = "split"  # split: the present encoders, mean, head; mono: the monolithic graph
    batching: bool = True

    def start(self, args: argparse.Namespace, venvs: dict[str, Path], log: Path):
        """(url, stop()) of this server on free loopback ports."""
        if self.kind == "mmrt":
            server = ServerProcess(args.bundle, threads=args.threads, monolithic=self.mode == "mono",
                                   batching=self.batching)
            return server.url, lambda: server.__exit__(None, None, None)
        grpc, http, metrics = free_port(), free_port(), free_port()
        if self.kind == "mlserver":
            folder = (args.out / "mlserver" / self.name).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("engine_model.py", "mlserver_model.py"):
                shutil.copyfile(HERE / name, folder / name)
            batch = {"max_batch_size": 32, "max_batch_time": 0.001} if self.batching else {}
            atomic.write_text(folder / "settings.json", json.dumps(
                {"host": "127.0.0.1", "grpc_port": grpc, "http_port": http, "metrics_port": metrics,
                 "parallel_workers": 0}))
            atomic.write_text(folder / "model-settings.json", json.dumps(
                {"name": "mmrt", "implementation": "mlserver_model.EngineRuntime", **batch,
                 "parameters": {"extra": {"bundle": str(args.bundle.resolve()), "mode": self.mode,
                                          "threads": args.threads}}}))
            cmd, cwd = [str(venvs["mlserver"] / "bin" / "mlserver"), "start", str(folder)], folder
        else:
            cmd = [str(venvs["triton"] / "bin" / "python"), str(HERE / "triton_server.py"), "--bundle",
                   str(args.bundle.resolve()), "--mode", self.mode, "--threads", str(args.threads),
                   "--max-batch", "32" if self.batching else "1", "--grpc-port", str(grpc), "--http-port",
                   str(http), "--metrics-port", str(metrics)]
            cwd = HERE
        out = log.open("w")
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"127.0.0.1:{grpc}"
        try:
            wait_ready(url, proc, log)
        except BaseException:  # not ready, or Ctrl-C: leave nothing running
            stop_group(proc)
            out.close()
            raise

        def stop() -> None:
            stop_group(proc)
            out.close()
        return url, stop


PEERS = (Peer("mmrt", "mmrt"), Peer("mlserver", "mlserver", batching=False),
         Peer("mlserver-batch", "mlserver"), Peer("triton", "triton"),
         Peer("mlserver-mono", "mlserver", "mono", batching=False), Peer("triton-mono", "triton", "mono"))


def requests_for(args: argparse.Namespace) -> list[list]:
    """The eval examples as tritonclient inputs of one row, minus the dropped sensors (TEXT as
    [1, 1]: the per-row shape Triton's batcher needs, which mmrt serve accepts too)."""
    manifest = verify_bundle(args.bundle)
    examples = load_examples(args.data, manifest.modalities, manifest.classes, limit=args.requests,
                             progress=False)
    carried = plan(examples, manifest.modalities, DropPlan(frozenset(args.drop)))
    # the text wrapped in a list: triton_inputs' batch of one then holds a row of one
    return [triton_inputs({**example.inputs, "text": [example.inputs.get("text")]}, modalities)
            for example, modalities in zip(examples, carried, strict=True) if modalities]


def measure(url: str, requests: list[list], seconds: float) -> dict:
    """p50/p99 ms at one client, then requests a second at CLIENTS clients over ``seconds`` (the
    requests cycled, in order), and the answers of both: every answer of the loaded phase, batched
    with others by the server, is kept by request for the comparison with mmrt's."""
    import tritonclient.grpc as tc

    local = threading.local()

    def call(inputs: list) -> tuple[float, np.ndarray]:
        if not hasattr(local, "client"):
            local.client = tc.InferenceServerClient(url)
        start = time.perf_counter()
        answer = local.client.infer("mmrt", inputs).as_numpy(SCORES)
        return 1000 * (time.perf_counter() - start), answer

    for inputs in requests[:20]:
        call(inputs)
    single = [call(inputs) for inputs in requests]
    times: list[float] = []
    loaded: dict[int, np.ndarray] = {}
    lock = threading.Lock()

    def client(first: int) -> None:
        i = first
        while time.perf_counter() < deadline:
            ms, answer = call(requests[i % len(requests)])
            with lock:
                times.append(ms)
                loaded.setdefault(i % len(requests), answer)
            i += CLIENTS

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(call, requests[:2 * CLIENTS]))  # warm-up, before the load's clock starts
        start = time.perf_counter()
        deadline = start + seconds
        list(pool.map(client, range(CLIENTS)))
        elapsed = time.perf_counter() - start
    ms = [t for t, _ in single]
    meta = tc.InferenceServerClient(url).get_server_metadata()
    return {"server": f"{meta.name} {meta.version}", "p50_ms": statistics.median(ms),
            "p99_ms": float(np.percentile(ms, 99)),
            "loaded_p50_ms": statistics.median(times), "per_s": len(times) / elapsed,
            "scores": np.concatenate([a for _, a in single]), "loaded_scores": loaded}


def difference(mmrt: dict, peer: dict) -> float:
    """The largest score difference from mmrt's answers to the same requests, alone and under load."""
    alone = float(np.abs(peer["scores"] - mmrt["scores"]).max())
    both = set(peer["loaded_scores"]) & set(mmrt["loaded_scores"])
    loaded = [float(np.abs(peer["loaded_scores"][i] - mmrt["loaded_scores"][i]).max()) for i in both]
    return max([alone, *loaded])


def ranges(rounds: list[dict], names: list[str]) -> dict:
    """Per server, the min and max over rounds; per peer, mmrt's ratio to it in each round."""
    out: dict = {}
    for name in names:
        cells = [r[name] for r in rounds]
        out[name] = {k: [min(c[k] for c in cells), max(c[k] for c in cells)]
                     for k in ("p50_ms", "p99_ms", "loaded_p50_ms", "per_s")}
        out[name]["p50_ratio"] = [r["mmrt"]["p50_ms"] / r[name]["p50_ms"] for r in rounds]
        out[name]["per_s_ratio"] = [r["mmrt"]["per_s"] / r[name]["per_s"] for r in rounds]
    return out


def wording(ratios: list[float], better_below: bool) -> str:
    """A claim within the spread: ahead or behind only when every round agrees by 5% or more."""
    ahead = [r < 0.95 if better_below else r > 1.05 for r in ratios]
    behind = [r > 1.05 if better_below else r < 0.95 for r in ratios]
    return "mmrt ahead" if all(ahead) else "mmrt behind" if all(behind) else "level"


ABOUT = ("The peers: `mlserver` is MLServer's custom runtime (`parallel_workers: 0`, predictions on its "
         "event loop), `-batch` with its adaptive batching (32 rows, 1 ms); `triton` is the Triton Inference "
         "Server binary PyTriton ships, its dynamic batcher (32 rows, no delay) in front of a Python model "
         "(not Triton's onnxruntime backend). Each runs mmrt's engine: `split` the encoders of the "
         "modalities present, their mean and the head; `-mono` the monolithic graph with zeros "
         "for what is missing.")


def span(pair: list[float], fmt: str = ".2f") -> str:
    return f"{pair[0]:{fmt}}-{pair[1]:{fmt}}"


def ratio_cell(ratios: list[float], better_below: bool) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f} ({wording(ratios, better_below)})"


def report(doc: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in doc["versions"].items())
    lines = [f"# mmrt serve against MLServer and Triton ({doc['date']})", "", f"`{doc['command']}`", "",
             f"{doc['machine']}; commit {doc['commit']}; bundle `{doc['bundle']}`; {doc['requests']} "
             f"requests (eval, {doc['carried']}), {doc['rounds']} rounds; {doc['threads']} ONNX Runtime "
             f"threads per graph in every server. Versions: {versions}.", "",
             "Ranges are min-max over rounds; a ratio is mmrt's over the peer's in the same round (latency: "
             "below 1 is mmrt faster; throughput: above 1 is mmrt serving more).", "",
             "| server | p50 ms, 1 client | p99 ms, 1 client | p50 ms, 16 clients | requests/s, 16 clients "
             "| latency ratio | throughput ratio | max score difference from mmrt |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in doc["ranges"].items():
        peer = name != "mmrt"
        latency = ratio_cell(r["p50_ratio"], True) if peer else ""
        throughput = ratio_cell(r["per_s_ratio"], False) if peer else ""
        lines.append(f"| {name} | {span(r['p50_ms'])} | {span(r['p99_ms'])} | {span(r['loaded_p50_ms'])} | "
                     f"{span(r['per_s'], '.0f')} | {latency} | {throughput} | {doc['agreement'][name]:.1g} |")
    return "\n".join([*lines, "", ABOUT, ""])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="the data whose eval examples are the requests")
    p.add_argument("--out", type=Path, default=Path("runs/peers"))
    p.add_argument("--venvs", type=Path, default=Path("runs/peer-venvs"), help="the peers' environments")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per graph, every server")
    p.add_argument("--seconds", type=float, default=15, help="how long the 16 clients load each server")
    p.add_argument("--drop", action="append", default=[], choices=("audio", "video", "text"))
    p.add_argument("--servers", default=",".join(peer.name for peer in PEERS))
    args = p.parse_args()
    # a SIGTERM unwinds like Ctrl-C, so that every started server's process group is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    made_at = commit()  # before the run: what was measured
    peers = [peer for peer in PEERS if peer.name in args.servers.split(",")]
    if not peers or peers[0].name != "mmrt":
        raise SystemExit("--servers: start with mmrt (the ratios are against it)")
    venvs = {kind: venv(args.venvs, kind, packages) for kind, packages in pins().items()
             if any(peer.kind == kind for peer in peers)}
    args.out.mkdir(parents=True, exist_ok=True)
    requests = requests_for(args)
    rounds = []
    for i in range(args.rounds):
        order = peers[i % len(peers):] + peers[:i % len(peers)]
        got = {}
        for peer in order:
            print(f"round {i + 1}/{args.rounds}: {peer.name}", file=sys.stderr, flush=True)
            url, stop = peer.start(args, venvs, args.out / f"{peer.name}-r{i + 1}.log")
            try:
                got[peer.name] = measure(url, requests, args.seconds)
            finally:
                stop()
        rounds.append(got)
    names = [peer.name for peer in peers]
    agreement = {n: max(difference(r["mmrt"], r[n]) for r in rounds) for n in names}
    for r in rounds:
        for cell in r.values():
            del cell["scores"], cell["loaded_scores"]
    versions = {"python": sys.version.split()[0], "onnxruntime": metadata.version("onnxruntime"),
                **{package: installed(venvs[kind], package) for kind, package in PACKAGES if kind in venvs},
                **{f"{name}'s server": server for name, server in servers(rounds).items()}}
    doc = {"command": command("lab.peers.bench"), "date": str(date.today()),
           "machine": machine(), "commit": made_at, "bundle": str(args.bundle), "requests": len(requests),
           "carried": "all modalities" if not args.drop else f"{'+'.join(args.drop)} dropped",
           "rounds": args.rounds, "threads": args.threads, "versions": versions, "agreement": agreement,
           "ranges": ranges(rounds, names), "each_round": rounds}
    atomic.write_text(args.out / "report.json", json.dumps(doc, indent=1) + "\n")
    atomic.write_text(args.out / "report.md", report(doc))
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
