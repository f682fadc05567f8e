"""gzip cost and ratio on real request bodies: the product's ISA-L gzip against zlib and other levels.

    python bench/gzip_levels.py [--bodies 20] [--json]

Bodies are what the Sentinel sink sends: JSON arrays of meshStackEventLogs_CL rows, mapped and
encoded by logferry's own ``RecordEncoder`` from the benchmark's synthetic records, packed to just
under 1,048,576 bytes. Each codec compresses every body several times; the best pass per body is
kept (CPU time of this thread, so other processes on the box do not count) and the per-body
figures are summed. Every output is decompressed with stdlib ``zlib`` and compared, so a codec that
produced something the Logs Ingestion API could not read would fail the run.

``product`` is the Sentinel sink's own ``BodyEncoder(gzip_level=1).compress`` (the default: ISA-L
level 1 since fbcd7db); ``zlib-1`` is what it used before, ``zlib-6`` what the SDK (and the
baseline) use.

A second table times the whole body step from encoded lines: framing as ``BatchLimits.frame`` does
it (``prefix + separator.join(lines) + suffix``) and then compressing, as the product does, against
feeding the prefix, the joined lines and the suffix to one streaming compressor, which never builds
the framed copy (an alternative that measured within noise end to end; not applied).
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from isal import igzip, isal_zlib
from records import RecordFactory

from logferry.core.batcher import pack
from logferry.core.sink import BatchLimits
from logferry.sinks.bodies import BodyEncoder
from logferry.sinks.sentinel.encoder import RecordEncoder

GZIP_WBITS = 16 + zlib.MAX_WBITS
PASSES = 5

Codec = Callable[[bytes], bytes]


def codecs() -> dict[str, Codec]:
    limits = BatchLimits(max_bytes=1_048_576, max_events=10_000)
    return {
        "product": BodyEncoder(limits.frame, 1).compress,  # the sink's default, gzip_level 1
        "zlib-1": lambda b: zlib.compress(b, 1, GZIP_WBITS),  # logferry's default until fbcd7db
        "zlib-6": lambda b: zlib.compress(b, 6, GZIP_WBITS),  # zlib's default, the SDK's choice
        "isal_zlib-0": lambda b: isal_zlib.compress(b, 0, GZIP_WBITS),
        "isal_zlib-1": lambda b: isal_zlib.compress(b, 1, GZIP_WBITS),
        "isal_zlib-2": lambda b: isal_zlib.compress(b, 2, GZIP_WBITS),
        "isal_zlib-3": lambda b: isal_zlib.compress(b, 3, GZIP_WBITS),
        "igzip-1": lambda b: igzip.compress(b, 1),
        "igzip-3": lambda b: igzip.compress(b, 3),
    }


def framing() -> dict[str, Callable[[list[bytes]], bytes]]:
    limits = BatchLimits(max_bytes=1_048_576, max_events=10_000)
    product = BodyEncoder(limits.frame, 1)  # BodyEncoder.body without the thread hop

    def stream(module: Any, level: int) -> Callable[[list[bytes]], bytes]:
        def run(lines: list[bytes]) -> bytes:
            c = module.compressobj(level, module.DEFLATED, GZIP_WBITS)
            out = c.compress(limits.prefix) + c.compress(limits.separator.join(lines))
            return bytes(out + c.compress(limits.suffix) + c.flush())

        return run

    return {
        "frame only": limits.frame,
        "join only": lambda ls: limits.separator.join(ls),
        "frame + zlib-1": lambda ls: zlib.compress(limits.frame(ls), 1, GZIP_WBITS),
        "stream zlib-1": stream(zlib, 1),
        "frame + compress (product)": lambda ls: product.compress(product._frame(ls)),
        "stream isal_zlib-1": stream(isal_zlib, 1),
    }


def body_lines(count: int) -> list[list[bytes]]:
    factory = RecordFactory()
    encoder = RecordEncoder("meshStackEventLogs_CL")
    limits = BatchLimits(max_bytes=1_048_576, max_events=10_000)
    per_body = 1_400  # rows of ~760 bytes: more than one body's worth, so packing cuts at the byte cap
    out: list[list[bytes]] = []
    start = 0
    while len(out) < count:
        records, _ = factory.page(start, per_body)
        start += per_body
        lines = encoder.encode(records)
        i, j = next(pack(limits, lines))
        out.append(lines[i:j])
    return out


def measure_framing(
    name: str, fn: Callable[[list[bytes]], bytes], data: list[list[bytes]]
) -> dict[str, float]:
    best_total = 0.0
    for lines in data:
        best = float("inf")
        for _ in range(PASSES):
            t0 = time.thread_time()
            fn(lines)
            best = min(best, time.thread_time() - t0)
        best_total += best
    return {"ms_per_body": round(best_total / len(data) * 1e3, 3)}


def measure(name: str, codec: Codec, data: list[bytes]) -> dict[str, float]:
    best_total = 0.0
    compressed_total = 0
    for body in data:
        out = codec(body)
        if zlib.decompress(out, GZIP_WBITS) != body:
            raise SystemExit(f"{name}: output does not round-trip through stdlib zlib")
        best = min(_cpu(codec, body) for _ in range(PASSES))
        best_total += best
        compressed_total += len(out)
    raw_total = sum(map(len, data))
    return {
        "us_per_kb": round(best_total / (raw_total / 1024) * 1e6, 2),
        "ms_per_mb_body": round(best_total / len(data) * 1e3, 2),
        "ratio": round(raw_total / compressed_total, 2),
        "mb_per_cpu_sec": round(raw_total / best_total / 2**20, 1),
    }


def _cpu(codec: Codec, body: bytes) -> float:
    t0 = time.thread_time()
    codec(body)
    return time.thread_time() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bodies", type=int, default=20, help="distinct ~1 MB bodies (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last stdout line")
    args = p.parse_args()
    lines = body_lines(args.bodies)
    limits = BatchLimits(max_bytes=1_048_576, max_events=10_000)
    data = [limits.frame(ls) for ls in lines]
    mean = sum(map(len, data)) / len(data)
    print(f"{len(data)} bodies, mean {mean:,.0f} bytes, best of {PASSES} passes each", file=sys.stderr)
    results = {name: measure(name, codec, data) for name, codec in codecs().items()}
    for name, r in results.items():
        print(
            f"  {name:<12} {r['us_per_kb']:>6.2f} µs/KB  {r['ms_per_mb_body']:>6.2f} ms per body  "
            f"ratio {r['ratio']:>5.2f}  {r['mb_per_cpu_sec']:>6.1f} MB/CPU-s",
            file=sys.stderr,
        )
    frames = {name: measure_framing(name, fn, lines) for name, fn in framing().items()}
    print("from encoded lines to a request body:", file=sys.stderr)
    for name, r in frames.items():
        print(f"  {name:<30} {r['ms_per_body']:>6.3f} ms per body", file=sys.stderr)
    if args.json:
        summary = {"bodies": len(data), "mean_body_bytes": round(mean), "codecs": results, "framing": frames}
        print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
