"""What the Microsoft API sources share: config fields, per-API profiles, sign-in, OData paging, checks.

The Defender alerts source (Graph ``alerts_v2`` or the MDE API) and the message trace source
(Graph ``messageTraces`` or the Reporting Web Service) differ in paths, filters and record keys;
everything else is here once:

* :class:`ApiProfile` — one API's facts as data: token resource, host, request budget, page and
  window limits, the permission to name when access is refused.
* :class:`GraphSourceConfig` — the config fields every such source has (``auth``, ``cloud``,
  ``api_url`` …); a source type subclasses it with its ``api`` choice and its profiles.
* :class:`GraphApi` — Entra ID tokens for the API's audience, the request budget shared by every
  source with the same app and tenant, and ``check()`` wording that says what to fix.
* :func:`parse_odata` and :func:`odata_pages` — OData pages (``value`` + ``@odata.nextLink``), where
  a next link is followed verbatim and a malformed page or record becomes a dead letter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, SourceConfig, TLSConfig, check_api_url
from logferry.config.entra import EntraAuth, entra_provider
from logferry.core.errors import AuthError, RateLimited, VendorAPIError
from logferry.core.polling import Page, WindowSettings
from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue, Record
from logferry.net.http import HttpClient, HttpResponse, same_origin

__all__ = [
    "CLOUDS",
    "MAX_PASSES",
    "ApiProfile",
    "Cloud",
    "CloudHosts",
    "GraphApi",
    "GraphSettings",
    "GraphSourceConfig",
    "ODataPage",
    "ODataQuery",
    "RecordKey",
    "odata_pages",
    "parse_odata",
    "per_api_field",
]

#: How often a window is read again when fewer records arrived than its first page counted.
MAX_PASSES = 3

Cloud = Literal["public"]


@dataclass(frozen=True)
class CloudHosts:
    authority: str
    graph: str
    mde: str
    reporting: str


#: Hosts per cloud. Only the global service is built in: it is the one the specs confirm (Graph
#: message trace is "global service only"; defender.md names only public and regional MDE hosts).
#: Other clouds set ``api_url``, ``authority_host`` and ``token_scope``.
CLOUDS: dict[Cloud, CloudHosts] = {
    "public": CloudHosts(
        authority="https://login.microsoftonline.com",
        graph="https://graph.microsoft.com",
        mde="https://api.securitycenter.microsoft.com",
        reporting="https://reports.office365.com",
    ),
}


@dataclass(frozen=True)
class ApiProfile:
    """One API's facts and defaults; the config's unset options take these."""

    label: str  # how messages name the API
    host: Literal["graph", "mde", "reporting"]  # which CloudHosts entry is its root
    resource: str  # token audience; the scope is "{resource}/.default"
    permission: str  # what an admin grants when access is refused
    budget_key: str  # requests with the same key, app and tenant share one limiter
    budget_per_app: bool  # the vendor counts per app and tenant (else per tenant)
    max_requests_per_sec: float
    interval_secs: float
    window_secs: float
    initial_lookback_secs: float
    lag_secs: float
    page_size: int
    max_page_size: int | None = None
    max_window_secs: float | None = None
    retention_secs: float | None = None
    hint_401: str = ""


@dataclass(frozen=True)
class GraphSettings:
    """A config with every default filled in from its API's profile."""

    profile: ApiProfile
    api_url: str
    scope: str
    authority_host: str
    page_size: int
    max_requests_per_sec: float
    window: WindowSettings
    stale_after_secs: float


_NUMERIC = ("interval_secs", "window_secs", "initial_lookback_secs", "lag_secs", "page_size",
            "max_requests_per_sec")  # fmt: skip
_HELP = {
    "interval_secs": ("Seconds between polls once caught up.", 1, 60),
    "window_secs": ("Largest time window per query.", 1, 3600),
    "initial_lookback_secs": ("On first start, how far back to collect.", 0, 86400),
    "lag_secs": ("Query only windows that ended this long ago, so records that arrive late are not missed.",
                 0, 900),
    "page_size": ("Records per page ($top).", 1, 500),
    "max_requests_per_sec": (
        "Requests per second to this API, shared by every source signing in to the same tenant "
        "(with the same app, where the API counts per app).",
        0,
        0.5,
    ),
}  # fmt: skip


