"""The daemon as systemd runs it: `python -m wallctl run` with $NOTIFY_SOCKET and a watchdog."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable
HAS_API = (ROOT / "wallctl" / "api" / "config.py").exists()


def daemon_config(state_dir: Path, *, level: str = "info", http_port: int = 0) -> str:
    text = (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('site = "demo"', f'site = "demo"\nstate_dir = "{state_dir}"', 1)
    text = text.replace("port = 8080", f"port = {http_port}", 1)
    text = text.replace('level = "info"', f'level = "{level}"', 1)
    if HAS_API:
        text += "\n[api]\nport = 0\n"
    return text


class NotifyListener:
    """A unix datagram socket standing in for systemd; records every notification."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.extend(data.decode().split("\n"))

    def lines(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, pred: object, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if callable(pred) and pred(lines):
                return lines
            time.sleep(0.02)
        raise AssertionError(f"timed out; notifications so far: {self.lines()}")

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(2)


class Daemon:
    def __init__(self, config: Path, notify: NotifyListener | None, log: Path) -> None:
        env = {**os.environ, "WATCHDOG_USEC": "400000"}
        env.pop("WATCHDOG_PID", None)
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify.path)
        self.log_path = log
        self._out: IO[str] = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "wallctl", "run", "--config", str(config)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


def http_port(lines: list[str]) -> int:
    for line in lines:
        m = re.fullmatch(r"STATUS=.*serving http://127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no serving STATUS in {lines}")


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def wall_revision(port: int) -> float:
    _, text = get(port, "/metrics")
    m = re.search(r'^wallctl_wall_revision\{wall="main"\} (\S+)$', text, re.M)
    assert m, text
    return float(m.group(1))


def test_notify_health_metrics_and_stop(
    tmp_path: Path, notify: NotifyListener, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "wallctl.toml"
    cfg.write_text(daemon_config(tmp_path / "state"))
    d = Daemon(cfg, notify, tmp_path / "daemon.log")
    daemons.append(d)
    lines = notify.wait_for(lambda ls: "READY=1" in ls)
    port = http_port(notify.wait_for(lambda ls: any("serving http" in x for x in ls)))

    status, body = get(port, "/healthz")
    assert status == 200
    report = json.loads(body)
    assert report["status"] in ("ok", "degraded")
    assert {"walls", "clock", "http"} <= set(report["components"])
    assert report["components"]["walls"]["status"] == "ok"
    assert report["components"]["http"]["status"] == "ok"
    assert "clock_synchronized" in report

    _, metrics = get(port, "/metrics")
    assert re.search(r"^wallctl_uptime_seconds \d", metrics, re.M)
    # The start-up layout was applied: one revision.
    assert wall_revision(port) == 1.0
    assert re.search(r'^wallctl_wall_windows\{wall="main"\} 4\.0$', metrics, re.M)

    # WATCHDOG_USEC=400000: a ping every 0.2 s.
    notify.wait_for(lambda ls: ls.count("WATCHDOG=1") >= 4, timeout=5)
    assert d.stop() == 0
    lines = notify.wait_for(lambda ls: "STOPPING=1" in ls, timeout=5)

    ready = lines.index("READY=1")
    watchdogs = [i for i, x in enumerate(lines) if x == "WATCHDOG=1"]
    stopping = lines.index("STOPPING=1")
    statuses = [x for x in lines if x.startswith("STATUS=")]
    assert "STATUS=starting" in statuses
    assert any(
        re.fullmatch(r"STATUS=walls: main; serving http://127.0.0.1:\d+", s) for s in statuses
    )
    assert lines.index("STATUS=starting") < ready < watchdogs[0]
    assert watchdogs[-1] < stopping
    assert not [x for x in lines[stopping:] if x in ("READY=1", "WATCHDOG=1")]
    out = d.output()
    assert "ready" in out and "stopped" in out


def test_reload_lock_and_restart(
    tmp_path: Path, notify: NotifyListener, daemons: list[Daemon]
) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "wallctl.toml"
    cfg.write_text(daemon_config(state))
    first = Daemon(cfg, notify, tmp_path / "first.log")
    daemons.append(first)
    port = http_port(notify.wait_for(lambda ls: any("serving http" in x for x in ls)))
    assert wall_revision(port) == 1.0

    # A second daemon on the same state directory refuses to start, saying why.
    other_cfg = tmp_path / "other.toml"
    other_cfg.write_text(daemon_config(state))
    second = Daemon(other_cfg, None, tmp_path / "second.log")
    daemons.append(second)
    code = second.proc.wait(30)
    assert code != 0
    assert f"another wallctl daemon uses {state}" in second.output()
    assert wall_revision(port) == 1.0  # the first one is untouched

    # SIGHUP: the new log level applies at once; a new http.port needs a restart.
    cfg.write_text(daemon_config(state, level="warning", http_port=port + 1 if port < 65535 else 1))
    before = len(notify.lines())
    first.proc.send_signal(signal.SIGHUP)
    notify.wait_for(
        lambda ls: any(x.startswith("STATUS=reloaded") for x in ls[before:]), timeout=10
    )
    after_reload = notify.lines()[before:]
    assert "RELOADING=1" in after_reload
    assert "READY=1" in after_reload
    assert get(port, "/healthz")[0] == 200  # still serving on the old port
    assert first.stop() == 0
    out = first.output()
    m = re.search(r"^.*reload: change needs a restart.*$", out, re.M)
    assert m and "http.port" in m.group(0), out
    # At level "warning" the info lines after the reload are gone.
    tail = out[m.end() :]
    assert "component stopped" not in tail and "stopped" not in tail
    assert "component started" in out[: m.start()]

    # Restarted, it comes back where it was: the start-up layout is not applied again.
    cfg.write_text(daemon_config(state))
    before = len(notify.lines())
    again = Daemon(cfg, notify, tmp_path / "again.log")
    daemons.append(again)
    lines = notify.wait_for(lambda ls: any("serving http" in x for x in ls[before:]), timeout=20)
    port2 = http_port(lines[before:])
    assert wall_revision(port2) == 1.0
    assert again.stop() == 0
    conn = sqlite3.connect(state / "wallctl.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM revisions").fetchone()[0] == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert "wall restored" in again.output()
