"""A SASL PLAIN front for a Kafka broker that has no SASL (Tansu): how Event Hubs' Kafka endpoint logs in.

Event Hubs' Kafka endpoint takes SASL PLAIN over TLS (specs/event_hubs.md §2). The front answers
the SASL exchange itself and relays everything else to the broker:

* ``ApiVersions`` is relayed before login, with ``SaslHandshake`` (17, v0-1) and
  ``SaslAuthenticate`` (36, v0-2) added to the broker's answer, as a broker with a SASL listener
  advertises them (librdkafka logs in only through APIs the broker lists);
* ``SaslHandshake`` accepts ``PLAIN`` only (``UNSUPPORTED_SASL_MECHANISM`` otherwise);
* the PLAIN credentials (``SaslAuthenticate``, or the bare token after a v0 handshake) go to the
  ``authenticate`` callback; a refusal answers ``SASL_AUTHENTICATION_FAILED`` with the reason and
  closes the connection;
* any other request before login closes the connection, as a broker's SASL listener does;
* after login the bytes flow both ways unchanged. The broker must advertise the front's address,
  so that clients come back through the front for every partition leader.

TLS is the caller's: serve :meth:`SaslPlainFront.accept` from ``asyncio.start_server`` with an
``ssl`` context.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

__all__ = ["SaslPlainFront"]

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_SASL_APIS = {_SASL_HANDSHAKE: (0, 1), _SASL_AUTHENTICATE: (0, 2)}
_UNSUPPORTED_SASL_MECHANISM, _SASL_AUTHENTICATION_FAILED = 33, 58
#: A request larger than this before login is not a Kafka client's (Kafka's own default limit).
_MAX_PRE_LOGIN_FRAME = 100 * 1024 * 1024
_RELAY_CHUNK = 256 * 1024


class _Malformed(Exception):
    pass


class SaslPlainFront:
    """SASL PLAIN in front of the Kafka broker at ``upstream``; see the module docstring.

    ``authenticate(username, password)`` returns ``None`` to let the client in, else the reason.
    ``refusing()`` true (an outage) turns new connections away and cuts open ones at their next bytes.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        authenticate: Callable[[str, str], str | None],
        refusing: Callable[[], bool] = lambda: False,
    ) -> None:
        self._upstream = upstream
        self._authenticate = authenticate
        self._refusing = refusing
        self.counters = dict.fromkeys(("connections", "logins", "auth_failures", "refused", "cut"), 0)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing():
            self.counters["refused"] += 1
            writer.close()
            return
        self.counters["connections"] += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            upstream = await self._login(reader, writer)
            if upstream is not None:
                await self._relay(reader, writer, *upstream)
        except (_Malformed, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Run the pre-login exchange; the open broker connection once the client is in, else None."""
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        bare_token_next = False  # after a v0 handshake the PLAIN token comes unframed by Kafka headers
        admitted = False
        try:
            while True:
                frame = await _read_frame(reader)
                if self._refusing():
                    self.counters["cut"] += 1
                    return None
                if bare_token_next:
                    refusal = self._check(frame)
                    if refusal is not None:
                        return None
                    writer.write(struct.pack(">i", 0))
                    await writer.drain()
                    admitted = True
                    return upstream or await self._connect()
                api_key, version, correlation, offset = _request_header(frame)
                if api_key == _API_VERSIONS:
                    upstream = upstream or await self._connect()
                    upstream[1].write(struct.pack(">i", len(frame)) + frame)
                    answer = _with_sasl_apis(await _read_frame(upstream[0]), version)
                    writer.write(struct.pack(">i", len(answer)) + answer)
                elif api_key == _SASL_HANDSHAKE and version in (0, 1):
                    mechanism = _string(frame, offset)
                    error = 0 if mechanism == "PLAIN" else _UNSUPPORTED_SASL_MECHANISM
                    body = struct.pack(">ihi", correlation, error, 1) + _short_string("PLAIN")
                    writer.write(struct.pack(">i", len(body)) + body)
                    if error:
                        await writer.drain()
                        return None
                    bare_token_next = version == 0
                elif api_key == _SASL_AUTHENTICATE and version in (0, 1, 2):
                    refusal = self._check(_auth_bytes(frame, offset, flexible=version >= 2))
                    answer = _authenticate_response(correlation, version, refusal)
                    writer.write(struct.pack(">i", len(answer)) + answer)
                    await writer.drain()
                    if refusal is not None:
                        return None
                    admitted = True
                    return upstream or await self._connect()
                else:
                    return None  # a request before login: the listener drops the connection
                await writer.drain()
        finally:
            if not admitted and upstream is not None:  # refused or failed after ApiVersions opened it
                upstream[1].close()

    def _check(self, token: bytes) -> str | None:
        parts = token.split(b"\0")
        if len(parts) != 3:
            refusal: str | None = "malformed SASL PLAIN token"
        else:
            try:
                refusal = self._authenticate(parts[1].decode(), parts[2].decode())
            except UnicodeDecodeError:
                refusal = "SASL PLAIN credentials are not UTF-8"
        self.counters["auth_failures" if refusal else "logins"] += 1
        return refusal

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(*self._upstream)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while chunk := await src.read(_RELAY_CHUNK):
                if self._refusing():
                    self.counters["cut"] += 1
                    return
                dst.write(chunk)
                await dst.drain()

        tasks = [asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))]
        try:
            # Either side ending (or failing) ends the connection, as a broker's close would.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    if not 0 <= size <= _MAX_PRE_LOGIN_FRAME:
        raise _Malformed(f"frame size {size}")
    return await reader.readexactly(size)


def _request_header(frame: bytes) -> tuple[int, int, int, int]:
    """``(api_key, api_version, correlation_id, offset of the body)``."""
    try:
        api_key, version, correlation, client_id_len = struct.unpack_from(">hhih", frame, 0)
    except struct.error as exc:
        raise _Malformed("short request header") from exc
    offset = 10 + max(client_id_len, 0)
    flexible = (api_key == _API_VERSIONS and version >= 3) or (api_key == _SASL_AUTHENTICATE and version >= 2)
    if flexible:  # request header v2: tagged fields after the client id
        offset = _skip_tags(frame, offset)
    return api_key, version, correlation, offset


def _uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 28:
            raise _Malformed("bad varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip_tags(data: bytes, offset: int) -> int:
    count, offset = _uvarint(data, offset)
    for _ in range(count):
        _, offset = _uvarint(data, offset)
        size, offset = _uvarint(data, offset)
        offset += size
    if offset > len(data):
        raise _Malformed("tagged fields run past the frame")
    return offset


def _string(frame: bytes, offset: int) -> str:
    try:
        (size,) = struct.unpack_from(">h", frame, offset)
        return frame[offset + 2 : offset + 2 + max(size, 0)].decode()
    except (struct.error, UnicodeDecodeError) as exc:
        raise _Malformed("bad string") from exc


def _short_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def _auth_bytes(frame: bytes, offset: int, *, flexible: bool) -> bytes:
    if flexible:
        size, offset = _uvarint(frame, offset)
        size -= 1
    else:
        try:
            (size,) = struct.unpack_from(">i", frame, offset)
        except struct.error as exc:
            raise _Malformed("short SaslAuthenticate") from exc
        offset += 4
    if size < 0 or offset + size > len(frame):
        raise _Malformed("SaslAuthenticate bytes run past the frame")
    return frame[offset : offset + size]


def _authenticate_response(correlation: int, version: int, refusal: str | None) -> bytes:
    error = _SASL_AUTHENTICATION_FAILED if refusal is not None else 0
    message = refusal.encode() if refusal is not None else None
    if version >= 2:  # flexible: response header v1 (tagged fields), compact strings and bytes
        out = struct.pack(">ib", correlation, 0) + struct.pack(">h", error)
        out += _put_uvarint(0) if message is None else _put_uvarint(len(message) + 1) + message
        return out + _put_uvarint(1) + struct.pack(">q", 0) + b"\0"  # empty auth bytes, lifetime 0
    out = struct.pack(">ih", correlation, error)
    out += struct.pack(">h", -1) if message is None else struct.pack(">h", len(message)) + message
    out += struct.pack(">i", 0)
    return out + (struct.pack(">q", 0) if version >= 1 else b"")


def _with_sasl_apis(answer: bytes, version: int) -> bytes:
    """The broker's ApiVersions answer with the SASL APIs listed (or replaced)."""
    flexible = version >= 3
    try:
        (error,) = struct.unpack_from(">h", answer, 4)
        if error:
            return answer
        offset = 6
        if flexible:
            count, offset = _uvarint(answer, offset)
            count -= 1
        else:
            (count,) = struct.unpack_from(">i", answer, offset)
            offset += 4
        entries: list[tuple[int, int, int, bytes]] = []
        for _ in range(max(count, 0)):
            key, low, high = struct.unpack_from(">hhh", answer, offset)
            offset += 6
            tags_from = offset
            if flexible:
                offset = _skip_tags(answer, offset)
            entries.append((key, low, high, answer[tags_from:offset]))
    except struct.error as exc:
        raise _Malformed("broker's ApiVersions answer") from exc
    no_tags = b"\0" if flexible else b""
    entries = [e for e in entries if e[0] not in _SASL_APIS]
    entries += [(key, low, high, no_tags) for key, (low, high) in _SASL_APIS.items()]
    entries.sort()
    out = bytearray(answer[:6])
    out += _put_uvarint(len(entries) + 1) if flexible else struct.pack(">i", len(entries))
    for key, low, high, tags in entries:
        out += struct.pack(">hhh", key, low, high) + tags
    return bytes(out + answer[offset:])
