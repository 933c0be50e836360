"""Hosting device simulators on a real TCP port, a pseudo-terminal or a serial path.

A protocol's simulator subclasses :class:`DeviceSimulator` and writes only the device:
its state, its grammar (from the codec's tables, never the codec's parser) and its
replies. This module moves the bytes:

- :func:`serve_tcp` listens on a TCP port; each client is a :class:`SimSession`;
- :func:`serve_pty` opens a pseudo-terminal and prints/returns the path a driver opens;
- :func:`serve_serial` speaks on an existing serial device (one end of a socat pair).

Simulators that are not byte streams (HTTPS, WebSocket) host themselves and hand back a
:class:`HostedSimulator`; both kinds satisfy :class:`RunningSimulator` (where it listens,
``describe()``, ``close()``), which is all ``simulate = true`` and ``wallctl simulate``
need (see ``registry.Protocol.serve``).

On a line with a baud rate (pty or serial path) bytes are paced at 10 bits per byte,
both ways, because a pty ignores the baud rate (a 9600-baud simulator that answers at
memory speed makes every timing meaningless). ``reply_delay_s`` adds the device's own
think time before each reply. For fault tests: ``mute`` (keeps the link open, answers
nothing), ``reboot()``, ``inject(bytes)``; closing the server drops every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import time
import tty
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from wallctl.logs import get_logger

log = get_logger("drivers.simulator")

BITS_PER_BYTE = 10  # start + 8 data + stop


def wire_time(nbytes: int, baud: int | None) -> float:
    """Seconds ``nbytes`` take on a serial line at ``baud`` (0 without a baud rate)."""
    return nbytes * BITS_PER_BYTE / baud if baud else 0.0


# The loop's timers fire late: Python 3.11's epoll selector rounds a timeout up to whole
# milliseconds, then select.epoll rounds the float result up again (9 ms becomes 10), so
# a timer can land up to 2 ms after its time (measured here: asyncio.sleep(9 ms) took
# 10.3 ms, p50). A paced line that slept that way would be 1-2 ms slow per message, more
# than a real UART ever is. The last _TAIL_S is a plain sleep instead, and its last
# _SPIN_S a busy wait, because a thread's wake-up lands some 0.1 ms late. Both block this
# loop for at most _TAIL_S, which only paced simulator lines ever do.
_TAIL_S = 0.003
_SPIN_S = 0.0002


async def sleep_until(deadline: float) -> None:
    """Sleep until the loop clock reaches ``deadline`` (within some µs, unless preempted)."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        if remaining > _TAIL_S:
            await asyncio.sleep(remaining - _TAIL_S)
            continue
        if remaining > _SPIN_S:
            time.sleep(remaining - _SPIN_S)  # noqa: ASYNC251  (bounded by _TAIL_S, see above)
        while loop.time() < deadline:
            pass
        return


@dataclass
class _Out:
    data: bytes
    delayed: bool
    # When the device had this to say (loop clock): the reply is timed from here.
    at: float


