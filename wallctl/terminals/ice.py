"""ICE for closed networks: the site's own servers, and host candidates in a UDP port range.

Every peer connection of the terminals (WHIP publishers, WHEP viewers, talkback legs)
is made by :meth:`IcePolicy.peer_connection`:

- ICE servers are the configured ones only. aiortc's default is a public STUN server,
  which a government network cannot reach (and must not be asked).
- With ``terminals.ice_port_range``, every host candidate is bound in that range, for
  a firewall that opens a range of UDP ports to the centre. aioice (0.13) has no such
  option: ``Connection.get_component_candidates`` binds ``(address, 0)``. This module,
  and only this one, replaces that method on each connection it makes with one that
  tries the range's ports in turn, skips those in use (by another session or another
  program), and raises :class:`IcePortsExhausted` when none is free; the relay answers
  the offer with 503 and the reason. Server-reflexive (STUN) candidates are asked for on
  the same sockets, so they too map ports of the range; a TURN allocation keeps aioice's
  own client socket (the firewall rule for TURN is the TURN server's address and port).
- ``announced_addresses`` are added to the answer as further host candidates (same
  ports) by the relay (``sdp.announce_addresses``).

One session takes one port of the range on each local address per ICE transport (one
with BUNDLE, as browsers and aiortc offer); addresses bind independently, so a range of N
ports holds N sessions at once (fewer if other programs hold some of its ports).
Ports are handed out round-robin, so a port just released is not reused at once (late
packets of an old session then reach no one rather than a new session's socket).

Tested against aioice 0.13 and aiortc 1.16 (pyproject pins both); tests/terminals/
test_ice.py fails loudly when any of this changes underneath, and
:func:`check_internals` refuses to start the daemon with a port range on a version whose
internals moved.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import ipaddress
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aioice
import aioice.ice
import aioice.turn
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from wallctl.logs import get_logger
from wallctl.terminals.config import TerminalsConfig

log = get_logger("wallctl.terminals.ice")

# The method of aioice.Connection that binds host candidates (and asks STUN/TURN).
_GATHER = "get_component_candidates"
# Marks a connection whose gathering this module already replaced.
_MARK = "_wallctl_port_range"
# The kernel's range for ports picked by bind(port 0) and outgoing connections: another
# program's socket may hold a port of an ICE range that overlaps it.
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

# Ports tried between two yields to the event loop while scanning a busy range.
SCAN_YIELD_EVERY = 1024

Gather = Callable[..., Coroutine[Any, Any, list[Candidate]]]


class IceUnsupported(RuntimeError):
    """aioice or aiortc changed: the port range cannot be applied as this module expects."""


class IcePortsExhausted(Exception):
    """Every port of the range is in use for an address: the session is refused (503)."""

    def __init__(self, ports: PortRange, address: str) -> None:
        self.ports = ports
        self.address = address
        super().__init__(
            f"no free UDP port for ICE on {address} in terminals.ice_port_range "
            f"{ports} (all {len(ports)} in use by other sessions or programs): "
            "try again when a session ends"
        )


def check_internals() -> None:
    """Raise IceUnsupported unless aioice and aiortc look as this module relies on."""
    method = getattr(aioice.Connection, _GATHER, None)
    if method is None or not inspect.iscoroutinefunction(method):
        raise IceUnsupported(
            f"aioice.Connection has no coroutine {_GATHER}: update "
            "wallctl/terminals/ice.py for this aioice version"
        )
    params = list(inspect.signature(method).parameters)
    if params[:3] != ["self", "component", "addresses"] or "timeout" not in params:
        raise IceUnsupported(f"aioice.Connection.{_GATHER} takes {params}, not the 0.13 ones")
    for name in ("StunProtocol", "server_reflexive_candidate"):
        if not callable(getattr(aioice.ice, name, None)):
            raise IceUnsupported(f"aioice.ice has no {name}")
    probe = aioice.Connection(ice_controlling=False)
    for attr in ("_protocols", "stun_server", "turn_server"):
        if not hasattr(probe, attr):
            raise IceUnsupported(f"aioice.Connection has no {attr}")
    from aiortc.rtcicetransport import RTCIceGatherer

    gatherer = RTCIceGatherer(iceServers=[])
    if not isinstance(getattr(gatherer, "_connection", None), aioice.Connection):
        raise IceUnsupported("aiortc's RTCIceGatherer has no aioice Connection in _connection")


class PortRange:
    """The UDP ports host candidates are bound in, handed out round-robin."""

    def __init__(self, first: int, last: int) -> None:
        if not 0 < first <= last <= 65535:
            raise ValueError(f"not a port range: {first}-{last}")
        self.first = first
        self.last = last
        self._next = first

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def candidates(self) -> list[int]:
        """Every port, starting after the one handed out last."""
        start = self._next - self.first
        return [self.first + (start + i) % len(self) for i in range(len(self))]

    async def bind(
        self, factory: Callable[[], asyncio.DatagramProtocol], address: str
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """A datagram endpoint on ``address`` at the first free port of the range."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # One socket tried at each port (a failed bind leaves it unbound): about 4 us
            # a port, so even a full range of 64512 is scanned in a fraction of a second,
            # yielding to the loop now and then.
            for n, port in enumerate(self.candidates()):
                if n and n % SCAN_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                try:
                    sock.bind((address, port))
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        continue
                    raise
                self._next = port + 1 if port < self.last else self.first
                break
            else:
                raise IcePortsExhausted(self, address)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            return await loop.create_datagram_endpoint(factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    def overlaps_ephemeral(self, path: Path = EPHEMERAL_RANGE) -> tuple[int, int] | None:
        """The kernel's ephemeral range when it overlaps this one, else None."""
        try:
            low, high = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            return None
        return (low, high) if low <= self.last and self.first <= high else None


def ranged_gathering(connection: aioice.Connection, ports: PortRange) -> None:
    """Make ``connection`` bind its host candidates in ``ports`` (before it gathers)."""
    if getattr(connection, _MARK, None) is ports:
        return
    original: Gather | None = getattr(connection, _GATHER, None)
    if original is None or not hasattr(connection, "_protocols"):
        raise IceUnsupported(f"aioice.Connection has no {_GATHER} or _protocols")

    # aioice's signature, ``timeout`` included (it bounds the STUN and TURN requests).
    async def gather(
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109
    ) -> list[Candidate]:
        bound: list[aioice.ice.StunProtocol] = []
        try:
            for address in addresses:
                try:
                    transport, protocol = await ports.bind(
                        lambda: aioice.ice.StunProtocol(connection), address
                    )
                except OSError as e:
                    # As aioice does: an address that cannot be bound gives no candidate.
                    log.warning("ice address skipped", address=address, error=str(e))
                    continue
                assert isinstance(protocol, aioice.ice.StunProtocol)
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # aioice's receive buffer: a burst of a keyframe must not overflow it.
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE
                    )
                host, port = transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host,
                    port=port,
                    type="host",
                )
                bound.append(protocol)
        except IcePortsExhausted as e:
            for p in bound:
                p.transport.close()
            log.error(
                "ice port range exhausted: offer refused",
                range=str(ports),
                ports=len(ports),
                address=e.address,
                hint="widen terminals.ice_port_range (and the firewall rule) or lower "
                "terminals.max_publishers / max_viewers",
            )
            raise
        connection._protocols += bound
        candidates = [p.local_candidate for p in bound]

        # STUN on the sockets just bound (IPv4 only, as aioice does), so a server-
        # reflexive candidate maps a port of the range; TURN by aioice itself (no host
        # addresses given, it only allocates the relayed candidate).
        reflexive: list[asyncio.Task[tuple[Candidate, None]]] = []
        stun = connection.stun_server
        if stun is not None:
            for p in bound:
                if ipaddress.ip_address(p.local_candidate.host).version == 4:
                    reflexive.append(
                        asyncio.create_task(aioice.ice.server_reflexive_candidate(p, stun))
                    )
        relayed: list[Candidate] = []
        if connection.turn_server is not None:
            relayed = await original(component=component, addresses=[], timeout=timeout)
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is None:
                    candidates.append(task.result()[0])
                else:
                    log.warning(
                        "stun server did not answer",
                        server=f"{stun[0]}:{stun[1]}" if stun else "",
                        error=str(task.exception()),
                    )
        return candidates + relayed

    setattr(connection, _GATHER, gather)
    setattr(connection, _MARK, ports)


