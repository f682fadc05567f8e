"""Incremental syslog-over-TCP framing (RFC 6587): feed the bytes a connection delivers, get messages.

Two framings, chosen per connection from its first byte unless the listener fixes one:

* octet counting (RFC 6587 §3.4.1), ``MSG-LEN SP MSG``: the first byte is a digit;
* non-transparent framing (§3.4.2), messages ended by a trailer: LF, and also CRLF and NUL, which
  §3.4.2 names as trailers some senders use. The first byte is ``<`` (a PRI) or anything else.

A message larger than ``max_message_bytes`` is not buffered: it is reported as a :class:`FrameError`
carrying its first bytes, the rest of it is skipped, and decoding resumes at the next frame.

    decoder = FrameDecoder(max_message_bytes=65536)
    for item in decoder.feed(chunk):
        if type(item) is bytes: ...      # one message, trailer removed
        else: ...                        # FrameError → dead letter with item.reason and item.head
    decoder.finish()                     # at EOF: the last LF-less message, or a truncated frame error
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "HEAD_BYTES", "Frame", "FrameDecoder", "FrameError", "Framing"]

# rsyslog's default maxMessageSize is 8 KiB; Sophos and ESA lines stay far below 64 KiB.
DEFAULT_MAX_MESSAGE_BYTES = 65_536
HEAD_BYTES = 64
# MSG-LEN is NONZERO-DIGIT *DIGIT; ten digits already exceed any sane maximum message size.
_MAX_LEN_DIGITS = 10

Framing: TypeAlias = Literal["auto", "octet_counting", "non_transparent"]


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that was not delivered: why, and its first bytes for the dead letter."""

    reason: str
    head: bytes


Frame: TypeAlias = bytes | FrameError


class FrameDecoder:
    """Splits one connection's byte stream into syslog messages; pure, one instance per connection."""

    __slots__ = ("_buf", "_mode", "_skip", "_skip_to_lf", "max_message_bytes")

    def __init__(
        self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, framing: Framing = "auto"
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        self.max_message_bytes = max_message_bytes
        self._mode: Framing = framing
        self._buf = b""
        # Bytes of an oversized octet-counted frame still to discard (exact resynchronisation).
        self._skip = 0
        # An oversized or garbled frame is being discarded up to the next LF.
        self._skip_to_lf = False

    @property
    def framing(self) -> Framing:
        """``auto`` until the first byte has been seen, then the framing in use."""
        return self._mode

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes from the connection; returns every message they complete, in order."""
        buf = self._buf + data if self._buf else data
        if self._mode == "auto":
            start = len(buf) - len(buf.lstrip(b"\r\n\x00"))
            if start == len(buf):
                self._buf = b""
                return []
            self._mode = "octet_counting" if 0x30 <= buf[start] <= 0x39 else "non_transparent"
        if self._mode == "octet_counting":
            return self._octets(buf)
        return self._lines(buf)

    def finish(self) -> list[Frame]:
        """The connection closed: a trailing message without LF is complete, a cut frame is an error."""
        buf, self._buf = self._buf, b""
        if self._skip_to_lf or self._skip:
            self._skip_to_lf, self._skip = False, 0
            return []
        if not buf.strip(b"\r\n\x00 "):
            return []
        if self._mode == "octet_counting":
            return [FrameError("connection closed inside an octet-counted frame", buf[:HEAD_BYTES])]
        return self._lines(buf + b"\n")

    def _lines(self, buf: bytes) -> list[Frame]:
        out: list[Frame] = []
        # Folding the other trailers into LF keeps the split below in C.
        if b"\x00" in buf:
            buf = buf.replace(b"\x00", b"\n")
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        if self._skip_to_lf:
            lf = buf.find(b"\n")
            if lf < 0:
                self._buf = b""
                return out
            self._skip_to_lf = False
            buf = buf[lf + 1 :]
        lines = buf.split(b"\n")
        rest = lines.pop()
        limit = self.max_message_bytes
        if len(rest) > limit:
            # No trailer yet and already too long: report it now and skip the remainder as it arrives.
            self._skip_to_lf = True
            self._buf = b""
            tail: list[Frame] = [FrameError(f"message exceeds {limit} bytes", rest[:HEAD_BYTES])]
        else:
            self._buf = rest
            tail = []
        if lines and max(map(len, lines)) <= limit:
            out.extend(m for m in lines if m)
        else:
            for m in lines:
                if len(m) > limit:
                    out.append(FrameError(f"message exceeds {limit} bytes", m[:HEAD_BYTES]))
                elif m:
                    out.append(m)
        out.extend(tail)
        return out

    def _octets(self, buf: bytes) -> list[Frame]:
        out: list[Frame] = []
        pos = 0
        n = len(buf)
        limit = self.max_message_bytes
        if self._skip:
            pos = min(self._skip, n)
            self._skip -= pos
        while pos < n:
            if self._skip_to_lf:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    pos = n
                    break
                self._skip_to_lf = False
                pos = lf + 1
                continue
            c = buf[pos]
            if c in b"\r\n\x00 ":
                # Some senders put a trailer after each counted frame; it is not part of any message.
                pos += 1
                continue
            sp = buf.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
            if sp < 0:
                if n - pos > _MAX_LEN_DIGITS or not buf[pos:].isdigit():
                    out.append(
                        FrameError(
                            "invalid octet count (expected MSG-LEN SP MSG)", buf[pos : pos + HEAD_BYTES]
                        )
                    )
                    self._skip_to_lf = True
                    continue
                break
            digits = buf[pos:sp]
            if not digits.isdigit() or digits[0] == 0x30:
                out.append(
                    FrameError("invalid octet count (expected MSG-LEN SP MSG)", buf[pos : pos + HEAD_BYTES])
                )
                # No count to trust: drop up to the next LF, where a line-oriented sender would resume.
                self._skip_to_lf = True
                continue
            size = int(digits)
            start = sp + 1
            end = start + size
            if size > limit:
                out.append(
                    FrameError(f"message of {size} bytes exceeds {limit}", buf[start : start + HEAD_BYTES])
                )
                if end > n:
                    self._skip = end - n
                    pos = n
                    break
                pos = end
                continue
            if end > n:
                break
            msg = buf[start:end]
            # rsyslog counts its template's trailing LF in MSG-LEN.
            out.append(msg[:-1] if msg[-1:] == b"\n" else msg)
            pos = end
        self._buf = buf[pos:]
        return out
