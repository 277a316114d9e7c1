"""`mmrt serve` under systemd's notify protocol, with a real datagram socket standing in for
systemd: READY=1 (and STATUS=) once serving, WATCHDOG=1 pings while the event loop and the
inference path answer and none once one of them hangs for three ticks in a row, STOPPING=1 when
SIGTERM starts the drain."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from mmrt.runtime.frontends.admission import AdmissionOptions
from mmrt.runtime.frontends.server import Server, ServerOptions
from mmrt.runtime.frontends.systemd import Systemd
from mmrt.runtime.frontends.watchdog import Heartbeat, Watchdog

pytestmark = pytest.mark.integration


class FakeSystemd:
    def __init__(self, folder):
        self.path = str(folder / "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)

    def first(self, timeout_s: float) -> str:
        self.socket.settimeout(timeout_s)
        return self.socket.recv(4096).decode()

    def messages(self, seconds: float) -> list[str]:
        """Every datagram received within ``seconds``."""
        out, end = [], time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                out.append(self.socket.recv(4096).decode())
            except TimeoutError:
                break
        return out

    def serve(self, bundle, **env):
        mmrt = os.path.join(os.path.dirname(sys.executable), "mmrt")
        env = {**os.environ, "NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": "400000", **env}
        return subprocess.Popen([mmrt, "serve", str(bundle), "--port", "0", "--http-port", "-1",
                                 "--metrics-port", "-1", "--threads", "1", "--drain-delay-s", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_ready_watchdog_and_stopping_reach_systemd(tiny_bundle, tmp_path):
    systemd = FakeSystemd(tmp_path)
    proc = systemd.serve(tiny_bundle)
    try:
        first = systemd.first(60)
        status = "READY=1\nSTATUS=serving mmrt v1 (audio+video+text, fp32) on 127.0.0.1:"
        assert first.startswith(status), first
        pings = systemd.messages(2.0)
        assert pings.count("WATCHDOG=1") >= 4, pings  # every 0.2 s
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1\nSTATUS=draining" in systemd.messages(10)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


def test_a_hung_engine_stops_the_pings(tiny_bundle, tmp_path):
    systemd = FakeSystemd(tmp_path)
    proc = systemd.serve(tiny_bundle, MMRT_INJECT_DELAY_MS="3000")  # every encoder run takes 3 s
    try:
        assert systemd.first(60).startswith("READY=1")  # warm-up runs the graphs themselves
        systemd.messages(1.0)  # the first probe hangs from 0.1 s; the pings stop after 3 late ticks
        assert "WATCHDOG=1" not in systemd.messages(1.5)  # ... before it answers, at 3.1 s at the earliest
    finally:
        proc.kill()


def test_without_notify_socket_nothing_is_sent_and_watchdog_needs_its_pid():
    assert Systemd({}).address is None
    assert Systemd({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    assert Systemd({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    other_pid = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Systemd(other_pid).watchdog_s is None
    Systemd({}).notify("READY=1")  # a no-op, not an error


@pytest.fixture
def watched(tiny_bundle, tmp_path, monkeypatch):
    """A server in this process, fed to a stand-in systemd with a 0.4 s watchdog (ticks of 0.1 s)."""
    systemd = FakeSystemd(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    options = ServerOptions(port=0, metrics_port=None, threads=1,
                            admission=AdmissionOptions(max_calls=1, max_streams=1))  # two workers
    server = Server(tiny_bundle, options).start()
    assert systemd.first(10).startswith("READY=1")
    assert systemd.messages(0.5).count("WATCHDOG=1") >= 2
    yield server, systemd
    server.stop(0)


def test_a_stalled_event_loop_stops_the_pings_and_they_resume_after(watched):
    server, systemd = watched
    server.loop.call_soon_threadsafe(time.sleep, 2.5)  # the loop answers nothing for 2.5 s
    systemd.messages(1.0)
    assert "WATCHDOG=1" not in systemd.messages(1.0)
    assert systemd.messages(2.0).count("WATCHDOG=1") >= 2  # it answers again: fed again


def test_a_stalled_worker_pool_stops_the_pings(watched):
    server, systemd = watched
    release = threading.Event()
    for _ in range(2):  # every inference worker held: the probe cannot run
        server.servicer.pool.submit(release.wait, 10)
    try:
        systemd.messages(1.0)
        assert "WATCHDOG=1" not in systemd.messages(1.0)
    finally:
        release.set()
    assert systemd.messages(2.0).count("WATCHDOG=1") >= 2


def test_one_late_heartbeat_is_forgiven_and_three_in_a_row_stop_the_pings():
    rounds: list = []
    beat = Heartbeat("engine", rounds.append)  # each round waits until the test answers it
    dog = Watchdog([beat], stale_s=60.0, misses=3)
    assert dog.tick() and len(rounds) == 1
    assert dog.tick() and len(rounds) == 1  # still running: not kicked again
    beat.last -= 120  # its last answer is now two minutes old
    assert dog.tick() and dog.tick()  # misses 1 and 2: still fed
    assert not dog.tick()  # the third in a row: no ping
    rounds[0](True)  # it answers
    assert dog.tick() and dog.missed == 0 and len(rounds) == 2
    rounds[1](False)  # a round that failed is no answer, but the next one is kicked
    assert dog.tick() and len(rounds) == 3