class SimSession:
    """One client of a simulator: a TCP connection, or the serial line itself.

    ``vars`` holds per-connection modes (logged in, verbose level); ``buffer`` holds
    bytes received and not yet parsed by the simulator.
    """

    def __init__(
        self,
        sim: DeviceSimulator,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        kind: str,
        baud: int | None = None,
    ) -> None:
        self.sim = sim
        self.kind = kind  # "tcp" or "serial"
        self.baud = baud
        self.buffer = bytearray()
        self.vars: dict[str, Any] = {}
        self._write = write
        self._close = close
        self._out: asyncio.Queue[_Out | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._drain(), name="sim-writer")
        self.closed = False
        # While handling received bytes: when their last byte reached the device on the
        # line's own clock (see ``received``); None otherwise.
        self._rx_at: float | None = None
        # When the last byte queued so far leaves the device (loop clock).
        self._tx_free = 0.0

    def send(self, data: bytes, *, delayed: bool = True) -> None:
        """Queue ``data`` for the client; ``delayed`` applies the simulator's reply delay."""
        if not self.closed and data:
            at = self._rx_at if self._rx_at is not None else asyncio.get_running_loop().time()
            self._out.put_nowait(_Out(data, delayed, at))

    async def _drain(self) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                return
            # Timed on the line's clock, as a UART is: from when the command arrived (not
            # when this process got round to it) or when the previous reply has left,
            # whichever is later. A late wake-up of this process then shifts no later
            # byte; anchored on the wake-up instead, each one added its lateness to every
            # reply after it.
            start = max(item.at, self._tx_free)
            if item.delayed and self.sim.reply_delay_s > 0:
                start += self.sim.reply_delay_s
            # Deliver when the last byte would have left a real UART.
            self._tx_free = start + wire_time(len(item.data), self.baud)
            await sleep_until(self._tx_free)
            if self.closed:
                return
            try:
                self._write(item.data)
            except OSError:
                self.close()
                return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.put_nowait(None)
        self.sim.sessions.discard(self)
        with contextlib.suppress(OSError):
            self._close()
        try:
            self.sim.on_disconnect(self)
        except Exception as e:  # a simulator bug shows in the log, the others stay up
            log.exception(
                "simulator failed on disconnect", protocol=self.sim.protocol, error=repr(e)
            )

    def received(self, data: bytes, at: float | None = None) -> None:
        """Bytes from the client; ``at``: when their last byte arrived on a paced line
        (replies are timed from there), None for now."""
        if self.sim.mute or self.sim.booting:
            return
        self._rx_at = at
        try:
            self.sim.on_data(self, data)
        except Exception as e:  # a simulator bug shows in the log, the line stays up
            log.exception("simulator failed on input", protocol=self.sim.protocol, error=repr(e))
        finally:
            self._rx_at = None


class DeviceSimulator:
    """A simulated device: subclass and implement ``on_connect`` and ``on_data``."""

    protocol: ClassVar[str] = "?"

    def __init__(self, *, password: str | None = None, reply_delay_s: float = 0.0) -> None:
        self.password = password
        self.reply_delay_s = reply_delay_s
        self.sessions: set[SimSession] = set()
        # TCP clients silent for this long are disconnected, as devices do (0: never).
        self.idle_timeout_s = 0.0
        # How long a reboot takes (deaf and unreachable meanwhile).
        self.boot_time_s = 0.0
        self._boot_until = 0.0
        # Fault switches for tests and rehearsals.
        self.mute = False
        self.commands = 0

    # --- what a protocol implements ---------------------------------------------------

    def on_connect(self, session: SimSession) -> None:
        """A client connected (TCP), or the line came up (serial): send banners."""

    def on_data(self, session: SimSession, data: bytes) -> None:
        """Bytes from the client; reply with ``session.send``."""
        raise NotImplementedError

    def on_disconnect(self, session: SimSession) -> None:
        """``session`` has gone (hung up, idle timeout, reboot, server closed); it is no
        longer in ``sessions``. Release what it held and tell the others."""

    def reset(self) -> None:
        """Back to power-on state (ties, modes) -- called by ``reboot``."""

    # --- shared behaviour ---------------------------------------------------------------

    def attach(self, session: SimSession) -> None:
        self.sessions.add(session)
        self.on_connect(session)

    def broadcast(self, data: bytes, exclude: SimSession | None = None) -> None:
        """Send ``data`` to every client but ``exclude`` (unsolicited change reports)."""
        for s in list(self.sessions):
            if s is not exclude:
                s.send(data, delayed=False)

    def inject(self, data: bytes) -> None:
        """Put raw bytes on every client's line (garbage and noise tests)."""
        self.broadcast(data)

    @property
    def booting(self) -> bool:
        """True while a reboot is under way: nothing is answered, TCP is refused."""
        return time.monotonic() < self._boot_until

    def reboot(self) -> None:
        """Power-cycle: drop TCP clients, reset state; after ``boot_time_s`` greet serial
        lines again (banner, start message) and answer once more."""
        self.reset()
        self._boot_until = time.monotonic() + self.boot_time_s
        for s in list(self.sessions):
            if s.kind == "tcp":
                s.close()
            else:
                s.vars.clear()
                s.buffer.clear()
        if self.boot_time_s > 0:
            asyncio.get_running_loop().call_later(self.boot_time_s, self._booted)
        else:
            self._booted()

    def _booted(self) -> None:
        for s in list(self.sessions):
            if s.kind == "serial" and not s.closed:
                self.on_connect(s)


# --- hosting -----------------------------------------------------------------------------


class RunningSimulator(Protocol):
    """A simulator being served: where a driver reaches it, and how to stop it."""

    host: str
    port: int

    def describe(self) -> str: ...

    async def close(self) -> None: ...


