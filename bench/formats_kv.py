"""The key=value family of body parsers on their own: Sophos SFOS (both formats), generic kv, CEF, LEEF.

    python bench/formats_kv.py [--lines 20000] [--json]

Each parser reads realistic lines (firewall-rule lines of about 40 pairs for Sophos, a Falcon
DetectionSummaryEvent for CEF and LEEF) with timestamps and ports varying from line to line. For
scale, the same lines go through a naive baseline in the same process, written the way a collector
script does it: Sophos by Elastic's split rule (sophos.md §2: ``re.split`` on a look-ahead, strip the
quotes, ``strptime`` the time), CEF by a regex split on unescaped pipes and a lazy extension regex.
The run fails unless logferry and the baseline agree on every line's pairs. Figures are the best of
several passes, CPU time of this thread, in messages per second.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from logferry.formats.cef import parse_cef
from logferry.formats.kv import KVParser
from logferry.formats.leef import parse_leef
from logferry.formats.sophos import SophosParser

PASSES = 5

LEGACY = (
    '<30>device="SFW" date=2024-05-18 time=14:38:{s:02d} timezone="CEST" device_name="XG230" '
    'device_id=1234567890123456 log_id=010101600001 log_type="Firewall" log_component="Firewall Rule" '
    'log_subtype="Allowed" status="Allow" priority=Information duration=0 fw_rule_id=5 policy_type=1 '
    'user_name="" user_gp="" iap=2 ips_policy_id=0 appfilter_policy_id=0 application="" '
    'application_risk=0 application_technology="" application_category="" in_interface="Port1" '
    'out_interface="Port2" src_mac=00:0c:29:aa:bb:cc src_ip=10.1.{a}.{b} src_country_code=R1 '
    'dst_ip=203.0.113.{b} dst_country_code=USA protocol="TCP" src_port={sport} dst_port=443 sent_pkts=0 '
    'recv_pkts=0 sent_bytes=0 recv_bytes=0 tran_src_ip=198.51.100.7 tran_src_port=0 tran_dst_ip="" '
    'tran_dst_port=0 srczonetype="LAN" srczone="LAN" dstzonetype="WAN" dstzone="WAN" '
    'dir_disp="" connevent="Start" connid="3246913728" vconnid="" hb_health="No Heartbeat" '
    'message="" appresolvedby="Signature" app_is_cloud=0'
)
V19 = (
    'Nov 16 00:25:{s:02d} sophos device_name="SFW" timestamp="2024-11-15T18:25:{s:02d}-0600" '
    'device_model="SFVH" device_serial_id="C01001BQC8TFFFF" log_id="010101600001" log_type="Firewall" '
    'log_component="Firewall Rule" log_subtype="Allowed" log_version=1 severity="Information" '
    'fw_rule_id="5" fw_rule_name="LAN to WAN" fw_rule_section="Local rule" nat_rule_id="9" '
    'nat_rule_name="Default SNAT" policy_type=1 web_policy_id=1 ips_policy_id=0 app_filter_policy_id=0 '
    'app_name="" app_risk=0 src_zone_type="LAN" src_zone="LAN" dst_zone_type="WAN" dst_zone="WAN" '
    'src_mac="00:0c:29:aa:bb:cc" src_ip="10.1.{a}.{b}" src_country="R1" dst_ip="203.0.113.{b}" '
    'dst_country="USA" protocol="TCP" src_port={sport} dst_port=443 packets_sent=2  packets_received=2 '
    'bytes_sent=120 bytes_received=120 src_trans_ip="198.51.100.7" src_trans_port=0 dst_trans_ip="" '
    'dst_trans_port=0 con_event="Start" con_id="3246913728" hb_status="No Heartbeat" app_is_cloud="No"'
)
CEF = (
    "CEF:0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent|DetectionSummaryEvent|2|"
    "cat=Credential Access externalId=2ec5bc4ad8d44f4c8ddfd0f5b1d4f4b9 cn1=4312 cn2={sport} "
    "cn3Label=Offset cn3={n} dhost=WIN-ACC-{a} duser=CORP\\\\alice msg=A process attempted to dump "
    "credentials fname=procdump64.exe filePath=\\\\Device\\\\HarddiskVolume2\\\\Tools\\\\ "
    "fileHash=0123456789abcdef0123456789abcdef dntdom=CORP cs5=procdump64.exe -ma lsass.exe "
    "cs6=https://falcon.crowdstrike.com/activity/detections/detail/abc?x\\=1 rt=17322528{s:02d}000 "
    "deviceCustomDate1=Nov 22 2024 05:20:{s:02d} outcome=1"
)
LEEF = (
    "LEEF:2.0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent|x09|"
    "cat=Credential Access\texternalId=2ec5bc4ad8d44f4c8ddfd0f5b1d4f4b9\tcn1=4312\tcn2={sport}\t"
    "cn3={n}\tdhost=WIN-ACC-{a}\tduser=CORP\\alice\tmsg=A process attempted to dump credentials\t"
    "fname=procdump64.exe\tfileHash=0123456789abcdef0123456789abcdef\tdntdom=CORP\t"
    "cs6=https://falcon.crowdstrike.com/activity/detections/detail/abc?x=1\trt=17322528{s:02d}000"
)


def lines(template: str, count: int) -> list[str]:
    return [
        template.format(s=i // 400 % 60, a=i % 200, b=i % 250 + 1, sport=1024 + i % 60000, n=i)
        for i in range(count)
    ]


# --- the baselines -------------------------------------------------------------------------------

_ELASTIC_SPLIT = re.compile(r" (?=[a-z0-9\_\-]+=)")
_ELASTIC_HEADER = re.compile(r"^(?:<\d+>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ )?")


def naive_sophos(line: str) -> dict[str, Any]:
    body = _ELASTIC_HEADER.sub("", line)
    record: dict[str, Any] = {}
    for pair in _ELASTIC_SPLIT.split(body):
        key, _, value = pair.partition("=")
        value = value.strip().strip('"')
        record[key.strip()] = "" if value in ("-", "N/A") else value
    if "timestamp" in record:
        stamp = datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S%z")
    else:
        stamp = datetime.strptime(f"{record['date']} {record['time']}", "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=UTC
        )
    record["event_time"] = stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return record


_CEF_PIPE = re.compile(r"(?<!\\)\|")
_CEF_PAIR = re.compile(r"([\w.\-]+)=(.*?)(?=\s+[\w.\-]+=|\s*$)")
_CEF_UNESCAPE = re.compile(r"\\([\\=nr|])")


def naive_cef(line: str) -> dict[str, Any]:
    parts = _CEF_PIPE.split(line, maxsplit=7)
    record: dict[str, Any] = dict(
        zip(("version", "vendor", "product", "dv", "sid", "name", "sev"), parts[:7], strict=False)
    )
    record["extensions"] = {
        k: _CEF_UNESCAPE.sub(lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), v)
        for k, v in _CEF_PAIR.findall(parts[7])
    }
    return record


# --- the measurement -----------------------------------------------------------------------------


def messages_per_sec(fn: Callable[[str], Any], sample: list[str]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        t0 = time.thread_time()
        for line in sample:
            fn(line)
        best = min(best, time.thread_time() - t0)
    return len(sample) / best


def check_agreement(
    sample: list[str], ours: Callable[[str], dict[str, Any]], naive: Callable[[str], Any]
) -> None:
    """Every pair the baseline finds has the same value in logferry's record (ints and None as text)."""
    for line in sample:
        mine, theirs = ours(line), naive(line)
        if "extensions" in theirs:
            mine, theirs = mine["extensions"], theirs["extensions"]
        for key, value in theirs.items():
            got = mine.get(key)
            if str(got) != value and not (value == "" and got in ("", None)):
                raise SystemExit(f"parsers disagree on {key!r}: {got!r} vs {value!r}\n{line}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=20_000)
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last stdout line")
    args = p.parse_args()
    legacy, v19, cef, leef = (lines(t, args.lines) for t in (LEGACY, V19, CEF, LEEF))
    sophos = SophosParser()
    generic = KVParser()
    check_agreement(legacy[:2000], sophos.parse, naive_sophos)
    check_agreement(v19[:2000], sophos.parse, naive_sophos)
    check_agreement(cef[:2000], parse_cef, naive_cef)
    bodies = [line[4:] for line in legacy]
    result = {
        "lines": args.lines,
        "sophos_legacy_per_sec": round(messages_per_sec(sophos.parse, legacy)),
        "sophos_legacy_naive_per_sec": round(messages_per_sec(naive_sophos, legacy)),
        "sophos_v19_per_sec": round(messages_per_sec(sophos.parse, v19)),
        "sophos_v19_naive_per_sec": round(messages_per_sec(naive_sophos, v19)),
        "kv_generic_per_sec": round(messages_per_sec(generic.parse, bodies)),
        "cef_per_sec": round(messages_per_sec(parse_cef, cef)),
        "cef_naive_per_sec": round(messages_per_sec(naive_cef, cef)),
        "leef_per_sec": round(messages_per_sec(parse_leef, leef)),
    }
    for name in ("sophos_legacy", "sophos_v19", "cef"):
        print(
            f"{name}: {result[f'{name}_per_sec']:,} msg/s, naive {result[f'{name}_naive_per_sec']:,} msg/s",
            file=sys.stderr,
        )
    print(
        f"kv generic: {result['kv_generic_per_sec']:,} msg/s, leef: {result['leef_per_sec']:,} msg/s",
        file=sys.stderr,
    )
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
