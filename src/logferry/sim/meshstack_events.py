"""Deterministic meshStack event logs: a seeded backlog plus events that appear as wall time passes.

Events are stored compactly (timestamp, uuid and a few indexes) and rendered to the vendor's record
shape only when served, so a benchmark backlog of a million events stays cheap. The same seed gives
the same uuids, titles, authors and contents in the same order; only the timestamps move with the
start time. Live events get ``createdAt`` = the moment they became due, and are only created once
that moment has passed, so a client never sees an event from the future.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Event", "EventLog", "Filters", "format_created_at"]

Content = dict[str, Any]
T = TypeVar("T")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# (identifier, display name): identifiers are what `spec.workspaceRef.name` and the
# `workspaceIdentifier` filter use; display names (with non-ASCII on purpose) are what
# `workspaceName` matches.
_WORKSPACES = (
    ("likvid-bank", "Likvid Bank"),
    ("acme-retail", "ACME Retail"),
    ("mueller-analytics", "Müller Analytics"),
    ("nordic-ops", "Nordic Øps"),
    ("platform-team", "Platform Team"),
    ("data-lake", "Data Lake"),
    ("sandbox-42", "Sandbox 42"),
    ("zeta-research", "Zeta Research ζ"),
)
_PROJECTS = ("web-shop", "payments", "ml-training", "ci-runners", "intranet", "etl", "api-gateway")
_BUILDING_BLOCKS = (
    "AWS S3 Bucket",
    "Azure Key Vault",
    "GitHub Repository",
    "Azure Subscription",
    "GCP Project",
)
_ROLES = ("Workspace Manager", "Workspace Member", "Workspace Owner", "Project Admin", "Project Reader")
_REASONS = ("no longer needed", "requested by owner", "cost cleanup", "duplicate", "policy violation")
_PLATFORMS = ("aws.eu-central-1", "azure.westeurope", "gcp.europe-west3", "openshift.on-prem")


class _Picks:
    """Deterministic choices drawn from one event's 128-bit salt.

    Rendering happens on every page served; seeding a ``random.Random`` per record cost more than
    the rest of the rendering together, while peeling choices off the salt with ``divmod`` is cheap.
    """

    __slots__ = ("_bits", "_salt", "_uuids")

    def __init__(self, salt: int) -> None:
        self._salt = salt
        self._bits = salt
        self._uuids = 0

    def below(self, n: int) -> int:
        self._bits, r = divmod(self._bits, n)
        return r

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + self.below(b - a + 1)

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        pool = list(seq)
        return [pool.pop(self.below(len(pool))) for _ in range(k)]

    def uuid(self) -> str:
        self._uuids += 1
        digest = hashlib.blake2b(
            self._salt.to_bytes(16, "little"), digest_size=16, person=bytes([self._uuids])
        )
        return _format_uuid4(int.from_bytes(digest.digest(), "big"))


@dataclass(frozen=True)
class _World:
    """Names events refer to, drawn once from the seed."""

    users: tuple[tuple[str, str], ...]  # (uuid, e-mail)
    api_keys: tuple[str, ...]
    authors: tuple[tuple[str, str], ...]  # (authorType, identifier)
    author_cumulative: tuple[int, ...]
    system_author: int

    @classmethod
    def from_seed(cls, rng: random.Random) -> _World:
        first = ("anna", "ben", "chloé", "david", "eva", "farid", "greta", "hiro", "ines", "jonas")
        users = tuple((_uuid(rng), f"{name}.{i}@example.com") for i, name in enumerate(first))
        api_keys = tuple(_uuid(rng) for _ in range(3))
        authors: list[tuple[str, str]] = [("User", u) for u, _ in users]
        weights = [10] * len(users)
        authors += [("ApiKey", k) for k in api_keys]
        weights += [15] * len(api_keys)
        # "Unknown" is what events from before mid-December 2025 carry (meshstack.md §2.3).
        authors += [("ApiUser", "ci-pipeline"), ("System", "system"), ("Unknown", "unknown")]
        weights += [10, 15, 5]
        return cls(
            users=users,
            api_keys=api_keys,
            authors=tuple(authors),
            author_cumulative=tuple(itertools.accumulate(weights)),
            system_author=authors.index(("System", "system")),
        )


@dataclass(frozen=True)
class _Template:
    title: str
    event_type: str
    system_wide: bool
    weight: int
    # (picks, world, workspace display name) -> (content, previousContent or None)
    build: Callable[[_Picks, _World, str], tuple[Content, Content | None]]
    describe: Callable[[Content], str]


def _bb(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {"Building Block Name": rng.choice(_BUILDING_BLOCKS), "Building Block UUID": rng.uuid()}, None


def _bb_cancel(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    content, _ = _bb(rng, w, ws)
    return {**content, "Reason": rng.choice(_REASONS)}, None


def _project(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    name = rng.choice(_PROJECTS)
    return {"Project Identifier": name, "Project Name": name.replace("-", " ").title()}, None


def _project_tags(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    name = rng.choice(_PROJECTS)
    old, new = rng.sample(["dev", "qa", "staging", "prod"], 2)
    return (
        {
            "Project Identifier": name,
            "Tags": {"environment": [new], "cost-center": [str(rng.randint(1000, 9999))]},
        },
        {"Project Identifier": name, "Tags": {"environment": [old]}},
    )


def _workspace(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {"Workspace Name": ws}, None


def _workspace_rename(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {"Workspace Name": ws}, {"Workspace Name": f"{ws} (old)"}


def _member(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    _, email = rng.choice(w.users)
    return {"User": email, "Role": rng.choice(_ROLES)}, None


def _role_request(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    content, _ = _member(rng, w, ws)
    return {**content, "Project Identifier": rng.choice(_PROJECTS)}, None


def _role_rejected(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    content, _ = _role_request(rng, w, ws)
    return {**content, "Reason": rng.choice(_REASONS)}, None


def _api_key(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {
        "API Key Name": f"key-{rng.randint(1, 99)}",
        "Key ID": rng.uuid(),
        "Permissions": ["Admin: List Event Logs in any Workspace"],
    }, None


def _platform(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {"Platform Identifier": rng.choice(_PLATFORMS)}, None


def _idp(rng: _Picks, w: _World, ws: str) -> tuple[Content, Content | None]:
    return {"Setting": "Session Timeout", "Value": f"{rng.choice((8, 12, 24))}h"}, {"Value": "10h"}


_TEMPLATES: tuple[_Template, ...] = (
    _Template("Building Block Run Requested", "Requested", False, 20, _bb,
              lambda c: f"A run of building block '{c['Building Block Name']}' was requested."),
    _Template("Building Block Run Cancelled", "Cancelled", False, 3, _bb_cancel,
              lambda c: f"A run of building block '{c['Building Block Name']}' was cancelled."),
    _Template("Project Created", "Created", False, 6, _project,
              lambda c: f"Project '{c['Project Name']}' was created."),
    _Template("Project Deleted", "Deleted", False, 2, _project,
              lambda c: f"Project '{c['Project Name']}' was deleted."),
    _Template("Project Tags Changed", "Changed", False, 6, _project_tags,
              lambda c: f"The tags of project '{c['Project Identifier']}' were changed."),
    _Template("Workspace Created", "Created", False, 2, _workspace,
              lambda c: f"Workspace '{c['Workspace Name']}' was created."),
    _Template("Workspace Name Changed", "Changed", False, 1, _workspace_rename,
              lambda c: f"Workspace was renamed to '{c['Workspace Name']}'."),
    _Template("User Added to Workspace", "Added", False, 8, _member,
              lambda c: f"{c['User']} was added as {c['Role']}."),
    _Template("User Removed from Workspace", "Removed", False, 4, _member,
              lambda c: f"{c['User']} was removed ({c['Role']})."),
    _Template("Project Role Requested", "Requested", False, 5, _role_request,
              lambda c: f"{c['User']} requested {c['Role']} in project '{c['Project Identifier']}'."),
    _Template("Project Role Request Approved", "Approved", False, 4, _role_request,
              lambda c: f"The request of {c['User']} for {c['Role']} was approved."),
    _Template("Project Role Request Rejected", "Rejected", False, 1, _role_rejected,
              lambda c: f"The request of {c['User']} for {c['Role']} was rejected: {c['Reason']}."),
    _Template("API Key Created", "Created", False, 2, _api_key,
              lambda c: f"API key '{c['API Key Name']}' was created."),
    _Template("API Key Deleted", "Deleted", False, 1, _api_key,
              lambda c: f"API key '{c['API Key Name']}' was deleted."),
    # System-wide events carry `workspaceRef: null` (meshstack.md §4).
    _Template("Platform Created", "Created", True, 1, _platform,
              lambda c: f"Platform '{c['Platform Identifier']}' was created."),
    _Template("Identity Provider Settings Changed", "Changed", True, 2, _idp,
              lambda c: f"Identity provider setting '{c['Setting']}' was changed."),
)  # fmt: skip
_TEMPLATE_CUMULATIVE = tuple(itertools.accumulate(t.weight for t in _TEMPLATES))


@dataclass(frozen=True, slots=True)
class Event:
    """One event as stored: enough to render the record deterministically."""

    created_us: int
    uuid: str
    template: int
    workspace: int
    author: int
    salt: int

    @property
    def title(self) -> str:
        return _TEMPLATES[self.template].title

    @property
    def event_type(self) -> str:
        return _TEMPLATES[self.template].event_type


@dataclass(frozen=True)
class Filters:
    """The list endpoint's filters (meshstack.md §2.2); None means "not given"."""

    title: str | None = None
    description: str | None = None
    author_type: str | None = None
    author_identifier: str | None = None
    event_type: str | None = None
    workspace_name: str | None = None
    workspace_identifier: str | None = None
    exclude_titles: tuple[str, ...] = ()

    def active(self) -> bool:
        return any(v for v in vars(self).values())