@dataclass
class HostedSimulator:
    """A simulator that hosts itself (an HTTP or WebSocket server of its own)."""

    host: str
    port: int
    # What an integrator reads: "huawei-te on https://127.0.0.1:8443/action.cgi".
    description: str
    stop: Callable[[], Awaitable[None]]

    def describe(self) -> str:
        return self.description

    async def close(self) -> None:
        await self.stop()


class SimServer:
    """A running simulator host; ``close()`` stops it and drops every client."""

    def __init__(self, sim: DeviceSimulator) -> None:
        self.sim = sim
        self.host = ""
        self.port = 0
        self.path = ""
        self._server: asyncio.Server | None = None
        self._fds: list[int] = []
        self._session: SimSession | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def describe(self) -> str:
        if self.path:
            return f"{self.sim.protocol} simulator on {self.path}"
        return f"{self.sim.protocol} simulator on tcp {self.host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sim.sessions):
            if self._server is not None and s.kind == "tcp":
                s.close()
        if self._session is not None:
            self._session.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        for fd in self._fds:
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


async def serve_tcp(sim: DeviceSimulator, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    srv = SimServer(sim)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if sim.booting:  # its network stack is not up yet
            writer.close()
            return
        session = SimSession(sim, writer.write, writer.close, "tcp")
        me = asyncio.current_task()
        if me is not None:
            srv._clients.add(me)
        sim.attach(session)
        try:
            while not session.closed:
                try:
                    async with asyncio.timeout(sim.idle_timeout_s or None):
                        data = await reader.read(4096)
                except TimeoutError:
                    break  # idle for too long: the device hangs up
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                session.received(data)
        except asyncio.CancelledError:
            # Deliberately not re-raised: a start_server handler that ends cancelled
            # makes 3.11's streams callback (task.exception()) log a spurious error.
            # Only SimServer.close cancels this task, and nothing awaits it but close.
            pass
        finally:
            session.close()
            if me is not None:
                srv._clients.discard(me)

    srv._server = await asyncio.start_server(client, host, port, reuse_address=True)
    sock = srv._server.sockets[0].getsockname()
    srv.host, srv.port = sock[0], sock[1]
    return srv


def _serve_fd(srv: SimServer, fd: int, baud: int | None) -> None:
    """Serve the simulator on a character device fd (pty master or serial path)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    pending = bytearray()

    def write(data: bytes) -> None:
        pending.extend(data)
        flush()

    def flush() -> None:
        while pending:
            try:
                n = os.write(fd, pending)
            except BlockingIOError:
                loop.call_later(0.001, flush)
                return
            del pending[:n]

    session = SimSession(srv.sim, write, lambda: None, "serial", baud)
    srv._session = session
    inbox: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            # EIO on a pty master while no one holds the other end: wait for one.
            return
        if data:
            inbox.put_nowait((loop.time(), data))

    async def pace_in() -> None:
        # The host's bytes also take wire time to reach the device: a chunk counts as
        # received when its last byte would have arrived (the line is busy until then).
        line_free = 0.0
        while not session.closed:
            arrived, data = await inbox.get()
            if not baud:
                session.received(data)
                continue
            line_free = max(line_free, arrived) + wire_time(len(data), baud)
            await sleep_until(line_free)
            session.received(data, line_free)

    task = asyncio.create_task(pace_in(), name="sim-serial-in")

    def stop_input() -> None:
        task.cancel()

    session._close = stop_input
    loop.add_reader(fd, readable)
    srv.sim.attach(session)


async def serve_pty(sim: DeviceSimulator, baud: int | None = 9600) -> SimServer:
    """A new pseudo-terminal; ``srv.path`` is the end a driver opens (like /dev/ttyUSB0)."""
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    tty.setraw(master, termios.TCSANOW)
    srv = SimServer(sim)
    srv.path = os.ttyname(slave)
    # Keep our own handle on the slave so the master never sees EIO between clients.
    srv._fds = [master, slave]
    _serve_fd(srv, master, baud)
    return srv


async def serve_serial(sim: DeviceSimulator, path: str, baud: int | None = 9600) -> SimServer:
    """Speak on an existing serial device, e.g. one end of ``socat pty,raw,echo=0 ...``."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    srv = SimServer(sim)
    srv.path = path
    srv._fds = [fd]
    _serve_fd(srv, fd, baud)
    return srv
