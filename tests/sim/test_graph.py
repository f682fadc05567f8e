"""The Graph simulator over real sockets: alerts_v2, message trace, the MDE API and the RWS."""

from __future__ import annotations

import asyncio
import signal
import ssl
from typing import Any

import aiohttp
import pytest
from yarl import URL

from logferry.sim.entra import EntraSim
from logferry.sim.graph import EXCHANGE_AUDIENCE, GRAPH_AUDIENCE, MDE_AUDIENCES, RWS_PATH, GraphSim
from logferry.sim.graph_odata import TICKS_PER_SEC, format_ticks, now_ticks

from .conftest import Starter, announcement
from .helpers import stats

ALERTS = "/v1.0/security/alerts_v2"
TRACES = "/v1.0/admin/exchange/tracing/messageTraces"
EVER = {
    "$filter": "lastUpdateDateTime ge 2000-01-01T00:00:00Z and lastUpdateDateTime lt 2100-01-01T00:00:00Z"
}


class Client:
    """GETs with a token for the audience each API expects, unless told otherwise."""

    def __init__(self, http: aiohttp.ClientSession, sim: GraphSim, entra: EntraSim) -> None:
        self.http, self.sim, self.entra = http, sim, entra

    async def get(
        self, path_or_url: str, params: dict[str, str] | None = None, audience: str = GRAPH_AUDIENCE
    ) -> tuple[int, dict[str, str], Any]:
        url = path_or_url if path_or_url.startswith("http") else f"{self.sim.url}{path_or_url}"
        headers = {"Authorization": f"Bearer {self.entra.issue_token(audience)}"}
        # encoded=True: a next link is requested exactly as the server wrote it.
        target = URL(url, encoded=True) if params is None else URL(url).with_query(params)
        async with self.http.get(target, headers=headers) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)


async def graph(start_sim: Starter, entra: EntraSim, **options: Any) -> GraphSim:
    quiet: dict[str, Any] = {"alert_rate": 0, "update_rate": 0, "message_rate": 0, "trace_delay_secs": 0}
    sim: GraphSim = await start_sim(GraphSim(entra=entra, **{**quiet, **options}))
    return sim


@pytest.fixture
async def client(start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession) -> Client:
    return Client(http, await graph(start_sim, entra, backlog_alerts=45, backlog_messages=40), entra)


async def test_alerts_v2_next_link_is_absolute_and_carries_the_original_parameters(client: Client) -> None:
    status, _, first = await client.get(ALERTS, {**EVER, "$top": "20", "$count": "true"})
    assert status == 200 and first["@odata.count"] == 45 and len(first["value"]) == 20
    link = URL(first["@odata.nextLink"], encoded=True)
    assert str(link).startswith(client.sim.url)
    assert link.query["$filter"] == EVER["$filter"] and link.query["$top"] == "20"
    ids = [a["id"] for a in first["value"]]
    while "@odata.nextLink" in first:
        status, _, first = await client.get(first["@odata.nextLink"])
        ids += [a["id"] for a in first["value"]]
    assert len(ids) == len(set(ids)) == 45
    assert first["@odata.context"].endswith("/v1.0/$metadata#security/alerts_v2")


async def test_alerts_v2_time_filters_compare_all_seven_digits(client: Client) -> None:
    alert = client.sim.current_alerts()[10]
    t = format_ticks(alert.updated)
    assert len(t) == len("2026-11-21T10:00:00.1234567Z") and not t.endswith("0Z")

    async def ids(op: str) -> set[str]:
        _, _, body = await client.get(ALERTS, {"$filter": f"lastUpdateDateTime {op} {t}"})
        return {a["id"] for a in body["value"]}

    assert alert.id in await ids("ge") and alert.id in await ids("le")
    assert alert.id not in await ids("gt") and alert.id not in await ids("lt")
    _, _, body = await client.get(
        ALERTS, {"$filter": f"lastUpdateDateTime ge {t} and lastUpdateDateTime le {t}"}
    )
    assert [a["lastUpdateDateTime"] for a in body["value"]] == [t]