class EventLog:
    """The simulator's event store: a seeded backlog plus a live stream, kept in (createdAt, uuid) order."""

    def __init__(
        self, seed: int, backlog_events: int, backlog_secs: float, live_rate: float, now_us: int
    ) -> None:
        rng = random.Random(seed)
        self._world = _World.from_seed(rng)
        self._live_rng = random.Random(f"{seed}:live")
        self.live_rate = live_rate
        span_us = max(1, int(backlog_secs * 1_000_000))
        backlog = [
            self._new_event(rng, now_us - span_us + rng.randrange(span_us)) for _ in range(backlog_events)
        ]
        backlog.sort(key=_order)
        self._events: list[Event] = backlog
        self._created: list[int] = [e.created_us for e in backlog]
        self._by_uuid: dict[str, int] | None = None
        self.live = live_rate > 0
        # Live event n after the anchor is due at anchor + n / live_rate.
        self._anchor_us = now_us
        self._anchor_total = len(backlog)

    def __len__(self) -> int:
        return len(self._events)

    def advance(self, now_us: int) -> None:
        """Create the live events that have become due by ``now_us``."""
        if not self.live:
            return
        due = int((now_us - self._anchor_us) * self.live_rate / 1_000_000)
        made = len(self._events) - self._anchor_total
        for n in range(made + 1, due + 1):
            created = self._anchor_us + round(n * 1_000_000 / self.live_rate)
            self._append(self._new_event(self._live_rng, min(created, now_us)))

    def set_live(self, live: bool, now_us: int) -> None:
        """Pause or resume live generation; a pause keeps everything created up to ``now_us``."""
        self.advance(now_us)
        if live and not self.live:
            # Resume counts from now: nothing is back-filled for the paused interval.
            self._anchor_us = now_us
            self._anchor_total = len(self._events)
        self.live = live and self.live_rate > 0

    def query(self, from_us: int | None, until_us: int | None, filters: Filters) -> list[Event]:
        """Events with ``from <= createdAt < until`` that pass ``filters``, in (createdAt, uuid) order."""
        lo = 0 if from_us is None else bisect.bisect_left(self._created, from_us)
        hi = len(self._created) if until_us is None else bisect.bisect_left(self._created, until_us)
        window = self._events[lo:hi]
        if not filters.active():
            return window
        return [e for e in window if self._matches(e, filters)]

    def get(self, event_uuid: str) -> Event | None:
        if self._by_uuid is None or len(self._by_uuid) != len(self._events):
            self._by_uuid = {e.uuid: i for i, e in enumerate(self._events)}
        i = self._by_uuid.get(event_uuid)
        return None if i is None else self._events[i]

    def render(self, event: Event, origin: str) -> dict[str, Any]:
        """The record exactly as meshStack serves it (meshstack.md §4)."""
        template = _TEMPLATES[event.template]
        ws_id, ws_name = _WORKSPACES[event.workspace]
        content, previous = template.build(_Picks(event.salt), self._world, ws_name)
        author_type, identifier = self._world.authors[event.author]
        spec: dict[str, Any] = {
            "title": template.title,
            "eventType": template.event_type,
            "description": template.describe(content),
            "workspaceRef": None if template.system_wide else {"name": ws_id, "kind": "meshWorkspace"},
            "content": content,
        }
        if template.event_type == "Changed":
            spec["previousContent"] = previous
        spec["author"] = {"authorType": author_type, "identifier": identifier}
        return {
            "kind": "meshEventLog",
            "apiVersion": "v1-preview",
            "metadata": {"uuid": event.uuid, "createdAt": format_created_at(event.created_us)},
            "spec": spec,
            "_links": {"self": {"href": f"{origin}/api/meshobjects/mesheventlogs/{event.uuid}"}},
        }

    # --- internals -----------------------------------------------------------------------------

    def _new_event(self, rng: random.Random, created_us: int) -> Event:
        template = _weighted(rng, _TEMPLATE_CUMULATIVE)
        if _TEMPLATES[template].system_wide:
            author = self._world.system_author
        else:
            author = _weighted(rng, self._world.author_cumulative)
        return Event(
            created_us=created_us,
            uuid=_uuid(rng),
            template=template,
            workspace=rng.randrange(len(_WORKSPACES)),
            author=author,
            salt=rng.getrandbits(128),
        )

    def _append(self, event: Event) -> None:
        if self._events and _order(event) < _order(self._events[-1]):
            # Only possible when two live events share a microsecond: keep the (createdAt, uuid) order.
            i = bisect.bisect_left(self._events, _order(event), key=_order)
            self._events.insert(i, event)
            self._created.insert(i, event.created_us)
        else:
            self._events.append(event)
            self._created.append(event.created_us)

    def _matches(self, e: Event, f: Filters) -> bool:
        template = _TEMPLATES[e.template]
        author_type, identifier = self._world.authors[e.author]
        ws_id, ws_name = _WORKSPACES[e.workspace]
        checks: Iterable[bool] = (
            f.title is None or f.title.lower() in template.title.lower(),
            f.event_type is None or f.event_type == template.event_type,
            f.author_type is None or f.author_type == author_type,
            f.author_identifier is None or f.author_identifier == identifier,
            f.workspace_identifier is None or (not template.system_wide and f.workspace_identifier == ws_id),
            f.workspace_name is None
            or (not template.system_wide and f.workspace_name.lower() in ws_name.lower()),
            template.title not in f.exclude_titles,
        )
        if not all(checks):
            return False
        if f.description is not None:
            content, _ = template.build(_Picks(e.salt), self._world, ws_name)
            return f.description.lower() in template.describe(content).lower()
        return True


def format_created_at(created_us: int) -> str:
    """Microsecond ISO-8601 in UTC with ``Z``, as in meshStack's sample response."""
    seconds, micros = divmod(created_us, 1_000_000)
    return f"{_second_prefix(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second_prefix(seconds: int) -> str:
    # Records on a page are sorted by time, so neighbours mostly share their second.
    return (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def _weighted(rng: random.Random, cumulative: tuple[int, ...]) -> int:
    """An index drawn with the given cumulative weights (``random.choices`` without its overhead)."""
    return bisect.bisect(cumulative, rng.random() * cumulative[-1])


def _order(e: Event) -> tuple[int, str]:
    return (e.created_us, e.uuid)


def _uuid(rng: random.Random) -> str:
    return _format_uuid4(rng.getrandbits(128))


def _format_uuid4(n: int) -> str:
    """``str(uuid.UUID(int=n, version=4))`` without building a UUID object (it is on the hot path)."""
    n = (n & ~(0xC000 << 48) | 0x8000 << 48) & ~(0xF000 << 64) | 0x4000 << 64
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
