"""librdkafka's own mock cluster, driven through its C API, to make real brokers fail on demand.

confluent-kafka does not expose the mock cluster's error injection, so this loads the very
librdkafka the wheel ships (the one the sink's producer uses) with ctypes and calls
``rd_kafka_mock_*`` (librdkafka's rdkafka_mock.h). The cluster listens on real 127.0.0.1 ports;
the sink under test connects to it like to any Kafka cluster.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from pathlib import Path

import confluent_kafka

__all__ = ["PRODUCE", "MockCluster"]

#: The Kafka API key of ProduceRequest.
PRODUCE = 0

_RD_KAFKA_PRODUCER = 0


def _library() -> ctypes.CDLL:
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka*.so*"))
    path = str(bundled[0]) if bundled else ctypes.util.find_library("rdkafka")
    if path is None:
        # CI installs confluent-kafka's wheel, which bundles it: a missing library is an error here.
        raise RuntimeError(f"no librdkafka shared library in {libs} or on the library path")
    lib = ctypes.CDLL(path)
    p = ctypes.c_void_p
    lib.rd_kafka_conf_new.restype = p
    lib.rd_kafka_new.restype = p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [p]
    lib.rd_kafka_mock_cluster_new.restype = p
    lib.rd_kafka_mock_cluster_new.argtypes = [p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [p]
    lib.rd_kafka_mock_topic_create.argtypes = [p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        p,
        ctypes.c_int16,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.rd_kafka_mock_broker_set_rtt.argtypes = [p, ctypes.c_int32, ctypes.c_int]
    lib.rd_kafka_mock_broker_set_down.argtypes = [p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.argtypes = [p, ctypes.c_int32]
    return lib


class MockCluster:
    """A one-broker mock cluster (broker id 1), hosted by a bare librdkafka handle of its own."""

    def __init__(self) -> None:
        self._lib = _library()
        errstr = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        # No bootstrap servers: this handle only hosts the cluster and never connects anywhere.
        self._rk = self._lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not self._rk:
            raise RuntimeError(errstr.value.decode())
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._rk, 1)
        if not self._cluster:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int = 1) -> None:
        err = self._lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if err:
            raise RuntimeError(f"creating topic {name}: error {err}")

    def fail_requests(self, api_key: int, errors: Sequence[int]) -> None:
        """The next ``len(errors)`` requests of ``api_key`` are answered with these error codes."""
        codes = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(self._cluster, api_key, len(errors), codes)

    def set_rtt(self, rtt_ms: int) -> None:
        """Delay every answer of the broker by ``rtt_ms`` (a slow or distant link)."""
        self._lib.rd_kafka_mock_broker_set_rtt(self._cluster, 1, rtt_ms)

    def set_down(self) -> None:
        """Drop the broker's connections and refuse new ones (an outage)."""
        self._lib.rd_kafka_mock_broker_set_down(self._cluster, 1)

    def set_up(self) -> None:
        self._lib.rd_kafka_mock_broker_set_up(self._cluster, 1)

    def close(self) -> None:
        self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
        self._lib.rd_kafka_destroy(self._rk)
