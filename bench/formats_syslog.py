"""Syslog parsing and TCP framing speed, each next to a straightforward implementation.

    python bench/formats_syslog.py [--seconds 1.0] [--json]

Lines are the real shapes the receiver will see: Sophos SFOS 19 and pre-v19 (specs/sophos.md §1),
Cisco ESA syslog push (specs/cisco_esa.md §1.2) and util-linux logger RFC 5424 with structured data.
The baselines are what a first version usually looks like: one regex per RFC with named groups,
``datetime.strptime``/``fromisoformat`` for the stamps, a regex ``finditer`` over SD params, and a
framing loop that re-splits its buffer per line (``buffer.split(b"\\n", 1)``) or reads the
octet count with ``buffer.index(b" ")``. Every figure is single-threaded messages per second.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logferry.formats.framing import FrameDecoder
from logferry.formats.syslog import FACILITY_NAMES, SEVERITY_NAMES, SyslogParser

RECEIVED = datetime(2021, 11, 16, 12, 0, tzinfo=UTC)
LINES: dict[str, bytes] = {
    "sophos_sfos19": (
        b'<30>Nov 16 00:25:00 sophos device_name="SFW" timestamp="2021-11-15T18:25:00-0600" '
        b'device_model="SFVH" device_serial_id="C01001BQC8TFFFF" log_id="010101600001" log_type="Firewall" '
        b'log_component="Firewall Rule" log_subtype="Allowed" log_version=1 severity="Information" '
        b"packets_sent=2  packets_received=2"
    ),
    "sophos_legacy": (
        b'<30>device="SFW" date=2020-05-18 time=14:38:48 timezone="CEST" device_name="XG230" '
        b'device_id=1234567890123456 log_id=041101618035 log_type="Anti-Spam" log_component="SMTP" '
        b'log_subtype="Allowed" status="" priority=Information fw_rule_id=0'
    ),
    "esa": b"<166>Mar 17 18:24:37 mail_logs: Info: MID 6 ICID 5 From: <alice@example.com>",
    "rfc5424_plain": b"<13>1 2021-11-16T05:45:43.299660+00:00 vm root - - - user alice logged in",
    "rfc5424_sd": (
        b'<165>1 2021-11-16T05:45:43.295392+00:00 vm app - ID47 [timeQuality tzKnown="1" isSynced="0"]'
        b'[x@32473 a="q\\"b" user="alice"] \xef\xbb\xbfuser alice logged in from 192.0.2.7'
    ),
}

_RE_5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<ver>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) "
    rb"(?P<msgid>\S+) "
    rb"(?P<sd>-|(?:\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<msg>.*))?$",
    re.S,
)
_RE_SD_ELEMENT = re.compile(r"\[([^ \]]+)((?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*)\]")
_RE_SD_PARAM = re.compile(r' ([^=]+)="((?:[^"\\]|\\.)*)"')
_RE_3164 = re.compile(
    rb"(?:<(?P<pri>\d{1,3})>)?(?:(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(?P<host>[^\s:]+) )?)?"
    rb"(?:(?P<tag>[^\s:\[]+)(?:\[(?P<pid>[^\]]*)\])?: )?(?P<msg>.*)$",
    re.S,
)


def baseline_parse(data: bytes) -> dict[str, Any]:
    """A regex-per-RFC parser, correct for these lines, written the obvious way."""
    m = _RE_5424.match(data)
    if m:
        pri = int(m["pri"])
        ts = m["ts"].decode()
        sd: dict[str, dict[str, str]] | None = None
        if m["sd"] != b"-":
            sd = {}
            for el in _RE_SD_ELEMENT.finditer(m["sd"].decode()):
                sd[el[1]] = {p[1]: re.sub(r"\\([\"\\\]])", r"\1", p[2]) for p in _RE_SD_PARAM.finditer(el[2])}
        msg = m["msg"].decode().lstrip("\ufeff") if m["msg"] is not None else None
        return {
            "facility": pri >> 3,
            "facility_name": FACILITY_NAMES[pri >> 3],
            "severity": pri & 7,
            "severity_name": SEVERITY_NAMES[pri & 7],
            "timestamp": datetime.fromisoformat(ts).astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "hostname": m["host"].decode(),
            "app_name": m["app"].decode(),
            "procid": m["proc"].decode(),
            "msgid": m["msgid"].decode(),
            "structured_data": sd,
            "message": msg,
        }
    m = _RE_3164.match(data)
    if m is None:
        raise ValueError("not syslog")
    pri = int(m["pri"] or 13)
    stamp = None
    if m["ts"]:
        parsed = datetime.strptime(m["ts"].decode(), "%b %d %H:%M:%S").replace(year=RECEIVED.year, tzinfo=UTC)
        stamp = parsed.isoformat().replace("+00:00", "Z")
    return {
        "facility": pri >> 3,
        "facility_name": FACILITY_NAMES[pri >> 3],
        "severity": pri & 7,
        "severity_name": SEVERITY_NAMES[pri & 7],
        "timestamp": stamp,
        "hostname": m["host"] and m["host"].decode(),
        "app_name": m["tag"] and m["tag"].decode(),
        "procid": m["pid"] and m["pid"].decode(),
        "message": m["msg"].decode(),
    }


def baseline_lines(stream: bytes, chunk: int) -> list[bytes]:
    out: list[bytes] = []
    buffer = b""
    for i in range(0, len(stream), chunk):
        buffer += stream[i : i + chunk]
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line:
                out.append(line.rstrip(b"\r"))
    return out


def baseline_octets(stream: bytes, chunk: int) -> list[bytes]:
    out: list[bytes] = []
    buffer = b""
    for i in range(0, len(stream), chunk):
        buffer += stream[i : i + chunk]
        while b" " in buffer:
            sp = buffer.index(b" ")
            size = int(buffer[:sp])
            if len(buffer) < sp + 1 + size:
                break
            out.append(buffer[sp + 1 : sp + 1 + size])
            buffer = buffer[sp + 1 + size :]
    return out


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Messages per second over at least ``seconds`` of repeated runs (best of the runs)."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
        if time.perf_counter() > deadline:
            return best


def stream_of(lines: list[bytes], framing: str) -> bytes:
    if framing == "octet_counting":
        return b"".join(b"%d %s" % (len(m), m) for m in lines)
    return b"".join(m + b"\n" for m in lines)


def run(seconds: float) -> dict[str, Any]:
    parser = SyslogParser()
    results: dict[str, Any] = {"parse": {}, "framing": {}, "framing_and_parse": {}}
    batch = 20_000
    for name, line in LINES.items():
        assert parser.parse(line, received=RECEIVED)["message"] == baseline_parse(line)["message"], name
        lines = [line] * batch

        def ours_fn(lines: list[bytes] = lines) -> int:
            return len([parser.parse(m, received=RECEIVED) for m in lines])

        def base_fn_(lines: list[bytes] = lines) -> int:
            return len([baseline_parse(m) for m in lines])

        ours = rate(ours_fn, seconds)
        base = rate(base_fn_, seconds)
        results["parse"][name] = {
            "logferry": round(ours),
            "baseline_regex": round(base),
            "speedup": round(ours / base, 2),
        }
    # A mixed stream with distinct seconds, so the timestamp cache sees realistic churn.
    mixed = []
    start = datetime(2021, 11, 16, tzinfo=UTC)
    for i in range(batch):
        stamp = (start + timedelta(seconds=i // 50)).strftime("%b %d %H:%M:%S").encode()
        mixed.append(LINES["sophos_sfos19"].replace(b"Nov 16 00:25:00", stamp))
    chunk = 65_536
    for framing, base_fn in (("non_transparent", baseline_lines), ("octet_counting", baseline_octets)):
        stream = stream_of(mixed, framing)

        def frames(stream: bytes = stream) -> int:
            decoder = FrameDecoder()
            n = 0
            for i in range(0, len(stream), chunk):
                n += len(decoder.feed(stream[i : i + chunk]))
            return n

        def frames_and_parse(stream: bytes = stream) -> int:
            decoder = FrameDecoder()
            parse = parser.parse
            n = 0
            for i in range(0, len(stream), chunk):
                for m in decoder.feed(stream[i : i + chunk]):
                    if type(m) is bytes:
                        parse(m, received=RECEIVED)
                        n += 1
            return n

        def baseline_both(
            stream: bytes = stream, base_fn: Callable[[bytes, int], list[bytes]] = base_fn
        ) -> int:
            return len([baseline_parse(m) for m in base_fn(stream, chunk)])

        assert frames() == batch
        ours = rate(frames, seconds)
        def baseline_frames(
            stream: bytes = stream, base_fn: Callable[[bytes, int], list[bytes]] = base_fn
        ) -> int:
            return len(base_fn(stream, chunk))

        base = rate(baseline_frames, seconds)
        results["framing"][framing] = {
            "logferry": round(ours),
            "baseline": round(base),
            "speedup": round(ours / base, 2),
        }
        ours = rate(frames_and_parse, seconds)
        base = rate(baseline_both, seconds)
        results["framing_and_parse"][framing] = {
            "logferry": round(ours),
            "baseline": round(base),
            "speedup": round(ours / base, 2),
        }
    results["python"] = sys.version.split()[0]
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args()
    results = run(args.seconds)
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return
    for section in ("parse", "framing", "framing_and_parse"):
        for name, figures in results[section].items():
            print(f"{section:18} {name:16} " + "  ".join(f"{k}={v:,}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
