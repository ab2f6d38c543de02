"""Message transports: netstrings over TCP or TLS, and a small RFC 6455 WebSocket client.

Both carry one JSON-RPC message per frame. The WebSocket client is written on the standard
library only (asyncio streams, ``ssl``), so the package needs no dependency.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import struct
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from .netstring import DEFAULT_MAX_FRAME, Decoder, NetstringError, encode

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class TransportError(ConnectionError):
    """The peer broke the framing or the WebSocket protocol."""


class Transport:
    """One connection that sends and receives whole messages."""

    async def send(self, message: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def recv(self) -> Optional[bytes]:  # pragma: no cover - interface
        """The next message, or ``None`` once the peer closed the connection."""
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class NetstringTransport(Transport):
    """Netstring frames on a stream (TCP or TLS)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = Decoder(max_frame)
        self._pending: List[bytes] = []
        self._lock = asyncio.Lock()

    async def send(self, message: bytes) -> None:
        async with self._lock:
            self._writer.write(encode(message))
            await self._writer.drain()

    async def recv(self) -> Optional[bytes]:
        while not self._pending:
            data = await self._reader.read(65536)
            if not data:
                return None
            try:
                self._pending.extend(self._decoder.feed(data))
            except NetstringError as e:
                raise TransportError(str(e)) from e
        return self._pending.pop(0)

    async def close(self) -> None:
        await _close_writer(self._writer)


class WebSocketTransport(Transport):
    """Text frames on a WebSocket connection (client side: frames are masked)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max = max_frame
        self._lock = asyncio.Lock()
        self._closed = False

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack("!H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", n)
        mask = os.urandom(4)
        header += mask
        masked = _mask(payload, mask)
        async with self._lock:
            self._writer.write(bytes(header) + masked)
            await self._writer.drain()

    async def send(self, message: bytes) -> None:
        await self._send_frame(0x1, message)

    async def _read_frame(self) -> Tuple[bool, int, bytes]:
        head = await self._reader.readexactly(2)
        fin = bool(head[0] & 0x80)
        opcode = head[0] & 0x0F
        masked = bool(head[1] & 0x80)
        n = head[1] & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
        if n > self._max:
            raise TransportError(f"WebSocket frame of {n} bytes exceeds the limit of {self._max}")
        mask = await self._reader.readexactly(4) if masked else None
        payload = await self._reader.readexactly(n)
        if mask:
            payload = _mask(payload, mask)
        return fin, opcode, payload

    async def recv(self) -> Optional[bytes]:
        message = bytearray()
        started = False
        while True:
            try:
                fin, opcode, payload = await self._read_frame()
            except asyncio.IncompleteReadError:
                return None
            if opcode == 0x8:  # close: answer it and report the end
                if not self._closed:
                    self._closed = True
                    try:
                        await self._send_frame(0x8, payload[:2])
                    except (ConnectionError, OSError):
                        pass
                return None
            if opcode == 0x9:  # ping
                await self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode in (0x1, 0x2):
                if started:
                    raise TransportError("WebSocket data frame inside a fragmented message")
                started = True
            elif opcode == 0x0:
                if not started:
                    raise TransportError("WebSocket continuation frame without a message")
            else:
                raise TransportError(f"unknown WebSocket opcode {opcode}")
            message += payload
            if len(message) > self._max:
                raise TransportError(f"WebSocket message exceeds the limit of {self._max}")
            if fin:
                return bytes(message)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self._send_frame(0x8, struct.pack("!H", 1000))
            except (ConnectionError, OSError, RuntimeError):
                pass
        await _close_writer(self._writer)


def _mask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError, ssl.SSLError):
        pass


async def open_netstring(
    host: str,
    port: int,
    ssl_context: Optional[ssl.SSLContext] = None,
    server_hostname: Optional[str] = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> NetstringTransport:
    """Connects over TCP, or TLS when ``ssl_context`` is given."""
    kwargs = {}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["server_hostname"] = server_hostname or host
    reader, writer = await asyncio.open_connection(host, port, limit=2**20, **kwargs)
    return NetstringTransport(reader, writer, max_frame)


async def open_websocket(
    url: str,
    ssl_context: Optional[ssl.SSLContext] = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> WebSocketTransport:
    """Connects to a ``ws://`` or ``wss://`` URL and performs the opening handshake."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    host = parts.hostname or "localhost"
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    kwargs = {}
    if secure:
        kwargs["ssl"] = ssl_context or ssl.create_default_context()
        kwargs["server_hostname"] = host
    reader, writer = await asyncio.open_connection(host, port, limit=2**20, **kwargs)
    key = base64.b64encode(os.urandom(16))
    host_header = host if parts.port is None else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{port}"
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode("ascii"))
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        await _close_writer(writer)
        raise TransportError("WebSocket handshake: no HTTP response") from e
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        await _close_writer(writer)
        raise TransportError(f"WebSocket handshake refused: {lines[0]}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        await _close_writer(writer)
        raise TransportError("WebSocket handshake: wrong Sec-WebSocket-Accept")
    return WebSocketTransport(reader, writer, max_frame)