async def test_an_updated_alert_keeps_its_id_and_moves_to_its_new_update_time(
    client: Client, http: aiohttp.ClientSession
) -> None:
    before = {a["id"]: a for a in (await client.get(ALERTS, EVER))[2]["value"]}
    async with http.post(f"{client.sim.url}/sim/alerts/update", json={"count": 2}) as r:
        updated = (await r.json())["updated"]
    after = {a["id"]: a for a in (await client.get(ALERTS, EVER))[2]["value"]}
    assert set(after) == set(before)
    for u in updated:
        old, new = before[u["id"]], after[u["id"]]
        assert (
            new["lastUpdateDateTime"] > old["lastUpdateDateTime"]
            and new["status"] == u["status"] != old["status"]
        )
    # The old version's moment no longer finds the alert.
    t = before[updated[0]["id"]]["lastUpdateDateTime"]
    _, _, body = await client.get(
        ALERTS, {"$filter": f"lastUpdateDateTime ge {t} and lastUpdateDateTime le {t}"}
    )
    assert updated[0]["id"] not in {a["id"] for a in body["value"]}


async def test_alerts_v2_answers_429_with_retry_after_over_its_per_minute_limit(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    client = Client(http, await graph(start_sim, entra, backlog_alerts=1, alerts_per_minute=3), entra)
    statuses = [(await client.get(ALERTS, EVER))[:2] for _ in range(4)]
    assert [s for s, _ in statuses] == [200, 200, 200, 429]
    assert 1 <= int(statuses[3][1]["Retry-After"]) <= 60
    assert (await stats(http, client.sim))["rate_limited"] == {"alerts": 1}


@pytest.mark.parametrize(
    ("path", "audience"),
    [
        ("/api/alerts", GRAPH_AUDIENCE),
        (ALERTS, MDE_AUDIENCES[0]),
        (RWS_PATH, GRAPH_AUDIENCE),
        (TRACES, EXCHANGE_AUDIENCE),
    ],
    ids=["graph-token-on-mde", "mde-token-on-graph", "graph-token-on-rws", "exchange-token-on-graph-trace"],
)
async def test_tokens_of_one_api_are_refused_by_the_others(client: Client, path: str, audience: str) -> None:
    status, _, body = await client.get(path, {"$format": "json"}, audience=audience)
    assert status == 401
    assert "Invalid audience" in str(body)


async def test_mde_expands_evidence_only_when_asked_and_caps_top(client: Client) -> None:
    mde = MDE_AUDIENCES[0]
    _, _, plain = await client.get("/api/alerts", {"$top": "5"}, audience=mde)
    assert "evidence" not in plain["value"][0] and "@odata.nextLink" in plain
    _, _, full = await client.get("/api/alerts", {"$top": "5", "$expand": "evidence"}, audience=mde)
    assert [e["entityType"] for e in full["value"][0]["evidence"]] == ["User", "Process", "File"]
    assert full["value"][0]["lastUpdateTime"] == plain["value"][0]["lastUpdateTime"]
    status, _, body = await client.get("/api/alerts", {"$top": "10001"}, audience=mde)
    assert status == 400 and body["error"]["code"] == "BadRequest"
    # Both the api.securitycenter and api.security hosts' audiences are accepted.
    status, _, _ = await client.get("/api/alerts", {"$top": "1"}, audience=MDE_AUDIENCES[1])
    assert status == 200


async def test_mde_hourly_limit_applies_even_under_the_minute_limit(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await graph(start_sim, entra, backlog_alerts=1, mde_per_minute=100, mde_per_hour=2)
    client = Client(http, sim, entra)
    results = [await client.get("/api/alerts", {}, audience=MDE_AUDIENCES[0]) for _ in range(3)]
    assert [s for s, _, _ in results] == [200, 200, 429]
    assert "per Hour" in results[2][2]["error"]["message"] and "Retry-After" in results[2][1]


def _trace_filter(start_secs_ago: float, end_secs_ago: float) -> dict[str, str]:
    now = now_ticks()
    start = format_ticks(now - int(start_secs_ago * TICKS_PER_SEC))
    end = format_ticks(now - int(end_secs_ago * TICKS_PER_SEC))
    return {"$filter": f"receivedDateTime ge {start} and receivedDateTime le {end}"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "receivedDateTime range (ge and le) is required"),
        ({"$filter": "receivedDateTime ge 2026-01-01T00:00:00Z"}, "both 'ge' and 'le'"),
        (_trace_filter(91 * 86400, 90 * 86400), "older than 90 days"),
        (_trace_filter(11 * 86400, 0), "longer than 10 days"),
        ({**_trace_filter(3600, 0), "$top": "0"}, "'$top' must be between 1 and 5000"),
        ({**_trace_filter(3600, 0), "$top": "5001"}, "'$top' must be between 1 and 5000"),
        ({**_trace_filter(3600, 0), "$skiptoken": "!!"}, "$skiptoken is invalid"),
    ],
    ids=[
        "no-filter",
        "no-upper-bound",
        "older-than-90-days",
        "over-10-days",
        "top-0",
        "top-5001",
        "bad-token",
    ],
)
async def test_message_trace_refuses_queries_outside_its_rules(
    client: Client, params: dict[str, str], message: str
) -> None:
    status, _, body = await client.get(TRACES, params)
    assert status == 400 and message in body["error"]["message"]


