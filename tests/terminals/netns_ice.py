"""ICE in a closed network, through a running daemon: the UDP port range, announced
addresses (through a 1:1 NAT), the site's STUN and TURN servers, and no packet for
anything but this host by default.

Runs only inside a loopback-only network namespace (test_ice.py starts it there). The
module adds a veth (10.99.0.1/24, its peer has no address) with the default route: a
packet for any address that is not this host's leaves through it, where an AF_PACKET
socket sees it (and the peer drops it). So "nothing left the host" is a count of zero on
that interface, and its address is a second host address for every session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from wallctl.store import Actor

from .conftest import NETNS_ENV, ClipTrack
from .netns_webrtc import (
    Centre,
    _ice,
    chromium_on,
    start_centre,
    wait_for,
    whep_view,
    whip_publish,
)

pytestmark = pytest.mark.skipif(
    os.environ.get(NETNS_ENV) != "1", reason="runs inside a netns (see test_ice.py)"
)

OUT = "wout0"  # the way out of this namespace's host: a veth whose peer goes nowhere
OUT_PEER = "wout1"
OUT_ADDRESS = "10.99.0.1"
# Not this host's: a packet for it can only leave through OUT.
OUTSIDE = "198.51.100.9"


@pytest.fixture(scope="module", autouse=True)
def way_out() -> Iterator[None]:
    if not Path(f"/sys/class/net/{OUT}").exists():
        subprocess.run(
            ["ip", "link", "add", OUT, "type", "veth", "peer", "name", OUT_PEER], check=True
        )
        for dev in (OUT, OUT_PEER):
            # No IPv6 (no router solicitations or MLD reports to count).
            Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6").write_text("1")
        for cmd in (
            ["ip", "addr", "add", f"{OUT_ADDRESS}/24", "dev", OUT],
            # No ARP: a packet for anywhere goes out at once, where the sniffer sees it.
            ["ip", "link", "set", OUT, "arp", "off"],
            ["ip", "link", "set", OUT_PEER, "up"],
            ["ip", "link", "set", OUT, "up"],
            ["ip", "route", "add", "default", "dev", OUT],
        ):
            subprocess.run(cmd, check=True)
    yield


class Sniffer:
    """Every packet sent out of OUT, i.e. towards anywhere but this host."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
        self.sock.bind((OUT, 0))
        self.sock.setblocking(False)

    def packets(self) -> list[tuple[str, int, int]]:
        """(destination, protocol, destination port) of the IPv4 packets seen so far."""
        out: list[tuple[str, int, int]] = []
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                return out
            if addr[2] != socket.PACKET_OUTGOING:
                continue
            if addr[1] != 0x0800 or len(data) < 24:
                out.append(("non-IPv4", addr[1], 0))
                continue
            header = (data[0] & 0x0F) * 4
            proto = data[9]
            port = struct.unpack("!H", data[header + 2 : header + 4])[0] if proto == 17 else 0
            out.append((socket.inet_ntoa(data[16:20]), proto, port))

    def close(self) -> None:
        self.sock.close()


def host_candidates(sdp: str) -> list[tuple[str, int]]:
    out = []
    for line in sdp.splitlines():
        parts = line.split()
        if line.startswith("a=candidate:") and parts[7] == "host":
            out.append((parts[4], int(parts[5])))
    return out


def candidates_of_type(sdp: str, kind: str) -> list[list[str]]:
    return [
        ln.split()
        for ln in sdp.splitlines()
        if ln.startswith("a=candidate:") and ln.split()[7] == kind
    ]


