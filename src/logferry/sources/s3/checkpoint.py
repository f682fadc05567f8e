"""Which objects of a time-named S3 folder are done: a listing floor plus the recent keys read.

Umbrella names objects by upload time (``dnslogs/2026-11-21/2026-11-21-10-20-a1b2.csv.gz``), so
key order is time order and ``ListObjectsV2(StartAfter=floor)`` skips everything already read.
A key alone is not enough, though: the spec warns that files can land late with an older name
(Sentinel's connector lists 60 minutes back for them, §2, §7). So each folder keeps

* ``floor``: the StartAfter marker; every key at or below it is done, or was older than the
  look-back when the floor passed it;
* ``done``: the keys above the floor already read. Listing re-reads these names (metadata
  only) and skips them, and a late file between them is read when it appears.

When a key is added, keys named more than ``lookback_secs`` before the newest one read move
below the floor, so ``done`` stays small (about one look-back's worth of uploads).

The object being read is part of the checkpoint too: ``current = {"key": …, "row": n}`` says
``n`` rows of it are committed, so a crash resumes at row ``n + 1``. Cursor::

    {"folders": {"acme/dnslogs/": {"floor": "acme/dnslogs/2026-11-21/2026-11-21-09-10",
                                    "done": ["acme/dnslogs/2026-11-21/2026-11-21-10-10-x1y2.csv.gz"]}},
     "current": {"key": "acme/dnslogs/2026-11-21/2026-11-21-10-20-a1b2.csv.gz", "row": 5000}}
"""

from __future__ import annotations

import re
from bisect import insort
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from logferry.core.types import JSONValue

__all__ = ["Checkpoint", "Folder", "key_time", "marker"]

_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})-(\d{2})-(\d{2})-[^/]*$")


def key_time(key: str) -> datetime | None:
    """The upload time in an Umbrella object name, or ``None`` for a name of another shape."""
    m = _TIME_RE.search(key)
    if m is None:
        return None
    try:
        return datetime.strptime(f"{m[1]} {m[2]}:{m[3]}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def marker(prefix: str, t: datetime) -> str:
    """A key that sorts before every object of ``prefix`` named at or after minute ``t``."""
    day = t.strftime("%Y-%m-%d")
    return f"{prefix}{day}/{day}-{t.strftime('%H-%M')}"


@dataclass
class Folder:
    floor: str | None = None
    done: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"floor": self.floor, "done": list(self.done)}


@dataclass
class Checkpoint:
    lookback: timedelta
    folders: dict[str, Folder] = field(default_factory=dict)
    #: ``(key, rows committed)`` of the object being read, if any.
    current: tuple[str, int] | None = None

    @classmethod
    def load(
        cls, cursor: JSONValue | None, prefixes: list[str], lookback_secs: float, start: datetime | None
    ) -> Checkpoint:
        """The saved checkpoint for the folders ``prefixes`` names; folders it lacks start at ``start``
        (``None``: their first object).

        Folders saved but no longer configured are dropped: ``folder_of`` then ignores their keys, so
        neither SQS nor a half-read ``current`` object keeps reading a log type taken out of the config
        (the next commit forgets them; configured again later, they start afresh at ``start``).
        """
        cp = cls(timedelta(seconds=lookback_secs))
        saved = cursor if isinstance(cursor, dict) else {}
        folders = saved.get("folders")
        for prefix, f in (folders if isinstance(folders, dict) else {}).items():
            if prefix in prefixes and isinstance(f, dict):
                floor = f.get("floor")
                done = f.get("done")
                cp.folders[prefix] = Folder(
                    floor if isinstance(floor, str) else None,
                    sorted(k for k in done if isinstance(k, str)) if isinstance(done, list) else [],
                )
        for prefix in prefixes:
            if prefix not in cp.folders:
                cp.folders[prefix] = Folder(marker(prefix, start) if start is not None else None)
        cur = saved.get("current")
        if isinstance(cur, dict) and isinstance(cur.get("key"), str) and isinstance(cur.get("row"), int):
            cp.current = (cur["key"], cur["row"])
        return cp

    def folder_of(self, key: str) -> str | None:
        """The configured folder prefix ``key`` lies in (the longest, should they nest)."""
        best = None
        for prefix in self.folders:
            if key.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return best

    def is_done(self, prefix: str, key: str) -> bool:
        f = self.folders[prefix]
        return key in f.done

    def below_floor(self, prefix: str, key: str) -> bool:
        floor = self.folders[prefix].floor
        return floor is not None and key <= floor

    def in_progress(self, key: str, row: int) -> JSONValue:
        """The cursor to commit with rows up to ``row`` of ``key``."""
        return self._json(current={"key": key, "row": row})

    def finished(self, prefix: str, key: str) -> tuple[JSONValue, Folder]:
        """The cursor to commit with the last rows of ``key``, and the folder state it holds."""
        f = Folder(self.folders[prefix].floor, list(self.folders[prefix].done))
        if key not in f.done:
            insort(f.done, key)
        self._prune(prefix, f)
        return self._json(folder=(prefix, f), current=None), f

    def committed(self, prefix: str | None, folder: Folder | None, current: tuple[str, int] | None) -> None:
        """Adopt what a successful commit stored."""
        if prefix is not None and folder is not None:
            self.folders[prefix] = folder
        self.current = current

    def _prune(self, prefix: str, f: Folder) -> None:
        times = [t for t in map(key_time, f.done) if t is not None]
        if not times:
            return
        horizon = marker(prefix, max(times) - self.lookback)
        old = [k for k in f.done if k < horizon]
        if old:
            f.done = [k for k in f.done if k >= horizon]
            f.floor = max(old) if f.floor is None else max(f.floor, max(old))

    def _json(self, *, folder: tuple[str, Folder] | None = None, current: dict[str, Any] | None) -> JSONValue:
        folders = {p: f.to_json() for p, f in self.folders.items()}
        if folder is not None:
            folders[folder[0]] = folder[1].to_json()
        return {"folders": folders, "current": current}