def per_api_field(name: str, profiles: Mapping[str, ApiProfile]) -> Any:
    """The ``Field`` of option ``name``: unset means the profile's default, which the description lists."""
    text, lowest, example = _HELP[name]
    values = {api: getattr(p, name) for api, p in profiles.items()}
    if len(set(values.values())) == 1:
        defaults = _num(next(iter(values.values())))
    else:
        defaults = ", ".join(f"{_num(v)} for api {api}" for api, v in values.items())
    limit_attr = {"page_size": "max_page_size", "window_secs": "max_window_secs"}.get(name)
    limits = [
        f"{_num(getattr(p, limit_attr))} for api {api}"
        for api, p in profiles.items()
        if limit_attr and getattr(p, limit_attr)
    ]
    description = f"{text} Default: {defaults}." + (f" At most {', '.join(limits)}." if limits else "")
    if name == "max_requests_per_sec":
        return Field(None, gt=lowest, description=description, examples=[example])
    return Field(None, ge=lowest, description=description, examples=[example])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class GraphSourceConfig(SourceConfig):
    """Options shared by the Microsoft API sources; a source type adds ``api`` and its ``PROFILES``."""

    PROFILES: ClassVar[Mapping[str, ApiProfile]] = {}

    api: str
    auth: EntraAuth = Field(description="How the app registration signs in to Entra ID.")
    cloud: Cloud = Field(
        "public",
        description="Microsoft cloud: picks the API host and the Entra ID authority. Only the global "
        "service is built in; for other clouds set api_url, authority_host and token_scope.",
        examples=["public"],
    )
    api_url: str | None = Field(
        None,
        description="API root overriding the cloud's (scheme and host, no path); https except for localhost.",
        examples=["https://eu.api.security.microsoft.com"],
    )
    authority_host: str | None = Field(
        None,
        description="Entra ID authority host overriding the cloud's.",
        examples=["https://login.microsoftonline.us"],
    )
    token_scope: str | None = Field(
        None,
        min_length=1,
        description="OAuth scope of the token, overriding the API's ({resource}/.default). It must match "
        "the API: tokens of one API are refused by the others.",
        examples=["https://graph.microsoft.us/.default"],
    )
    api_version: Literal["v1.0", "beta"] = Field(
        "v1.0", description="Microsoft Graph version in the path (Graph APIs only).", examples=["beta"]
    )
    interval_secs: float | None = None
    window_secs: float | None = None
    initial_lookback_secs: float | None = None
    lag_secs: float | None = None
    page_size: int | None = None
    max_requests_per_sec: float | None = None
    timeout_secs: float = Field(30.0, gt=0, description="Per-request timeout.", examples=[60])
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for the API and Entra ID.")

    @field_validator("api_url", "authority_host")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://graph.microsoft.com")

    @model_validator(mode="after")
    def _within_api_limits(self) -> GraphSourceConfig:
        p = self.profile
        if self.page_size is not None and p.max_page_size is not None and self.page_size > p.max_page_size:
            raise ValueError(
                f"page_size {self.page_size} exceeds {p.max_page_size}, the most {p.label} sends"
            )
        if (
            self.window_secs is not None
            and p.max_window_secs is not None
            and self.window_secs > p.max_window_secs
        ):
            raise ValueError(
                f"window_secs {_num(self.window_secs)} exceeds {_num(p.max_window_secs)}, the longest range "
                f"{p.label} accepts per query"
            )
        return self

    @property
    def profile(self) -> ApiProfile:
        return self.PROFILES[self.api]

    def settings(self) -> GraphSettings:
        p = self.profile
        values = {n: getattr(self, n) if getattr(self, n) is not None else getattr(p, n) for n in _NUMERIC}
        hosts = CLOUDS[self.cloud]
        interval = float(values["interval_secs"])
        return GraphSettings(
            profile=p,
            api_url=self.api_url or getattr(hosts, p.host),
            scope=self.token_scope or f"{p.resource}/.default",
            authority_host=self.authority_host or hosts.authority,
            page_size=int(values["page_size"]),
            max_requests_per_sec=float(values["max_requests_per_sec"]),
            window=WindowSettings(
                interval_secs=interval,
                window_secs=float(values["window_secs"]),
                lookback_secs=float(values["initial_lookback_secs"]),
                lag_secs=float(values["lag_secs"]),
                retention_secs=p.retention_secs,
            ),
            stale_after_secs=self.stale_after_secs or 3 * interval,
        )


