"""Umbrella CSV rows shaped like the vendor's samples (specs/umbrella.md §3-§4)."""

from __future__ import annotations


def q(*cells: str) -> str:
    # Quoted cells with the space after the delimiter that the vendor samples show.
    return ", ".join(f'"{c}"' for c in cells)


def dns(i: int, ts: str = "2026-11-21 10:00:00", extra: int = 0) -> str:
    cells = [
        ts,
        "Office Network",
        "Office Network,Last, First (user@x)",
        "10.0.0.5",
        "203.0.113.9",
        "Allowed",
        "1 (A)",
        "NOERROR",
        f"host{i}.example.com.",
        "Software/Technology,Business Services",
        "Networks",
        "Networks,AD Users",
        "",
    ]
    return q(*cells, *(f"x{n}" for n in range(extra)))


def proxy(i: int) -> str:
    cells = [
        "2026-11-21 10:00:00",
        "Office Network",
        "10.0.0.5",
        "203.0.113.9",
        "198.51.100.7",
        "text/html",
        "ALLOWED",
        f"https://site{i}.example.com/",
        "",
        "Mozilla/5.0",
        "200",
        "512",
        "2048",
        "2000",
        "",
        "Business Services",
        "",
        "",
        "",
        "",
        "",
        "Networks",
        "",
        "Office Network",
        "Networks",
        "GET",
    ]
    return q(*cells)


def firewall(i: int) -> str:
    # Cloud firewall rows also come unquoted (Elastic's test data).
    return f"2020-07-23 18:03:46,[211039844],Passive Monitor,CDFW Tunnel Device,OUTBOUND,1,84,192.0.2.1,{i},198.51.100.1,443,ams1.edge,327,ALLOW"


def audit(i: int) -> str:
    # before/after are multi-line "key: value" text inside one quoted cell.
    return q(
        str(i),
        "2026-11-21 10:00:00",
        "a@example.com",
        "Admin",
        "policy",
        "update",
        "198.51.100.2",
        "name: old\nenabled: true",
        f"name: new{i}\nenabled: false",
    )


AUDIT_HEADER = q("ID", "Time", "Email", "User", "Type", "Action", "Logged in from", "Before", "After")
