"""WS-Discovery (OASIS 2005/04, as ONVIF Core §7 uses it): Probe, ProbeMatches, and I/O.

The codec part (``probe_message``, ``parse_probe_matches``, ``parse_probe``,
``probe_matches_message``) is pure bytes in / data out. ``discover`` sends a Probe for
``dn:NetworkVideoTransmitter`` to 239.255.255.250:3702 and gathers the unicast answers;
``Responder`` is the camera side (the fake camera runs it). Multicast does not work on
the loopback interface: test it across a veth pair (see tests/onvif/test_discovery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import uuid
from dataclasses import dataclass, field
from typing import cast
from xml.sax.saxutils import escape

from lxml import etree  # type: ignore[import-untyped]

GROUP = "239.255.255.250"
PORT = 3702
MAX_DATAGRAM = 65507
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
}
PROBE_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
MATCHES_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"
TO_DISCOVERY = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@dataclass(frozen=True, slots=True)
class Match:
    """One device's answer: its endpoint reference, service addresses and scopes."""

    endpoint: str
    xaddrs: tuple[str, ...]
    types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    sender: str = ""  # the IP address the answer came from

    def scope(self, kind: str) -> str:
        """The value of ``onvif://www.onvif.org/<kind>/<value>`` (e.g. name, hardware)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for s in self.scopes:
            if s.startswith(prefix):
                from urllib.parse import unquote

                return unquote(s[len(prefix) :]).replace("_", " ")
        return ""


@dataclass
class _Collector(asyncio.DatagramProtocol):
    message_id: str
    matches: dict[str, Match] = field(default_factory=dict)

    def datagram_received(self, data: bytes, addr: tuple[str | None, int]) -> None:
        for m in parse_probe_matches(data, self.message_id, str(addr[0])):
            self.matches.setdefault(m.endpoint, m)


def probe_message(message_id: str, types: str = "dn:NetworkVideoTransmitter") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" '
        f'xmlns:dn="{NS["dn"]}"><s:Header>'
        f"<a:Action>{PROBE_ACTION}</a:Action><a:MessageID>{escape(message_id)}</a:MessageID>"
        f"<a:To>{TO_DISCOVERY}</a:To></s:Header>"
        f"<s:Body><d:Probe><d:Types>{escape(types)}</d:Types></d:Probe></s:Body></s:Envelope>"
    ).encode()


def _root(data: bytes) -> etree._Element | None:
    if len(data) > MAX_DATAGRAM:
        return None
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return None


def parse_probe_matches(data: bytes, relates_to: str | None, sender: str = "") -> list[Match]:
    """The matches in a ProbeMatches datagram answering ``relates_to`` (others: [])."""
    root = _root(data)
    if root is None:
        return []
    if root.findtext("s:Header/a:Action", "", NS).strip() != MATCHES_ACTION:
        return []
    if relates_to is not None and root.findtext("s:Header/a:RelatesTo", "", NS).strip() != (
        relates_to
    ):
        return []
    out = []
    for pm in root.findall("s:Body/d:ProbeMatches/d:ProbeMatch", NS):
        endpoint = pm.findtext("a:EndpointReference/a:Address", "", NS).strip()
        xaddrs = tuple(pm.findtext("d:XAddrs", "", NS).split())
        if not endpoint or not xaddrs:
            continue
        out.append(
            Match(
                endpoint[:256],
                tuple(x[:512] for x in xaddrs[:8]),
                tuple(pm.findtext("d:Types", "", NS).split()[:16]),
                tuple(s[:256] for s in pm.findtext("d:Scopes", "", NS).split()[:64]),
                sender,
            )
        )
    return out


def parse_probe(data: bytes) -> tuple[str, list[str]] | None:
    """(message id, requested types) of a Probe; None for anything else."""
    root = _root(data)
    if root is None or root.findtext("s:Header/a:Action", "", NS).strip() != PROBE_ACTION:
        return None
    mid = root.findtext("s:Header/a:MessageID", "", NS).strip()
    if not mid:
        return None
    return mid, root.findtext("s:Body/d:Probe/d:Types", "", NS).split()


def probe_matches_message(
    relates_to: str, endpoint: str, xaddrs: list[str], scopes: list[str]
) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" '
        f'xmlns:dn="{NS["dn"]}"><s:Header>'
        f"<a:Action>{MATCHES_ACTION}</a:Action>"
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo><a:To>{ANONYMOUS}</a:To>"
        "</s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
        f"<a:EndpointReference><a:Address>{escape(endpoint)}</a:Address></a:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
        f"<d:Scopes>{escape(' '.join(scopes))}</d:Scopes>"
        f"<d:XAddrs>{escape(' '.join(xaddrs))}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion>"
        "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


async def discover(
    timeout_s: float = 3.0, interface: str | None = None, repeat: int = 2
) -> list[Match]:
    """Probe for ONVIF devices; ``interface`` is the local IPv4 address to send from."""
    loop = asyncio.get_running_loop()
    mid = f"urn:uuid:{uuid.uuid4()}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    if interface:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.bind((interface or "0.0.0.0", 0))
    sock.setblocking(False)
    transport, proto = await loop.create_datagram_endpoint(lambda: _Collector(mid), sock=sock)
    try:
        msg = probe_message(mid)
        # UDP may drop a datagram: send the probe more than once (the same MessageID, so
        # devices and we both treat repeats as one), as SOAP-over-UDP advises.
        for i in range(max(1, repeat)):
            transport.sendto(msg, (GROUP, PORT))
            await asyncio.sleep(min(0.1 * (i + 1), timeout_s / 4))
        await asyncio.sleep(timeout_s)
    finally:
        transport.close()
    return sorted(proto.matches.values(), key=lambda m: (m.sender, m.endpoint))


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | None, int]) -> None:
        probe = parse_probe(data)
        if probe is None or self.transport is None:
            return
        mid, types = probe
        if mid in self.responder.seen:
            return  # a repeat of a probe already answered
        self.responder.seen.add(mid)
        if len(self.responder.seen) > 1024:
            self.responder.seen.clear()
        if types and not any(t.endswith("NetworkVideoTransmitter") for t in types):
            return
        self.responder.probes += 1
        r = self.responder
        self.transport.sendto(probe_matches_message(mid, r.endpoint, r.xaddrs, r.scopes), addr)


class Responder:
    """Answers Probes on 239.255.255.250:3702 joined on the interface at ``address``."""

    def __init__(self, address: str, xaddrs: list[str], scopes: list[str]) -> None:
        self.address = address
        self.xaddrs = xaddrs
        self.scopes = scopes
        self.endpoint = f"urn:uuid:{uuid.uuid4()}"
        self.seen: set[str] = set()
        self.probes = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(AttributeError, OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", PORT))
        mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(self.address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Answer(self), sock=sock
        )
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
