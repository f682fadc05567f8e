"""moto's S3/SQS server on a free loopback port, and helpers to seed Umbrella exports into it.

One server serves the whole session (each test uses its own bucket); it records every request
(moto's recorder) so tests can see what logferry asked for. The server is stopped by its PID.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from logferry.sim.peers import MotoServer, free_port
from tests.conftest import secret_ref

REGION = "eu-central-1"


class Moto(MotoServer):
    """moto's server recording every request, so tests can see what logferry asked for."""

    def __init__(self, tmp: Path, **env: str) -> None:
        port = free_port()
        self.recording = tmp / f"moto-{port}.jsonl"
        super().__init__(
            port, env={"MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(self.recording), **env}
        )

    def client(self, service: str, region: str = REGION) -> Any:
        return super().client(service, region)

    def requests(self, bucket: str) -> list[tuple[str, str, dict[str, list[str]]]]:
        """(method, path, query) of every recorded request to ``bucket``."""
        out: list[tuple[str, str, dict[str, list[str]]]] = []
        if not self.recording.exists():
            return out
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            url = urlparse(entry["url"])
            if url.path == f"/{bucket}" or url.path.startswith(f"/{bucket}/"):
                out.append((entry["method"], url.path, parse_qs(url.query)))
        return out


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with Moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def moto_auth(tmp_path: Path) -> Iterator[Moto]:
    """A second server that authenticates every request against its (empty) IAM."""
    with Moto(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as server:
        yield server


@pytest.fixture
def bucket(moto: Moto) -> str:
    name = f"umb-{uuid.uuid4().hex[:12]}"
    moto.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def put(moto: Moto, bucket: str, key: str, lines: list[str] | bytes) -> None:
    """Upload ``lines`` (CSV rows, newline-joined) gzipped, or raw bytes as given."""
    body = lines if isinstance(lines, bytes) else gzip.compress(("\n".join(lines) + "\n").encode())
    moto.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def umbrella_source(moto: Moto, bucket: str, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "cisco_umbrella",
        "bucket": bucket,
        "prefix": "acme",
        "region": REGION,
        "endpoint_url": moto.url,
        "access_key_id": secret_ref("TEST_UMBRELLA_KEY_ID", "testing"),
        "secret_access_key": secret_ref("TEST_UMBRELLA_SECRET", "testing-secret-value"),
        "interval_secs": 1,
        **overrides,
    }


def pipeline(moto: Moto, bucket: str, out: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "sources": {"umb": umbrella_source(moto, bucket, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["umb"], "path": str(out), "rotate_max_bytes": 0}},
    }
