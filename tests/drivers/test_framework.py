"""The driver framework: backoff, supervision, the connection's queue, gap, timeouts,
liveness and reconnects, the action contract, and simulator pacing -- with a tiny line
protocol served by the real simulator host over real TCP and a pty."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sim_helpers import EchoSim, LineCodec, eventually

from drivers import registry
from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import (
    Driver,
    DriverConfig,
    DriverSetup,
    DriverStatus,
    Manifest,
    StatusChanged,
    action,
)
from drivers.errors import (
    DeviceOffline,
    DeviceTimeout,
    InvalidParams,
    QueueFull,
    UnknownAction,
)
from drivers.simulator import serve_pty, serve_tcp, wire_time
from drivers.supervisor import supervise
from drivers.text import clean_text
from drivers.transport import SerialEndpoint, TcpEndpoint


def is_ok(event: str) -> Reply:
    return Reply.DONE if event.startswith("ok ") else Reply.OTHER


def link(port: int, **kw: Any) -> tuple[Connection[str], list[tuple[DriverStatus, str]]]:
    statuses: list[tuple[DriverStatus, str]] = []
    conn = Connection[str](
        "t",
        TcpEndpoint("127.0.0.1", port),
        LineCodec,
        on_event=lambda e: None,
        on_status=lambda s, d: statuses.append((s, d)),
        **kw,
    )
    conn.backoff = Backoff(initial=0.05, cap=0.2)
    return conn, statuses


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(initial=1, cap=8, factor=2, jitter=0.25, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    for d, base in zip(delays, [1, 2, 4, 8, 8, 8, 8, 8], strict=True):
        assert base * 0.75 <= d <= min(8, base * 1.25)
    assert len(set(delays)) > 4  # jittered, not a fixed ladder
    b.reset()
    assert b.next() <= 1.25
    assert 6 <= b.at_cap() <= 8


async def test_supervise_restarts_a_crashing_body() -> None:
    runs = []

    async def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("driver bug")

    crashes: list[BaseException] = []
    await asyncio.wait_for(supervise("x", body, Backoff(initial=0.01, cap=0.02), crashes.append), 5)
    assert len(runs) == 3 and len(crashes) == 2


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=1, le=4)


class Toy(Driver):
    manifest = Manifest("Acme", ("T1",), "toy")
    config_model = DriverConfig
    runs = 0

    @action("set", "Set n", Params)
    async def act_set(self, p: Params) -> dict[str, Any]:
        self.set_state("n", p.n, "command")
        return {"n": p.n}

    async def run(self) -> None:
        type(self).runs += 1
        if type(self).runs < 2:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)


async def test_action_contract_and_supervised_driver() -> None:
    d = Toy(DriverSetup("toy1", DriverConfig(), TcpEndpoint("127.0.0.1", 1)))
    events: list[Any] = []
    d.on_event = events.append
    assert list(Toy.actions) == ["set"]
    schema = d.describe()["actions"][0]["params"]
    assert schema["properties"]["n"]["maximum"] == 4
    assert await d.call("set", {"n": 2}) == {"n": 2}
    assert d.state["n"] == 2
    with pytest.raises(InvalidParams) as e:
        await d.call("set", {"n": 9})
    assert e.value.field == "n"
    with pytest.raises(InvalidParams) as e:
        await d.call("set", {"n": 1, "x": "\r\n"})
    assert e.value.field == "x"
    with pytest.raises(UnknownAction):
        await d.call("nope", {})
    Toy.runs = 0
    import drivers.supervisor as sup

    orig = sup.Backoff
    sup.Backoff = lambda **kw: Backoff(initial=0.01, cap=0.02)  # type: ignore[misc,assignment]
    try:
        await d.start()
        await eventually(lambda: Toy.runs >= 2)
    finally:
        sup.Backoff = orig  # type: ignore[misc]
        await d.stop()
    assert StatusChanged(DriverStatus.DISCONNECTED, "stopped") in events


async def test_gap_queue_timeout_and_refused_connection() -> None:
    sim = EchoSim()
    srv = await serve_tcp(sim)
    conn, statuses = link(srv.port, gap_s=0.05, timeout_s=0.5, max_queue=3, keepalive_s=0)
    task = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        replies = await asyncio.gather(*(conn.request(f"c{i}\n".encode(), is_ok) for i in range(3)))
        assert replies == ["ok c0", "ok c1", "ok c2"]
        gaps = [b - a for a, b in zip(sim.arrivals, sim.arrivals[1:], strict=False)]
        assert min(gaps) >= 0.045
        # More waiting requests than the queue holds: refused at once, not queued.
        many = [asyncio.create_task(conn.request(b"q\n", is_ok)) for _ in range(6)]
        done = await asyncio.gather(*many, return_exceptions=True)
        assert sum(isinstance(r, QueueFull) for r in done) >= 1
        sim.mute = True
        with pytest.raises(DeviceTimeout):
            await conn.request(b"z\n", is_ok)
        sim.mute = False
        await srv.close()
        await eventually(lambda: not conn.ready)
        with pytest.raises(DeviceOffline):
            await conn.request(b"y\n", is_ok)
        await eventually(lambda: statuses[-1][0] is DriverStatus.CONNECTION_FAILURE)
        assert "retrying in" in statuses[-1][1]
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)


async def test_silence_drops_the_link() -> None:
    sim = EchoSim()
    srv = await serve_tcp(sim)
    conn, statuses = link(srv.port, silence_s=0.3, keepalive_s=0)
    task = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        await eventually(lambda: conn.drops >= 1, 5)
        assert any("no byte" in d for _, d in statuses)
        assert await conn.wait_ready(5)  # and it reconnects
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)
        await srv.close()


async def test_keepalive_timeout_reconnects() -> None:
    sim = EchoSim()
    srv = await serve_tcp(sim)
    conn: Connection[str]
    conn, statuses = link(srv.port, keepalive_s=0.2, timeout_s=0.2)
    conn.keepalive = lambda: conn.request(b"ping\n", is_ok)
    task = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        await asyncio.sleep(0.5)
        assert conn.requests >= 1 and conn.drops == 0  # answered keepalives
        sim.mute = True
        await eventually(lambda: conn.drops >= 1, 5)
        assert any("keepalive" in d for _, d in statuses)
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)
        await srv.close()


async def test_pty_pacing_matches_wire_time() -> None:
    sim = EchoSim()
    srv = await serve_pty(sim, 1200)
    conn = Connection[str](
        "p",
        SerialEndpoint(srv.path, 1200),
        LineCodec,
        on_event=lambda e: None,
        on_status=lambda s, d: None,
        keepalive_s=0,
    )
    task = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(5)
        t0 = time.monotonic()
        await conn.request(b"0123456789\n", is_ok)
        took = time.monotonic() - t0
        expected = wire_time(11 + 14, 1200)  # 208 ms at 1200 baud
        assert expected * 0.95 <= took <= expected + 0.2
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)
        await srv.close()


def test_clean_text_removes_smuggling() -> None:
    assert clean_text("大屏\r\n1*1!\x1b[2J\x00\u2028ok", 64) == "大屏1*1![2Jok"
    assert clean_text("a,b|c", 64, forbidden=",|") == "abc"
    assert clean_text("  x  ", 1) == "x"
    assert clean_text("é中", 10, ascii_only=True) == ""


def test_registry_lists_the_matrix_protocols() -> None:
    protocols = registry.load_all()
    for name in ("extron-sis", "kramer-p3000"):
        p = protocols[name]
        assert p.manifest.family == "matrix" and p.driver.manifest.protocol == name
        assert {"route", "salvo", "ties"} <= set(p.driver.actions)
    with pytest.raises(KeyError):
        registry.get("no-such-protocol")


async def test_a_crashing_start_up_is_retried_not_fatal() -> None:
    sim = EchoSim()
    srv = await serve_tcp(sim)
    conn, statuses = link(srv.port, keepalive_s=0)
    calls = []

    async def startup() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise KeyError("driver bug")
        await conn.request(b"hello\n", is_ok, early=True)

    conn.on_connect = startup
    task = asyncio.create_task(conn.run())
    try:
        assert await conn.wait_ready(10)
        assert len(calls) == 3
        assert any("driver error" in d for s, d in statuses if s is DriverStatus.CONNECTION_FAILURE)
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)
        await srv.close()
