"""Where a driver's bytes go: a TCP socket or a serial line, behind one interface.

An :class:`Endpoint` says where (``TcpEndpoint(host, port)`` or ``SerialEndpoint(path,
baud, ...)``); :func:`open_transport` opens it and returns a :class:`Transport` with
``read``/``write``/``close``. Both kinds are asyncio streams underneath (serial through
pyserial-asyncio-fast), so the connection logic above never knows which one it has.

A TCP link can be upgraded to TLS where it stands (:meth:`Transport.start_tls`), for
devices that talk in clear first and then switch, e.g. Samsung's "secured protocol"
displays (``MDCSTART<<TLS>>``). Reads already waiting go on, decrypted.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Literal

import serial_asyncio_fast

READ_CHUNK = 4096


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int

    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class SerialEndpoint:
    path: str
    baud: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    def describe(self) -> str:
        return f"serial://{self.path}@{self.baud}/{self.bytesize}{self.parity}{self.stopbits}"


Endpoint = TcpEndpoint | SerialEndpoint


class Transport:
    """An open byte stream to a device."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: Endpoint
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.endpoint = endpoint
        self.tls = False

    async def read(self) -> bytes:
        """The next bytes from the device; ``b""`` when the link has closed."""
        try:
            return await self._reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        """Send ``data``; raises ConnectionError/OSError when the link is gone."""
        if self._writer.is_closing():
            raise ConnectionResetError("link closed")
        self._writer.write(data)
        await self._writer.drain()

    async def start_tls(
        self,
        ctx: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        within_s: float = 10.0,
    ) -> None:
        """Upgrade this open TCP link to TLS (client side) where it stands.

        ``server_hostname`` defaults to the endpoint's host when ``ctx`` checks host
        names. Raises ``ssl.SSLError`` (``SSLCertVerificationError`` for an untrusted
        certificate), ``OSError`` or ``TimeoutError``; ``ValueError`` on a serial line or
        a link that is already TLS. The peer must not send application data between its
        go-ahead and the handshake (no device protocol does).
        """
        if not isinstance(self.endpoint, TcpEndpoint):
            raise ValueError("TLS needs a TCP link, not a serial line")
        if self.tls:
            raise ValueError("the link is already TLS")
        if self._writer.is_closing():
            raise ConnectionResetError("link closed")
        if server_hostname is None and ctx.check_hostname:
            server_hostname = self.endpoint.host
        async with asyncio.timeout(within_s):
            await self._writer.start_tls(
                ctx, server_hostname=server_hostname, ssl_handshake_timeout=within_s
            )
        self.tls = True

    async def close(self) -> None:
        self._writer.close()
        try:
            async with asyncio.timeout(2.0):
                await self._writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            pass


async def open_transport(endpoint: Endpoint, within_s: float = 5.0) -> Transport:
    """Open ``endpoint``; raises OSError (refused, unreachable, no such port) or TimeoutError."""
    # asyncio.timeout rather than wait_for: on 3.11 wait_for loses a cancellation that
    # arrives as the connection completes (and leaks the stream it opened).
    if isinstance(endpoint, TcpEndpoint):
        async with asyncio.timeout(within_s):
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        return Transport(reader, writer, endpoint)
    try:
        async with asyncio.timeout(within_s):
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=endpoint.path,
                baudrate=endpoint.baud,
                bytesize=endpoint.bytesize,
                parity=endpoint.parity,
                stopbits=endpoint.stopbits,
                exclusive=True,
            )
    except OSError:
        raise
    except Exception as e:  # pyserial raises SerialException (an IOError subclass) or ValueError
        raise OSError(str(e)) from e
    return Transport(reader, writer, endpoint)
