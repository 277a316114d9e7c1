"""`mmrt serve` under systemd's notify protocol, with a real datagram socket standing in for
systemd: READY=1 (and STATUS=) once serving, WATCHDOG=1 pings while the engine answers and none
once it hangs, STOPPING=1 when SIGTERM starts the drain."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mmrt.runtime.systemd import Systemd

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
        assert "WATCHDOG=1" not in systemd.messages(2.0)
    finally:
        proc.kill()


def test_without_notify_socket_nothing_is_sent_and_watchdog_needs_its_pid():
    assert Systemd({}).address is None
    assert Systemd({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    assert Systemd({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    other_pid = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Systemd(other_pid).watchdog_s is None
    Systemd({}).notify("READY=1")  # a no-op, not an error