async def test_message_trace_pages_by_skiptoken_and_recipient_rows_share_the_trace_id(client: Client) -> None:
    rows: list[dict[str, Any]] = []
    status, _, body = await client.get(TRACES, {**_trace_filter(7200, 0), "$top": "7"})
    rows += body["value"]
    while "@odata.nextLink" in body:
        assert "$skiptoken=" in body["@odata.nextLink"] and "receivedDateTime%20ge" in body["@odata.nextLink"]
        status, _, body = await client.get(body["@odata.nextLink"])
        rows += body["value"]
    assert status == 200 and len(rows) == len(client.sim.visible_trace_rows())
    keys = {(r["receivedDateTime"], r["id"], r["recipientAddress"]) for r in rows}
    assert len(keys) == len(rows) > len({r["id"] for r in rows})
    assert rows[0]["@odata.type"] == "#microsoft.graph.exchangeMessageTrace"


async def test_message_trace_throttles_per_tenant_in_a_running_window(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    client = Client(http, await graph(start_sim, entra, backlog_messages=1, trace_per_5min=2), entra)
    results = [await client.get(TRACES, _trace_filter(3600, 0)) for _ in range(3)]
    assert [s for s, _, _ in results] == [200, 200, 429]
    assert 1 <= int(results[2][1]["Retry-After"]) <= 300


async def test_trace_rows_become_visible_only_after_their_delay(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await graph(start_sim, entra, backlog_messages=30, messages_backlog_secs=1, trace_delay_secs=1)
    early = len(sim.visible_trace_rows())
    await asyncio.sleep(1.1)
    assert early < len(sim.visible_trace_rows()) == len(sim.trace)


async def test_rws_pages_with_a_relative_next_link_and_prints_received_without_a_zone(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await graph(start_sim, entra, backlog_messages=1700, backlog_alerts=0)
    client = Client(http, sim, entra)
    day = format_ticks(now_ticks() - 86400 * TICKS_PER_SEC)[:19] + "Z"
    params = {"$filter": f"StartDate eq datetime'{day}' and EndDate eq datetime'{format_ticks(now_ticks())}'",
              "$format": "json"}  # fmt: skip
    status, _, body = await client.get(RWS_PATH, params, audience=EXCHANGE_AUDIENCE)
    assert status == 200 and len(body["value"]) == 2000
    link = body["odata.nextLink"]
    assert (
        link.startswith("../../reportingwebservice/reporting.svc/MessageTrace?") and "$skiptoken=1999" in link
    )
    received = body["value"][0]["Received"]
    assert len(received) == len("2022-09-05T18:10:13.4907658") and not received.endswith("Z")
    status, _, rest = await client.get(
        str(URL(f"{sim.url}{RWS_PATH}").join(URL(link))), audience=EXCHANGE_AUDIENCE
    )
    assert status == 200 and rest["value"][0]["Index"] == 2000 and "odata.nextLink" not in rest
    assert 2000 + len(rest["value"]) == len(sim.visible_trace_rows())


async def test_rws_answers_500_unknown_error_at_the_skiptoken_ceiling(client: Client) -> None:
    params = {"$format": "json", "$skiptoken": "999999"}
    status, _, body = await client.get(RWS_PATH, params, audience=EXCHANGE_AUDIENCE)
    assert status == 500 and body["odata.error"]["code"] == "UnknownError"
    status, _, body = await client.get(
        RWS_PATH,
        {"$format": "json", "$filter": "EndDate eq datetime'2026-01-01T00:00:00Z'"},
        audience=EXCHANGE_AUDIENCE,
    )
    assert status == 400 and "EndDate requires StartDate" in body["error"]["message"]["value"]


async def test_standalone_graph_announces_its_api_and_entra(launch: Any) -> None:
    proc = launch("graph", True, "--backlog-alerts", "5", "--backlog-messages", "0", "--alert-rate", "0")
    announced = await asyncio.to_thread(announcement, proc)
    creds = announced["credentials"]
    assert {"tenant_id", "client_id", "client_secret", "authority_host", "api_url"} <= set(creds)
    assert creds["api_url"] == announced["url"]
    ctx = ssl.create_default_context(cafile=announced["ca_file"])
    async with aiohttp.ClientSession() as http, http.get(f"{announced['url']}/sim/stats", ssl=ctx) as r:
        assert (await r.json())["alerts"] == 5
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0
