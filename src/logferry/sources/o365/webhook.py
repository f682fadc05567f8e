"""The receiver for Management Activity API notifications (the optional webhook mode).

Microsoft validates a webhook when a subscription names it (a POST with ``Webhook-ValidationCode``
that must be answered 200), then posts arrays of content items as they become available, with the
``Webhook-AuthID`` given at registration. A notification is answered 200 only after its items are
committed to the source's cursor, so one that is lost in between is retried by Microsoft (and the
polling that keeps running would find the content anyway).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from logferry.sources.o365.config import WebhookConfig

__all__ = ["NotificationReceiver"]

#: Microsoft sends a handful of items per notification; this bounds what one request may carry.
MAX_BODY_BYTES = 4 << 20

OnItems = Callable[[list[dict[str, Any]]], Awaitable[int]]


class NotificationReceiver:
    def __init__(self, cfg: WebhookConfig, on_items: OnItems, logger: logging.Logger) -> None:
        self.cfg = cfg
        self._on_items = on_items
        self._log = logger
        self._runner: web.AppRunner | None = None
        self.refused = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        host, port = self.cfg.host_port()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.headers.get("Webhook-AuthID", "")
        if not hmac.compare_digest(given.encode(), self.cfg.auth_id.reveal().encode()):
            self.refused += 1
            self._log.warning("o365 webhook: refused a request without the right Webhook-AuthID")
            return web.Response(status=401)
        if "Webhook-ValidationCode" in request.headers:
            return web.Response(status=200)
        try:
            items = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="the notification body is not JSON")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return web.Response(status=400, text="the notification body is not an array of objects")
        queued = await self._on_items(items)
        self._log.debug("o365 webhook: %d item(s), %d queued", len(items), queued)
        return web.Response(status=200)
