"""The Videohub simulator on the wire, and an independent client (bmdwire) against it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from drivers.simulator import SimServer, serve_tcp
from drivers.videohub.simulator import VideohubSimulator

pytestmark = pytest.mark.timeout(60)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    async def block(self, within: float = 3.0) -> bytes:
        """The next blank-line-terminated block."""

        async def loop() -> bytes:
            while b"\n\n" not in self.buf:
                chunk = await self.reader.read(4096)
                if not chunk:
                    raise ConnectionError("closed")
                self.buf += chunk
            head, _, self.buf = self.buf.partition(b"\n\n")
            return head + b"\n\n"

        return await asyncio.wait_for(loop(), within)

    async def prelude(self) -> list[bytes]:
        blocks = []
        while not blocks or blocks[-1] != b"END PRELUDE:\n\n":
            blocks.append(await self.block())
        return blocks

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def hub(
    sim: VideohubSimulator | None = None,
) -> AsyncIterator[tuple[VideohubSimulator, SimServer]]:
    sim = sim or VideohubSimulator(inputs=4, outputs=3)
    srv = await serve_tcp(sim)
    try:
        yield sim, srv
    finally:
        await srv.close()


async def connect(srv: SimServer) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    return Client(reader, writer)


async def test_prelude_order_and_content() -> None:
    async with hub() as (_sim, srv):
        c = await connect(srv)
        blocks = await c.prelude()
        headers = [b.split(b"\n", 1)[0] for b in blocks]
        assert headers == [
            b"PROTOCOL PREAMBLE:",
            b"VIDEOHUB DEVICE:",
            b"INPUT LABELS:",
            b"OUTPUT LABELS:",
            b"VIDEO OUTPUT LOCKS:",
            b"VIDEO OUTPUT ROUTING:",
            b"CONFIGURATION:",
            b"END PRELUDE:",
        ]
        assert blocks[0] == b"PROTOCOL PREAMBLE:\nVersion: 2.8\n\n"
        assert b"Video inputs: 4\n" in blocks[1] and b"Video outputs: 3\n" in blocks[1]
        assert blocks[5] == b"VIDEO OUTPUT ROUTING:\n0 0\n1 1\n2 2\n\n"
        await c.close()


async def test_requests_ack_nak_and_broadcasts() -> None:
    async with hub() as (sim, srv):
        a, b = await connect(srv), await connect(srv)
        await a.prelude()
        await b.prelude()
        await a.send(b"PING:\n\n")
        assert await a.block() == b"ACK\n\n"
        await a.send(b"OUTPUT LABELS:\n\n")
        assert await a.block() == b"ACK\n\n"
        assert await a.block() == b"OUTPUT LABELS:\n0 Output 1\n1 Output 2\n2 Output 3\n\n"
        # A route: ACK to the sender, the changed line to everyone.
        await a.send(b"VIDEO OUTPUT ROUTING:\n2 3\n\n")
        assert await a.block() == b"ACK\n\n"
        assert await a.block() == b"VIDEO OUTPUT ROUTING:\n2 3\n\n"
        assert await b.block() == b"VIDEO OUTPUT ROUTING:\n2 3\n\n"
        # Malformed or out of range: NAK, nothing changes, nobody hears of it.
        for bad in (
            b"VIDEO OUTPUT ROUTING:\n3 0\n\n",
            b"VIDEO OUTPUT ROUTING:\n0 4\n\n",
            b"VIDEO OUTPUT ROUTING:\n0 1\nx y\n\n",
            b"VIDEO OUTPUT ROUTING:\n-1 0\n\n",
            b"NO SUCH BLOCK:\n1 2\n\n",
            b"VIDEOHUB DEVICE:\nVideo inputs: 99\n\n",
            b"just some words\n\n",
        ):
            await a.send(bad)
            assert await a.block() == b"NAK\n\n", bad
        assert sim.routes == {0: 0, 1: 1, 2: 3}
        # CR LF line ends are accepted too.
        await b.send(b"INPUT LABELS:\r\n1 Cam two\r\n\r\n")
        assert await b.block() == b"ACK\n\n"
        assert await a.block() == b"INPUT LABELS:\n1 Cam two\n\n"
        await a.close()
        await b.close()


async def test_locks_as_each_client_sees_them() -> None:
    async with hub() as (sim, srv):
        a, b = await connect(srv), await connect(srv)
        await a.prelude()
        await b.prelude()
        await a.send(b"VIDEO OUTPUT LOCKS:\n1 O\n\n")
        assert await a.block() == b"ACK\n\n"
        assert await a.block() == b"VIDEO OUTPUT LOCKS:\n1 O\n\n"
        assert await b.block() == b"VIDEO OUTPUT LOCKS:\n1 L\n\n"
        # b may neither route nor plainly unlock a's output...
        await b.send(b"VIDEO OUTPUT ROUTING:\n1 0\n\n")
        assert await b.block() == b"NAK\n\n"
        await b.send(b"VIDEO OUTPUT LOCKS:\n1 U\n\n")
        assert await b.block() == b"NAK\n\n"
        # ...but it can force the lock open.
        await b.send(b"VIDEO OUTPUT LOCKS:\n1 F\n\n")
        assert await b.block() == b"ACK\n\n"
        assert await b.block() == b"VIDEO OUTPUT LOCKS:\n1 U\n\n"
        assert await a.block() == b"VIDEO OUTPUT LOCKS:\n1 U\n\n"
        # A lock dies with the connection that held it.
        await a.send(b"VIDEO OUTPUT LOCKS:\n0 O\n\n")
        assert await a.block() == b"ACK\n\n"
        await a.close()
        await b.block()  # b's copy of the 0 L broadcast
        await asyncio.sleep(0.05)
        c = await connect(srv)
        blocks = await c.prelude()
        assert blocks[4] == b"VIDEO OUTPUT LOCKS:\n0 U\n1 U\n2 U\n\n"
        assert sim.naks == 2
        await b.close()
        await c.close()


async def test_oversized_input_is_dropped() -> None:
    async with hub() as (sim, srv):
        c = await connect(srv)
        await c.prelude()
        await c.send(b"A" * 10000 + b"\nPING:\n\n")
        assert await c.block() == b"ACK\n\n"
        many = b"".join(b"0 1\n" for _ in range(2000))
        await c.send(b"VIDEO OUTPUT ROUTING:\n" + many + b"\n")
        assert await c.block() == b"NAK\n\n"
        assert sim.routes[0] == 0
        await c.close()


async def test_independent_client_bmdwire() -> None:
    """bmdwire's videohubwire (an independent, synchronous client) against the simulator."""
    videohubwire = pytest.importorskip("videohubwire")
    sim = VideohubSimulator(inputs=12, outputs=12, end_prelude=True)
    async with hub(sim) as (sim, srv):

        def session() -> dict[str, object]:
            with videohubwire.Videohub("127.0.0.1", srv.port, read_timeout=3.0) as vh:
                state = vh.state()
                vh.route(5, 9)
                vh.set_output_label(5, "大屏输入6")
                vh.ping()
                return {"state": state, "after": vh.state()}

        result = await asyncio.to_thread(session)
        state = result["state"]
        assert isinstance(state, dict)
        assert state["device"]["video_inputs"] == 12
        assert state["outputs"][3] == {"index": 3, "label": "Output 4", "source": 3, "lock": "U"}
        assert sim.routes[5] == 9
        assert sim.output_labels[5] == "大屏输入6"

        # Another client locks output 0: the independent client is refused (NAK).
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        other = Client(reader, writer)
        await other.prelude()
        await other.send(b"VIDEO OUTPUT LOCKS:\n0 O\n\n")
        assert await other.block() == b"ACK\n\n"

        def refused() -> str:
            with videohubwire.Videohub("127.0.0.1", srv.port, read_timeout=3.0) as vh:
                assert vh.state()["outputs"][0]["lock"] == "L"
                try:
                    vh.route(0, 1)
                except videohubwire.VideohubError as e:
                    return str(e)
            return "routed"

        assert "refused" in await asyncio.to_thread(refused)
        assert sim.routes[0] == 0
        await other.close()


