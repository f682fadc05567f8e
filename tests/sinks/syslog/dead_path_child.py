"""Run by test_dead_path.py inside ``unshare -n``: the network path to a collector dies mid-stream.

Taking the private namespace's ``lo`` down stands in for a collector host that lost power or a NAT
entry that was dropped: nothing is refused or reset, the bytes are simply never acknowledged.
Prints one JSON line: what the sink answered while the path was dead and which records were
reported delivered but never reached the collector.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import orjson

from logferry.core.sink import Action
from tests.sinks.syslog.conftest import build_sink


async def link(state: str) -> None:
    proc = await asyncio.create_subprocess_exec("ip", "link", "set", "lo", state)
    assert await proc.wait() == 0


async def main() -> None:
    await link("up")
    got: set[int] = set()
    connections: list[asyncio.StreamWriter] = []

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while data := await reader.read(65536):
            got.update(int(n) for n in re.findall(rb'"seq":(\d+)', data))

    server = await asyncio.start_server(collect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = build_sink(Path(tempfile.mkdtemp()), host="127.0.0.1", port=port, protocol="tcp", timeout_secs=1)
    delivered: set[int] = set()
    answers: list[str] = []

    async def send(first: int) -> None:
        seqs = range(first, first + 20)
        result = await sink.send(sink.encode([{"seq": n, "pad": "x" * 300} for n in seqs]))
        answers.append(result.action.name)
        if result.action is Action.DELIVERED:
            delivered.update(seqs)

    await send(0)
    await link("down")
    answers.clear()
    for first in (20, 40):
        await send(first)
    for writer in connections:
        writer.transport.abort()  # the collector's host is gone for good
    await link("up")
    await sink.close()
    server.close()
    print(orjson.dumps({"answers": answers, "lost": sorted(delivered - got)}).decode())


if __name__ == "__main__":
    asyncio.run(main())
