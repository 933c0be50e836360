"""Cancellation must never be lost on a device link (regression for the 3.11 race).

Python 3.11's ``asyncio.wait_for`` returns the awaited result (or raises its error) and
drops a cancellation that arrives in the same loop iteration as that result. A driver's
keepalive cancelled as ``_fail_pending`` fails it then looped for ever and
``Driver.stop()`` hung. These tests force the race deterministically, over real TCP
against the framework's simulator host, and fail (or hit the timeout) with ``wait_for``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sim_helpers import EchoSim, LineCodec, eventually

from drivers import registry
from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import Driver, DriverConfig, DriverSetup, DriverStatus, Manifest
from drivers.errors import DeviceOffline
from drivers.registry import SimOptions
from drivers.simulator import serve_tcp
from drivers.transport import TcpEndpoint

pytestmark = pytest.mark.timeout(30)


def _connection(port: int, **kw: Any) -> Connection[str]:
    conn = Connection[str](
        "race",
        TcpEndpoint("127.0.0.1", port),
        LineCodec,
        on_event=lambda e: None,
        on_status=lambda s, d: None,
        **kw,
    )
    conn.backoff = Backoff(initial=0.05, cap=0.2)
    return conn


async def test_cancel_in_the_iteration_the_reply_lands_is_kept() -> None:
    sim = EchoSim()
    srv = await serve_tcp(sim)
    conn = _connection(srv.port)
    runner = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        requester: asyncio.Task[str] | None = None

        def cancel_then_done(event: str) -> Reply:
            # Runs in the reader task just before the reply future is resolved: the
            # cancellation and the result land in the same loop iteration.
            if event == "ok race":
                assert requester is not None
                requester.cancel()
                return Reply.DONE
            return Reply.OTHER

        requester = asyncio.create_task(conn.request(b"race\n", cancel_then_done))
        done, _ = await asyncio.wait({requester}, timeout=5)
        assert requester in done
        assert requester.cancelled(), f"cancellation lost; the request returned {requester!r}"
        # The link is unharmed: the reader survived the cancelled future, and the next
        # request is answered.
        assert await conn.request(
            b"after\n", lambda e: Reply.DONE if e == "ok after" else Reply.OTHER
        )
        assert conn.ready
    finally:
        await conn.stop()
        await asyncio.wait_for(runner, 5)
        await srv.close()


async def test_stop_while_a_keepalive_waits_returns() -> None:
    """``stop`` drops the link; ``_one_link`` fails the pending keepalive and cancels the
    liveness task in one go -- the exact race of the LG chain report."""
    sim = EchoSim()
    sim.mute = True  # keeps TCP open, answers nothing: the keepalive stays in flight
    srv = await serve_tcp(sim)
    got_ping = asyncio.Event()

    conn: Connection[str]

    async def keepalive() -> str:
        got_ping.set()
        return await conn.request(b"ping\n", lambda e: Reply.DONE)

    conn = _connection(srv.port, keepalive=keepalive, keepalive_s=0.05, timeout_s=60)
    runner = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        await asyncio.wait_for(got_ping.wait(), 10)
        await eventually(lambda: conn.requests == 1 and conn._pending is not None)
        await conn.stop()
        done, _ = await asyncio.wait({runner}, timeout=10)
        assert runner in done, "the link never finished stopping (liveness swallowed its cancel)"
        assert runner.exception() is None
        assert not conn.ready
        with pytest.raises(DeviceOffline):
            await conn.request(b"late\n", lambda e: Reply.DONE)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await srv.close()


class Slow(Driver):
    """A driver whose cancellation takes a while to unwind (closing a port, say)."""

    manifest = Manifest("Acme", ("S1",), "slow-stop")
    config_model = DriverConfig

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        self.unwound = asyncio.Event()

    async def run(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)
            self.unwound.set()
            raise


async def test_driver_stop_propagates_the_callers_own_cancellation() -> None:
    d = Slow(DriverSetup("slow1", DriverConfig(), TcpEndpoint("127.0.0.1", 1)))
    await d.start()
    await asyncio.sleep(0.05)
    stopper = asyncio.create_task(d.stop())
    await asyncio.sleep(0.05)  # stop() now waits for the driver task to unwind
    stopper.cancel()
    done, _ = await asyncio.wait({stopper}, timeout=5)
    assert stopper in done
    assert stopper.cancelled(), "Driver.stop swallowed its caller's cancellation"
    # The driver task still unwinds to its end in the background.
    await asyncio.wait_for(d.unwound.wait(), 5)


async def test_driver_stop_without_interference_ends_disconnected() -> None:
    d = Slow(DriverSetup("slow2", DriverConfig(), TcpEndpoint("127.0.0.1", 1)))
    await d.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(d.stop(), 5)
    assert d.unwound.is_set()
    assert d.status is DriverStatus.DISCONNECTED and d.status_detail == "stopped"


@pytest.mark.parametrize("protocol", ["lg", "samsung-mdc", "videohub"])
async def test_drivers_stop_while_their_keepalive_waits(protocol: str) -> None:
    """The drivers that carried a ``_keep_cancellation`` workaround stop promptly with
    their keepalive in flight, now that the framework keeps cancellations itself."""
    proto = registry.get(protocol)
    sim = proto.simulator(SimOptions(reply_delay_s=0.0))
    srv = await serve_tcp(sim)
    cfg = proto.config_model.model_validate(
        {"keepalive_s": 0.1, "timeout_ms": 30000, "retry_max_s": 1}
    )
    driver = proto.driver(DriverSetup("ka", cfg, TcpEndpoint("127.0.0.1", srv.port)))
    await driver.start()
    try:
        await eventually(lambda: driver.status is DriverStatus.OK, 20)
        sim.mute = True  # TCP stays open; the next keepalive waits for its answer
        link = driver.link
        assert link is not None
        await eventually(lambda: link._pending is not None, 10)
        loop = asyncio.get_running_loop()
        began = loop.time()
        # Timed, not only bounded: a stop that hangs until an outer timeout cancels it
        # (and then swallows that cancel) would "return" too -- that was the bug.
        await asyncio.wait_for(driver.stop(), 20)
        assert loop.time() - began < 5, "stop hung with the keepalive in flight"
        assert driver.status is DriverStatus.DISCONNECTED
        assert not link.ready
    finally:
        await srv.close()


async def test_cancelling_the_link_while_its_start_up_unwinds_is_kept() -> None:
    """A drop during start-up cancels the start-up and waits for it; a cancellation of
    the link's own task arriving meanwhile must end the task, not be taken for the
    start-up's and followed by a reconnect."""
    sim = EchoSim()
    sim.mute = True
    srv = await serve_tcp(sim)
    unwinding = asyncio.Event()
    conn: Connection[str]

    async def on_connect() -> None:
        try:
            await conn.request(b"hello\n", lambda e: Reply.DONE, early=True, timeout_s=60)
        except asyncio.CancelledError:
            unwinding.set()
            await asyncio.sleep(0.3)  # closing something slowly
            raise

    conn = _connection(srv.port, on_connect=on_connect)
    runner = asyncio.create_task(conn.run())
    try:
        await eventually(lambda: conn.requests == 1)
        conn.drop("test drop")
        await asyncio.wait_for(unwinding.wait(), 5)
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=5)
        assert runner in done and runner.cancelled(), "the link's cancellation was swallowed"
        assert conn.connects == 1  # and no reconnect followed
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await srv.close()
