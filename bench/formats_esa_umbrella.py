"""ESA text mail log lines and Umbrella gzip CSV objects: messages per second per parser, next to naive ones.

    python bench/formats_esa_umbrella.py [--lines 50000] [--json]

ESA: a mail's whole lifecycle (connection, envelope, verdicts, delivery, as the spec lists them)
repeated with rising ids and seconds, parsed as file lines and as syslog lines. The baseline is what
a straightforward parser does: one regex for the line, ``strptime`` for the time, one ``re.search``
per id. Umbrella: one gzip object of DNS rows (quoted, and with the vendor's ", " delimiter) and one
of v6 proxy rows; the baseline inflates the whole object, reads it with ``csv.DictReader`` and types
each cell with ``strptime``, ``int`` and ``split``. Both sides must give identical records (the ESA
ones the same times and ids) before anything is timed. ``streamed`` is Umbrella as a receiver uses
it: records handed on in batches of 1,000 rather than all held at once. Times are the best of
several passes, CPU time of this thread.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from logferry.formats.esa import EsaParser
from logferry.formats.syslog import SyslogParser
from logferry.formats.umbrella import SCHEMAS, decode_gzip, iter_gzip

PASSES = 3
NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)

LIFECYCLE = [
    "New SMTP ICID {i} interface Management (10.1.1.1) address 10.1.1.209 reverse dns host mx.example.com "
    "verified yes",
    "Start MID {m} ICID {i}",
    "MID {m} ICID {i} From: <sender@example.com>",
    "MID {m} ICID {i} RID 0 To: <rcpt@example.org>",
    "MID {m} Message-ID '<{m}.abc@example.com>'",
    "MID {m} Subject 'Quarterly report'",
    "MID {m} ready 20480 bytes from <sender@example.com>",
    "MID {m} matched all recipients for per-recipient policy DEFAULT in the inbound table",
    "MID {m} interim verdict using engine: CASE spam negative",
    "MID {m} interim AV verdict using Sophos CLEAN",
    "MID {m} SPF: mailfrom identity sender@example.com Pass (v=spf1)",
    "MID {m} DKIM: pass signature verified (d=example.com s=sel1 i=@example.com)",
    "MID {m} DMARC: Message from domain example.com, DMARC pass (SPF aligned True, DKIM aligned True)",
    "MID {m} Outbreak Filters: verdict negative",
    "MID {m} queued for delivery",
    "ICID {i} close",
    "New SMTP DCID {d} interface 10.1.1.1 address 10.2.2.2 port 25",
    "Delivery start DCID {d} MID {m} to RID [0]",
    "MID {m} RID [0] Response '2.0.0 Ok: queued'",
    "Message done DCID {d} MID {m} to RID [0] [('from', 'sender@example.com'), ('to', 'rcpt@example.org')]",
    "Message finished MID {m} done",
    "DCID {d} close",
]


def esa_messages(n: int) -> list[str]:
    out: list[str] = []
    k = 0
    while len(out) < n:
        ids = {"i": 1000 + k, "m": 50_000 + k, "d": 700 + k}
        out.extend(t.format(**ids) for t in LIFECYCLE)
        k += 1
    return out[:n]


def esa_file_lines(messages: list[str]) -> list[str]:
    # About a dozen lines share each second, as on a busy appliance.
    return [
        f"Mon Apr 17 19:{(j // 12) // 60 % 60:02d}:{(j // 12) % 60:02d} 2023 Info: {m}"
        for j, m in enumerate(messages)
    ]


def esa_syslog_lines(messages: list[str]) -> list[str]:
    return [
        f"<166>Mar 17 18:{(j // 12) // 60 % 60:02d}:{(j // 12) % 60:02d} esa1 mail_logs: Info: {m}"
        for j, m in enumerate(messages)
    ]


_NAIVE_LINE = re.compile(r"^(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}) (\w+): (.*)$")
_NAIVE_IDS = {k: re.compile(rf"\b{k.upper()} \[?(\d+)") for k in ("icid", "mid", "dcid", "rid")}


def naive_esa(line: str) -> dict[str, Any]:
    m = _NAIVE_LINE.match(line)
    if m is None:
        raise ValueError(line)
    ts = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    rec: dict[str, Any] = {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "level": m.group(2),
        "message": m.group(3),
    }
    for key, rx in _NAIVE_IDS.items():
        found = rx.search(m.group(3))
        if found:
            rec[key] = int(found.group(1))
    return rec


def dns_object(n: int) -> bytes:
    quoted = (
        '"2020-01-01 00:{mm:02d}:{ss:02d}","Acme Laptop","Acme Laptop,Acme HQ","10.10.1.100",'
        '"24.123.132.133","Allowed","1 (A)","NOERROR","host{j}.example.com.",'
        '"Search Engines,Software/Technology","Roaming Computers","Roaming Computers,Networks",""\n'
    )
    spaced = (
        '"2020-01-01 00:{mm:02d}:{ss:02d}", "Last, First (user@example.com)", '
        '"Last, First (user@example.com)", "10.10.1.100", "24.123.132.133", "Blocked", "28 (AAAA)", '
        '"NXDOMAIN", "bad{j}.example.", "Malware", "AD Users", "AD Users,Networks", "Malware"\n'
    )
    rows = [(quoted if j % 3 else spaced).format(mm=j // 60 % 60, ss=j % 60, j=j) for j in range(n)]
    return gzip.compress("".join(rows).encode())


def proxy_object(n: int) -> bytes:
    row = (
        '"2020-02-02 10:00:{ss:02d}","Acme HQ","10.0.0.5","198.51.100.7","203.0.113.9","text/html","ALLOWED",'
        '"https://example.com/{j}.html","https://ref.example/","Mozilla/5.0 (X11; Linux x86_64)","200","512",'
        '"4096","4000","","News/Media,Business Services","","","","","","Networks","","Acme HQ,Jane Doe",'
        '"Networks,AD Users","GET","NONE","","index.html","1234","5678","11,12"\n'
    )
    return gzip.compress("".join(row.format(ss=j % 60, j=j) for j in range(n)).encode())


_NAIVE_INTS = frozenset(
    ("status_code", "request_size", "response_size", "response_body_size", "ruleset_id", "rule_id")
)
_NAIVE_LISTS = frozenset(("categories", "blocked_categories", "identity_types", "destination_list_ids"))


def naive_umbrella(data: bytes, log_type: str) -> list[dict[str, Any]]:
    """The same records as decode_gzip, the straightforward way: whole object, DictReader, strptime."""
    columns = SCHEMAS[log_type].columns
    text = gzip.decompress(data).decode()
    out: list[dict[str, Any]] = []
    for row in csv.DictReader(io.StringIO(text), fieldnames=columns, skipinitialspace=True):
        rec: dict[str, Any] = {"log_type": log_type}
        for key, value in row.items():
            if value is None:
                continue  # DictReader fills a shorter version's absent columns with None
            if key == "timestamp":
                rec[key] = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
            elif key in _NAIVE_INTS:
                rec[key] = int(value) if value else None
            elif key in _NAIVE_LISTS:
                rec[key] = [v.strip() for v in value.split(",")] if value else []
            else:
                rec[key] = value
        out.append(rec)
    return out


def streamed(data: bytes, log_type: str) -> int:
    """What a receiver does: hand records on in batches instead of holding the whole object's."""
    count = 0
    batch: list[object] = []
    for item in iter_gzip(data, log_type):
        batch.append(item)
        if len(batch) == 1000:
            count += len(batch)
            batch = []
    return count + len(batch)


