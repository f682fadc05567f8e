"""Legacy SIEM logs lane (``POST /api/audit/get-siem-logs``, API 1.0).

Facts (mimecast.md §6): the request names ``type: MTA``, ``compress``, ``fileFormat`` and, after
the first call, the ``token`` from the previous answer's ``mc-siem-token`` header; success is a
ZIP (``application/octet-stream``), anything else JSON with ``fail[]``; no header means no more
logs for now.

The cursor is the vendor token: ``{"token": "<mc-siem-token to send next>"}``. One ZIP's records
commit together with the token that follows it, so a crash between download and commit asks
again with the same token and the replayed ZIP dedupes. A damaged ZIP or file goes to the dead
letters and the token still advances: retrying a broken answer with the same token is how
Elastic's collector stalled for 7 days (§10).
"""

from __future__ import annotations

from typing import Any

import orjson

from logferry.core.errors import VendorAPIError
from logferry.core.polling import Cycle, poll_forever
from logferry.core.source import SourceContext
from logferry.sources.mimecast.api import MimecastApi, fail_message
from logferry.sources.mimecast.config import LegacySiemConfig
from logferry.sources.mimecast.files import Parsed, parse_legacy_zip

__all__ = ["LEGACY_PATH", "TOKEN_HEADER", "LegacySiemLane"]

LEGACY_PATH = "/api/audit/get-siem-logs"
TOKEN_HEADER = "mc-siem-token"


class LegacySiemLane:
    def __init__(self, cfg: LegacySiemConfig, api: MimecastApi) -> None:
        self.cfg = cfg
        self.api = api

    async def run(self, ctx: SourceContext) -> None:
        cursor: dict[str, Any] = dict(ctx.cursor) if isinstance(ctx.cursor, dict) else {"token": None}

        async def cycle() -> Cycle:
            nonlocal cursor
            cursor, more = await self._one(ctx, cursor)
            return Cycle(lag_secs=None if more else 0.0, more=more)

        await poll_forever(ctx, cycle, self.cfg.interval_secs)

    async def _one(self, ctx: SourceContext, cursor: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Fetch one ZIP; returns the committed cursor and whether more logs are waiting."""
        token = cursor.get("token")
        item: dict[str, Any] = {"type": "MTA", "compress": True, "fileFormat": self.cfg.file_format}
        if token:
            item["token"] = token
        resp = await self.api.http.request("POST", self.api.base + LEGACY_PATH, json={"data": [item]})
        nxt = resp.headers.get(TOKEN_HEADER)
        doc: Any = None
        if not resp.body.startswith(b"PK"):  # a ZIP's signature; anything else should be JSON
            try:
                doc = orjson.loads(resp.body)
            except orjson.JSONDecodeError:
                doc = None
        if doc is not None:
            problem = fail_message(doc)
            if problem is not None:
                raise VendorAPIError(f"Mimecast {LEGACY_PATH} failed (HTTP {resp.status}): {problem}")
            if not nxt:
                return cursor, False  # JSON without a token: nothing new yet
            parsed: Parsed = ([], [], [])
        else:
            parsed = parse_legacy_zip(resp.body, self.cfg.file_format)
        records, ids, rejects = parsed
        if rejects and not nxt:
            # Without a next token the same broken answer would come back forever: say so loudly.
            raise VendorAPIError(
                f"Mimecast {LEGACY_PATH} answered something unreadable ({rejects[0][0]}) and no next token"
            )
        for reason, raw in rejects:
            await ctx.dead_letter(reason, raw)
        new = {"token": nxt or token}
        await ctx.wait_capacity()
        await ctx.emit(records, new, ids)
        return new, bool(nxt) and nxt != token