class GraphApi:
    """One Microsoft API as a source uses it: tokens, the shared budget, and checks in plain words."""

    def __init__(self, name: str, cfg: GraphSourceConfig, ctx: BuildContext) -> None:
        s = cfg.settings()
        self.settings = s
        self.label = s.profile.label
        self.tokens = entra_provider(cfg.auth, scope=s.scope, authority_host=s.authority_host, tls=cfg.tls)
        key: tuple[str, ...] = (s.profile.budget_key, s.api_url, cfg.auth.tenant_id)
        if s.profile.budget_per_app:
            key += (cfg.auth.client_id,)
        self.http = HttpClient(
            ctx.session(cfg.tls.settings()),
            auth=self.tokens,
            limiter=ctx.limiter(key, s.max_requests_per_sec, 1),
            timeout_secs=cfg.timeout_secs,
            component=name,
            metrics=ctx.metrics,
        )

    def url(self, path: str) -> str:
        return f"{self.settings.api_url}{path}"

    def same_origin(self, link: str) -> bool:
        """Whether ``link`` stays on the API's host: our bearer token must not follow it elsewhere."""
        return same_origin(link, self.settings.api_url)

    async def get(
        self, url: str, params: Sequence[tuple[str, str]] | None = None, passthrough: Sequence[int] = ()
    ) -> HttpResponse:
        return await self.http.request("GET", url, params=params, passthrough=passthrough)

    async def check(self, url: str, params: Sequence[tuple[str, str]], key: RecordKey) -> CheckResult:
        """Sign in, read one page and say what to fix when either fails."""
        s = self.settings
        try:
            await self.tokens.token()
        except AuthError as exc:
            return CheckResult(
                False,
                f"sign-in to Entra ID failed: {exc}; check auth.tenant_id, auth.client_id and the client "
                f"secret or certificate (authority {s.authority_host})",
            )
        try:
            resp = await self.get(url, params)
        except AuthError as exc:
            return CheckResult(False, self._refused(str(exc)))
        except (VendorAPIError, RateLimited) as exc:
            return CheckResult(False, f"{self.label} request failed: {exc}")
        page = parse_odata(resp.body, key, self.label)
        if page.rejects:
            return CheckResult(False, f"unexpected response from {self.label}: {page.rejects[0][0]}")
        return CheckResult(True, f"sign-in ok; {self.label} query ok ({s.api_url})")

    def _refused(self, error: str) -> str:
        s, p = self.settings, self.settings.profile
        if error.startswith("HTTP 403"):
            return f"{self.label} denied access ({error}); grant the app {p.permission}"
        hint = f"; {p.hint_401}" if p.hint_401 else ""
        return (
            f"{self.label} refused the token ({error}); it takes tokens for {p.resource}/.default and this "
            f"source asked for {s.scope}: check api, api_url, cloud and token_scope{hint}"
        )


