"""The systemd notify protocol (sd_notify(3)), spoken directly on a datagram socket.

Readiness, reload, stop, status and watchdog pings go to ``$NOTIFY_SOCKET`` as
newline-separated ``KEY=value`` assignments in one datagram. Notification is advisory:
a lost datagram must never stop the wall, so sending neither raises nor blocks.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time

from wallctl.logs import get_logger
from wallctl.redact import redact

__all__ = ["Notifier", "watchdog_interval"]

_log = get_logger("wallctl.notify")

_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# systemd shows STATUS in `systemctl status`; a longer text is of no use there and only
# makes a bigger datagram.
_MAX_VALUE_CHARS = 1024


class Notifier:
    """Sends state changes to the service manager; does nothing when not run by one."""

    def __init__(self, socket_path: str | None = None) -> None:
        path = os.environ.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self._path = path
        self._address = _socket_address(path)
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        if path and self._address is None:
            _log.warning("notify socket not supported, notifications off", socket=path)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def socket_path(self) -> str:
        return self._path

    def ready(self) -> None:
        """Start-up (or a reload) is complete."""
        self.send(READY=1)

    def reloading(self) -> None:
        """A reload has begun; send :meth:`ready` once the new configuration is live.

        systemd 253 and later match the reload to this message by its monotonic time.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> None:
        self.send(STOPPING=1)

    def status(self, text: str) -> None:
        """The one-line state shown by ``systemctl status``."""
        self.send(STATUS=text)

    def watchdog(self) -> None:
        self.send(WATCHDOG=1)

    def send(self, **fields: object) -> bool:
        """Send ``fields`` as one notification; True if the datagram left.

        Names are upper-cased (``status=`` sends ``STATUS=``). A name that is not a
        notify variable raises ValueError: that is a bug in the caller, not an I/O event.
        Values are redacted and flattened to one line each, so a status built from
        client input cannot smuggle in ``READY=1`` or a password.
        """
        lines = []
        for name, value in fields.items():
            key = name.upper()
            if not _FIELD_NAME.fullmatch(key):
                raise ValueError(f"not a notify variable name: {name!r}")
            lines.append(f"{key}={_field_text(value)}")
        if self._address is None or not lines:
            return False
        message = "\n".join(lines).encode("utf-8", "backslashreplace")
        try:
            sock = self._socket()
            sock.sendto(message, self._address)
        except BlockingIOError:
            # The manager is not reading fast enough; a later ping supersedes this one.
            self.dropped += 1
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self.dropped += 1
                return False
            self.failed += 1
            if not self._warned:
                self._warned = True
                _log.warning(
                    "systemd notification failed, further failures not logged",
                    socket=self._path,
                    error=exc,
                )
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            self._sock = sock
        return self._sock


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings, or None when the watchdog is off for this process.

    Half the ``$WATCHDOG_USEC`` timeout, as sd_watchdog_enabled(3) recommends, so one late
    ping does not get the service killed. ``$WATCHDOG_PID``, when set, must be our pid:
    otherwise the variables were inherited from a parent that is watched, not us.
    """
    usec_text = os.environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = os.environ.get("WATCHDOG_PID")
    if pid_text:
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def _socket_address(path: str) -> str | None:
    if path.startswith("/"):
        return path
    if path.startswith("@") and len(path) > 1:
        # Linux abstract namespace: a leading NUL instead of the '@' systemd writes.
        return "\0" + path[1:]
    # Empty (not under systemd), relative, or vsock:, which the unit's address-family
    # restriction would refuse anyway.
    return None


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value)
    text = redact(text)
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\0", "")
    return text[:_MAX_VALUE_CHARS]
