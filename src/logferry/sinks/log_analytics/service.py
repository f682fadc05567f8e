"""One signed POST to the Data Collector API, its answer as a ``Resolution``, and the healthcheck.

Statuses (azure_monitor.md §3.5) go through the shared :func:`~logferry.sinks.http_post.classify`:
200 is delivered; 401/403 (a wrong key, workspace id or clock) and 404/410 (a wrong URL, or a workspace
that no longer takes the retired API) keep the data and retry with a hint quoting the service's answer;
so do the 400 codes that name a
configuration problem (``InvalidLogType``, ``InactiveCustomer``, …), because dead-lettering every
record for a typo would turn a fixable outage into a loss. Other 400s (``InvalidDataFormat``) split
the request down to the record at fault; 429/5xx retry honouring Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import aiohttp
import orjson

from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.observe.metrics import Metrics
from logferry.sinks.http_post import ApiResponse, Poster, classify, clip, default_error_text, request_failed
from logferry.sinks.log_analytics.config import LogAnalyticsConfig
from logferry.sinks.log_analytics.encoder import FIELD_MAX_BYTES, RecordEncoder
from logferry.sinks.log_analytics.signing import CONTENT_TYPE, SharedKeySigner, rfc1123_date

__all__ = ["LogAnalyticsSink", "error_text", "retirement_notice"]

RETIRED_ON = "14 September 2026"
REASON_KEY = (
    "check that shared_key is the workspace's primary or secondary key, that workspace_id is that "
    "workspace's, and that this host's clock is right (x-ms-date)"
)
REASON_ENDPOINT = (
    "check workspace_id, cloud and endpoint; a workspace that no longer accepts the retired Data "
    "Collector API answers so too (migrate to the sentinel sink)"
)
REASON_CONFIG_400 = "a configuration problem, not the data: fix the sink's settings"
#: 400 codes that say the request's settings are wrong, whatever the records hold (azure_monitor.md §3.5).
CONFIG_CODES = frozenset(
    {
        "InactiveCustomer",
        "InvalidApiVersion",
        "InvalidCustomerId",
        "InvalidLogType",
        "MissingApiVersion",
        "MissingContentType",
        "MissingLogType",
        "UnsupportedContentType",
    }
)


def retirement_notice(sink: str) -> str:
    return (
        f"sink {sink}: the Azure Monitor HTTP Data Collector API was retired by Microsoft on {RETIRED_ON}; "
        "this sink works only while the workspace still accepts it. Migrate to the 'sentinel' sink (Logs "
        "Ingestion API with a data collection rule); 'logferry azure template' generates the tables, "
        "DCR and DCE. A table this API created is a classic table: a DCR can write to it only after it is "
        "migrated to DCR-based (Tables - Migrate: POST .../tables/NAME/migrate, or in the portal)"
    )


_HINTED = frozenset({400, 401, 403, 404, 410})
#: A request that got no answer. aiohttp raises ValueError for a header value it will not send (a control
#: character): the config refuses those, but a send must never raise.
_NO_ANSWER = (aiohttp.ClientError, TimeoutError, ValueError)


def _error_fields(resp: ApiResponse) -> tuple[str, str] | None:
    """``(code, message)`` from the API's ``{"Error": ..., "Message": ...}`` body, if it is one."""
    try:
        body = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("Error"), str):
        return None
    return body["Error"], str(body.get("Message") or "")


def error_text(resp: ApiResponse) -> str:
    fields = _error_fields(resp)
    if fields is None:
        return default_error_text(resp)
    return clip(f"HTTP {resp.status} {fields[0]}: {fields[1]}")


def _hints(resp: ApiResponse) -> Mapping[int, str]:
    """Statuses that mean a configuration problem, with the service's own words and what to check."""
    if resp.status not in _HINTED:
        return {}  # the common case (200) parses no body
    text = error_text(resp)
    key, endpoint = f"{text}; {REASON_KEY}", f"{text}; {REASON_ENDPOINT}"
    hints = {401: key, 403: key, 404: endpoint, 410: endpoint}
    fields = _error_fields(resp)
    if fields is not None and fields[0] in CONFIG_CODES:
        hints[400] = f"{text}; {REASON_CONFIG_400}"
    return hints


class LogAnalyticsSink:
    """Sends batches of records to one Log-Type (table ``{log_type}_CL``) of one workspace."""

    def __init__(
        self,
        name: str,
        config: LogAnalyticsConfig,
        session: aiohttp.ClientSession,
        *,
        logger: logging.Logger | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.limits = BatchLimits(max_bytes=config.batch.max_bytes, max_events=config.batch.max_events)
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._metrics = metrics
        self._records = RecordEncoder(config.time_generated_field)
        self._signer = SharedKeySigner(config.workspace_id, config.shared_key.reveal())
        self._poster = Poster(name, session, config.url, timeout_secs=config.timeout_secs, metrics=metrics)
        self._headers = {"Content-Type": CONTENT_TYPE, "Log-Type": config.log_type}
        if self._records.time_column is not None:
            # The column the encoder sends the time field in (a valid name, never another field's).
            self._headers["time-generated-field"] = self._records.time_column
        if config.azure_resource_id is not None:
            self._headers["x-ms-AzureResourceId"] = config.azure_resource_id
        self._warned_oversized = False

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        lines, oversized = self._records.encode(records)
        if oversized:
            self._note_oversized(oversized)
        return lines

    async def start(self) -> None:
        self._log.warning(retirement_notice(self.name))

    async def close(self) -> None:
        pass  # the session belongs to the build context, which closes it

    async def send(self, lines: list[bytes]) -> Resolution:
        try:
            resp = await self._post(self.limits.frame(lines))
        except _NO_ANSWER as exc:
            return request_failed(exc)
        return classify(resp, len(lines), ok={200}, hints=_hints(resp), error_text=error_text)

    async def healthcheck(self) -> CheckResult:
        """POST an empty array, signed as a real send is, and say what to fix if it is refused."""
        try:
            resp = await self._post(self.limits.frame([]))
        except _NO_ANSWER as exc:
            return CheckResult(False, request_failed(exc).reason)
        if resp.status == 200:
            return CheckResult(
                True,
                f"workspace {self.config.workspace_id} accepts {self.config.log_type}_CL through the "
                f"Data Collector API, retired on {RETIRED_ON}: plan the move to the sentinel sink",
            )
        return CheckResult(False, _hints(resp).get(resp.status) or error_text(resp))

    async def _post(self, body: bytes) -> ApiResponse:
        date = rfc1123_date()
        headers = {
            **self._headers,
            "x-ms-date": date,
            "Authorization": self._signer.authorization(body, date),
        }
        return await self._poster.post(body, headers)

    def _note_oversized(self, count: int) -> None:
        if self._metrics is not None:
            self._metrics.sink_fields_oversized.labels(sink=self.name).inc(count)
        if not self._warned_oversized:
            self._warned_oversized = True
            self._log.warning(
                "sink %s: %d field value(s) are larger than %d bytes and will be truncated by the Data "
                "Collector API; counted in logferry_sink_fields_oversized_total, not logged again",
                self.name,
                count,
                FIELD_MAX_BYTES,
            )
