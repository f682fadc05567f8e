"""One Umbrella object's rows in numbered batches, decoded off the event loop.

Rows are numbered from 1 in file order, rejected rows included, so a row number is a stable
position in the object: the checkpoint stores how many rows are committed and the dedupe id of a
record is ``"<key>|<row>"``. Inflating and splitting CSV is CPU work; each batch is decoded in a
worker thread so a large object never stalls the other sources.

Nothing in an object may stop its folder: a row whose decoding raises anything at all is a
reject (``"<key> row N (line L): <why>"``) and the next row is read; a stream that fails to
inflate ends the object with the rows before the damage (``damaged``). An exception escaping
here would fail the object again at every restart and hold back every later object of its folder.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from logferry.core.types import Record
from logferry.formats import ParseError
from logferry.formats.umbrella import UNKNOWN_VERSION_FLAG, Reject, decode_row, iter_rows

__all__ = ["Batch", "read_batches"]

Item = Record | Reject


@dataclass
class Batch:
    records: list[Record] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    #: ``(reason, row as CSV)`` of each row that could not be decoded.
    rejects: list[tuple[str, bytes]] = field(default_factory=list)
    #: Rows of versions the parser does not know (passed through as raw columns).
    unknown_version: int = 0
    #: Rows of the object read so far, this batch included.
    row: int = 0
    last: bool = False
    #: Set when the object is not a complete gzip stream; the rows before the damage are in ``records``.
    damaged: str | None = None


#: Longest exception text put into a reason: the message of an unexpected error may quote input.
_MAX_DETAIL = 500


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def _take(
    rows: Iterator[tuple[int, list[str]] | Reject], log_type: str, n: int
) -> tuple[list[Item], str | None]:
    """Up to ``n`` rows decoded, and why the stream ended early (``None``: it did not)."""
    out: list[Item] = []
    try:
        for row in rows:
            if isinstance(row, Reject):
                out.append(row)
            else:
                line, fields = row
                try:
                    out.append(decode_row(log_type, fields))
                except ParseError as exc:
                    out.append(Reject(line, str(exc), tuple(fields)))
                except Exception as exc:  # any row-level failure is that row's reject
                    out.append(Reject(line, _detail(exc), tuple(fields)))
            if len(out) >= n:
                break
    except ParseError as exc:
        return out, str(exc)
    except Exception as exc:  # an unreadable object must not stop its folder
        return out, f"the object cannot be read: {_detail(exc)}"
    return out, None


def _csv_line(fields: tuple[str, ...]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
    return buf.getvalue().encode()


async def read_batches(
    key: str, body: bytes, log_type: str, batch_rows: int, skip_rows: int = 0
) -> AsyncIterator[Batch]:
    """Batches of at most ``batch_rows`` rows after the first ``skip_rows`` (already committed).

    The last batch has ``last`` set; it may be empty.
    """
    rows = iter_rows(body)
    row = 0
    while True:
        chunk, damaged = await asyncio.to_thread(_take, rows, log_type, batch_rows)
        batch = Batch(last=damaged is not None or len(chunk) < batch_rows, damaged=damaged)
        for item in chunk:
            row += 1
            if row <= skip_rows:
                continue
            if isinstance(item, Reject):
                reason = f"{key} row {row} (line {item.line}): {item.reason}"
                batch.rejects.append((reason, _csv_line(item.fields)))
                continue
            if item.get(UNKNOWN_VERSION_FLAG) is True:
                batch.unknown_version += 1
            batch.records.append(item)
            batch.ids.append(f"{key}|{row}")
        batch.row = row
        if row > skip_rows or batch.last:
            yield batch
        if batch.last:
            return
