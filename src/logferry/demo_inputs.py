"""The push and storage inputs of ``logferry demo``, each fed through its real protocol.

* **syslog**: Sophos Firewall lines (SFOS 19+ and the older format, plus one broken line) over TCP to
  a ``syslog`` listener;
* **SCP**: Cisco Secure Email text mail log files uploaded with asyncssh's SCP client, logged in with
  a generated key, to the ``ssh_drop`` receiver;
* **S3**: Cisco Umbrella DNS exports (gzip CSV) in moto's S3 server, read by ``cisco_umbrella``;
* **Kafka**: Azure diagnostic-settings envelopes in the Tansu broker, read by a ``kafka`` source
  that unwraps them (what ``event_hubs`` does against Azure's Kafka endpoint).

Every input has its own file sink, so what arrived is counted per input and compared with what was
sent. S3 and Kafka need their peers (the ``test`` extra installs both); without them the demo says
which input it left out and why.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import orjson

from logferry.service import Service
from logferry.sim.peers import MotoServer, TansuBroker, free_port
from logferry.sources.syslog.source import SyslogSource

__all__ = ["DemoInput", "demo_inputs"]

SYSLOG_LINES = 2000
ESA_FILES = 2
ESA_MESSAGES_PER_FILE = 50
UMBRELLA_OBJECTS = 3
UMBRELLA_ROWS = 400
KAFKA_ENVELOPES = 40
KAFKA_RECORDS_PER_ENVELOPE = 5
_READY_TIMEOUT_SECS = 20.0


class DemoInput(ABC):
    """One input: its source config, the traffic it sends once the service runs, and its books."""

    name = ""
    what = ""
    #: Lines sent on purpose broken: they must land in the dead-letter store, not in the sink.
    broken = 0

    def __init__(self, data: Path) -> None:
        self.data = data
        self.sent = 0

    @property
    def output(self) -> Path:
        return self.data / f"{self.name}.ndjson"

    def missing(self) -> str | None:
        """Why this input cannot run here, or ``None``."""
        return None

    @abstractmethod
    def source(self) -> dict[str, Any]:
        """The source's config (may start the input's peer)."""

    @abstractmethod
    async def send(self, service: Service) -> None:
        """Send the input's traffic once the service runs; sets ``sent``."""

    def sink(self) -> dict[str, Any]:
        return {"type": "file", "inputs": [self.name], "path": str(self.output), "rotate_max_bytes": 0}

    def delivered(self) -> int:
        try:
            return self.output.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    async def close(self) -> None:
        return None


