"""The ``logferry`` command line: run, validate, check, demo, sim, state, dead-letters, schema, azure.

Errors the user can fix are printed as one line each and exit 2; tracebacks are for bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from logferry.azure.cli import app as azure_app
from logferry.config.base import BuildContext, SinkConfig, SourceConfig
from logferry.config.loader import DEFAULT_STATE_PATH, Config, config_schema, load_config
from logferry.connectors import load_builtin
from logferry.core.errors import ConfigError, LogferryError
from logferry.core.sink import CheckResult
from logferry.observe.logging import configure_logging
from logferry.observe.redact import redact
from logferry.sim import SIMULATORS
from logferry.state.sqlite import SQLiteStateStore

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="logferry",
    help="Security logs from cloud services into the SIEM you already run, with nothing lost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state_app = typer.Typer(help="Inspect or reset durable state (cursors, outboxes).", no_args_is_help=True)
dead_app = typer.Typer(help="List or replay dead letters.", no_args_is_help=True)
app.add_typer(state_app, name="state")
app.add_typer(dead_app, name="dead-letters")
o365_app = typer.Typer(help="Office 365 Management Activity API onboarding.", no_args_is_help=True)
app.add_typer(o365_app, name="o365")
app.add_typer(azure_app, name="azure")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path to logferry.yaml.")]
OptionalConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to logferry.yaml.")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help=f"SQLite state file (default: from the config, or {DEFAULT_STATE_PATH})."),
]


def _fail(problems: list[str], code: int = 2) -> typer.Exit:
    for p in problems:
        typer.echo(p, err=True)
    return typer.Exit(code)


def _load(path: Path, remote_secrets: bool = True) -> Config:
    load_builtin()
    try:
        return load_config(path, remote_secrets=remote_secrets)
    except ConfigError as exc:
        raise _fail(exc.problems) from None


@app.command()
def run(config: ConfigOpt) -> None:
    """Run the pipeline until SIGTERM or SIGINT, then stop gracefully (exit 0)."""
    cfg = _load(config)
    configure_logging(cfg.log.level, cfg.log.format)
    from logferry.service import Service

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        service = Service(cfg)
        await service.start()
        await stop.wait()
        await service.stop(grace_secs=8.0)

    try:
        asyncio.run(main())
    except LogferryError as exc:
        raise _fail([str(exc)], 1) from None
    except OSError as exc:
        raise _fail([f"cannot start: {exc}"], 1) from None


@app.command()
def validate(config: ConfigOpt) -> None:
    """Check a config without touching the network; exit 2 with one line per problem."""
    _load(config, remote_secrets=False)
    typer.echo(f"{config}: ok")


async def _source_check(sc: SourceConfig, name: str, ctx: BuildContext) -> CheckResult:
    src = sc.build(name, ctx)
    try:
        return await src.check()
    finally:
        await src.close()


async def _sink_check(kc: SinkConfig, name: str, ctx: BuildContext) -> CheckResult:
    sink = kc.build(name, ctx)
    try:
        await sink.start()
        return await sink.healthcheck()
    finally:
        await sink.close()


async def _check_one(kind: str, name: str, check: Awaitable[CheckResult]) -> bool:
    """Print one component's check; one that cannot even be built fails alone, without a traceback."""
    try:
        res = await check
        ok, message = res.ok, res.message
    except ConfigError as exc:
        ok, message = False, "; ".join(exc.problems)
    except Exception as exc:
        ok, message = False, redact(f"{type(exc).__name__}: {exc}")
    typer.echo(f"{kind} {name}: {'ok' if ok else 'FAILED'}: {message}")
    return ok


@app.command()
def check(config: ConfigOpt) -> None:
    """Authenticate every source and sink and make one harmless request each."""
    cfg = _load(config)
    configure_logging("error", "text")
    from logferry.observe.metrics import Metrics

    async def main() -> bool:
        ctx = BuildContext(data_dir=cfg.state_path().parent, metrics=Metrics())
        all_ok = True
        try:
            for name, sc in cfg.sources.items():
                all_ok &= await _check_one("source", name, _source_check(sc, name, ctx))
            for name, kc in cfg.sinks.items():
                all_ok &= await _check_one("sink", name, _sink_check(kc, name, ctx))
        finally:
            await ctx.close()
        return all_ok

    if not asyncio.run(main()):
        raise typer.Exit(1)


@o365_app.command("consent-url")
def o365_consent_url(
    client_id: Annotated[str, typer.Option(help="Application (client) id of the app registration.")],
    redirect_uri: Annotated[str, typer.Option(help="A reply URL registered on the app.")],
    cloud: Annotated[str, typer.Option(help="commercial, gcc, gcc_high or dod.")] = "commercial",
    tenant: Annotated[str, typer.Option(help="A tenant id to consent in, or 'common' for any.")] = "common",
) -> None:
    """Print the link a tenant admin opens to consent to the app (once per tenant)."""
    from logferry.sources.o365.config import CLOUDS
    from logferry.sources.o365.onboarding import consent_url

    if cloud not in CLOUDS:
        raise _fail([f"--cloud: unknown cloud {cloud!r}; use one of {', '.join(CLOUDS)}"])
    typer.echo(consent_url(client_id, redirect_uri, cloud, tenant))