async def test_simulator_and_codec_agree_over_random_traffic() -> None:
    """Two independent readings of the protocol -- the simulator's and the codec's -- must
    agree on the state after any mix of routes, labels and locks from two clients."""
    import random

    from drivers.videohub import codec

    rng = random.Random(20261123)
    words = ["Cam", "大屏", "PC", "会议", "Ü", "x" * 60, "A  B", "٣", "🎥"]
    async with hub(VideohubSimulator(inputs=12, outputs=8)) as (sim, srv):
        a = await connect(srv)
        a_session = next(iter(sim.sessions))
        b = await connect(srv)
        dec = codec.Decoder()
        routes: dict[int, int] = {}
        labels: dict[int, str] = {}
        locks: dict[int, codec.LockState] = {}

        def absorb(block: bytes) -> None:
            for ev in dec.feed(block):
                if isinstance(ev, codec.Routes):
                    routes.update(ev.routes)
                elif isinstance(ev, codec.Labels) and ev.header == codec.OUTPUT_LABELS:
                    labels.update(ev.labels)
                elif isinstance(ev, codec.Locks):
                    locks.update(ev.locks)

        for block in await a.prelude():
            absorb(block)
        await b.prelude()
        answers = set()
        for _ in range(150):
            who = a if rng.random() < 0.6 else b
            kind = rng.choice(["route", "route", "label", "lock"])
            if kind == "route":
                change = {rng.randrange(8): rng.randrange(12) for _ in range(rng.randint(1, 3))}
                data = codec.encode_routes(change, outputs=8, inputs=12)
            elif kind == "label":
                text = rng.choice(words) + str(rng.randrange(99))
                data = codec.encode_labels({rng.randrange(8): text}, count=8)
            else:
                data = codec.encode_locks(
                    {rng.randrange(8): rng.choice(list(codec.LockRequest))}, count=8
                )
            await who.send(data)
            blocks = []
            while (blk := await who.block()) not in (b"ACK\n\n", b"NAK\n\n"):
                blocks.append(blk)  # broadcasts of earlier changes may come first
            answers.add(blk)
            if who is a:
                for blk in blocks:
                    absorb(blk)
            # Both clients catch up: a PING's ACK comes after every pending broadcast.
            for c in (a, b):
                await c.send(b"PING:\n\n")
                while (blk := await c.block()) != b"ACK\n\n":
                    if c is a:
                        absorb(blk)
        assert answers == {b"ACK\n\n", b"NAK\n\n"}  # the mix did include refusals
        assert routes == sim.routes
        assert labels == sim.output_labels
        for out in range(8):
            owner = sim.lock_owner.get(out)
            expected = (
                codec.LockState.UNLOCKED
                if owner is None
                else codec.LockState.OWNED
                if owner is a_session
                else codec.LockState.LOCKED
            )
            assert locks.get(out, codec.LockState.UNLOCKED) == expected, out
        await a.close()
        await b.close()