async def _until(predicate: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + _READY_TIMEOUT_SECS
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{what} did not come up within {_READY_TIMEOUT_SECS:.0f}s")
        await asyncio.sleep(0.05)


class SyslogInput(DemoInput):
    name = "sophos"
    what = "syslog TCP, Sophos Firewall lines"
    broken = 1

    def source(self) -> dict[str, Any]:
        return {
            "type": "syslog",
            "protocol": "tcp",
            "listen": "127.0.0.1:0",
            "format": "sophos",
            "timezone": "Europe/Berlin",
            "known_devices": {"C01001BQC8TFFFF": "fw-hq.example.com"},
        }

    async def send(self, service: Service) -> None:
        src = service.pipeline.sources[self.name].source
        assert isinstance(src, SyslogSource)
        await _until(lambda: src.address is not None, "the syslog listener")
        assert src.address is not None
        now = datetime.now(UTC)
        stamp = f"{now:%b} {now.day:2d} {now:%H:%M:%S}"  # RFC 3164 pads the day with a space
        lines = []
        for i in range(SYSLOG_LINES):
            if i % 2:
                lines.append(
                    f'<30>{stamp} sophos device_name="SFW" timestamp="{now.isoformat(timespec="seconds")}" '
                    f'device_serial_id="C01001BQC8TFFFF" log_id=010101600001 log_type="Firewall" '
                    f'log_component="Firewall Rule" log_subtype="Allowed" src_ip=10.1.0.{i % 250} '
                    f"src_port={40000 + i} dst_ip=192.0.2.10 dst_port=443 con_id={i}"
                )
            else:
                lines.append(
                    f'<30>device="SFW" date={now:%Y-%m-%d} time={now:%H:%M:%S} timezone="CET" '
                    f'device_name="XG230" device_id=1234567890123456 log_id=010302602002 log_type="Firewall" '
                    f'log_component="Appliance Access" log_subtype="Denied" status="Deny" '
                    f"priority=Information src_ip=10.2.0.{i % 250} src_port={i}"
                )
        lines.append('<30>device="SFW" log_type="Firewall broken quote')
        _, writer = await asyncio.open_connection(*src.address)
        writer.write("".join(line + "\n" for line in lines).encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.sent = SYSLOG_LINES


def _esa_file(first_mid: int, messages: int, when: datetime) -> list[str]:
    ts = when.strftime("%a %b %d %H:%M:%S %Y")
    out = []
    for n in range(messages):
        mid, icid, dcid = first_mid + n, 7000 + first_mid + n, 9000 + first_mid + n
        sender = f"sender{n}@example.net"
        out += [
            f"{ts} Info: New SMTP ICID {icid} interface Data 1 (10.0.0.1) address 192.0.2.{n % 250} "
            "reverse dns host mail.example.net verified yes",
            f"{ts} Info: Start MID {mid} ICID {icid}",
            f"{ts} Info: MID {mid} ICID {icid} From: <{sender}>",
            f"{ts} Info: MID {mid} ICID {icid} RID 0 To: <user{n}@example.com>",
            f"{ts} Info: MID {mid} Subject 'Invoice {mid}'",
            f"{ts} Info: MID {mid} ready {2048 + n} bytes from <{sender}>",
            f"{ts} Info: Delivery start DCID {dcid} MID {mid} to RID [0]",
            f"{ts} Info: Message done DCID {dcid} MID {mid} to RID [0]",
            f"{ts} Info: Message finished MID {mid} done",
            f"{ts} Info: ICID {icid} close",
        ]
    return out


class ScpInput(DemoInput):
    name = "esa"
    what = "SCP upload, Cisco Secure Email mail logs"

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.port = free_port()
        self.key = asyncssh.generate_private_key("ssh-ed25519", comment="esa-demo")
        keys = data / "esa-demo_authorized_keys"
        keys.write_bytes(self.key.export_public_key())
        self.authorized_keys = keys

    def source(self) -> dict[str, Any]:
        return {
            "type": "ssh_drop",
            "listen": f"127.0.0.1:{self.port}",
            "users": {"esa": str(self.authorized_keys)},
            "format": "esa",
            "timezone": "UTC",
            "scan_interval_secs": 0.5,
        }

    async def send(self, service: Service) -> None:
        server = getattr(service.pipeline.sources[self.name].source, "server", None)
        await _until(lambda: server is not None and server.listening, "the SSH drop")
        outgoing = self.data / "esa-outgoing"
        outgoing.mkdir(exist_ok=True)
        files = []
        now = datetime.now(UTC)
        for f in range(ESA_FILES):
            lines = _esa_file(1 + f * ESA_MESSAGES_PER_FILE, ESA_MESSAGES_PER_FILE, now)
            path = outgoing / f"mail_logs.@{now:%Y%m%dT%H%M%S}{f}.s"
            path.write_text("".join(line + "\n" for line in lines))
            files.append(str(path))
            self.sent += len(lines)
        # The demo's own freshly generated server key; a real appliance pins the logged fingerprint.
        async with asyncssh.connect(
            "127.0.0.1", self.port, username="esa", client_keys=[self.key], known_hosts=None
        ) as conn:
            await asyncssh.scp(files, (conn, "/"))


def _dns_row(i: int, when: datetime) -> str:
    action = "Allowed" if i % 7 else "Blocked"
    cells = [when.strftime("%Y-%m-%d %H:%M:%S"), "Office Network", "Office Network",
             f"10.0.{i // 250}.{i % 250}", "203.0.113.9", action, "1 (A)", "NOERROR",
             f"host{i}.example.com.", "Software/Technology", "Networks", "Networks", ""]  # fmt: skip
    return ", ".join(f'"{c}"' for c in cells)


class S3Input(DemoInput):
    name = "umbrella"
    what = "S3 (moto), Cisco Umbrella DNS logs"
    bucket = "cisco-managed-demo"

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.server: MotoServer | None = None

    def missing(self) -> str | None:
        return MotoServer.missing()

    def source(self) -> dict[str, Any]:
        self.server = MotoServer(log=self.data / "moto.log")
        self.server.start()
        s3 = self.server.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        now = datetime.now(UTC)
        for n in range(UMBRELLA_OBJECTS):
            rows = [_dns_row(n * UMBRELLA_ROWS + i, now) for i in range(UMBRELLA_ROWS)]
            key = f"demo/dnslogs/{now:%Y-%m-%d}/{now:%Y-%m-%d-%H-%M}-{n:04x}.csv.gz"
            s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(("\n".join(rows) + "\n").encode()))
            self.sent += UMBRELLA_ROWS
        # Secrets by reference, as in production; moto takes any key.
        os.environ["LOGFERRY_DEMO_S3_KEY_ID"] = "demo"
        os.environ["LOGFERRY_DEMO_S3_SECRET"] = "demo-secret"
        return {
            "type": "cisco_umbrella",
            "bucket": self.bucket,
            "prefix": "demo",
            "region": "us-east-1",
            "endpoint_url": self.server.url,
            "access_key_id": "${env:LOGFERRY_DEMO_S3_KEY_ID}",
            "secret_access_key": "${env:LOGFERRY_DEMO_S3_SECRET}",
            "log_types": ["dns"],
            "interval_secs": 1,
        }

    async def send(self, service: Service) -> None:
        return None  # the objects were in the bucket before the service started

    async def close(self) -> None:
        if self.server is not None:
            self.server.stop()


class KafkaInput(DemoInput):
    name = "entra"
    what = "Kafka (Tansu), Azure diagnostic-settings envelopes"
    topic = "insights-logs-signinlogs"

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.broker: TansuBroker | None = None

    def missing(self) -> str | None:
        return TansuBroker.missing()

    def source(self) -> dict[str, Any]:
        self.broker = TansuBroker(log=self.data / "tansu.log")
        self.broker.start()
        self.broker.create_topic(self.topic, partitions=2)
        return {
            "type": "kafka",
            "bootstrap_servers": [self.broker.bootstrap],
            "topics": [self.topic],
            "group_id": "logferry-demo",
            "unwrap_records": True,
            "batch_wait_secs": 0.2,
            # Tansu holds a new group's first join for about half the session timeout (23 s at the
            # default 45 s, measured); 6 s is the least it accepts.
            "session_timeout_secs": 6,
        }

    async def send(self, service: Service) -> None:
        assert self.broker is not None
        now = datetime.now(UTC).isoformat()
        envelopes = []
        for e in range(KAFKA_ENVELOPES):
            records = [
                {
                    "time": now,
                    "category": "SignInLogs" if r % 2 else "AuditLogs",
                    "operationName": "Sign-in activity" if r % 2 else "Add member to group",
                    "correlationId": f"{e:04d}-{r:02d}",
                    "properties": {"userPrincipalName": f"user{r}@example.com", "ipAddress": "198.51.100.7"},
                }
                for r in range(KAFKA_RECORDS_PER_ENVELOPE)
            ]
            envelopes.append(orjson.dumps({"records": records}))
        await asyncio.to_thread(self.broker.produce, self.topic, envelopes)
        self.sent = KAFKA_ENVELOPES * KAFKA_RECORDS_PER_ENVELOPE

    async def close(self) -> None:
        if self.broker is not None:
            self.broker.stop()


def demo_inputs(data: Path) -> tuple[list[DemoInput], dict[str, str]]:
    """The inputs that can run here, and the ones left out with the reason."""
    ready: list[DemoInput] = []
    left_out: dict[str, str] = {}
    for cls in (SyslogInput, ScpInput, S3Input, KafkaInput):
        inp = cls(data)
        why = inp.missing()
        if why is None:
            ready.append(inp)
        else:
            left_out[inp.what] = why
    return ready, left_out
