"""Assembles a running logferry from a validated config: state, pipeline, health API."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from logferry.allocator import tune_malloc
from logferry.config.base import BuildContext
from logferry.config.loader import Config
from logferry.core.pipeline import Pipeline, SinkSpec, SourceSpec
from logferry.observe.health import HealthServer
from logferry.observe.logging import log_event
from logferry.observe.metrics import Metrics
from logferry.state.sqlite import SQLiteStateStore
from logferry.state.store import StateStore

__all__ = ["Service", "open_store"]


def open_store(cfg: Config) -> StateStore:
    return SQLiteStateStore(cfg.state_path(), synchronous=cfg.state.synchronous)


class Service:
    """``await start()`` … ``await stop()``; everything a ``logferry run`` process owns."""

    def __init__(self, cfg: Config, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.store = open_store(cfg)
        self.ctx = BuildContext(data_dir=cfg.state_path().parent, metrics=self.metrics)
        self.sources = {name: sc.build(name, self.ctx) for name, sc in cfg.sources.items()}
        self.sinks = {name: kc.build(name, self.ctx) for name, kc in cfg.sinks.items()}
        self.pipeline = Pipeline(
            self.store,
            {n: SourceSpec(self.sources[n], cfg.sources[n].dedupe_ttl_secs) for n in cfg.sources},
            {
                n: SinkSpec(self.sinks[n], k.inputs, k.outbox_max_bytes, k.max_backoff_secs, k.where)
                for n, k in cfg.sinks.items()
            },
            self.metrics,
        )
        self.health: HealthServer | None = None
        self.logger = logging.getLogger("logferry.service")

    @property
    def data_dir(self) -> Path:
        return self.ctx.data_dir

    async def start(self) -> None:
        tune_malloc()
        await self.store.open()
        if self.cfg.api.enabled:
            host, port = self.cfg.api.host_port()
            self.health = HealthServer(
                host=host, port=port, status=self.pipeline.status, metrics=self.metrics
            )
            await self.health.start()
            log_event(self.logger, logging.INFO, "api_listening", url=self.health.url)
        await self.pipeline.start()
        # Everything alive now (modules, models, clients) lives as long as the process; frozen,
        # the collector stops re-scanning it on every full collection (bench: 2.5 → 0.7 µs/event).
        gc.collect()
        gc.freeze()

    async def stop(self, grace_secs: float = 8.0) -> None:
        await self.pipeline.stop(grace_secs)
        if self.health is not None:
            await self.health.stop()
        await self.ctx.close()
        await self.store.close()