@o365_app.command("subscriptions")
def o365_subscriptions(
    config: ConfigOpt,
    source: Annotated[str | None, typer.Option(help="Which office365 source (default: every one).")] = None,
    start: Annotated[bool, typer.Option("--start", help="Start the configured content types first.")] = False,
) -> None:
    """List the subscription of every configured tenant and content type; exit 1 if any is not enabled."""
    cfg = _load(config)
    configure_logging("error", "text")
    from logferry.config.base import BuildContext
    from logferry.observe.metrics import Metrics
    from logferry.sources.o365.config import Office365Config
    from logferry.sources.o365.onboarding import subscription_states
    from logferry.sources.o365.source import Office365Source

    names = [n for n, sc in cfg.sources.items() if isinstance(sc, Office365Config) and source in (None, n)]
    if not names:
        raise _fail([f"{config}: no office365 source{f' named {source!r}' if source else ''}"])

    async def main() -> bool:
        ctx = BuildContext(data_dir=cfg.state_path().parent, metrics=Metrics())
        ok = True
        try:
            for name in names:
                src = cfg.sources[name].build(name, ctx)
                assert isinstance(src, Office365Source)  # an office365 config builds one
                for state in await subscription_states(src, start):
                    ok &= state.status == "enabled"
                    typer.echo(f"{name} {state.tenant_id} {state.content_type}: {state.status}")
        finally:
            await ctx.close()
        return ok

    if not asyncio.run(main()):
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the config file (for editors and CI checks)."""
    load_builtin()
    typer.echo(orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2).decode())


def _state_path(config: Path | None, state: Path | None) -> Path:
    if state is not None:
        return state
    if config is not None:
        return _load(config, remote_secrets=False).state_path()
    return Path(DEFAULT_STATE_PATH)


def _with_store(path: Path, fn: Callable[[SQLiteStateStore], Awaitable[T]]) -> T:
    if not path.exists():
        raise _fail([f"{path}: no state store here yet (run logferry first, or pass --state/--config)"])

    async def main() -> T:
        store = SQLiteStateStore(path)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except LogferryError as exc:
        raise _fail([str(exc)]) from None


@state_app.command("show")
def state_show(
    config: OptionalConfigOpt = None,
    state: StateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Cursors, outbox depth per sink and dead letters."""

    async def fn(store: SQLiteStateStore) -> Any:
        outbox = await store.outbox_stats()
        return {
            "cursors": await store.cursors(),
            "outbox": {
                k: {"entries": v.entries, "events": v.events, "bytes": v.bytes} for k, v in outbox.items()
            },
            "dead_letters": len(await store.dead_letters(limit=1_000_000)),
        }

    data = _with_store(_state_path(config, state), fn)
    if as_json:
        typer.echo(orjson.dumps(data).decode())
        return
    typer.echo("cursors:")
    for src, cur in data["cursors"].items():
        typer.echo(f"  {src}: {orjson.dumps(cur).decode()}")
    typer.echo("outbox:")
    for sink, st in data["outbox"].items():
        typer.echo(f"  {sink}: {st['events']} events in {st['entries']} entries, {st['bytes']} bytes")
    typer.echo(f"dead letters: {data['dead_letters']}")


@state_app.command("reset")
def state_reset(
    source: Annotated[str, typer.Argument(help="Source name whose cursor and seen ids to forget.")],
    config: OptionalConfigOpt = None,
    state: StateOpt = None,
) -> None:
    """Forget a source's cursor; it starts again from its initial lookback (duplicates possible)."""

    async def fn(store: SQLiteStateStore) -> Any:
        await store.reset_source(source)
        return None

    _with_store(_state_path(config, state), fn)
    typer.echo(f"reset {source}")


@dead_app.command("list")
def dead_list(
    config: OptionalConfigOpt = None,
    state: StateOpt = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show dead letters: where they came from, why, and the first bytes of the payload."""

    async def fn(store: SQLiteStateStore) -> Any:
        return await store.dead_letters(limit)

    letters = _with_store(_state_path(config, state), fn)
    for d in letters:
        if as_json:
            payload = d.payload.decode("utf-8", "replace")
            row = {
                "id": d.id,
                "component": d.component,
                "stage": d.stage,
                "reason": d.reason,
                "payload": payload,
            }
            typer.echo(orjson.dumps(row).decode())
        else:
            preview = d.payload[:120].decode("utf-8", "replace").replace("\n", " ")
            typer.echo(f"#{d.id} {d.component} ({d.stage}): {d.reason}\n    {preview}")
    if not letters and not as_json:
        typer.echo("no dead letters")


@dead_app.command("replay")
def dead_replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Dead-letter ids; all sink dead letters if omitted.")
    ] = None,
    config: OptionalConfigOpt = None,
    state: StateOpt = None,
) -> None:
    """Put sink dead letters back into their sink's outbox (after fixing the cause)."""

    async def fn(store: SQLiteStateStore) -> Any:
        return await store.replay_dead_letters(ids or None)

    n = _with_store(_state_path(config, state), fn)
    typer.echo(f"replayed {n} dead letters into their sinks' outboxes")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sim(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Simulator: " + ", ".join(sorted(SIMULATORS)) + ".")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 0,
    tls: Annotated[bool, typer.Option("--tls", help="Serve HTTPS with a self-signed certificate.")] = False,
) -> None:
    """Run one vendor API simulator standalone; prints its URL and credentials as JSON."""
    from logferry.sim import run_standalone

    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run_standalone(name, host, port, tls, list(ctx.args)))
        except ValueError as exc:
            raise _fail([str(exc)]) from None


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long the live part of the demo runs.")] = 20.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object on the last line.")
    ] = False,
) -> None:
    """Run meshStack → Sentinel against the built-in simulators, with injected faults."""
    from logferry.demo import run_demo

    summary = asyncio.run(run_demo(seconds=seconds, as_json=as_json))
    if summary["lost"] != 0:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        sys.exit(2)
