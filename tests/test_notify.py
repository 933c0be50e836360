from __future__ import annotations

import io
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl.logs import setup_logging
from wallctl.notify import Notifier, watchdog_interval


class Listener:
    """What systemd does: a bound datagram socket that reads notifications."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2)

    def receive(self) -> str:
        return self.sock.recv(65536).decode("utf-8")

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(2)
        return True


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[tuple[str, Listener]]:
    path = str(tmp_path / "notify.sock")
    listener = Listener(path)
    yield path, listener
    listener.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[str, Listener]]:
    name = f"wallctl-test-{uuid.uuid4().hex}"
    listener = Listener("\0" + name)
    yield "@" + name, listener
    listener.sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(
    request: pytest.FixtureRequest,
    path_listener: tuple[str, Listener],
    abstract_listener: tuple[str, Listener],
) -> tuple[str, Listener]:
    return path_listener if request.param == "path" else abstract_listener


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    out = io.StringIO()
    setup_logging("debug", "kv", out)
    yield out
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_Handler"]:
        root.removeHandler(handler)
    logging.captureWarnings(False)


def test_messages_on_the_wire(listener: tuple[str, Listener]) -> None:
    address, server = listener
    notifier = Notifier(address)
    assert notifier.enabled
    notifier.ready()
    assert server.receive() == "READY=1"
    notifier.status("walls: main; serving http://127.0.0.1:8080")
    assert server.receive() == "STATUS=walls: main; serving http://127.0.0.1:8080"
    notifier.watchdog()
    assert server.receive() == "WATCHDOG=1"
    notifier.stopping()
    assert server.receive() == "STOPPING=1"
    notifier.send(status="custom", errno=5, READY=True)
    assert server.receive() == "STATUS=custom\nERRNO=5\nREADY=1"
    assert notifier.sent == 5
    assert not server.pending()
    notifier.close()


def test_reloading_carries_the_monotonic_clock(listener: tuple[str, Listener]) -> None:
    address, server = listener
    notifier = Notifier(address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = server.receive().split("\n")
    assert first == "RELOADING=1"
    name, _, usec = second.partition("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_default_comes_from_the_environment(
    path_listener: tuple[str, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, server = path_listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = Notifier()
    assert notifier.socket_path == address
    notifier.ready()
    assert server.receive() == "READY=1"


def test_status_cannot_inject_fields_or_leak_secrets(path_listener: tuple[str, Listener]) -> None:
    address, server = path_listener
    notifier = Notifier(address)
    notifier.status("source cam1\nREADY=1\r\nSTOPPING=1 rtsp://admin:hunter2@cam/x\0")
    message = server.receive()
    assert "\n" not in message
    assert "hunter2" not in message
    assert message.startswith("STATUS=source cam1 READY=1 STOPPING=1 rtsp://admin:***@cam/x")
    notifier.status("x" * 100_000)
    assert len(server.receive()) <= 1100


def test_bad_field_name_is_a_programming_error(path_listener: tuple[str, Listener]) -> None:
    notifier = Notifier(path_listener[0])
    with pytest.raises(ValueError, match="not a notify variable"):
        notifier.send(**{"STATUS=x\nREADY": 1})
    assert not path_listener[1].pending()


@pytest.mark.parametrize("address", [None, "", "relative/path", "vsock:2:1234", "@"])
def test_disabled_without_a_usable_socket(
    address: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier(address)
    assert not notifier.enabled
    assert notifier.send(READY=1) is False
    notifier.ready()
    notifier.watchdog()
    assert notifier.sent == 0


def test_missing_socket_warns_once_and_never_raises(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    for _ in range(3):
        notifier.ready()
        notifier.watchdog()
    notifier.status("still running")
    assert notifier.failed == 7
    assert notifier.sent == 0
    warnings = [line for line in log_output.getvalue().splitlines() if "level=warning" in line]
    assert len(warnings) == 1
    assert "gone.sock" in warnings[0]


def test_socket_removed_while_running(tmp_path: Path, log_output: io.StringIO) -> None:
    path = tmp_path / "notify.sock"
    server = Listener(str(path))
    notifier = Notifier(str(path))
    notifier.ready()
    assert server.receive() == "READY=1"
    server.sock.close()
    notifier.watchdog()  # nobody bound: refused
    path.unlink()
    notifier.watchdog()  # file gone
    assert notifier.failed == 2
    assert log_output.getvalue().count("level=warning") == 1


def test_full_queue_drops_instead_of_blocking(path_listener: tuple[str, Listener]) -> None:
    address, server = path_listener
    notifier = Notifier(address)
    started = time.monotonic()
    results = [notifier.send(WATCHDOG=1) for _ in range(5000)]
    elapsed = time.monotonic() - started
    # The receiver never reads, so its queue fills; the rest are dropped, not waited on.
    assert notifier.dropped > 0
    assert notifier.sent + notifier.dropped == 5000
    assert results.count(True) == notifier.sent
    assert notifier.failed == 0
    assert elapsed < 2
    assert server.receive() == "WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("1000", None, 0.0005),
        ("0", None, None),
        ("-5", None, None),
        ("junk", None, None),
        ("", None, None),
        (None, None, None),
        ("30000000", "junk", None),
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    elif pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert watchdog_interval() == expected
