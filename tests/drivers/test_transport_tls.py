"""TLS on an open link: a device that talks in clear, agrees to switch, then speaks TLS.

The peer is a real TCP server that upgrades its side with ``StreamWriter.start_tls``
after answering ``starttls``; it tags every later answer with whether the line came in
over TLS, so a test cannot pass on a link that silently stayed in clear.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import DriverStatus
from drivers.errors import BadConfig, DeviceOffline
from drivers.simulator import DeviceSimulator, SimSession, serve_pty
from drivers.transport import SerialEndpoint, TcpEndpoint, open_transport

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pki:
    cert_pem: bytes
    server: ssl.SSLContext


def make_pki(tmp: Path, host: str = "127.0.0.1") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secured display")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return Pki(cert.public_bytes(serialization.Encoding.PEM), server)


def trusting(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pki.cert_pem.decode())


@dataclass
class UpgradingServer:
    """Answers ``x`` with ``clear x`` or ``tls x``; ``starttls`` switches after ``go``."""

    pki: Pki
    port: int = 0
    lines: list[tuple[str, bool]] = field(default_factory=list)
    handshake_errors: list[str] = field(default_factory=list)
    # "refuse": answer starttls with "no"; "stall": say go, then never handshake.
    mode: str = "ok"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                text = line.strip().decode()
                tls = writer.get_extra_info("ssl_object") is not None
                self.lines.append((text, tls))
                if text == "starttls" and not tls:
                    if self.mode == "refuse":
                        writer.write(b"no starttls\n")
                        continue
                    writer.write(b"go starttls\n")
                    await writer.drain()
                    if self.mode == "stall":
                        await reader.read()  # until the client gives up and hangs up
                        return
                    try:
                        await writer.start_tls(self.pki.server)
                    except (ssl.SSLError, OSError) as e:
                        self.handshake_errors.append(type(e).__name__)
                        return
                    continue
                writer.write(f"{'tls' if tls else 'clear'} {text}\n".encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def upgrading(tmp_path: Path) -> AsyncIterator[UpgradingServer]:
    srv = UpgradingServer(make_pki(tmp_path))
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.port = server.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        server.close()
        await server.wait_closed()


class LineCodec:
    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [line.decode() for line in lines]


def answer_to(word: str) -> Callable[[str], Reply]:
    return lambda e: Reply.DONE if e.split(" ", 1)[-1] == word else Reply.OTHER


def secured_link(
    port: int, ctx: ssl.SSLContext, **kw: Any
) -> tuple[Connection[str], list[tuple[DriverStatus, str]]]:
    statuses: list[tuple[DriverStatus, str]] = []
    tls_within_s = kw.pop("tls_within_s", 3.0)
    conn: Connection[str]

    async def on_connect() -> None:
        go = await conn.request(b"starttls\n", answer_to("starttls"), early=True)
        if not go.startswith("go "):
            raise BadConfig(f"device refused TLS: {go}")
        await conn.start_tls(ctx, within_s=tls_within_s)

    conn = Connection[str](
        "secured",
        TcpEndpoint("127.0.0.1", port),
        LineCodec,
        on_event=lambda e: None,
        on_status=lambda s, d: statuses.append((s, d)),
        on_connect=on_connect,
        **kw,
    )
    conn.backoff = Backoff(initial=0.05, cap=0.2)
    return conn, statuses


async def _run(conn: Connection[str]) -> asyncio.Task[None]:
    return asyncio.create_task(conn.run())


async def _stop(conn: Connection[str], task: asyncio.Task[None]) -> None:
    await conn.stop()
    await asyncio.wait_for(task, 10)


async def test_on_connect_upgrades_and_requests_flow_over_tls(
    upgrading: UpgradingServer,
) -> None:
    conn, statuses = secured_link(upgrading.port, trusting(upgrading.pki))
    task = await _run(conn)
    try:
        assert await conn.wait_ready(10)
        assert conn.tls
        for word in ("power", "input", "x" * 3000):
            assert await conn.request(f"{word}\n".encode(), answer_to(word)) == f"tls {word}"
        assert upgrading.lines[0] == ("starttls", False)
        assert all(tls for _, tls in upgrading.lines[1:])
        assert statuses[-1][0] is DriverStatus.OK
    finally:
        await _stop(conn, task)


async def test_untrusted_certificate_is_bad_config_and_nothing_leaks(
    upgrading: UpgradingServer,
) -> None:
    # The system trust store does not know the device's self-signed certificate.
    conn, statuses = secured_link(upgrading.port, ssl.create_default_context())
    task = await _run(conn)
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not any(s is DriverStatus.BAD_CONFIG for s, _ in statuses):
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.02)
        detail = next(d for s, d in statuses if s is DriverStatus.BAD_CONFIG)
        assert "TLS certificate is not trusted" in detail
        assert not conn.ready
        # Only the clear request to switch was ever sent (once per attempt): no command
        # went out over an unverified link.
        assert {text for text, _ in upgrading.lines} == {"starttls"}
        with pytest.raises(DeviceOffline):
            await conn.request(b"power\n", answer_to("power"))
    finally:
        await _stop(conn, task)


async def test_device_that_never_handshakes_times_out_and_is_retried(
    upgrading: UpgradingServer,
) -> None:
    upgrading.mode = "stall"
    conn, statuses = secured_link(upgrading.port, trusting(upgrading.pki), tls_within_s=0.3)
    task = await _run(conn)
    try:
        deadline = asyncio.get_running_loop().time() + 10
        # Reconnected by itself: a second link opened after the failed handshake.
        while conn.connects < 2:
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.02)
        failures = [d for s, d in statuses if s is DriverStatus.CONNECTION_FAILURE]
        assert failures and "TLS handshake timed out" in failures[0]
    finally:
        await _stop(conn, task)


async def test_transport_refuses_tls_twice_and_on_serial(
    upgrading: UpgradingServer, tmp_path: Path
) -> None:
    t = await open_transport(TcpEndpoint("127.0.0.1", upgrading.port))
    try:
        await t.write(b"starttls\n")
        assert await t.read() == b"go starttls\n"
        await t.start_tls(trusting(upgrading.pki))
        assert t.tls
        with pytest.raises(ValueError, match="already TLS"):
            await t.start_tls(trusting(upgrading.pki))
        await t.write(b"ping\n")
        assert await t.read() == b"tls ping\n"
    finally:
        await t.close()

    class Quiet(DeviceSimulator):
        def on_data(self, session: SimSession, data: bytes) -> None:
            pass

    srv = await serve_pty(Quiet(), None)
    try:
        serial = await open_transport(SerialEndpoint(srv.path, 9600))
        try:
            with pytest.raises(ValueError, match="needs a TCP link"):
                await serial.start_tls(trusting(upgrading.pki))
        finally:
            await serial.close()
    finally:
        await srv.close()
