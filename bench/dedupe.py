"""What de-duplication costs in the SQLite state store, for random and for time-ordered ids.

    python bench/dedupe.py [--ids 500000] [--json]

Drives the product's own ``SQLiteStateStore.commit`` with 1,000 ids per batch and no sinks, so the
only work is the ``seen`` lookup, the ``seen`` inserts, the cursor and the commit itself. Two kinds
of id, both unique:

* ``random``: bare v4 uuids (``metadata.uuid``), what the meshStack source used until fbcd7db;
* ``time-ordered``: ``<createdAt>|<uuid>``, ascending like the events on a vendor page: what
  ``sources/meshstack.py`` ``parse_page`` builds now.

CPU is this process's ``getrusage`` (user + system: most of the random case is the kernel copying
WAL frames), reported per id for each tenth of the run, so growth with the table is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from logferry.state.sqlite import SQLiteStateStore

BATCH = 1000
TTL_SECS = 7 * 86400.0  # the product default (SourceConfig.dedupe_ttl_secs)


def cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def dir_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir())


def make_ids(kind: str, rng: random.Random, start: int, n: int) -> list[str]:
    ids = []
    for i in range(start, start + n):
        h = f"{rng.getrandbits(128):032x}"
        uid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"
        if kind == "time-ordered":
            s, ms = divmod(1_760_000_000_000 + i, 1000)
            uid = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(s))}.{ms:03d}000Z|{uid}"
        ids.append(uid)
    return ids


async def run(kind: str, total: int) -> dict[str, object]:
    rng = random.Random(1)
    records: list[dict[str, object]] = [{} for _ in range(BATCH)]
    with tempfile.TemporaryDirectory(prefix="logferry-dedupe-") as tmp:
        store = SQLiteStateStore(Path(tmp) / "state.db")
        await store.open()
        tenths: list[float] = []
        user_total = sys_total = 0.0
        step = max(BATCH, total // 10)
        done = 0
        while done < total:
            ids_chunks = [make_ids(kind, rng, i, BATCH) for i in range(done, min(total, done + step), BATCH)]
            u0, s0 = cpu()
            for ids in ids_chunks:
                await store.commit("bench", {"n": done}, records[: len(ids)], ids, {}, TTL_SECS)
                done += len(ids)
            u1, s1 = cpu()
            n = sum(map(len, ids_chunks))
            tenths.append(round((u1 - u0 + s1 - s0) / n * 1e6, 2))
            user_total += u1 - u0
            sys_total += s1 - s0
        size = dir_bytes(tmp)  # before close, which checkpoints and removes the WAL
        await store.close()
    return {
        "ids": total,
        "us_per_id": round((user_total + sys_total) / total * 1e6, 2),
        "user_us_per_id": round(user_total / total * 1e6, 2),
        "sys_us_per_id": round(sys_total / total * 1e6, 2),
        "us_per_id_by_tenth": tenths,
        "db_and_wal_mb": round(size / 2**20, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", type=int, default=500_000, help="ids per kind (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last stdout line")
    args = p.parse_args()
    results = {}
    for kind in ("random", "time-ordered"):
        r = asyncio.run(run(kind, args.ids))
        results[kind] = r
        print(
            f"{kind:>12}: {r['us_per_id']} µs/id (user {r['user_us_per_id']}, sys {r['sys_us_per_id']}); "
            f"per tenth of the run: {r['us_per_id_by_tenth']}; db+wal {r['db_and_wal_mb']} MB",
            file=sys.stderr,
        )
    if args.json:
        print(orjson.dumps(results).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