def best_rate(fn: Callable[[], int]) -> float:
    best = float("inf")
    count = 0
    for _ in range(PASSES):
        t0 = time.thread_time()
        count = fn()
        best = min(best, time.thread_time() - t0)
    return count / best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=50_000)
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last stdout line")
    args = p.parse_args()
    n: int = args.lines
    messages = esa_messages(n)
    file_lines, syslog_lines = esa_file_lines(messages), esa_syslog_lines(messages)
    parser = EsaParser()
    ours = [parser.parse_file_line(x) for x in file_lines]
    theirs = [naive_esa(x) for x in file_lines]
    for a, b in zip(ours, theirs, strict=True):
        if a["timestamp"] != b["timestamp"] or any(a.get(k) != b.get(k) for k in ("icid", "mid", "dcid")):
            print(f"ESA parsers disagree:\n{a}\n{b}", file=sys.stderr)
            return 1
    dns, proxy = dns_object(n), proxy_object(n)
    for data, log_type in ((dns, "dns"), (proxy, "proxy")):
        records, rejects = decode_gzip(data, log_type)
        if rejects or len(records) != n or records != naive_umbrella(data, log_type):
            print(
                f"Umbrella {log_type}: {len(rejects)} rejects or records unlike the naive ones",
                file=sys.stderr,
            )
            return 1

    def esa_file() -> int:
        parse = EsaParser().parse_file_line
        for x in file_lines:
            parse(x)
        return n

    def esa_syslog() -> int:
        # As the syslog receiver reads them: the header once (SyslogParser), then the ESA body.
        header, body = SyslogParser().parse, EsaParser().parse_syslog_record
        for x in syslog_lines:
            body(header(x.encode(), received=NOW))
        return n

    def esa_naive() -> int:
        for x in file_lines:
            naive_esa(x)
        return n

    result = {
        "lines": n,
        "esa_file_lines_per_s": round(best_rate(esa_file)),
        "esa_syslog_lines_per_s": round(best_rate(esa_syslog)),
        "esa_naive_regex_lines_per_s": round(best_rate(esa_naive)),
        "umbrella_dns_rows_per_s": round(best_rate(lambda: len(decode_gzip(dns, "dns")[0]))),
        "umbrella_dns_streamed_rows_per_s": round(best_rate(lambda: streamed(dns, "dns"))),
        "umbrella_dns_naive_rows_per_s": round(best_rate(lambda: len(naive_umbrella(dns, "dns")))),
        "umbrella_proxy_rows_per_s": round(best_rate(lambda: len(decode_gzip(proxy, "proxy")[0]))),
        "umbrella_proxy_streamed_rows_per_s": round(best_rate(lambda: streamed(proxy, "proxy"))),
        "umbrella_proxy_naive_rows_per_s": round(best_rate(lambda: len(naive_umbrella(proxy, "proxy")))),
    }
    for key, value in result.items():
        print(f"{key}: {value:,}", file=sys.stderr)
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
