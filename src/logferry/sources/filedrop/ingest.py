"""Reading one complete file into records: the one path both drop sources share.

Lines are read from a byte offset, parsed, and committed in chunks of :data:`CHUNK_LINES` lines,
each chunk together with the cursor that says how far the file is read (``offset``, ``line``). A
restart resumes at the last committed offset, so no line is emitted twice nor skipped; with
``dedupe_by_file_name`` each line also carries the id ``<file>|<line>`` and the state store drops a
line it has seen (a file pushed again under the same name).

A line the parser cannot read is dead-lettered with its file, line number and the reason, and
reading goes on. That holds for any exception the parser raises, not only :class:`ParseError`: a
parser bug met on hostile input (an overflow, a value out of range) costs that line, never the file.
Dead letters are written before the chunk they belong to commits: a crash in between repeats them
on restart rather than losing them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, BinaryIO

from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.formats import ParseError
from logferry.formats.esa import EsaParser, parse_log_filename
from logferry.sources.filedrop.spool import open_claim
from logferry.sources.filedrop.watch import Format

__all__ = ["CHUNK_LINES", "Position", "line_parser", "read_file"]

#: Lines per commit: big enough that commits are cheap per line, small enough that a chunk is a
#: fraction of a second of work and little is read again after a crash.
CHUNK_LINES = 1000
#: A parser's exception message goes into a dead letter's reason: an exception about a 5000-digit
#: number can quote all of it, and a reason is for reading.
_REASON_MAX = 300

LineParser = Callable[[str], Record]


def line_parser(fmt: Format, tz: tzinfo) -> LineParser:
    if fmt == "esa":
        return EsaParser(tz).parse_file_line
    return lambda text: {"message": text}


@dataclass(frozen=True, slots=True)
class Position:
    """How far a claimed file is committed."""

    offset: int = 0
    line: int = 0


async def read_file(
    ctx: SourceContext,
    path: Path,
    rel: str,
    start: Position,
    parse: LineParser,
    cursor: Callable[[Position, bool], dict[str, Any]],
    ids_by_name: bool,
    chunk_lines: int = CHUNK_LINES,
) -> bool:
    """Emit the lines of ``path`` after ``start``; ``True`` once the whole file is committed, ``False``
    when the pipeline stopped first. ``cursor(position, done)`` builds the cursor for a commit.

    :class:`OSError` when the file cannot be opened as a regular file (see
    :func:`~logferry.sources.filedrop.spool.open_claim`): nothing was emitted then."""
    extra: Record = {}
    if (log_name := _log_name(rel)) is not None:
        extra["log_name"] = log_name
    records: list[Record] = []
    ids: list[str] = []
    offset, line_no = start.offset, start.line
    # File I/O in a worker thread: a claim can be a gigabyte on a slow disk.
    f = await asyncio.to_thread(open_claim, path)
    try:
        await asyncio.to_thread(f.seek, offset)
        while True:
            lines = await asyncio.to_thread(_read_lines, f, chunk_lines)
            for raw in lines:
                offset += len(raw)
                line_no += 1
                body = raw.rstrip(b"\r\n")
                text = body.decode("utf-8", "backslashreplace")
                if not text.strip():
                    continue
                try:
                    rec = parse(text)
                except Exception as exc:  # any parser failure rejects the line, never the file
                    await ctx.dead_letter(f"{rel} line {line_no}: {_reason(exc)}", body)
                    continue
                rec.update(extra)
                rec["source_file"] = rel
                rec["line"] = line_no
                records.append(rec)
                ids.append(f"{rel}|{line_no:09d}")
            if len(lines) < chunk_lines:
                break
            await ctx.wait_capacity()
            await ctx.emit(records, cursor(Position(offset, line_no), False), ids if ids_by_name else None)
            records, ids = [], []
            if ctx.stopping.is_set():
                return False
    finally:
        await asyncio.to_thread(f.close)
    await ctx.wait_capacity()
    await ctx.emit(records, cursor(Position(offset, line_no), True), ids if ids_by_name else None)
    return True


def _read_lines(f: BinaryIO, n: int) -> list[bytes]:
    return list(itertools.islice(f, n))


def _reason(exc: Exception) -> str:
    """A parser's own complaint as it is; anything else (a parser bug) with its type, for a bug report."""
    if isinstance(exc, ParseError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc)[:_REASON_MAX]}"


def _log_name(rel: str) -> str | None:
    """The log subscription a Cisco Secure Email file belongs to, from its name."""
    try:
        return parse_log_filename(rel).name
    except ParseError:
        return None
