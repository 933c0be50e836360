"""One device link: reconnects, a paced request queue, reply matching, liveness.

A driver builds one :class:`Connection` per device with

- ``codec_factory``: a fresh sans-I/O codec per link (``feed(bytes) -> list[event]``);
- ``on_connect``: the start-up sequence (banner, password, full state read) run on
  every new link before requests are let through -- it uses ``request(..., early=True)``
  and raises :class:`~drivers.errors.AuthFailed` on a refused password;
- ``on_event``: called with every event that answers no request (front-panel changes,
  another controller's route, broadcasts);
- ``keepalive``: sent after ``keepalive_s`` without traffic; a keepalive that times out,
  ``dead_after`` request timeouts in a row, or ``silence_s`` without a byte drop the link
  (a device that hangs but keeps TCP open is reopened rather than waited on for ever).

``request(data, match)`` writes ``data`` once the previous exchange is over and the gap
has passed, then feeds each decoded event to ``match``: ``Reply.DONE`` completes the
request with that event, ``Reply.MORE`` takes it as part of the answer and keeps
waiting, ``Reply.OTHER`` passes it on to ``on_event``. One request is in flight at a time,
as RS-232 devices expect. When the link is down a request fails at once with
:class:`~drivers.errors.DeviceOffline`; when it drops mid-request, the same.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from drivers.backoff import Backoff
from drivers.contract import DriverStatus
from drivers.errors import (
    AuthFailed,
    BadConfig,
    DeviceOffline,
    DeviceTimeout,
    DriverError,
    QueueFull,
)
from drivers.transport import Endpoint, Transport, open_transport
from wallctl.logs import get_logger

log = get_logger("drivers.connection")

E = TypeVar("E")


class Codec(Protocol[E]):
    """The parsing half of a protocol codec: bytes in, events out (never raises)."""

    def feed(self, data: bytes) -> list[E]: ...


class Reply(Enum):
    OTHER = "other"
    MORE = "more"
    DONE = "done"


Matcher = Callable[[E], Reply]


class _Pending(Generic[E]):
    def __init__(self, match: Matcher[E], fut: asyncio.Future[E]) -> None:
        self.match = match
        self.fut = fut


class Connection(Generic[E]):
    def __init__(
        self,
        name: str,
        endpoint: Endpoint,
        codec_factory: Callable[[], Codec[E]],
        *,
        on_event: Callable[[E], None],
        on_status: Callable[[DriverStatus, str], None],
        on_connect: Callable[[], Coroutine[Any, Any, None]] | None = None,
        keepalive: Callable[[], Awaitable[object]] | None = None,
        gap_s: float = 0.0,
        timeout_s: float = 2.0,
        keepalive_s: float = 10.0,
        silence_s: float = 0.0,
        connect_timeout_s: float = 5.0,
        dead_after: int = 2,
        max_queue: int = 64,
        backoff: Backoff | None = None,
        opener: Callable[[Endpoint, float], Awaitable[Transport]] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.codec_factory = codec_factory
        self.on_event = on_event
        self.on_status = on_status
        self.on_connect = on_connect
        self.keepalive = keepalive
        self.gap_s = gap_s
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.silence_s = silence_s
        self.connect_timeout_s = connect_timeout_s
        self.dead_after = dead_after
        self.max_queue = max_queue
        self.backoff = backoff or Backoff()
        # How a link is opened: a TCP socket or serial line by default; a driver whose
        # link needs more (an SSH session) gives its own. It may raise AuthFailed or
        # BadConfig (no quick retry) or another DriverError (retried with backoff).
        self.opener = opener or open_transport
        # Counters for health and metrics.
        self.connects = 0
        self.requests = 0
        self.timeouts = 0
        self.drops = 0
        self.bytes_in = 0
        self.bytes_out = 0

        self._transport: Transport | None = None
        self._link_up = False
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._pending: _Pending[E] | None = None
        self._drop: asyncio.Event = asyncio.Event()
        self._drop_reason = ""
        self._stopping = False
        self._wake = asyncio.Event()
        self._timeouts_in_row = 0
        self._last_rx = 0.0
        self._last_activity = 0.0
        self._last_done = 0.0
        self._backlog: list[E] = []

    # --- state -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the link is open and the start-up sequence has run."""
        return self._ready.is_set()

    @property
    def silent_for_s(self) -> float | None:
        """Seconds since the device last sent a byte (None while no link is up)."""
        return time.monotonic() - self._last_rx if self._link_up else None

    async def wait_ready(self, within_s: float) -> bool:
        try:
            async with asyncio.timeout(within_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    # --- the link's life ---------------------------------------------------------------

    async def run(self) -> None:
        """Keep the link up until :meth:`stop`; returns only then."""
        self._stopping = False
        while not self._stopping:
            status, detail, cap = await self._one_link()
            if self._stopping:
                break
            delay = self.backoff.at_cap() if cap else self.backoff.next()
            self.on_status(status, f"{detail}; retrying in {delay:.1f} s")
            log.info(
                "device link down",
                device=self.name,
                endpoint=self.endpoint.describe(),
                status=status.value,
                reason=detail,
                retry_s=round(delay, 2),
            )
            self._wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.drop("stopped")

    def drop(self, reason: str) -> None:
        """Close the current link (it is reopened unless stopping)."""
        if self._link_up:
            self._drop_reason = reason
            self._drop.set()

    def retry_now(self) -> None:
        """Skip the rest of the current backoff wait (an operator asked to reconnect)."""
        self.backoff.reset()
        self._wake.set()

    async def _one_link(self) -> tuple[DriverStatus, str, bool]:
        """Open, start up, serve until the link drops. Returns (status, why, at_cap)."""
        self.on_status(DriverStatus.CONNECTING, self.endpoint.describe())
        try:
            transport = await self.opener(self.endpoint, self.connect_timeout_s)
        except TimeoutError:
            return DriverStatus.CONNECTION_FAILURE, "connect timed out", False
        except OSError as e:
            return DriverStatus.CONNECTION_FAILURE, e.strerror or str(e), False
        except AuthFailed as e:
            return DriverStatus.AUTH_FAILURE, e.message, True
        except BadConfig as e:
            return DriverStatus.BAD_CONFIG, e.message, True
        except DriverError as e:
            return DriverStatus.CONNECTION_FAILURE, e.message, False
        self._transport = transport
        self._drop = asyncio.Event()
        self._drop_reason = ""
        self._timeouts_in_row = 0
        self._backlog = []
        now = time.monotonic()
        self._last_rx = self._last_activity = now
        self._link_up = True
        self.connects += 1
        if self._stopping:  # stop() came while the link was opening
            self.drop("stopped")
        codec = self.codec_factory()
        reader = asyncio.create_task(self._read_loop(transport, codec), name=f"rx:{self.name}")
        liveness = asyncio.create_task(self._liveness(), name=f"live:{self.name}")
        result: tuple[DriverStatus, str, bool]
        try:
            if self.on_connect is not None:
                startup: asyncio.Task[None] = asyncio.create_task(self.on_connect())
                dropped = asyncio.create_task(self._drop.wait())
                done, _ = await asyncio.wait(
                    {startup, dropped}, return_when=asyncio.FIRST_COMPLETED
                )
                dropped.cancel()
                if startup not in done:
                    startup.cancel()
                    # Wait for the start-up to unwind without taking on its outcome; a
                    # cancellation of this task itself still propagates from here.
                    await asyncio.wait({startup})
                    failed = None if startup.cancelled() else startup.exception()
                    if failed is not None and not isinstance(failed, DriverError):
                        log.error("device start-up crashed", device=self.name, error=repr(failed))
                    return DriverStatus.DISCONNECTED, self._drop_reason, False
                startup.result()
            self._ready.set()
            self._flush_backlog()
            self.backoff.reset()
            self.on_status(DriverStatus.OK, self.endpoint.describe())
            log.info("device link up", device=self.name, endpoint=self.endpoint.describe())
            await self._drop.wait()
            self.drops += 1
            result = (DriverStatus.DISCONNECTED, self._drop_reason, False)
        except AuthFailed as e:
            result = (DriverStatus.AUTH_FAILURE, e.message, True)
        except BadConfig as e:
            result = (DriverStatus.BAD_CONFIG, e.message, True)
        except DriverError as e:
            reason = self._drop_reason or e.message
            result = (DriverStatus.CONNECTION_FAILURE, f"start-up failed: {reason}", False)
        except Exception as e:  # a driver bug in its start-up: logged, retried with backoff
            log.exception("device start-up crashed", device=self.name, error=repr(e))
            result = (DriverStatus.CONNECTION_FAILURE, f"driver error: {e!r}", False)
        finally:
            self._ready.clear()
            self._link_up = False
            self._fail_pending(DeviceOffline(f"{self.name}: link lost ({self._drop_reason})"))
            for task in (reader, liveness):
                task.cancel()
            await asyncio.gather(reader, liveness, return_exceptions=True)
            await transport.close()
            self._transport = None
        return result

    async def _read_loop(self, transport: Transport, codec: Codec[E]) -> None:
        while True:
            data = await transport.read()
            if not data:
                self.drop("closed by the device")
                return
            self._last_rx = time.monotonic()
            self.bytes_in += len(data)
            try:
                events = codec.feed(data)
            except Exception as e:  # a codec must not raise; if one does, start afresh
                log.exception("codec failed", device=self.name, error=repr(e))
                self.drop(f"codec failed: {e!r}")
                return
            for event in events:
                self._dispatch(event)

    def _dispatch(self, event: E) -> None:
        pending = self._pending
        if not self._ready.is_set() and (pending is None or pending.fut.done()):
            # During start-up a banner may arrive before the sequence waits for it.
            if len(self._backlog) < 256:
                self._backlog.append(event)
            return
        if pending is not None and not pending.fut.done():
            try:
                verdict = pending.match(event)
            except Exception as e:
                if not pending.fut.done():
                    pending.fut.set_exception(e)
                return
            if verdict is Reply.DONE:
                self._timeouts_in_row = 0
                # The requester may have been cancelled meanwhile (its future with it).
                if not pending.fut.done():
                    pending.fut.set_result(event)
                return
            if verdict is Reply.MORE:
                return
        try:
            self.on_event(event)
        except Exception as e:  # a driver bug must not kill the reader
            log.exception("unsolicited event handler failed", device=self.name, error=repr(e))

    async def _liveness(self) -> None:
        period = min(x for x in (self.keepalive_s, self.silence_s, 1.0) if x > 0)
        while self._link_up:
            await asyncio.sleep(min(period, 1.0))
            now = time.monotonic()
            if self.silence_s and now - self._last_rx > self.silence_s:
                self.drop(f"no byte from the device for {self.silence_s:g} s")
                return
            if (
                self.keepalive is not None
                and self.keepalive_s
                and self._ready.is_set()
                and now - self._last_activity >= self.keepalive_s
                and not self._lock.locked()
            ):
                try:
                    await self.keepalive()
                except DeviceTimeout:
                    self.drop("no answer to the keepalive")
                    return
                except DeviceOffline:
                    return  # the link is gone: this watch ends with it
                except DriverError:
                    pass  # answered, even if with an error: the device is alive

    def _replay_backlog(self) -> None:
        """Offer events that arrived during start-up, before anyone waited, in order."""
        backlog, self._backlog = self._backlog, []
        for i, event in enumerate(backlog):
            pending = self._pending
            if pending is None or pending.fut.done():
                self._backlog = backlog[i:] + self._backlog
                return
            self._dispatch(event)

    def _flush_backlog(self) -> None:
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            self._dispatch(event)

    def _fail_pending(self, err: DriverError) -> None:
        if self._pending is not None and not self._pending.fut.done():
            self._pending.fut.set_exception(err)

    # --- TLS ------------------------------------------------------------------------------

    async def start_tls(
        self,
        ctx: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        within_s: float | None = None,
    ) -> None:
        """Upgrade the open link to TLS; call it from ``on_connect`` once the device has
        agreed to switch (the request that asked has been answered).

        Waits for the request queue so no exchange straddles the switch. An untrusted
        certificate (or a serial link) ends in :class:`BadConfig` -- retrying cannot fix
        it; any other handshake failure in :class:`DeviceOffline` (retried with backoff).
        """
        async with self._lock:
            transport = self._check(early=True)
            limit = within_s if within_s is not None else max(self.timeout_s, 5.0)
            try:
                await transport.start_tls(ctx, server_hostname=server_hostname, within_s=limit)
            except ssl.SSLCertVerificationError as e:
                self.drop("TLS certificate not trusted")
                raise BadConfig(
                    f"{self.name}: the device's TLS certificate is not trusted "
                    f"({e.verify_message or e.reason})"
                ) from None
            except ValueError as e:
                raise BadConfig(f"{self.name}: {e}") from None
            except TimeoutError:
                self.drop("TLS handshake timed out")
                raise DeviceOffline(f"{self.name}: no TLS handshake within {limit:g} s") from None
            except (ssl.SSLError, ConnectionError, OSError) as e:
                self.drop(f"TLS handshake failed: {e}")
                raise DeviceOffline(f"{self.name}: TLS handshake failed ({e})") from None
            self._last_done = self._last_activity = time.monotonic()
            log.info("device link upgraded to TLS", device=self.name)

    @property
    def tls(self) -> bool:
        """True once the current link runs over TLS."""
        return self._transport is not None and self._transport.tls

    # --- requests ------------------------------------------------------------------------

    def _check(self, early: bool) -> Transport:
        if self._stopping:
            raise DeviceOffline(f"{self.name} is stopping")
        ok = self._link_up if early else self._ready.is_set()
        if not ok or self._transport is None:
            raise DeviceOffline(f"{self.name} is not connected")
        return self._transport

    async def request(
        self,
        data: bytes,
        match: Matcher[E],
        *,
        timeout_s: float | None = None,
        early: bool = False,
        expected_silence: bool = False,
    ) -> E:
        """Send ``data`` and return the event ``match`` calls ``Reply.DONE``.

        ``early`` lets the start-up sequence talk before the link counts as ready;
        ``expected_silence`` means a timeout is a normal outcome (it does not count
        towards dropping the link).
        """
        self._check(early)
        if self._waiting >= self.max_queue:
            raise QueueFull(f"{self.name}: {self._waiting} requests already waiting")
        self._waiting += 1
        try:
            async with self._lock:
                transport = self._check(early)
                wait = self._last_done + self.gap_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    transport = self._check(early)
                fut: asyncio.Future[E] = asyncio.get_running_loop().create_future()
                self._pending = _Pending(match, fut)
                self._replay_backlog()
                self.requests += 1
                self._last_activity = time.monotonic()
                try:
                    try:
                        if data:
                            await transport.write(data)
                    except (ConnectionError, OSError) as e:
                        self.drop(f"write failed: {e}")
                        raise DeviceOffline(f"{self.name}: write failed ({e})") from None
                    self.bytes_out += len(data)
                    limit = self.timeout_s if timeout_s is None else timeout_s
                    try:
                        # Not asyncio.wait_for: on 3.11 it returns (or raises) the reply
                        # and drops a cancellation that lands in the same loop iteration
                        # as the reply or _fail_pending, and a stopping link then never
                        # finishes. Awaiting the future itself keeps the cancellation.
                        async with asyncio.timeout(limit):
                            return await fut
                    except TimeoutError:
                        if expected_silence:
                            raise DeviceTimeout(
                                f"{self.name}: nothing within {limit:g} s"
                            ) from None
                        self.timeouts += 1
                        self._timeouts_in_row += 1
                        if self._timeouts_in_row >= self.dead_after:
                            self.drop(f"{self._timeouts_in_row} requests in a row unanswered")
                        raise DeviceTimeout(
                            f"{self.name} did not answer within {limit * 1000:.0f} ms"
                        ) from None
                finally:
                    self._pending = None
                    self._last_done = self._last_activity = time.monotonic()
        finally:
            self._waiting -= 1

    async def wait_for(
        self, match: Matcher[E], timeout_s: float, *, early: bool = True
    ) -> E | None:
        """Wait for an event (a banner, a prompt) without sending; None on timeout."""
        try:
            return await self.request(
                b"", match, timeout_s=timeout_s, early=early, expected_silence=True
            )
        except DeviceTimeout:
            return None

    async def send(self, data: bytes, *, early: bool = False) -> None:
        """Send ``data`` that gets no reply (paced like a request)."""
        self._check(early)
        async with self._lock:
            transport = self._check(early)
            wait = self._last_done + self.gap_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await transport.write(data)
            except (ConnectionError, OSError) as e:
                self.drop(f"write failed: {e}")
                raise DeviceOffline(f"{self.name}: write failed ({e})") from None
            self.bytes_out += len(data)
            self._last_done = self._last_activity = time.monotonic()
