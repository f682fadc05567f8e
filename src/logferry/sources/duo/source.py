"""Cisco Duo Admin API logs, type ``duo``: one lane per log type, each a time-windowed poller.

Facts (shared/specs/duo.md): every request is signed (v5 or v2, :mod:`.signing`); nothing newer
than two minutes is served, so ``maxtime = now - lag`` with lag ≥ 120 s; each log endpoint allows
1-2 requests a minute and answers 429/42901 without ``Retry-After`` beyond that, so each
(host, ikey, endpoint) gets its own limiter and throttling backs off with jitter; v2 logs page
with ``next_offset`` inside a ``mintime``/``maxtime`` (ms) window, Trust Monitor with ``offset``,
the administrator log only by ``mintime`` in seconds.

Cursor (one per lane, see :mod:`logferry.core.lanes`)::

    {"lanes": {"authentication": {"start": "…", "end": "…", "page": "1700000001000,5bea…"}, …}}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from logferry.config.base import BuildContext
from logferry.core.errors import AuthError, MalformedPage, VendorAPIError
from logferry.core.lanes import run_lanes
from logferry.core.polling import Page, PollingSource, Window, WindowSettings
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import JSONValue
from logferry.net.http import HttpClient, HttpResponse

from .config import RETENTION_SECS, DuoConfig, LogType
from .endpoints import ENDPOINTS, Parsed, parse
from .signing import DuoSigner

__all__ = ["DuoLane", "DuoSource"]

#: Duo's own SDK gives up after backing off 32 s, which field reports call too short (§5).
BACKOFF_MAX_SECS = 120.0
#: Requests go 2% slower than requests_per_minute: sent exactly at the limit, the request due
#: one minute after the first lands on the server a little before or after that minute by network
#: jitter alone, and Duo answers the early ones with 429 (bench/duo.py saw one per endpoint).
PACING_MARGIN = 1.02
TRUST_MONITOR_MAX_LIMIT = 200


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _explain(exc: AuthError) -> AuthError:
    text = str(exc)
    if "40103" in text:
        hint = (
            "Duo refused the request signature (40103): check ikey, skey and host, and this machine's clock"
        )
    elif "HTTP 403" in text:
        hint = "Duo refused access (403): the Admin API application needs the 'Grant read log' permission"
    else:
        hint = "Duo refused the credentials: check ikey, skey and host"
    return AuthError(f"{hint} ({text})")


class DuoLane(PollingSource):
    """One log endpoint: its windows, pages and request budget."""

    def __init__(self, name: str, log_type: LogType, cfg: DuoConfig, http: HttpClient) -> None:
        super().__init__(
            f"{name}/{log_type}",
            WindowSettings(
                interval_secs=cfg.interval_secs,
                window_secs=cfg.window_secs,
                lookback_secs=cfg.initial_lookback_secs,
                lag_secs=cfg.lag_secs,
                retention_secs=RETENTION_SECS,
                # Once caught up, a window shorter than the poll interval is not worth one of the
                # two requests a minute.
                min_window_secs=cfg.interval_secs,
            ),
        )
        self.log_type: LogType = log_type
        self.cfg = cfg
        self.http = http
        self.endpoint = ENDPOINTS[log_type]
        self.url = f"https://{cfg.host}{self.endpoint.path}"

    async def get(self, params: list[tuple[str, str]]) -> HttpResponse:
        try:
            return await self.http.request("GET", self.url, params=params)
        except AuthError as exc:
            raise _explain(exc) from None

    def params(self, window: Window, token: JSONValue | None) -> list[tuple[str, str]]:
        if self.log_type == "administrator":
            mintime = token if isinstance(token, int) else int(window.start.timestamp())
            return [("mintime", str(mintime))]
        # mintime and maxtime are both inclusive (duo_client docs); the millisecond shared with the
        # next window is fetched twice and dropped by the dedupe on ids.
        limit = self.cfg.page_size
        if self.log_type == "trust_monitor":
            # The spec publishes no maximum for Trust Monitor (unconfirmed; 200 is the cautious
            # guess). Too large a limit could be refused with 400 on every poll; a small one only
            # costs requests.
            limit = min(limit, TRUST_MONITOR_MAX_LIMIT)
        params = [
            ("mintime", str(_ms(window.start))),
            ("maxtime", str(_ms(window.end))),
            ("limit", str(limit)),
        ]
        if self.log_type != "trust_monitor":
            params.append(("sort", "ts:asc"))
        if isinstance(token, str) and self.endpoint.offset_param:
            params.append((self.endpoint.offset_param, token))
        return params

    async def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        token = page_token
        while True:
            sent = self.params(window, token)
            until = int(window.end.timestamp()) if self.log_type == "administrator" else None
            parsed = parse(self.log_type, (await self.get(sent)).body, until)
            token = self._next(window, sent, parsed)
            for record in parsed.records:
                # What duo_client adds to every log row, so one output stream says which log and
                # which account each record came from.
                record["eventtype"] = self.log_type
                record["host"] = self.cfg.host
            yield Page(parsed.records, parsed.ids, token, parsed.rejects)
            if token is None:
                return

    def _next(self, window: Window, sent: list[tuple[str, str]], parsed: Parsed) -> JSONValue | None:
        if self.log_type != "administrator":
            return parsed.next_offset
        return _administrator_next(window, int(sent[0][1]), parsed)

    async def check(self) -> CheckResult:
        end = self.now().replace(microsecond=0) - timedelta(seconds=self.cfg.lag_secs)
        window = Window(end - timedelta(minutes=1), end)
        try:
            resp = await self.get(self.params(window, None))
        except AuthError as exc:
            return CheckResult(False, str(exc))
        except VendorAPIError as exc:
            return CheckResult(False, f"cannot query the {self.log_type} log at {self.cfg.host}: {exc}")
        try:
            parse(self.log_type, resp.body)
        except MalformedPage as exc:
            return CheckResult(False, f"unexpected {self.log_type} answer: {exc}")
        return CheckResult(True, f"signed request ok; {self.log_type} log readable")


def _administrator_next(window: Window, mintime: int, parsed: Parsed) -> int | None:
    """The next ``mintime`` (seconds) within ``window``, or None once the window is covered.

    The administrator log has no paging (§6): an answer holds records from ``mintime`` on, oldest
    first, up to an unpublished cap. Re-asking from the newest second seen is the only safe
    continuation (records of that second may have been cut off); dedupe drops the repeats.
    """
    end = int(window.end.timestamp())
    # An answer reaching the window's end was not cut off before it; what lies beyond belongs to
    # the next window, which asks for it again.
    if not parsed.times or parsed.beyond:
        return None
    newest = max(parsed.times)
    nxt = newest if newest > mintime else mintime + 1
    return nxt if nxt < end else None


class DuoSource:
    def __init__(self, name: str, cfg: DuoConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        # At 1 request a minute a throttled endpoint can go minutes between answers (backoff up to
        # BACKOFF_MAX_SECS, repeated); an hour without a page is the first sure sign of trouble.
        self._stale_after = cfg.stale_after_secs or max(3 * cfg.interval_secs, 3600.0)
        session = ctx.session(cfg.tls.settings())
        signer = DuoSigner(cfg.ikey, cfg.skey, cfg.host, cfg.signature)
        self.lanes: dict[str, DuoLane] = {}
        for log_type in cfg.log_types:
            path = ENDPOINTS[log_type].path
            # Duo's limits are per endpoint: each log type spends its own budget, shared by every
            # source configured with the same application.
            rate = cfg.requests_per_minute / 60.0 / PACING_MARGIN
            limiter = ctx.limiter(("duo", cfg.host, cfg.ikey, path), rate, 1)
            http = HttpClient(
                session,
                auth=signer,
                limiter=limiter,
                timeout_secs=cfg.timeout_secs,
                backoff_max_secs=BACKOFF_MAX_SECS,
                component=name,
                metrics=ctx.metrics,
            )
            self.lanes[log_type] = DuoLane(name, log_type, cfg, http)

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def run(self, ctx: SourceContext) -> None:
        await run_lanes(ctx, self.lanes)

    async def check(self) -> CheckResult:
        lane = next(iter(self.lanes.values()))
        return await lane.check()

    async def close(self) -> None:
        return None
