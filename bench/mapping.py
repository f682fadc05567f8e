"""The table mapping on its own: what ``schemas.compile_mapping``'s generated function costs per record.

    python bench/mapping.py [--records 20000] [--json]

Maps the benchmark's synthetic records (bench/records.py) to meshStackEventLogs_CL rows with the
mapper the Sentinel sink uses (``compile_mapping`` on the sink's columns, optional ones included as
the encoder does). For scale, the same records go through the baseline's hand-written
``map_record`` (bench/baseline.py, what a function connector writes); the run fails unless both
give identical rows. A few malformed records (missing, null and non-object intermediates) must map
without raising. Times are the best of several passes, CPU time of this thread, per record.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from baseline import map_record
from records import RecordFactory

from logferry.schemas import compile_mapping, load_table
from logferry.sinks.sentinel.encoder import select_columns

TABLE = "meshStackEventLogs_CL"
PASSES = 7
MALFORMED: list[dict[str, Any]] = [
    {},
    {"spec": None},
    {"spec": {"author": "not a dict", "workspaceRef": None, "title": None}},
    {"metadata": [1, 2]},
    {"spec": {"workspaceRef": {"name": None}, "content": {}}},
]

Mapper = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]


def best_us_per_record(fn: Mapper, records: list[dict[str, Any]]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        t0 = time.thread_time()
        fn(records)
        best = min(best, time.thread_time() - t0)
    return best / len(records) * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last stdout line")
    args = p.parse_args()
    # The columns the sink maps by default (include_event_id false), as RecordEncoder selects them.
    table = select_columns(load_table(TABLE), include_event_id=False)
    t0 = time.thread_time()
    product = compile_mapping(table, include_optional=True)
    compile_us = (time.thread_time() - t0) * 1e6
    records, _ = RecordFactory().page(0, args.records)

    def hand_written(rs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [map_record(r) for r in rs]

    if product(records) != hand_written(records):
        print("compile_mapping and the hand-written mapping disagree", file=sys.stderr)
        return 1
    product(MALFORMED)  # must not raise
    result = {
        "records": args.records,
        "compile_us": round(compile_us, 1),
        "compile_mapping_us_per_record": round(best_us_per_record(product, records), 3),
        "hand_written_us_per_record": round(best_us_per_record(hand_written, records), 3),
    }
    print(
        f"same rows; compile_mapping {result['compile_mapping_us_per_record']} µs/record "
        f"(compiled in {result['compile_us']} µs), hand-written (baseline) "
        f"{result['hand_written_us_per_record']} µs/record",
        file=sys.stderr,
    )
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
