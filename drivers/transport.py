"""Where a driver's bytes go: a TCP socket or a serial line, behind one interface.

An :class:`Endpoint` says where (``TcpEndpoint(host, port)`` or ``SerialEndpoint(path,
baud, ...)``); :func:`open_transport` opens it and returns a :class:`Transport` with
``read``/``write``/``close``. Both kinds are asyncio streams underneath (serial through
pyserial-asyncio-fast), so the connection logic above never knows which one it has.
"""

from __future__ import annotations

import asyncio
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

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except (TimeoutError, ConnectionError, OSError):
            pass


async def open_transport(endpoint: Endpoint, within_s: float = 5.0) -> Transport:
    """Open ``endpoint``; raises OSError (refused, unreachable, no such port) or TimeoutError."""
    if isinstance(endpoint, TcpEndpoint):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), within_s
        )
        return Transport(reader, writer, endpoint)
    try:
        reader, writer = await asyncio.wait_for(
            serial_asyncio_fast.open_serial_connection(
                url=endpoint.path,
                baudrate=endpoint.baud,
                bytesize=endpoint.bytesize,
                parity=endpoint.parity,
                stopbits=endpoint.stopbits,
                exclusive=True,
            ),
            within_s,
        )
    except OSError:
        raise
    except Exception as e:  # pyserial raises SerialException (an IOError subclass) or ValueError
        raise OSError(str(e)) from e
    return Transport(reader, writer, endpoint)