@dataclass(frozen=True)
class RecordKey:
    """The fields whose values, joined by ``|``, identify one record version for dedupe.

    The first field should be the record's time, so ids ascend with time and append to the right
    edge of the dedupe index (see ``SourceContext.emit``).
    """

    fields: tuple[str, ...]

    def __call__(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return None
        parts: list[str] = []
        for name in self.fields:
            value = record.get(name)
            if not isinstance(value, str) or not value:
                return None
            parts.append(value)
        return "|".join(parts)

    def describe(self) -> str:
        return ", ".join(self.fields)


@dataclass(frozen=True)
class ODataPage:
    records: list[Record]
    ids: list[str]
    rejects: list[tuple[str, bytes]]
    next_link: str | None
    count: int | None  # @odata.count, when asked for
    items: int  # entries in value, rejected ones included


_NEXT_KEYS = ("@odata.nextLink", "odata.nextLink")


def parse_odata(body: bytes, key: RecordKey, label: str) -> ODataPage:
    """An OData page: ``value`` (or verbose ``d.results``) and the next link; problems become rejects."""

    def bad(reason: str) -> ODataPage:
        return ODataPage([], [], [(f"{label} page {reason}", body)], None, None, 0)

    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return bad(f"is not JSON: {exc}")
    if not isinstance(doc, dict):
        return bad("is not a JSON object")
    values, link = doc.get("value"), next((doc[k] for k in _NEXT_KEYS if k in doc), None)
    verbose = doc.get("d")
    if values is None and isinstance(verbose, dict):
        # Verbose OData (the Reporting Web Service without JSON light) nests the page under "d".
        values, link = verbose.get("results"), verbose.get("__next")
    if not isinstance(values, list):
        return bad("has no 'value' list")
    if link is not None and not isinstance(link, str):
        return bad("has a nextLink that is not a string")
    count = doc.get("@odata.count")
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for rec in values:
        rid = key(rec)
        if rid is None:
            rejects.append((f"{label} record lacks one of {key.describe()}", orjson.dumps(rec)))
            continue
        records.append(rec)
        ids.append(rid)
    return ODataPage(records, ids, rejects, link, count if isinstance(count, int) else None, len(values))


@dataclass(frozen=True)
class ODataQuery:
    """The first request of a window; ``skip_paging``: a full page without a next link pages by ``$skip``."""

    url: str
    params: Sequence[tuple[str, str]]
    page_size: int
    skip_paging: bool = False


async def odata_pages(
    api: GraphApi, query: ODataQuery, key: RecordKey, token: JSONValue | None
) -> AsyncIterator[Page]:
    """The pages of one window, resuming at ``token``; each page carries the token of the next.

    Next links are followed verbatim (they carry the original parameters) if they stay on the API's
    host. Offset paging loses records when one leaves the result while it is paged — an alert
    updated meanwhile moves to a later window, and everything behind it shifts up by one — so when
    the first page counted more records (``@odata.count``) than the window delivered, the window is
    read again, up to :data:`MAX_PASSES` times; dedupe drops what was already delivered.
    """
    state = _Cursor.load(token)
    while True:
        if state.next is not None:
            resp = await api.get(state.next)
        else:
            skip = [("$skip", str(state.seen))] if state.seen else []
            resp = await api.get(query.url, [*query.params, *skip])
        page = parse_odata(resp.body, key, api.label)
        rejects = list(page.rejects)
        expected = page.count if state.next is None and state.seen == 0 else state.expected
        seen = state.seen + page.items
        link = page.next_link
        if link is not None and not api.same_origin(link):
            rejects.append(
                (f"{api.label} nextLink leaves {api.settings.api_url}; not followed", link.encode())
            )
            link = None
        following: _Cursor | None = None
        if link is not None:
            following = _Cursor(link, seen, expected, state.passes)
        elif query.skip_paging and page.items >= query.page_size:
            following = _Cursor(None, seen, expected, state.passes)
        elif expected is not None and seen < expected and state.passes < MAX_PASSES:
            following = _Cursor(None, 0, None, state.passes + 1)
        yield Page(page.records, page.ids, following.dump() if following else None, rejects)
        if following is None:
            return
        state = following


@dataclass(frozen=True)
class _Cursor:
    """Where paging stands inside a window; stored in the source's cursor as a small dict."""

    next: str | None = None
    seen: int = 0
    expected: int | None = None
    passes: int = 1

    @classmethod
    def load(cls, token: JSONValue | None) -> _Cursor:
        if not isinstance(token, dict):
            return cls()
        return cls(
            token.get("next"), int(token.get("seen", 0)), token.get("expected"), int(token.get("pass", 1))
        )

    def dump(self) -> dict[str, Any]:
        return {"next": self.next, "seen": self.seen, "expected": self.expected, "pass": self.passes}