class RangedPeerConnection(RTCPeerConnection):
    """An RTCPeerConnection whose ICE transports bind host candidates in ``ports``.

    aiortc gathers in setLocalDescription, on the ICE transports that addTransceiver
    and setRemoteDescription made; each is prepared just before."""

    def __init__(self, configuration: RTCConfiguration, ports: PortRange) -> None:
        super().__init__(configuration)
        self.ice_ports = ports

    async def setLocalDescription(
        self, sessionDescription: RTCSessionDescription | None = None
    ) -> None:
        for connection in ice_connections(self):
            ranged_gathering(connection, self.ice_ports)
        await super().setLocalDescription(sessionDescription)


def ice_connections(pc: RTCPeerConnection) -> list[aioice.Connection]:
    """The aioice connections of ``pc``'s ICE transports (media and data channel)."""
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    out: list[aioice.Connection] = []
    for d in dtls:
        if d is None:
            continue
        connection = getattr(d.transport.iceGatherer, "_connection", None)
        if not isinstance(connection, aioice.Connection):
            raise IceUnsupported("aiortc's RTCIceGatherer has no aioice Connection")
        if connection not in out:
            out.append(connection)
    return out


class IcePolicy:
    """How the terminals' peer connections do ICE, from ``[terminals]``."""

    def __init__(self, config: TerminalsConfig) -> None:
        self.config = config
        self.ports: PortRange | None = None
        if config.ice_port_range is not None:
            check_internals()
            first, last = config.ice_port_range
            self.ports = PortRange(first, last)
            log.info("ice host candidates in a port range", range=str(self.ports))
            if len(self.ports) < config.max_publishers:
                # Each publisher holds a port per local address: the range, not
                # max_publishers, is then what limits them.
                log.warning(
                    "ice port range smaller than terminals.max_publishers",
                    range=str(self.ports),
                    ports=len(self.ports),
                    max_publishers=config.max_publishers,
                    hint="offers beyond the range are refused with 503",
                )
            overlap = self.ports.overlaps_ephemeral()
            if overlap is not None:
                # Not an error: bind skips ports taken; but an operator should know why
                # the range may hold fewer sessions than its size.
                log.warning(
                    "ice port range overlaps the kernel's ephemeral ports",
                    range=str(self.ports),
                    ephemeral=f"{overlap[0]}-{overlap[1]}",
                    hint="other programs' sockets may take ports of the range; "
                    "choose ports outside net.ipv4.ip_local_port_range",
                )

    def configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(
                urls=s.urls,
                username=s.username,
                credential=s.credential.get_secret_value() if s.credential else None,
            )
            for s in self.config.ice_servers
        ]
        # Never aiortc's default (a public STUN server): closed networks have none.
        return RTCConfiguration(iceServers=servers)

    def peer_connection(self) -> RTCPeerConnection:
        if self.ports is None:
            return RTCPeerConnection(self.configuration())
        return RangedPeerConnection(self.configuration(), self.ports)