async def post_offer(base: str, path: str, token: str, offer: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            base + path,
            data=offer,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        return r.status, await r.text()


async def whip_offer(clip: Path) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(_ice())
    pc.addTransceiver(ClipTrack(clip), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


@pytest.fixture
async def ranged(tmp_path: Path) -> AsyncIterator[Centre]:
    c, task = await start_centre(
        tmp_path, ice_port_range=[21000, 21009], announced_addresses=["127.0.0.3"]
    )
    try:
        yield c
    finally:
        c.daemon.request_stop()
        await asyncio.wait_for(task, 30)


async def test_sessions_bind_in_the_range_announce_and_send_nothing_outside(
    ranged: Centre, clip: Path
) -> None:
    sniffer = Sniffer()
    try:
        token = ranged.terminals.add("patrol-1", "", Actor("test"))
        pc, offer = await whip_offer(clip)
        status, answer = await post_offer(ranged.base, "/whip/patrol-1", token, offer)
        assert status == 201, answer
        hosts = host_candidates(answer)
        # One per host address (lo's 127.0.0.2 and the veth's), each in the range, plus
        # the announced address at each of those ports.
        gathered = [h for h in hosts if h[0] != "127.0.0.3"]
        assert {a for a, _ in gathered} == {"127.0.0.2", OUT_ADDRESS}
        assert all(21000 <= port <= 21009 for _, port in hosts), hosts
        announced = sorted(p for a, p in hosts if a == "127.0.0.3")
        assert announced == sorted(p for _, p in gathered)
        # No server-reflexive or relayed candidate: no ICE server is configured.
        assert not candidates_of_type(answer, "srflx") + candidates_of_type(answer, "relay")
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        relay = ranged.comp.relay
        await wait_for(
            lambda: (p := relay.publication("patrol-1")) is not None and p.frames > 10,
            20,
            "frames through ports of the range",
        )
        # A WHEP viewer's session is in the range too, and gets pictures.
        viewer = await whep_view(ranged.base, "mobile/patrol-1", ranged.api_token)
        await wait_for(lambda: len(viewer.frames) >= 5, 20, "viewer frames")
        (viewer_session,) = relay.viewers.values()
        local = viewer_session.pc.localDescription.sdp
        assert host_candidates(local) and all(
            21000 <= p <= 21009 for _, p in host_candidates(local)
        )
        # A talkback leg (the terminal's loudspeaker) is in the range too.
        ear = RTCPeerConnection(_ice())
        ear.addTransceiver("audio", direction="recvonly")
        await ear.setLocalDescription(await ear.createOffer())
        status, leg_answer = await post_offer(
            ranged.base, "/whep/talkback/patrol-1", token, ear.localDescription.sdp
        )
        assert status == 201, leg_answer
        assert {a for a, _ in host_candidates(leg_answer)} == {
            "127.0.0.2",
            OUT_ADDRESS,
            "127.0.0.3",
        }
        assert all(21000 <= p <= 21009 for _, p in host_candidates(leg_answer))
        await ear.close()
        # Every socket the daemon's ICE bound is in the range.
        pub = relay.publication("patrol-1")
        assert pub is not None
        for session in (pub.pc, viewer_session.pc):
            for t in session.getTransceivers():
                conn = t.receiver.transport.transport.iceGatherer._connection
                for proto in conn._protocols:
                    assert 21000 <= proto.transport.get_extra_info("sockname")[1] <= 21009
        await viewer.pc.close()
        await pc.close()
        # Not one packet for anywhere but this host, from the daemon or its peers.
        assert sniffer.packets() == []
        # ... and the sniffer does see one that is sent elsewhere.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", (OUTSIDE, 9))
        await asyncio.sleep(0.1)
        assert (OUTSIDE, 17, 9) in sniffer.packets()
    finally:
        sniffer.close()


async def test_exhausted_range_refuses_with_503_and_recovers(
    tmp_path: Path, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Three ports; another program holds 21100 on 127.0.0.2: that address has two left.
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.2", 21100))
    centre, task = await start_centre(tmp_path, ice_port_range=[21100, 21102])
    pcs: list[RTCPeerConnection] = []
    try:
        tokens = {t: centre.terminals.add(t, "", Actor("test")) for t in ("a-1", "a-2", "a-3")}
        locations = {}
        for t in ("a-1", "a-2"):
            pc, location, _ = await whip_publish(centre.base, t, tokens[t], clip)
            pcs.append(pc)
            locations[t] = location
            local = centre.comp.relay.publication(t).pc.localDescription.sdp  # type: ignore[union-attr]
            assert ("127.0.0.2", 21100) not in host_candidates(local), "a port in use"
            assert all(21100 <= p <= 21102 for _, p in host_candidates(local))
        caplog.set_level(logging.ERROR, logger="wallctl.terminals.ice")
        pc3, offer = await whip_offer(clip)
        pcs.append(pc3)
        status, text = await post_offer(centre.base, "/whip/a-3", tokens["a-3"], offer)
        assert status == 503, text
        assert "no free UDP port for ICE on 127.0.0.2" in text
        assert "terminals.ice_port_range 21100-21102" in text
        (record,) = [
            r
            for r in caplog.records
            if r.name == "wallctl.terminals.ice" and r.levelno >= logging.ERROR
        ]
        assert record.getMessage() == "ice port range exhausted: offer refused"
        fields: dict[str, Any] = getattr(record, "wallctl_fields", {})
        assert fields["range"] == "21100-21102" and "widen" in fields["hint"]
        # Nothing else disturbed: the refused terminal is not publishing, the others
        # still deliver frames, and a viewer (which needs ports too) is refused alike.
        relay = centre.comp.relay
        assert relay.publication("a-3") is None and set(relay.publications) == {"a-1", "a-2"}
        before = relay.publication("a-1").frames  # type: ignore[union-attr]
        await wait_for(
            lambda: relay.publication("a-1").frames > before + 10,  # type: ignore[union-attr]
            10,
            "frames of a publication that holds ports",
        )
        vpc = RTCPeerConnection(_ice())
        vpc.addTransceiver("video", direction="recvonly")
        await vpc.setLocalDescription(await vpc.createOffer())
        pcs.append(vpc)
        status, text = await post_offer(
            centre.base, "/whep/mobile/a-1", centre.api_token, vpc.localDescription.sdp
        )
        assert status == 503 and "ice_port_range" in text
        assert relay.viewers == {}
        # A session that ends gives its ports back.
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {tokens['a-1']}"}
            r = await s.delete(centre.base + locations["a-1"], headers=auth)
            assert r.status == 200
        await asyncio.sleep(0.5)  # the closing task releases its sockets
        pc4, offer4 = await whip_offer(clip)
        pcs.append(pc4)
        status, text = await post_offer(centre.base, "/whip/a-3", tokens["a-3"], offer4)
        assert status == 201, text
        assert relay.publication("a-3") is not None
    finally:
        for pc in pcs:
            await pc.close()
        squatter.close()
        centre.daemon.request_stop()
        await asyncio.wait_for(task, 30)


class StunServer(asyncio.DatagramProtocol):
    """A site's STUN server (RFC 8489 Binding): answers each request with the address a
    NAT in front of the centre would show (MAPPED_HOST) and the request's own port."""

    MAPPED_HOST = "203.0.113.5"
    COOKIE = 0x2112A442

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20 or data[:2] != b"\x00\x01" or data[4:8] != struct.pack("!I", self.COOKIE):
            return
        self.requests.append(addr)
        txid = data[8:20]
        host = struct.unpack("!I", socket.inet_aton(self.MAPPED_HOST))[0] ^ self.COOKIE
        value = struct.pack("!BBHI", 0, 1, addr[1] ^ (self.COOKIE >> 16), host)
        attr = struct.pack("!HH", 0x0020, len(value)) + value  # XOR-MAPPED-ADDRESS
        header = struct.pack("!HHI", 0x0101, len(attr), self.COOKIE) + txid
        self.transport.sendto(header + attr, addr)


class TurnServer(asyncio.DatagramProtocol):
    """A site's TURN server that refuses every allocation (403): enough to see that the
    daemon asks it (RFC 8656 Allocate) and carries on with its other candidates."""

    COOKIE = StunServer.COOKIE

    def __init__(self) -> None:
        self.allocations = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20 or data[:2] != b"\x00\x03":  # Allocate request
            return
        self.allocations += 1
        reason = b"Forbidden"
        value = struct.pack("!HBB", 0, 4, 3) + reason  # ERROR-CODE 403
        attr = struct.pack("!HH", 0x0009, len(value)) + value + b"\x00" * (-len(value) % 4)
        header = struct.pack("!HHI", 0x0113, len(attr), self.COOKIE) + data[8:20]
        self.transport.sendto(header + attr, addr)


async def test_the_sites_stun_and_turn_servers_are_asked_stun_from_the_range(
    tmp_path: Path, clip: Path
) -> None:
    loop = asyncio.get_running_loop()
    transport, stun = await loop.create_datagram_endpoint(StunServer, local_addr=(OUT_ADDRESS, 0))
    port = transport.get_extra_info("sockname")[1]
    turn_t, turn = await loop.create_datagram_endpoint(TurnServer, local_addr=(OUT_ADDRESS, 0))
    turn_port = turn_t.get_extra_info("sockname")[1]
    centre, task = await start_centre(
        tmp_path,
        ice_port_range=[21200, 21209],
        ice_servers=[
            {"urls": [f"stun:{OUT_ADDRESS}:{port}"]},
            {"urls": [f"turn:{OUT_ADDRESS}:{turn_port}"], "username": "u", "credential": "p"},
        ],
    )
    try:
        token = centre.terminals.add("patrol-2", "", Actor("test"))
        pc, offer = await whip_offer(clip)
        t0 = asyncio.get_running_loop().time()
        status, answer = await post_offer(centre.base, "/whip/patrol-2", token, offer)
        assert status == 201, answer
        # The TURN server was asked too; its refusal costs no more than its answer.
        assert turn.allocations >= 1
        assert not candidates_of_type(answer, "relay")
        assert asyncio.get_running_loop().time() - t0 < 4
        # Asked from each IPv4 host socket, all in the range ...
        assert stun.requests and all(21200 <= p <= 21209 for _, p in stun.requests)
        # ... and its answer is in the SDP: a server-reflexive candidate at the mapped
        # address, whose base is a host candidate of the range.
        srflx = candidates_of_type(answer, "srflx")
        assert srflx, answer
        for c in srflx:
            assert c[4] == StunServer.MAPPED_HOST and 21200 <= int(c[5]) <= 21209
            assert (c[9], int(c[11])) in host_candidates(answer)  # raddr, rport
        await pc.close()
    finally:
        transport.close()
        turn_t.close()
        centre.daemon.request_stop()
        await asyncio.wait_for(task, 30)


class OneToOneNat:
    """A 1:1 NAT in user space: datagrams to ``public`` go on to ``private`` and the
    answers come back from ``public``, as a site's NAT forwards an announced address."""

    def __init__(self) -> None:
        self.inbound = 0  # datagrams to the centre
        self.outbound = 0  # datagrams from it

    async def start(self, public: tuple[str, int], private: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        nat = self
        peer: list[tuple[str, int]] = []

        class Inside(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if peer:
                    nat.outbound += 1
                    outside_t.sendto(data, peer[0])

        class Outside(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not peer:
                    peer.append(addr)
                nat.inbound += 1
                inside_t.sendto(data, private)

        inside_t, _ = await loop.create_datagram_endpoint(Inside, local_addr=(public[0], 0))
        outside_t, _ = await loop.create_datagram_endpoint(Outside, local_addr=public)
        self.transports = [inside_t, outside_t]

    def close(self) -> None:
        for t in self.transports:
            t.close()


async def test_a_viewer_reaches_the_centre_through_its_announced_address_only(
    ranged: Centre, clip: Path
) -> None:
    token = ranged.terminals.add("patrol-3", "", Actor("test"))
    pub_pc, _, _ = await whip_publish(ranged.base, "patrol-3", token, clip)
    relay = ranged.comp.relay
    await wait_for(
        lambda: (p := relay.publication("patrol-3")) is not None and p.frames > 3, 20, "frames"
    )
    pc = RTCPeerConnection(_ice())
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    # The centre cannot reach the viewer directly (its candidates point nowhere), so it
    # learns the viewer only from checks that come through the NAT.
    offer = pc.localDescription.sdp
    for address in ("127.0.0.2", OUT_ADDRESS):
        offer = offer.replace(f" {address} ", " 127.0.0.4 ")
    status, answer = await post_offer(ranged.base, "/whep/mobile/patrol-3", ranged.api_token, offer)
    assert status == 201, answer
    # The viewer sees only the announced address (127.0.0.3, on no interface: the NAT's
    # public side), as a viewer outside would.
    (port,) = {p for a, p in host_candidates(answer) if a == "127.0.0.2"}
    only_announced = "\r\n".join(
        ln
        for ln in answer.split("\r\n")
        if not ln.startswith("a=candidate:") or " 127.0.0.3 " in ln
    )
    nat = OneToOneNat()
    await nat.start(("127.0.0.3", port), ("127.0.0.2", port))
    frames: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def pull() -> None:
            while True:
                try:
                    frames.append(await track.recv())
                except Exception:
                    return

        tasks.append(asyncio.create_task(pull()))

    try:
        await pc.setRemoteDescription(RTCSessionDescription(only_announced, "answer"))
        await wait_for(lambda: len(frames) >= 5, 20, "frames through the announced address")
        # Checks, DTLS and RTCP in; checks, DTLS and every video packet out.
        assert nat.inbound >= 3 and nat.outbound > 20
        pair = pc.getTransceivers()[0].receiver.transport.transport._connection._nominated[1]
        assert pair.remote_candidate.host == "127.0.0.3"
        # And the centre's side of it is the NAT's inside address, not the viewer's.
        (viewer,) = ranged.comp.relay.viewers.values()
        conn = viewer.pc.getTransceivers()[0].receiver.transport.transport._connection
        assert conn._nominated[1].remote_candidate.host == "127.0.0.3"
    finally:
        await pc.close()
        await pub_pc.close()
        nat.close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
async def test_chromium_publishes_through_ports_of_the_range(
    ranged: Centre, tmp_path: Path
) -> None:
    token = ranged.terminals.add("phone-9", "", Actor("test"))
    relay = ranged.comp.relay
    query = {"whip": f"{ranged.base}/whip/phone-9", "token": token}
    async with chromium_on("publish.html", query, tmp_path / "profile"):
        await wait_for(
            lambda: (p := relay.publication("phone-9")) is not None and p.frames > 20,
            40,
            "H.264 from Chromium",
        )
        pub = relay.publication("phone-9")
        assert pub is not None
        # Chromium bundles its camera and microphone: one ICE transport, whose every
        # candidate and the pair it chose are on ports of the range.
        local = pub.pc.localDescription.sdp
        assert all(21000 <= p <= 21009 for _, p in host_candidates(local))
        conn = pub.pc.getTransceivers()[0].receiver.transport.transport._connection
        (pair,) = conn._nominated.values()
        assert 21000 <= pair.local_candidate.port <= 21009
